"""RFC 8058 one-click unsubscribe (one-click-unsubscribe.patch, in both flavours' series) against
real Mailman. py3: the fork with our series installed into a prefix on this host; gnu: the domain
package built with sbuild and installed in a bullseye tree (Python 2.7). Posts go in with
bin/inject and through the queue runners (Incoming, Outgoing) to an SMTP sink in a network
namespace; the unsubscribe CGI runs through its setgid wrapper with a web server's CGI variables.
The delivery checks also run with the patch's hunks in Mailman/Handlers taken out of the
installed Mailman, and must fail there. Last, the domain package (built with sbuild) in a host
with Apache, and with nginx, and in shared mode with Apache: GET and POST with curl over https,
as a mail provider makes them.

Needs MMDEB_UPSTREAM_TARBALL (either flavour's) and root.
"""

import itertools
import os
import re
import subprocess
from contextlib import contextmanager
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path

import pytest

from helpers.e2e_host import Host, prefix as package_prefix, web_host
from helpers.fork_prefix import PYTHON, cgi_env, cgi_response, install_fork, patch_part, without_patch
from helpers.netns_dns import LOOPBACK, SMTP_PORT, Netns, netns, smtp_sink
from helpers.tls import curl_argv
from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from mmdeb.domains.domain import Domain
from mmdeb.upstream.dists import FLAVOURS

pytestmark = [pytest.mark.slow,  # installs Mailman
              pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball")]

PATCH = "one-click-unsubscribe.patch"
ONE_CLICK = "List-Unsubscribe=One-Click"
MEMBERS = ["alice@example.net", "Bob@Example.NET", "carol@example.com"]
NAMES = itertools.count()


class Site:
    """Where Mailman runs; each command as its scripts run there."""

    prefix: Path  # as this host sees it
    mm_cfg: Path
    python: str
    patch: Path  # one-click-unsubscribe.patch of its flavour

    def run(self, argv: list[str], input: str | bytes = "", env: dict[str, str] | None = None) -> bytes:
        raise NotImplementedError

    def netns(self):
        """The network namespace Mailman's SMTPHOST is in (a context manager)."""
        raise NotImplementedError

    def inside(self, path: Path) -> str:
        return str(path)

    def script(self, name: str, *args: str, input: str = "") -> None:
        self.run([self.python, self.inside(self.prefix / "bin" / name), *args], input)

    def code(self, code: str) -> str:
        """code's output, run with this Mailman's modules as its bin/ scripts run."""
        return self.run([self.python, "-c", f"import sys; sys.path.insert(0, '{self.inside(self.prefix / 'bin')}')\n"
                                            f"import paths\n{code}"]).decode()

    def cgi(self, path_info: str, body: bytes = b"", content_type: str | None = None) -> tuple[int, str]:
        env = cgi_env(DOMAIN, "unsubscribe", path_info, body=body, content_type=content_type)
        return cgi_response(self.run([self.inside(self.prefix / "cgi-bin/unsubscribe")], body, env))

    def log(self, name: str) -> str:
        path = self.prefix / "logs" / name
        return path.read_text() if path.exists() else ""


class Fork(Site):
    """The fork installed into a prefix on this host, as the calling user (root)."""

    python = PYTHON

    def __init__(self, prefix: Path):
        self.prefix, self.mm_cfg = prefix, prefix / "Mailman/mm_cfg.py"
        self.ns = None

    @contextmanager
    def netns(self):
        with netns(f"mmdeb-unsub-{os.getpid()}") as ns:
            self.ns = ns
            try:
                yield ns
            finally:
                self.ns = None

    def run(self, argv, input="", env=None):
        done = subprocess.run(self.ns.argv(argv) if self.ns else argv, input=_bytes(input), capture_output=True, env=env)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, done.stderr.decode()
        return done.stdout


class Package(Site):
    """The gnu domain package installed in a bullseye tree; Mailman's side runs as its user list,
    the CGI as the web server's user, inside the tree and its network namespace."""

    python = FLAVOURS["gnu"].python

    def __init__(self, host: Host):
        self.host = host
        self.prefix = host.root / package_prefix(DOMAIN).lstrip("/")
        self.mm_cfg = host.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
        self.logs = host.root / Domain(DOMAIN).log_dir.lstrip("/")

    def inside(self, path: Path) -> str:
        return str(Path("/", path.relative_to(self.host.root)))

    @contextmanager
    def netns(self):
        yield Netns(self.host.netns)

    def run(self, argv, input="", env=None):
        user = "www-data" if env else "list"
        setting = ["env", "-i", *(f"{key}={value}" for key, value in env.items())] if env else []
        done = self.host.run("runuser", "-u", user, "--", *setting, *argv, input=_bytes(input))
        assert b"Traceback" not in done.stderr, done.stderr.decode()
        return done.stdout

    def log(self, name: str) -> str:
        path = self.logs / name
        return path.read_text() if path.exists() else ""


def _bytes(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


@pytest.fixture(scope="module")
def site(upstream, request, tmp_path_factory) -> Site:
    top = tmp_path_factory.mktemp("one-click")
    if upstream.flavour == "py3":
        # mmdeb's mm_cfg serves the lists on https, as RFC 8058 requires of the URL.
        site = Fork(install_fork(upstream.tarball, top, DOMAIN, upstream.patches / "py3"))
        site.mm_cfg.write_text(site.mm_cfg.read_text() + "DEFAULT_URL_PATTERN = 'https://%s/mailman/'\n")
    else:
        built = request.getfixturevalue("built")
        host = Host.create(top / "host", upstream.dist, runtime_packages("gnu", upstream.dist))
        request.addfinalizer(host.stop)
        host.start()
        host.install_offline(domain_debs(built, DOMAIN))
        site = Package(host)
    site.mm_cfg.write_text(site.mm_cfg.read_text() + f"SMTPHOST = '{LOOPBACK}'\nSMTPPORT = {SMTP_PORT}\n")
    site.patch = upstream.patches / upstream.flavour / PATCH
    return site


def new_list(site: Site, personalize: int, members=MEMBERS) -> str:
    """A new list (a name not used before) with the members; everyone may post."""
    name = f"unsub{next(NAMES)}"
    site.script("newlist", "-q", name, f"owner@{DOMAIN}", "pw")
    site.code(f"from Mailman import MailList\nm = MailList.MailList({name!r})\n"
              f"m.personalize = {personalize}\nm.generic_nonmember_action = 0\nm.Save()\nm.Unlock()\n")
    site.script("add_members", "-r", "-", "-w", "n", "-a", "n", name, input="\n".join(members) + "\n")
    return name


def members(site: Site, name: str) -> list[str]:
    return sorted(site.code(f"from Mailman import MailList\n"
                            f"print('\\n'.join(MailList.MailList({name!r}, lock=0).getMembers()))").split())


def post(site: Site, sink: Path, name: str, headers: str = "") -> list:
    """A post to list name through the runners to the SMTP sink: the copies the sink took."""
    sink.mkdir()
    site.script("inject", "-l", name, input=f"From: poster@example.org\nTo: {name}@{DOMAIN}\nSubject: to {name}\n"
                                            f"Message-ID: <{name}@example.org>\n{headers}\nHello.\n")
    with site.netns() as ns, smtp_sink(ns, sink):
        site.script("qrunner", "-r", "Incoming", "-r", "Outgoing", "--drain=1")
    return [message_from_bytes(path.read_bytes()) for path in sorted(sink.iterdir())]


def unsubscribe_urls(copy) -> tuple[str, str]:
    """List-Unsubscribe's https URL and mailto URL."""
    (web, mail) = re.findall(r"<([^>]*)>", copy["List-Unsubscribe"])
    return web, mail


def tokens(site: Site, sink: Path, name: str) -> dict[str, str]:
    """Each member's one-click path (/list/token), from its copy of a post to list name (fully
    personalized: To: names the member)."""
    copies = post(site, sink, name)
    return {parseaddr(copy["To"])[1].lower(): unsubscribe_urls(copy)[0].split("/unsubscribe", 1)[1] for copy in copies}


def fails_without(site: Site, tmp_path: Path, check, reason: str) -> None:
    """check passes, and fails for the reason (a regex) with the patch's hunks in
    Mailman/Handlers (where copies get their headers) taken out of the installed Mailman."""
    check(tmp_path / "with")
    handlers = patch_part(site.patch, "Mailman/Handlers/", tmp_path / "handlers.patch")
    with without_patch(site.prefix, handlers), pytest.raises(AssertionError, match=reason):
        check(tmp_path / "without")


@pytest.mark.parametrize("personalize", [1, 2], ids=["personalized", "full-personalization"])
def test_each_members_copy_has_its_own_one_click_url(site, tmp_path, personalize):
    name = new_list(site, personalize)

    def check(sink):
        copies = post(site, sink, name)
        assert len(copies) == len(MEMBERS)
        urls = set()
        for copy in copies:
            assert copy["List-Unsubscribe-Post"] == ONE_CLICK, "no List-Unsubscribe-Post"
            web, mail = unsubscribe_urls(copy)
            assert re.fullmatch(rf"https://{DOMAIN}/mailman/unsubscribe/{name}/\d+\.[\w-]{{43}}", web), web
            assert mail == f"mailto:{name}-request@{DOMAIN}?subject=unsubscribe"
            for member in MEMBERS:
                assert member.split("@")[0].lower() not in copy["List-Unsubscribe"].lower()
            urls.add(web)
        assert len(urls) == len(MEMBERS)

    fails_without(site, tmp_path, check, "no List-Unsubscribe-Post")
    assert list(Path(site.prefix / "lists" / name).glob("one-click.secret")), "the list's secret"


def test_a_copy_for_many_makes_no_one_click_claim(site, tmp_path):
    name = new_list(site, personalize=0)

    def check(sink):
        copies = post(site, sink, name, headers=f"List-Unsubscribe-Post: {ONE_CLICK}\n")  # a poster's claim
        assert len(copies) < len(MEMBERS)  # bulk: one copy for each recipient domain's top-level domain
        for copy in copies:
            assert "List-Unsubscribe-Post" not in copy, "a one-click claim on a copy for many"
            assert unsubscribe_urls(copy) == (f"https://{DOMAIN}/mailman/options/{name}",
                                              f"mailto:{name}-request@{DOMAIN}?subject=unsubscribe")

    fails_without(site, tmp_path, check, "a one-click claim on a copy for many")
    assert not list(Path(site.prefix / "lists" / name).glob("one-click.secret*"))


MULTIPART = ("multipart/form-data; boundary=XyZ",
             b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--XyZ--\r\n')
URLENCODED = ("application/x-www-form-urlencoded", ONE_CLICK.encode())


def test_a_post_unsubscribes_at_once_a_get_does_not(site, tmp_path):
    name = new_list(site, personalize=2)
    paths = tokens(site, tmp_path / "sink", name)
    alice, bob, carol = MEMBERS
    status, page = site.cgi(paths[alice])
    assert status == 200 and re.search(r'<input[^>]* name="List-Unsubscribe"[^>]* value="One-Click"', page, re.I)
    assert re.search(rf'<form[^>]* action="https://{DOMAIN}/mailman/unsubscribe{paths[alice]}"', page, re.I)
    assert members(site, name) == sorted(m.lower() for m in MEMBERS)
    status, page = site.cgi(paths[alice], URLENCODED[1], URLENCODED[0])
    assert status == 200 and "You have been unsubscribed" in page
    assert members(site, name) == sorted(m.lower() for m in (bob, carol))
    status, page = site.cgi(paths[bob.lower()], MULTIPART[1], MULTIPART[0])  # as RFC 8058 says a receiver SHOULD
    assert status == 200 and "You have been unsubscribed" in page
    assert members(site, name) == [carol]
    assert f"{name}: deleted {alice}; one-click unsubscribe" in site.log("subscribe")
    # A POST without the body only shows the form; a used link is as bad as a forged one.
    assert site.cgi(paths[carol], b"submit=1", URLENCODED[0])[0] == 200 and members(site, name) == [carol]
    assert site.cgi(paths[alice], URLENCODED[1], URLENCODED[0])[0] == 400


def test_a_bad_token_changes_nothing_and_reveals_nothing(site, tmp_path):
    name, other = new_list(site, personalize=2), new_list(site, personalize=2)
    alice = MEMBERS[0]
    good = tokens(site, tmp_path / "sink", name)[alice]
    other_token = tokens(site, tmp_path / "other", other)[alice].rsplit("/", 1)[1]
    day, mac = good.rsplit("/", 1)[1].split(".")
    expired = site.code(f"from Mailman import MailList, OneClick, mm_cfg\n"
                        f"m = MailList.MailList({name!r}, lock=0)\n"
                        f"print(OneClick.token(m, {alice!r}, OneClick.today() - mm_cfg.ONE_CLICK_UNSUBSCRIBE_DAYS))").strip()
    altered = mac[:10] + ("A" if mac[10] != "A" else "B") + mac[11:]
    bad = {
        "forged": f"/{name}/{day}.{'x' * 43}",
        "altered": f"/{name}/{day}.{altered}",
        "truncated": good[:-1],
        "another day": f"/{name}/{int(day) - 1}.{mac}",
        "another list's": f"/{name}/{other_token}",
        "expired": f"/{name}/{expired}",
        "no such list": f"/nosuchlist/{day}.{mac}",
        "no token": f"/{name}",
    }
    pages = set()
    for case, path in bad.items():
        for request in [(), URLENCODED[::-1], MULTIPART[::-1]]:
            status, page = site.cgi(path, *request)
            assert status == 400, case
            for member in MEMBERS:
                assert member.split("@")[0].lower() not in page.lower(), case
            pages.add(page)
    assert len(pages) == 1  # one and the same page, whatever is wrong
    assert members(site, name) == members(site, other) == sorted(m.lower() for m in MEMBERS)
    assert site.cgi(good)[0] == 200  # the good token, after all that


@pytest.mark.chroot
@pytest.mark.parametrize("server, mode", [("apache2", "prefix"), ("nginx", "prefix"), ("apache2", "shared")])
def test_the_web_servers_route_one_click_posts(request, upstream, tmp_path, server, mode):
    """The domain package (in shared mode with the core) in a host with the web server: curl over
    https, as a mail provider posts."""
    host = web_host(tmp_path / "host", upstream.dist, runtime_packages(upstream.flavour, upstream.dist),
                    [DOMAIN], server)
    try:
        built = request.getfixturevalue("built_shared" if mode == "shared" else "built")
        host.install_offline(domain_debs(built, DOMAIN))
        bin = f"{package_prefix(DOMAIN)}/bin"
        host.run(f"{bin}/newlist", "-q", "users", f"owner@{DOMAIN}", "pw")
        host.run(f"{bin}/add_members", "-r", "-", "-w", "n", "-a", "n", "users", input="\n".join(MEMBERS) + "\n")
        token = host.run(FLAVOURS[upstream.flavour].python, "-c", f"import sys; sys.path.insert(0, '{bin}')\nimport paths\n"
                         "from Mailman import MailList, OneClick\n"
                         f"print(OneClick.token(MailList.MailList('users', lock=0), {MEMBERS[0]!r}))", user="list").stdout.strip()

        def request(path: str, *data: str) -> tuple[int, str]:
            page, _, status = host.run(*curl_argv(DOMAIN, f"mailman/unsubscribe/users/{path}"), "-sS", "-w", "\n%{http_code}",
                                       *data).stdout.rpartition("\n")
            return int(status), page

        def listed() -> list[str]:
            return sorted(host.run(f"{bin}/list_members", "users").stdout.lower().split())

        status, page = request(token)
        assert status == 200 and 'value="One-Click"' in page and len(listed()) == 3
        day, mac = token.split(".")
        assert request(f"{day}.{mac[::-1]}", "--data-binary", ONE_CLICK)[0] == 400 and len(listed()) == 3
        assert request(token, "--data-binary", ONE_CLICK)[0] == 200  # form-urlencoded, as curl sends it
        assert listed() == sorted(m.lower() for m in MEMBERS[1:])
    finally:
        host.stop()
