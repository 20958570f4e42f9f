"""The fork's DMARC mitigation against a real DNS server (dnsmasq) in a private network namespace:
the fork, with our patch series, installed into a temporary prefix (configure, make install), its
resolver and SMTPHOST pointed at that namespace by running Mailman's side in it.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball), root, dnsmasq and python3-dnspython (as
./setup-host installs them); skipped without the tarball.
"""

import json
import os
import subprocess
from email import message_from_bytes
from email.utils import getaddresses, parseaddr
from pathlib import Path

import pytest
from fork_prefix import PYTHON, install_fork
from netns_dns import LOOPBACK, SMTP_PORT, dns_server, netns, smtp_sink

from conftest import REAL_TARBALL, real_flavour
from mmdeb import PATCHES_DIR

pytestmark = pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")

DOMAIN = "lists.example.org"
LIST = "dmarc"
LIST_ADDRESS = f"{LIST}@{DOMAIN}"
MEMBER = "member@members.example"
ZONE = "example"
SILENT = "silent.example"  # its lookups time out
TXT = {
    "_dmarc.reject.example": ["v=DMARC1; p=reject"],
    "_dmarc.none.example": ["v=DMARC1; p=none"],
    # One record of two character strings, split inside the policy: they join with nothing between.
    "_dmarc.split.example": ["v=DMARC1; p=rej", "ect; rua=mailto:d@split.example"],
}
REJECT = "alice@reject.example"
NONE = "bob@none.example"
SPLIT = "carol@split.example"
# No policy of its own: the organizational domain's (reject.example) applies. The public suffix
# list cannot be fetched from the namespace, so the fork falls back to the last two labels.
SUBDOMAIN = "dave@mail.reject.example"
NO_POLICY = "erin@nopolicy.example"
REFUSED = "frank@elsewhere.test"  # outside the server's zone: it answers REFUSED
TIMEOUT = f"grace@{SILENT}"


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    prefix = install_fork(Path(REAL_TARBALL), tmp_path_factory.mktemp("fork"), DOMAIN, PATCHES_DIR / "py3")
    with open(prefix / "Mailman/mm_cfg.py", "a") as mm_cfg:
        mm_cfg.write(f"SMTPHOST = '{LOOPBACK}'\nSMTPPORT = {SMTP_PORT}\n")
    settings = prefix.parent / "settings.py"
    # Munge From for DMARC posters; everyone may post, so each post goes straight through.
    settings.write_text("dmarc_moderation_action = 1\ngeneric_nonmember_action = 0\n")
    for argv in (["newlist", "-q", LIST, "owner@example.org", "pw"], ["config_list", "-i", str(settings), LIST]):
        subprocess.run([PYTHON, str(prefix / "bin" / argv[0]), *argv[1:]], check=True, capture_output=True)
    subprocess.run([PYTHON, str(prefix / "bin/add_members"), "-r", "-", "-w", "n", "-a", "n", LIST],
                   input=MEMBER, text=True, check=True, capture_output=True)
    return prefix


@pytest.fixture
def served():
    """A namespace with the DNS server."""
    with netns(f"mmdeb-dmarc-{os.getpid()}") as ns, dns_server(ns, ZONE, TXT, SILENT):
        yield ns


@pytest.fixture
def dns_down():
    """A namespace whose resolv.conf names a server that is not running."""
    with netns(f"mmdeb-nodns-{os.getpid()}") as ns:
        yield ns


def prohibited(ns, prefix: Path, addresses: list[str]) -> dict[str, bool]:
    """Utils.IsDMARCProhibited for each address on the list, as SpamDetect calls it, in the namespace."""
    code = (f"import sys, json; sys.path.insert(0, '{prefix}/bin'); import paths\n"
            "from Mailman import MailList, Utils\n"
            f"mlist = MailList.MailList('{LIST}', lock=False)\n"
            f"print(json.dumps({{a: Utils.IsDMARCProhibited(mlist, a) for a in {addresses!r}}}))")
    done = ns.run([PYTHON, "-c", code], check=True)
    return json.loads(done.stdout)


def post(ns, prefix: Path, sink: Path, posters: list[str]) -> dict[str, dict[str, str]]:
    """Each poster's post, injected into the list's incoming queue and run through the qrunners
    (Incoming, Outgoing) to the SMTP sink: the delivered headers, by the post's Subject."""
    for poster in posters:
        message = (f"From: Poster <{poster}>\nTo: {LIST_ADDRESS}\nSubject: from {poster}\n"
                   f"Message-ID: <{poster}.{ns.name}@test>\n\nHello.\n")
        ns.run([PYTHON, str(prefix / "bin/inject"), "-l", LIST], input=message, check=True)
    with smtp_sink(ns, sink):
        ns.run([PYTHON, str(prefix / "bin/qrunner"), "-r", "Incoming", "-r", "Outgoing", "--drain=1"], check=True)
    delivered = [message_from_bytes(path.read_bytes()) for path in sorted(sink.iterdir())]
    return {message["Subject"].split()[-1]: message for message in delivered}


def munged(message, poster: str) -> bool:
    """From is the list, the poster kept in Reply-To (Mailman's munge for a list that does not set Reply-To)."""
    if parseaddr(message["From"])[1] != LIST_ADDRESS:
        assert parseaddr(message["From"])[1] == poster
        return False
    assert poster in [address for _, address in getaddresses(message.get_all("Reply-To", []))]
    return True


def no_crash(prefix: Path) -> None:
    error = prefix / "logs/error"
    assert "Traceback" not in (error.read_text() if error.exists() else "")
    shunt = prefix / "qfiles/shunt"
    assert not (shunt.exists() and any(shunt.iterdir()))


def test_policies_from_a_real_dns_server(prefix, served):
    assert prohibited(served, prefix, [REJECT, NONE, SPLIT, SUBDOMAIN, NO_POLICY]) == {
        REJECT: True, NONE: False, SPLIT: True, SUBDOMAIN: True, NO_POLICY: False}
    vette = (prefix / "logs/vette").read_text()
    assert f"DMARC lookup for {REJECT} (_dmarc.reject.example) found p=reject" in vette
    no_crash(prefix)


def test_dns_failures_mitigate_as_upstream(prefix, served, dns_down):
    """2.1.39's rule: a failed lookup may have missed a policy a receiver sees, so mitigate."""
    assert prohibited(served, prefix, [REFUSED, TIMEOUT]) == {REFUSED: True, TIMEOUT: True}
    assert prohibited(dns_down, prefix, [REJECT, NONE]) == {REJECT: True, NONE: True}
    assert "DNSException" in (prefix / "logs/error").read_text()
    no_crash(prefix)


def test_posts_are_munged_for_p_reject_only(prefix, served, tmp_path):
    delivered = post(served, prefix, tmp_path, [REJECT, NONE, SUBDOMAIN])
    assert sorted(delivered) == sorted([REJECT, NONE, SUBDOMAIN])
    assert munged(delivered[REJECT], REJECT)
    assert munged(delivered[SUBDOMAIN], SUBDOMAIN)
    assert not munged(delivered[NONE], NONE)
    no_crash(prefix)


def test_posts_are_delivered_and_mitigated_without_dns(prefix, dns_down, tmp_path):
    delivered = post(dns_down, prefix, tmp_path, [REJECT, NONE])
    assert munged(delivered[REJECT], REJECT)
    assert munged(delivered[NONE], NONE)
    no_crash(prefix)
