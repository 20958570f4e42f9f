"""How domains hook up to the MTA and web servers, without a list host: each domain package's
postinst does its own part and activates mailmen-common's trigger, whose mailmen-hookup reloads
each server once; mailmen-postfix keeps main.cf's entries constant. The rendered scripts run
against stub commands that log their calls, under a scratch root. The real thing is
tests/test_hookup_e2e.py's."""

import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from helpers.rendering import postinst_with_library, rendered
from mmdeb.build.pipeline import first_entry
from mmdeb.build.render import render_common
from mmdeb.build.spec import CommonSpec
from mmdeb.domains.layout import HOOKUP_TRIGGER, POSTFIX_MAPS_DIR
from mmdeb.listhost import postfix
from mmdeb.listhost.postfix import (Member, changed_settings, combined, earlier_entries, postalias_argv, postconf_read_argv,
                                    postconf_write_argv, postmap_argv, wanted_entries)

DOMAINS = ("lists.example.org", "lists.example.net", "lists.example.com")
# Where a server is installed and runs, its stub answers as such; every call is logged.
STUBS = {
    "postconf": "", "postfix": "", "postalias": "", "postmap": "",
    "update-exim4.conf": "", "exim4": '[ "$1" != -bP ] || echo mailman_lists_example_org_router',
    "apache2": "", "apache2ctl": "", "a2enmod": "", "a2ensite": "", "a2dissite": "", "a2query": "exit 1",
    "nginx": "", "fcgiwrap": "", "invoke-rc.d": "",
    "dpkg-trigger": "", "mailmen-postfix": "", "mailmen-dkim": "",
    "ucf": 'cp "$2" "$3"', "ucfr": "", "openssl": "echo the-public-key",
}
DEBCONF = """
db_get() {
	case "$1" in
		*/configure_postfix) RET=true ;;
		*/web_server) RET=apache2 ;;
		*/tls_certificate) RET=$ROOT/cert.pem ;;
		*/tls_key) RET=$ROOT/key.pem ;;
	esac
}
db_set() { :; }
"""


def stubs(directory: Path, log: Path) -> Path:
    directory.mkdir()
    for name, body in STUBS.items():
        (directory / name).write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n{body}\n')
        (directory / name).chmod(0o755)
    return directory


def rooted(script: str, root: Path) -> str:
    """script with the host's paths that it writes moved under root."""
    return re.sub(r"(?<![\w/.-])/(var/lib|etc|usr/share/mailmen)/", rf"{root}/\1/", script)


def run(script: str, root: Path, bin_dir: Path, **env) -> subprocess.CompletedProcess:
    done = subprocess.run(["sh", "-ec", script], capture_output=True, text=True,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "ROOT": str(root), **env})
    assert done.returncode == 0, done.stderr
    return done


def own_part(postinst: str, root: Path) -> str:
    """What postinst configure does for the MTA and web server: its functions, then theirs."""
    functions = postinst.split('\ncase "$1" in')[0].replace(". /usr/share/debconf/confmodule", DEBCONF)
    return rooted(functions, root) + "\nconfigure_mta\nconfigure_web\nhookup\n"


@pytest.fixture
def host(tmp_path):
    root = tmp_path / "root"
    for directory in ("etc/postfix", "etc/nginx/sites-enabled", "usr/share/mailmen/domains", POSTFIX_MAPS_DIR.lstrip("/") + "/members"):
        (root / directory).mkdir(parents=True)
    for domain in DOMAINS:
        (root / f"var/lib/mailmen/{domain}/data").mkdir(parents=True)
        for name in ("aliases", "virtual-mailman"):
            (root / f"var/lib/mailmen/{domain}/data" / name).touch()
        (root / f"etc/mailmen/{domain}").mkdir(parents=True)
        (root / "usr/share/mailmen/domains" / domain).touch()
    (root / "etc/postfix/main.cf").touch()
    (root / "cert.pem").touch()
    (root / "key.pem").touch()
    return root


def test_three_domains_in_one_transaction_reload_each_server_once(tmp_path, upstream, host):
    log = tmp_path / "calls"
    bin_dir = stubs(tmp_path / "bin", log)
    for domain in DOMAINS:
        _, debian = rendered(tmp_path / domain, upstream, domain=domain)
        run(own_part(postinst_with_library(tmp_path / domain, debian), host), host, bin_dir)
        assert (host / POSTFIX_MAPS_DIR.lstrip("/") / "members" / domain).read_text() == "daemon\n"
    domains_calls = log.read_text().splitlines()
    log.unlink()
    # The domains' own parts: their sites and modules, never a reload, restart or main.cf edit.
    assert [call for call in domains_calls if call.split()[0] == "dpkg-trigger"] == \
        [f"dpkg-trigger --no-await {HOOKUP_TRIGGER}"] * 3
    assert [call for call in domains_calls if call.startswith("a2ensite")] == \
        [f"a2ensite -m -q mailman-{domain}" for domain in DOMAINS]
    assert not [call for call in domains_calls if call.split()[0] in ("invoke-rc.d", "postfix", "postconf")]

    # dpkg runs mailmen-common's trigger once for the three activations.
    common = tmp_path / "common"
    spec = CommonSpec("trixie")
    render_common(replace(spec, changelog=(first_entry(spec),)), common)
    run(rooted((common / "mailmen-hookup").read_text(), host), host, bin_dir)
    calls = log.read_text().splitlines()
    assert [call for call in calls if "reload" in call or "restart" in call] == \
        ["postfix reload", "invoke-rc.d exim4 reload", "invoke-rc.d apache2 reload", "invoke-rc.d nginx reload"]
    assert "mailmen-postfix setup" in calls and "apache2ctl configtest" in calls and "nginx -t" in calls


def test_a_failing_configuration_test_is_reported_and_the_server_not_reloaded(tmp_path, host):
    log = tmp_path / "calls"
    bin_dir = stubs(tmp_path / "bin", log)
    (bin_dir / "apache2ctl").write_text(f'#!/bin/sh\necho "apache2ctl $*" >> {log}\n'
                                        'echo "AH00526: Syntax error on line 3 of /etc/apache2/sites-enabled/x.conf:"\nexit 1\n')
    common = tmp_path / "common"
    spec = CommonSpec("trixie")
    render_common(replace(spec, changelog=(first_entry(spec),)), common)
    said = run(rooted((common / "mailmen-hookup").read_text(), host), host, bin_dir).stderr
    assert "apache2ctl configtest fails, so apache2 keeps the configuration it runs" in said
    assert "AH00526: Syntax error on line 3" in said
    assert "invoke-rc.d apache2 reload" not in log.read_text() and "invoke-rc.d nginx reload" in log.read_text()


def test_removing_a_domain_touches_only_its_own_part(tmp_path, upstream, host):
    log = tmp_path / "calls"
    bin_dir = stubs(tmp_path / "bin", log)
    (host / POSTFIX_MAPS_DIR.lstrip("/") / "members" / DOMAINS[0]).write_text("daemon\n")
    (host / POSTFIX_MAPS_DIR.lstrip("/") / "members" / DOMAINS[1]).write_text("daemon\n")
    (host / "etc/nginx/sites-enabled" / f"mailman-{DOMAINS[1]}").symlink_to("x")
    _, debian = rendered(tmp_path / "d", upstream, domain=DOMAINS[0])
    postrm = rooted((debian / "postrm").read_text().replace("#DEBHELPER#", ""), host)
    run(f'set -- remove\n{postrm.split(chr(10), 1)[1]}', host, bin_dir)
    assert sorted(path.name for path in (host / POSTFIX_MAPS_DIR.lstrip("/") / "members").iterdir()) == [DOMAINS[1]]
    assert (host / "etc/nginx/sites-enabled" / f"mailman-{DOMAINS[1]}").is_symlink()
    assert log.read_text().splitlines() == [f"a2query -s mailman-{DOMAINS[0]}", f"dpkg-trigger --no-await {HOOKUP_TRIGGER}"]


# mailmen-postfix: the combined maps and main.cf.

def test_the_commands_argv():
    assert postconf_read_argv(("alias_maps", "virtual_alias_maps")) == ["postconf", "-h", "alias_maps", "virtual_alias_maps"]
    assert postconf_write_argv({"alias_maps": "a, b", "recipient_delimiter": "+"}) == \
        ["postconf", "-e", "alias_maps = a, b", "recipient_delimiter = +"]
    assert postalias_argv("/m/aliases-daemon") == ["postalias", "/m/aliases-daemon"]
    assert postmap_argv("/m/virtual") == ["postmap", "/m/virtual"]


def test_main_cf_gets_the_same_entries_for_one_domain_or_many():
    debian = {"alias_maps": "hash:/etc/aliases", "virtual_alias_maps": "", "virtual_alias_domains": "$virtual_alias_maps",
              "recipient_delimiter": ""}
    one = changed_settings(debian, wanted_entries(["daemon"]), {})
    assert one == {"alias_maps": f"hash:/etc/aliases, hash:{POSTFIX_MAPS_DIR}/aliases-daemon",
                   "virtual_alias_maps": f"hash:{POSTFIX_MAPS_DIR}/virtual",
                   "virtual_alias_domains": f"$virtual_alias_maps, hash:{POSTFIX_MAPS_DIR}/domains",
                   "recipient_delimiter": "+"}
    # Once main.cf has them, a hundred more domains change nothing.
    assert changed_settings(one, wanted_entries(["daemon"]), {}) == {}


def test_the_admins_own_entries_are_kept():
    current = {"alias_maps": "hash:/etc/aliases, ldap:/etc/postfix/ldap-aliases.cf",
               "virtual_alias_maps": "hash:/etc/postfix/virtual", "virtual_alias_domains": "admins.example",
               "recipient_delimiter": "-"}
    changes = changed_settings(current, wanted_entries(["daemon"]), {})
    assert changes["alias_maps"] == \
        f"hash:/etc/aliases, ldap:/etc/postfix/ldap-aliases.cf, hash:{POSTFIX_MAPS_DIR}/aliases-daemon"
    assert changes["virtual_alias_maps"] == f"hash:/etc/postfix/virtual, hash:{POSTFIX_MAPS_DIR}/virtual"
    assert changes["virtual_alias_domains"] == f"admins.example, hash:{POSTFIX_MAPS_DIR}/domains"
    assert "recipient_delimiter" not in changes


def test_an_upgrade_moves_the_per_domain_entries_to_the_combined_maps():
    """What earlier domain packages added, one map of each kind per domain, goes; the domain
    of an earlier package that is not upgraded yet (not a member) keeps its own."""
    old = {name: [] for name in ("alias_maps", "virtual_alias_maps", "virtual_alias_domains")}
    for domain in DOMAINS:
        for name, entries in earlier_entries(domain).items():
            old[name].extend(entries)
    current = {"alias_maps": ", ".join(["hash:/etc/aliases", *old["alias_maps"]]),
               "virtual_alias_maps": ", ".join(old["virtual_alias_maps"]),
               "virtual_alias_domains": ", ".join(old["virtual_alias_domains"]), "recipient_delimiter": "+"}
    unwanted = {name: [entry for domain in DOMAINS[:2] for entry in earlier_entries(domain)[name]] for name in old}
    changes = changed_settings(current, wanted_entries(["daemon"]), unwanted)
    assert changes == {
        "alias_maps": f"hash:/etc/aliases, hash:/var/lib/mailmen/{DOMAINS[2]}/data/aliases, "
                      f"hash:{POSTFIX_MAPS_DIR}/aliases-daemon",
        "virtual_alias_maps": f"hash:/var/lib/mailmen/{DOMAINS[2]}/data/virtual-mailman, hash:{POSTFIX_MAPS_DIR}/virtual",
        "virtual_alias_domains": f"{DOMAINS[2]}, hash:{POSTFIX_MAPS_DIR}/domains"}


def test_the_combined_maps_hold_every_members_entries_by_mail_group(tmp_path):
    for domain in DOMAINS:
        (tmp_path / domain).mkdir()
        (tmp_path / domain / "aliases").write_text(f'{domain}-users: "|/var/lib/mailmen/{domain}/mail/mailman post users"\n')
        (tmp_path / domain / "virtual-mailman").write_text(f"users@{domain}\t{domain}-users\n")
    found = [Member(DOMAINS[0], "daemon"), Member(DOMAINS[1], "daemon"), Member(DOMAINS[2], "mail")]
    texts = combined(found, lambda domain: (tmp_path / domain / "aliases", tmp_path / domain / "virtual-mailman"))
    assert sorted(texts) == ["aliases-daemon", "aliases-mail", "domains", "virtual"]
    assert texts["aliases-daemon"].count("mail/mailman post users") == 2 and DOMAINS[2] not in texts["aliases-daemon"]
    assert DOMAINS[2] in texts["aliases-mail"]
    assert all(f"users@{domain}\t{domain}-users" in texts["virtual"] for domain in DOMAINS)
    assert texts["domains"] == "".join(f"{domain}\tmailmen\n" for domain in DOMAINS)


def test_update_writes_the_maps_and_forgets_a_group_no_member_has(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(postfix, "postfix_here", lambda: True)
    monkeypatch.setattr(postfix, "run", lambda argv: calls.append(argv) or "")
    (tmp_path / ".lock").touch()  # made by setup, as root
    (tmp_path / "aliases-mail").write_text("old\n")
    (tmp_path / "aliases-mail.db").write_text("old\n")
    empty = lambda domain: (tmp_path / "none", tmp_path / "none")  # noqa: E731
    assert postfix.update(tmp_path, [Member(DOMAINS[0], "daemon")], empty, as_root=False) == []
    monkeypatch.setattr(postfix, "postfix_here", lambda: False)  # an Exim host: nothing to write
    assert postfix.update(tmp_path / "none", [Member(DOMAINS[0], "daemon")], empty, as_root=False) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == [".lock", "aliases-daemon", "domains", "virtual"]
    assert sorted(calls) == [postalias_argv(f"{tmp_path}/aliases-daemon"), postmap_argv(f"{tmp_path}/domains"),
                             postmap_argv(f"{tmp_path}/virtual")]


class FakePostconf:
    """postconf -h and -e on a dict, counting the writes."""

    def __init__(self, settings: dict[str, str]):
        self.settings, self.writes = settings, 0

    def __call__(self, argv: list[str]) -> str:
        if argv[:2] == ["postconf", "-h"]:
            return "".join(f"{self.settings.get(name, '')}\n" for name in argv[2:])
        assert argv[:2] == ["postconf", "-e"]
        self.writes += 1
        self.settings.update(setting.split(" = ", 1) for setting in argv[2:])
        return ""


def test_setup_writes_main_cf_once_with_every_entry_then_never(tmp_path, monkeypatch):
    from mmdeb.listhost import dkim
    main_cf = tmp_path / "main.cf"
    main_cf.touch()
    postconf = FakePostconf({"alias_maps": "hash:/etc/aliases", "virtual_alias_domains": "$virtual_alias_maps",
                             "smtpd_milters": "inet:localhost:8891"})
    for name, value in (("MAIN_CF", main_cf), ("run", postconf), ("prepare", lambda directory: None),
                        ("update", lambda directory, found: [])):
        monkeypatch.setattr(postfix, name, value)
    monkeypatch.setattr(dkim, "prepare_socket_dir", lambda: None)
    members = tmp_path / "maps/members"
    members.mkdir(parents=True)
    said = []
    for count, domain in enumerate(DOMAINS, 1):
        (members / domain).write_text("daemon\n")
        postfix.setup(said.append, tmp_path / "maps")
        if count == 1:
            settings = dict(postconf.settings)
    assert postconf.writes == 1 and postconf.settings == settings
    assert settings["alias_maps"] == f"hash:/etc/aliases, hash:{tmp_path}/maps/aliases-daemon"
    assert settings["smtpd_milters"] == f"inet:localhost:8891, {dkim.MILTER}"
    assert said[-1] == f"Postfix delivers mail for {', '.join(sorted(DOMAINS))} to their Mailman."


def test_setup_moves_an_upgraded_domains_own_entries_to_the_combined_maps(tmp_path, monkeypatch):
    from mmdeb.listhost import dkim
    main_cf = tmp_path / "main.cf"
    main_cf.touch()
    old = earlier_entries(DOMAINS[0])
    postconf = FakePostconf({"alias_maps": f"hash:/etc/aliases, {old['alias_maps'][0]}",
                             "virtual_alias_maps": old["virtual_alias_maps"][0],
                             "virtual_alias_domains": f"admins.example, {DOMAINS[0]}", "recipient_delimiter": "+",
                             "smtpd_milters": dkim.MILTER})
    # Its own databases, which main.cf no longer names, go (here under tmp_path).
    own = (tmp_path / "aliases", tmp_path / "virtual-mailman")
    for path in own:
        Path(f"{path}.db").touch()
    for name, value in (("MAIN_CF", main_cf), ("run", postconf), ("prepare", lambda directory: None),
                        ("update", lambda directory, found: [])):
        monkeypatch.setattr(postfix, name, value)
    monkeypatch.setattr(dkim, "prepare_socket_dir", lambda: None)
    (tmp_path / "maps/members").mkdir(parents=True)
    (tmp_path / "maps/members" / DOMAINS[0]).write_text("daemon\n")
    postfix.setup(lambda line: None, tmp_path / "maps", lambda domain: own)
    assert postconf.writes == 1
    assert {name: postconf.settings[name] for name in ("alias_maps", "virtual_alias_maps", "virtual_alias_domains")} == {
        "alias_maps": f"hash:/etc/aliases, hash:{tmp_path}/maps/aliases-daemon",
        "virtual_alias_maps": f"hash:{tmp_path}/maps/virtual",
        "virtual_alias_domains": f"admins.example, hash:{tmp_path}/maps/domains"}
    assert not [path for path in own if Path(f"{path}.db").exists()]
