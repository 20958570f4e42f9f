"""mailmen-common and its mailmen-dkim, without a list host: the package's debian/, the signer's
tables, Postfix's milter list, the records to publish and the judgement of what the DNS answers.
Signing itself, with real mail and real DNS, is tests/test_dkim.py's."""

import re

import pytest
from helpers.rendering import rendered_common

from mmdeb.build.render import EXIM_DKIM_MACROS
from mmdeb.build.spec import common_version, split_common_version
from mmdeb.domains.layout import DKIM_SIGNER, SIGNED_HEADERS
from mmdeb.errors import MmdebError
from mmdeb.listhost.dkim import (MILTER, Key, Record, check, genkey_argv, key_table, main, new_selector,
                                 postconf_get_argv, postconf_set_argv, public_key_argv, records, signing_table,
                                 verdict, with_milter)

KEY = Key("lists.example.org", "mm20261203")
PUBLIC = "MIIBIjANBgkqh" + "A" * 380  # as long as a 2048-bit key's
WANTED = records(KEY, PUBLIC, "host.example")


@pytest.fixture
def debian(tmp_path):
    return rendered_common(tmp_path)[1]


def test_the_commands_argv():
    assert genkey_argv("/k") == ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "/k"]
    assert public_key_argv("/k") == ["openssl", "pkey", "-in", "/k", "-pubout", "-outform", "DER"]
    assert postconf_get_argv("smtpd_milters") == ["postconf", "-h", "smtpd_milters"]
    assert postconf_set_argv("smtpd_milters", "a, b") == ["postconf", "-e", "smtpd_milters = a, b"]


def test_the_version_is_mmdebs_with_a_revision():
    assert common_version("0.2.0", 3, "trixie") == "0.2.0+3+deb13"
    assert split_common_version("0.2.0+3+deb13") == ("0.2.0", 3)


def test_a_change_to_its_files_gives_the_next_revision():
    from mmdeb import __version__
    from mmdeb.domains.state import PackageState
    from mmdeb.plan.rebuild import common_inputs, plan_common
    first = plan_common(PackageState(), "trixie", "medium")
    assert (first.spec.version, first.reasons) == (f"{__version__}+1+deb13", ("first build",))
    assert plan_common(PackageState(built=first.spec.version, inputs=common_inputs()), "trixie", "medium") is None
    changed = plan_common(PackageState(built=first.spec.version, inputs={**common_inputs(), "templates": "old"}),
                          "trixie", "medium")
    assert (changed.spec.version, changed.reasons) == (f"{__version__}+2+deb13", ("changed debian-templates",))
    older = plan_common(PackageState(built="0.1.0+7+deb13", inputs={**common_inputs(), "mmdeb": "0.1.0"}), "trixie", "medium")
    assert older.spec.version == f"{__version__}+1+deb13"


def test_the_package_ships_the_signer_the_command_and_the_exim_macros(debian):
    rules = (debian / "rules").read_text()
    assert f"/etc/exim4/conf.d/main/{EXIM_DKIM_MACROS}" in rules and "dh_python3 /usr/share/mailmen-common" in rules
    assert (debian / f"mailmen-common.{DKIM_SIGNER}.service").exists() and (debian / f"mailmen-common.{DKIM_SIGNER}.init").exists()
    opendkim = (debian / "opendkim.conf").read_text()
    assert f"SignHeaders\t\t{','.join(SIGNED_HEADERS)}\n" in opendkim and "List-Unsubscribe-Post" in SIGNED_HEADERS
    exim = (debian / "exim4-dkim").read_text()
    assert f"DKIM_SIGN_HEADERS = {':'.join(SIGNED_HEADERS)}\n" in exim and exim.startswith("# ")
    for line in exim.splitlines():
        if line.startswith("DKIM_"):
            assert line.count("{") == line.count("}"), line
    assert "interest-noawait /usr/share/mailmen/domains" in (debian / "triggers").read_text()


def test_the_signers_tables_name_each_domain_with_its_key():
    other = Key("lists.example.net", "s2")
    assert key_table([KEY, other]) == (
        "mm20261203._domainkey.lists.example.org lists.example.org:mm20261203:/etc/mailmen/lists.example.org/dkim/mm20261203.private\n"
        "s2._domainkey.lists.example.net lists.example.net:s2:/etc/mailmen/lists.example.net/dkim/s2.private\n")
    assert signing_table([KEY]) == "*@lists.example.org mm20261203._domainkey.lists.example.org\n"


def test_postfix_keeps_its_other_milters():
    assert with_milter("", True) == MILTER
    assert with_milter("inet:localhost:11332", True) == f"inet:localhost:11332, {MILTER}"
    assert with_milter(f"inet:localhost:11332, {MILTER}", True) is None
    assert with_milter(f"{{ inet:a:1, default_action=tempfail }}, {MILTER}", False) == "{ inet:a:1, default_action=tempfail }"
    assert with_milter("inet:localhost:11332", False) is None
    assert with_milter("{unix:mailmen-dkim/opendkim.sock,default_action=accept}", True) is None


def test_the_records_to_publish():
    dkim, spf, dmarc = WANTED
    assert dkim.name == "mm20261203._domainkey.lists.example.org" and dkim.value == f"v=DKIM1; k=rsa; p={PUBLIC}"
    strings = re.findall(r'"([^"]*)"', dkim.zone_line())
    assert all(len(string) <= 255 for string in strings) and len(strings) == 2 and "".join(strings) == dkim.value
    assert spf.value == "v=spf1 a:host.example ~all" and spf.name == "lists.example.org"
    assert dmarc.name == "_dmarc.lists.example.org" and dmarc.value.startswith("v=DMARC1; p=none;")


def test_what_the_dns_answers_is_judged():
    dkim, spf, dmarc = WANTED
    assert verdict(dkim, [f"v=DKIM1; k=rsa; p={PUBLIC[:100]} {PUBLIC[100:]}"]) is None
    assert verdict(dkim, ["v=DKIM1; k=rsa; p=MIIBother"]).startswith("wrong: the DNS has another key")
    assert verdict(spf, ["google-site-verification=x"]).startswith("missing: publish lists.example.org. IN TXT")
    assert verdict(spf, ["v=spf1 -all", "v=spf1 mx -all"]).startswith("wrong: 2 v=spf1 records")
    assert verdict(dmarc, ["v=DMARC1; rua=mailto:x@y"]).startswith("wrong: the DNS record has no valid p= policy")
    assert verdict(dmarc, ["v=DMARC1; p=reject"]) is None


def test_a_dns_failure_is_reported_and_fails_the_check():
    def lookup(name):
        if name.startswith("_dmarc"):
            raise MmdebError(f"the DNS did not answer for {name} (Timeout)")
        return {WANTED[0].name: [WANTED[0].value], WANTED[1].name: [WANTED[1].value]}[name]
    lines, right = check(WANTED, lookup)
    assert not right
    assert lines == ["DKIM mm20261203._domainkey.lists.example.org: ok", "SPF lists.example.org: ok",
                     "DMARC _dmarc.lists.example.org: unknown: the DNS did not answer for _dmarc.lists.example.org (Timeout)"]


def test_selectors_are_dated_labels():
    assert new_selector("never-installed.example", (2026, 12, 3, 0, 0, 0, 3, 337, 0)) == "mm20261203"


@pytest.mark.parametrize("argv", [["rotate", "lists.example.org", "--selector", "Bad_Selector"],
                                  ["records", "not-installed.example"]])
def test_bad_input_is_one_line(argv, capsys):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("mailmen-dkim: error: ") and "Fix: " in err
