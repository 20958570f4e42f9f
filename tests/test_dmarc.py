"""The fork's DMARC mitigation against a real DNS server (dnsmasq) in a private network namespace,
Mailman's resolver and SMTPHOST pointed at it by running Mailman's side in that namespace. Three
sites: the fork with our patch series installed into a prefix (configure, make install) on this
host's Python and dnspython, and the domain package (the same patches) built with sbuild and
installed in a trixie tree (Python 3.13, dnspython 2.7) and in a bookworm tree (Python 3.11,
dnspython 2.3). Three lists munge From for DMARC posters: one made with newlist and left with
mmdeb's defaults (mm_cfg.py's DMARC settings, appended to the fork's own on this host), one set
to Munge From with config_list, and one moved from a 2.1.39 tree with mmdeb-import. A member's
provider's DMARC rejections go to the first list's bounce processing.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball), root, dnsmasq, python3-dnspython and
publicsuffix (as ./setup-host installs them), and what the trees and sbuild need (Debian's
mirror); skipped without the tarball.
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

from helpers.upstreams import REAL_TARBALL, build, domain_debs, real_flavour, runtime_packages
from mmdeb import PATCHES_DIR
from mmdeb.build.render import environment, layout_context
from mmdeb.domains.domain import Domain
from mmdeb.importing.plan import munge_from_command

pytestmark = [pytest.mark.slow,  # builds, then a network namespace with DNS
              pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")]

DOMAIN = "lists.example.org"
LIST = "dmarc"
DEFAULTS = "plain"  # made with newlist and left with mmdeb's defaults
RELAY = "relay"  # set to Accept (as an imported list may be), below the site's default
IMPORTED = "moved"  # a 2.1.39 list set to Munge From, moved with mmdeb-import
MEMBER = "member@members.example"
# co.uk is a public suffix: only the list tells that mail.reject.co.uk's organizational domain is
# reject.co.uk, not co.uk (the last two labels, the fork's guess without it).
ZONES = ("example", "co.uk")
SILENT = "silent.example"  # its lookups time out
TXT = {  # each name's TXT records, each a list of character strings
    "_dmarc.reject.example": [["v=DMARC1; p=reject"]],
    "_dmarc.none.example": [["v=DMARC1; p=none"]],
    "_dmarc.quarantine.example": [["v=DMARC1; p=quarantine"]],
    "_dmarc.reject.co.uk": [["v=DMARC1; p=reject"]],
    # One record of two character strings, split inside the policy: they join with nothing between.
    "_dmarc.split.example": [["v=DMARC1; p=rej", "ect; rua=mailto:d@split.example"]],
    # The DMARC record beside another TXT record counts; two DMARC records void both (RFC 7489 6.6.3).
    "_dmarc.other.example": [["site-verification=x"], ["v=DMARC1; p=reject"]],
    "_dmarc.two.example": [["v=DMARC1; p=reject"], ["v=DMARC1; p=none"]],
}
REJECT = "alice@reject.example"
NONE = "bob@none.example"
QUARANTINE = "judy@quarantine.example"
SPLIT = "carol@split.example"
OTHER = "heidi@other.example"
TWO = "ivan@two.example"
# No policy of its own: the organizational domain's (reject.example, reject.co.uk) applies.
SUBDOMAIN = "dave@mail.reject.example"
SUFFIXED = "kim@mail.reject.co.uk"
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
        return self.python(ns, [self.path("bin", name), *args], **kwargs)

    def python(self, ns, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        """Mailman's python with args, as the site's user."""
        user = ["runuser", "-u", self.user, "--"] if self.user else []
        return self.run(ns, [*user, PYTHON, *args], **kwargs)


def package_host(upstream, top: Path, dist: str) -> Host:
    """A dist tree with the domain package, built with sbuild, installed as test_e2e installs it;
    resolving with the namespace's server (its own resolv.conf: `ip netns exec` mounts only the host's)."""
    built = build(upstream, top / "built", DOMAIN, dist=dist)
    host = Host.create(top / "tree", dist, runtime_packages("py3", dist))
    host.start()
    try:
        host.install_offline(domain_debs(built, DOMAIN))
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
        with open(mm_cfg, "a") as config:  # the packages' DMARC settings
            config.write(environment().get_template("include/dmarc.j2").render(layout_context()))
    else:
        host = package_host(upstream, top, request.param)
        request.addfinalizer(host.stop)
        domain = Domain(DOMAIN)
        site = Site(host.root / domain.prefix.lstrip("/"), host.root, "list", host.root / domain.log_dir.lstrip("/"))
        mm_cfg = host.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
    with open(mm_cfg, "a") as config:
        config.write(f"SMTPHOST = '{LOOPBACK}'\nSMTPPORT = {SMTP_PORT}\n")
    # Munge From for DMARC posters; everyone may post, so each post goes straight through.
    anyone = {"generic_nonmember_action": 0}
    munge = {"dmarc_moderation_action": 1, **anyone}
    work = site.root / "srv" if site.root else top
    settings, open_settings = work / "settings.py", work / "open.py"
    settings.write_text("".join(f"{key} = {value}\n" for key, value in munge.items()))
    open_settings.write_text("".join(f"{key} = {value}\n" for key, value in anyone.items()))
    with netns(f"mmdeb-setup-{os.getpid()}") as ns:
        site.script(ns, "newlist", "-q", LIST, "owner@example.org", "pw")
        site.script(ns, "newlist", "-q", DEFAULTS, "owner@example.org", "pw")
        site.script(ns, "newlist", "-q", RELAY, "owner@example.org", "pw")
        old = work / "old"
        add_list(debian_tree(old), IMPORTED, DOMAIN)
        # Every attribute of a list (the new one's), as 2.1.39 pickles them, set to Munge From.
        (old / DEBIAN / "lists" / IMPORTED / "config.pck").write_bytes(dumps({
            **py2_form(pickle.loads((site.prefix / "lists" / LIST / "config.pck").read_bytes())),
            b"real_name": IMPORTED.encode(), b"subject_prefix": f"[{IMPORTED}] ".encode(), b"host_name": DOMAIN.encode(),
            b"members": {MEMBER.encode(): 0}, b"data_version": 112, **{key.encode(): value for key, value in munge.items()}}))
        site.run(ns, [site.path("bin/mmdeb-import"), site.inside(old)])  # as root, as the README says
        site.script(ns, "config_list", "-i", site.inside(settings), LIST)
        site.script(ns, "config_list", "-i", site.inside(open_settings), DEFAULTS)
        site.script(ns, "config_list", "-i", site.inside(open_settings), RELAY)
        # config_list, like the admin page, refuses a value below DEFAULT_DMARC_MODERATION_ACTION.
        site.python(ns, ["-c", f"import sys; sys.path.insert(0, '{site.path('bin')}'); import paths\n"
                               f"from Mailman import MailList\nmlist = MailList.MailList('{RELAY}')\n"
                               "mlist.dmarc_moderation_action = 0\nmlist.Save()\nmlist.Unlock()"])
        for name in (LIST, DEFAULTS, RELAY):
            site.script(ns, "add_members", "-r", "-", "-w", "n", "-a", "n", name, input=MEMBER)
    return site


@pytest.fixture
def served():
    """A namespace with the DNS server."""
    with netns(f"mmdeb-dmarc-{os.getpid()}") as ns, dns_server(ns, ZONES, TXT, SILENT):
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
    assert prohibited(served, site, [REJECT, NONE, QUARANTINE, SPLIT, SUBDOMAIN, NO_POLICY, OTHER, TWO]) == {
        REJECT: True, NONE: False, QUARANTINE: True, SPLIT: True, SUBDOMAIN: True, NO_POLICY: False, OTHER: True,
        TWO: False}
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


def test_organizational_domain_from_the_local_public_suffix_list(site, served):
    """Without network: the list is read from Debian's publicsuffix package, not fetched
    (py3/dmarc-local-public-suffix-list.patch)."""
    assert prohibited(served, site, [SUFFIXED]) == {SUFFIXED: True}
    vette = (site.log_dir / "vette").read_text()
    assert f"DMARC lookup for {SUFFIXED} (_dmarc.reject.co.uk) found p=reject" in vette
    error = site.log_dir / "error"
    assert not error.exists() or "Unable to retrieve data" not in error.read_text()
    no_crash(site)


def test_new_lists_munge_p_reject_and_p_quarantine_posters_only(site, served, tmp_path):
    delivered = post(served, site, tmp_path, DEFAULTS, [REJECT, QUARANTINE, NONE, SUFFIXED])
    assert {poster: munged(message, poster) for poster, message in delivered.items()} == {
        REJECT: True, QUARANTINE: True, NONE: False, SUFFIXED: True}
    no_crash(site)


def dmarc_rejection(name: str, poster: str) -> str:
    """The DSN a member's provider sends the list's bounce address when it rejects a p=reject
    poster's post for her domain's DMARC policy (RFC 3464, Gmail's wording)."""
    diagnostic = (f"550-5.7.26 Unauthenticated email from {poster.split('@')[1]} is not accepted due to domain's "
                  "DMARC policy")
    return (f"From: Mail Delivery Subsystem <MAILER-DAEMON@{MEMBER.split('@')[1]}>\n"
            f"To: {name}-bounces@{DOMAIN}\nSubject: Delivery Status Notification (Failure)\n"
            f"Message-ID: <dsn.{poster}.{name}@test>\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            f"--b\nContent-Type: text/plain\n\nYour message to {MEMBER} was rejected: {diagnostic}\n\n"
            f"--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.{MEMBER.split('@')[1]}\n\n"
            f"Final-Recipient: rfc822; {MEMBER}\nAction: failed\nStatus: 5.7.26\n"
            f"Diagnostic-Code: smtp; {diagnostic}\n\n"
            f"--b\nContent-Type: text/rfc822-headers\n\nFrom: {poster}\nTo: {address(name)}\n"
            f"Subject: [{name}] from {poster}\n\n--b--\n")


def member_state(ns, site: Site, name: str) -> dict:
    code = (f"import sys, json; sys.path.insert(0, '{site.path('bin')}'); import paths\n"
            "from Mailman import MailList, MemberAdaptor\n"
            f"mlist = MailList.MailList('{name}', lock=False)\n"
            f"info = mlist.getBounceInfo('{MEMBER}')\n"
            f"print(json.dumps({{'member': mlist.isMember('{MEMBER}'), 'score': info and info.score,\n"
            f"    'enabled': mlist.getDeliveryStatus('{MEMBER}') == MemberAdaptor.ENABLED,\n"
            "    'threshold': mlist.bounce_score_threshold, 'stale_after_days': mlist.bounce_info_stale_after / 86400}))")
    return json.loads(site.run(ns, [PYTHON, "-c", code]).stdout)


def test_dmarc_rejections_do_not_unsubscribe_or_disable_the_member(site, served):
    """Three posts of p=reject posters rejected by the member's provider on one day: Mailman
    scores one bounce a day, and a new list needs a score of 5 within bounce_info_stale_after."""
    site.script(served, "qrunner", "-r", "Bounce", "--once")  # makes its queue, as a running Mailman has it
    for poster in (REJECT, SUFFIXED, SPLIT):
        site.script(served, "inject", "-l", DEFAULTS, "-q", "bounces", input=dmarc_rejection(DEFAULTS, poster))
    site.script(served, "qrunner", "-r", "Bounce", "--drain=1")
    assert member_state(served, site, DEFAULTS) == {
        "member": True, "score": 1.0, "enabled": True, "threshold": 5.0, "stale_after_days": 7.0}
    assert f"{DEFAULTS}: {MEMBER} already scored a bounce for date" in (site.log_dir / "bounce").read_text()
    no_crash(site)


def test_the_import_plans_command_makes_a_list_munge(site, served, tmp_path):
    """mmdeb import plan's line for a list that relays p=reject posters unmunged, as root on the list host."""
    if not site.root:
        pytest.skip("the line names the package's prefix and Mailman's user list")
    for sink in ("before", "after"):
        (tmp_path / sink).mkdir()
    before = post(served, site, tmp_path / "before", RELAY, [REJECT])
    assert not munged(before[REJECT], REJECT)
    site.run(served, ["sh", "-c", munge_from_command(Domain(DOMAIN).prefix, RELAY)])
    after = post(served, site, tmp_path / "after", RELAY, [REJECT])
    assert munged(after[REJECT], REJECT)
    no_crash(site)
