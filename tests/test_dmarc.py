"""The fork's DMARC mitigation against a real DNS server (dnsmasq) in a private network namespace,
Mailman's resolver and SMTPHOST pointed at it by running Mailman's side in that namespace. Three
sites: the fork with our patch series installed into a prefix (configure, make install) on this
host's Python and dnspython, and the domain package (the same patches) built with sbuild and
installed in a trixie tree (Python 3.13, dnspython 2.7) and in a bookworm tree (Python 3.11,
dnspython 2.3). Two lists munge From for DMARC posters: one made with newlist and config_list,
and one moved from a 2.1.39 tree with mmdeb-import.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball), root, dnsmasq and python3-dnspython (as
./setup-host installs them), and what the trees and sbuild need (Debian's mirror); skipped
without the tarball.
"""

import json
import os
import pickle
import subprocess
from dataclasses import dataclass
from email import message_from_bytes
from email.utils import getaddresses, parseaddr
from pathlib import Path

import pytest
from helpers.e2e_host import Host
from helpers.fork_prefix import PYTHON, install_fork, py2_form
from helpers.netns_dns import LOOPBACK, SMTP_PORT, dns_server, netns, smtp_sink
from helpers.old_mailman import DEBIAN, add_list, debian_tree
from helpers.py2pickle import dumps

from helpers.upstreams import REAL_TARBALL, build, deb_of, real_flavour
from mmdeb import PATCHES_DIR
from mmdeb.domains.domain import Domain
from mmdeb.build.spec import domain_depends
from mmdeb.upstream.dists import FLAVOURS

pytestmark = [pytest.mark.slow,  # builds, then a network namespace with DNS
              pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")]

DOMAIN = "lists.example.org"
LIST = "dmarc"
IMPORTED = "moved"  # a 2.1.39 list set to Munge From, moved with mmdeb-import
MEMBER = "member@members.example"
ZONE = "example"
SILENT = "silent.example"  # its lookups time out
TXT = {  # each name's TXT records, each a list of character strings
    "_dmarc.reject.example": [["v=DMARC1; p=reject"]],
    "_dmarc.none.example": [["v=DMARC1; p=none"]],
    # One record of two character strings, split inside the policy: they join with nothing between.
    "_dmarc.split.example": [["v=DMARC1; p=rej", "ect; rua=mailto:d@split.example"]],
    # The DMARC record beside another TXT record counts; two DMARC records void both (RFC 7489 6.6.3).
    "_dmarc.other.example": [["site-verification=x"], ["v=DMARC1; p=reject"]],
    "_dmarc.two.example": [["v=DMARC1; p=reject"], ["v=DMARC1; p=none"]],
}
REJECT = "alice@reject.example"
NONE = "bob@none.example"
SPLIT = "carol@split.example"
OTHER = "heidi@other.example"
TWO = "ivan@two.example"
# No policy of its own: the organizational domain's (reject.example) applies. The public suffix
# list cannot be fetched from the namespace, so the fork falls back to the last two labels.
SUBDOMAIN = "dave@mail.reject.example"
NO_POLICY = "erin@nopolicy.example"
REFUSED = "frank@elsewhere.test"  # outside the server's zone: it answers REFUSED
TIMEOUT = f"grace@{SILENT}"


# The releases whose domain package is tested, besides the fork installed on this host.
PACKAGE_DISTS = ("trixie", "bookworm")


@dataclass(frozen=True)
class Site:
    """Where Mailman runs: this host, or chrooted into a Debian tree (root), as user if given."""

    prefix: Path  # as this host sees it
    root: Path | None = None
    user: str | None = None
    logs: Path | None = None  # if not the prefix's logs/

    @property
    def log_dir(self) -> Path:
        return self.logs or self.prefix / "logs"

    def path(self, *parts: str) -> str:
        """A path under the prefix as Mailman sees it."""
        return self.inside(self.prefix.joinpath(*parts))

    def inside(self, path: Path) -> str:
        return str(Path("/", path.relative_to(self.root)) if self.root else path)

    def run(self, ns, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        return ns.run(["chroot", str(self.root), *argv] if self.root else argv, **kwargs)

    def script(self, ns, name: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        """A Mailman script, as the site's user."""
        user = ["runuser", "-u", self.user, "--"] if self.user else []
        return self.run(ns, [*user, PYTHON, self.path("bin", name), *args], **kwargs)


def package_host(upstream, top: Path, dist: str) -> Host:
    """A dist tree with the domain package, built with sbuild, installed as test_e2e installs it;
    resolving with the namespace's server (its own resolv.conf: `ip netns exec` mounts only the host's)."""
    built = build(upstream, top / "built", DOMAIN, dist=dist)
    host = Host.create(top / "tree", dist, list(domain_depends(FLAVOURS["py3"], dist)))
    host.start()
    try:
        host.install_offline([deb_of(built, DOMAIN)])
    except BaseException:
        host.stop()
        raise
    (host.root / "etc/resolv.conf").unlink(missing_ok=True)
    (host.root / "etc/resolv.conf").write_text(f"nameserver {LOOPBACK}\n")
    return host


@pytest.fixture(scope="module", params=["this-host", *PACKAGE_DISTS])
def site(request, upstream, tmp_path_factory) -> Site:
    top = tmp_path_factory.mktemp("dmarc")
    if request.param == "this-host":  # the fork with our patch series: configure, make install
        site = Site(install_fork(Path(REAL_TARBALL), top / "fork", DOMAIN, PATCHES_DIR / "py3"))
        mm_cfg = site.prefix / "Mailman/mm_cfg.py"
    else:
        host = package_host(upstream, top, request.param)
        request.addfinalizer(host.stop)
        domain = Domain(DOMAIN)
        site = Site(host.root / domain.prefix.lstrip("/"), host.root, "list", host.root / domain.log_dir.lstrip("/"))
        mm_cfg = host.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
    with open(mm_cfg, "a") as config:
        config.write(f"SMTPHOST = '{LOOPBACK}'\nSMTPPORT = {SMTP_PORT}\n")
    # Munge From for DMARC posters; everyone may post, so each post goes straight through.
    munge = {"dmarc_moderation_action": 1, "generic_nonmember_action": 0}
    work = site.root / "srv" if site.root else top
    settings = work / "settings.py"
    settings.write_text("".join(f"{key} = {value}\n" for key, value in munge.items()))
    with netns(f"mmdeb-setup-{os.getpid()}") as ns:
        site.script(ns, "newlist", "-q", LIST, "owner@example.org", "pw")
        old = work / "old"
        add_list(debian_tree(old), IMPORTED, DOMAIN)
        # Every attribute of a list (the new one's), as 2.1.39 pickles them, set to Munge From.
        (old / DEBIAN / "lists" / IMPORTED / "config.pck").write_bytes(dumps({
            **py2_form(pickle.loads((site.prefix / "lists" / LIST / "config.pck").read_bytes())),
            b"real_name": IMPORTED.encode(), b"subject_prefix": f"[{IMPORTED}] ".encode(), b"host_name": DOMAIN.encode(),
            b"members": {MEMBER.encode(): 0}, b"data_version": 112, **{key.encode(): value for key, value in munge.items()}}))
        site.run(ns, [site.path("bin/mmdeb-import"), site.inside(old)])  # as root, as the README says
        site.script(ns, "config_list", "-i", site.inside(settings), LIST)
        site.script(ns, "add_members", "-r", "-", "-w", "n", "-a", "n", LIST, input=MEMBER)
    return site


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


def prohibited(ns, site: Site, addresses: list[str]) -> dict[str, bool]:
    """Utils.IsDMARCProhibited for each address on the list, as SpamDetect calls it, in the namespace;
    a deprecation warning from Utils fails it (dnspython 2 deprecates query() for resolve())."""
    code = (f"import sys, json; sys.path.insert(0, '{site.path('bin')}'); import paths\n"
            "from Mailman import MailList, Utils\n"
            f"mlist = MailList.MailList('{LIST}', lock=False)\n"
            f"print(json.dumps({{a: Utils.IsDMARCProhibited(mlist, a) for a in {addresses!r}}}))")
    return json.loads(site.run(ns, [PYTHON, "-W", "error::DeprecationWarning:Mailman.Utils", "-c", code]).stdout)


def address(name: str) -> str:
    return f"{name}@{DOMAIN}"


def post(ns, site: Site, sink: Path, name: str, posters: list[str]) -> dict[str, dict[str, str]]:
    """Each poster's post to list name, injected into its incoming queue and run through the
    qrunners (Incoming, Outgoing) to the SMTP sink: the delivered messages, by poster."""
    for poster in posters:
        message = (f"From: Poster <{poster}>\nTo: {address(name)}\nSubject: from {poster}\n"
                   f"Message-ID: <{poster}.{name}.{ns.name}@test>\n\nHello.\n")
        site.script(ns, "inject", "-l", name, input=message)
    with smtp_sink(ns, sink):
        site.script(ns, "qrunner", "-r", "Incoming", "-r", "Outgoing", "--drain=1")
    delivered = [message_from_bytes(path.read_bytes()) for path in sorted(sink.glob("*.eml"))]
    return {message["Subject"].split()[-1]: message for message in delivered}


def munged(message, poster: str) -> bool:
    """From is the list, the poster kept in Reply-To (Mailman's munge for a list that does not set Reply-To)."""
    if parseaddr(message["From"])[1] != parseaddr(message["To"])[1]:
        assert parseaddr(message["From"])[1] == poster
        return False
    assert poster in [address for _, address in getaddresses(message.get_all("Reply-To", []))]
    return True


def no_crash(site: Site) -> None:
    error = site.log_dir / "error"
    assert "Traceback" not in (error.read_text() if error.exists() else "")
    shunt = site.prefix / "qfiles/shunt"
    assert not (shunt.exists() and any(shunt.iterdir()))


def test_policies_from_a_real_dns_server(site, served):
    assert prohibited(served, site, [REJECT, NONE, SPLIT, SUBDOMAIN, NO_POLICY, OTHER, TWO]) == {
        REJECT: True, NONE: False, SPLIT: True, SUBDOMAIN: True, NO_POLICY: False, OTHER: True, TWO: False}
    vette = (site.log_dir / "vette").read_text()
    assert f"DMARC lookup for {REJECT} (_dmarc.reject.example) found p=reject" in vette
    assert "RRset of TXT records for _dmarc.two.example has 2 v=DMARC1 entries" in (site.log_dir / "error").read_text()
    no_crash(site)


def test_dns_failures_mitigate_as_upstream(site, served, dns_down):
    """2.1.39's rule: a failed lookup may have missed a policy a receiver sees, so mitigate."""
    assert prohibited(served, site, [REFUSED, TIMEOUT]) == {REFUSED: True, TIMEOUT: True}
    assert prohibited(dns_down, site, [REJECT, NONE]) == {REJECT: True, NONE: True}
    assert "DNSException" in (site.log_dir / "error").read_text()
    no_crash(site)


@pytest.mark.parametrize("name", [LIST, IMPORTED])
def test_posts_are_munged_for_p_reject_only(site, served, tmp_path, name):
    delivered = post(served, site, tmp_path, name, [REJECT, NONE, SUBDOMAIN])
    assert sorted(delivered) == sorted([REJECT, NONE, SUBDOMAIN])
    assert munged(delivered[REJECT], REJECT)
    assert munged(delivered[SUBDOMAIN], SUBDOMAIN)
    assert not munged(delivered[NONE], NONE)
    no_crash(site)


def test_posts_are_delivered_and_mitigated_without_dns(site, dns_down, tmp_path):
    delivered = post(dns_down, site, tmp_path, LIST, [REJECT, NONE])
    assert sorted(delivered) == sorted([REJECT, NONE])
    assert munged(delivered[REJECT], REJECT)
    assert munged(delivered[NONE], NONE)
    no_crash(site)
