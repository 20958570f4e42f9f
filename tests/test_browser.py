"""The web interface in a real browser: headless Chromium (Debian's package) over HTTPS,
trusting only a test CA made here, so that no certificate error is ignored.

Two domains in a fresh mmdebstrap host with Postfix and Apache, or nginx with fcgiwrap, in
prefix and in shared mode.
Needs the real upstream tarball, chromium and certutil (libnss3-tools). Screenshots of every
step go to build/test-artifacts/browser/.
"""

import re
import shutil

import pytest

from helpers.browser import Browser
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from helpers.e2e_host import WEB_SERVERS, Host, prefix, web_host
from mmdeb.importing.py2data import LANGUAGE_CHARSETS
from helpers.lists import ARTIFACTS, address, members, wait_until
from helpers.tls import CA, trust_ca_for_chromium
from mmdeb.domains.layout import DomainPaths

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
    pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("certutil")),
                       reason="needs chromium and certutil (apt-get install chromium libnss3-tools)"),
]

PASSWORD = "listpassword"
SHOTS = ARTIFACTS / "browser"


@pytest.fixture(scope="module", params=[(server, mode) for server in WEB_SERVERS for mode in ("prefix", "shared")],
                ids="-".join)
def host(request, upstream, tmp_path_factory):
    server, mode = request.param
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    machine = web_host(tmp_path_factory.mktemp(f"browser-{server}-{mode}") / "host", upstream.dist, runtime,
                       [DOMAIN, OTHER_DOMAIN], server)
    machine.mode = mode
    try:
        built = request.getfixturevalue("built_shared" if mode == "shared" else "built")
        machine.install_offline(domain_debs(built, DOMAIN, OTHER_DOMAIN))
        for domain, name in ((DOMAIN, "users"), (OTHER_DOMAIN, "netonly")):
            machine.run(f"{prefix(domain)}/bin/newlist", "-q", name, address("bob"), PASSWORD)
        # The private CGI cuts a path piece longer than the longest list name ("users.mbox").
        machine.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", "a-long-list-name", address("bob"), PASSWORD)
        machine.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")
        machine.run(f"{prefix(DOMAIN)}/bin/withlist", "-l", "users", input="m.archive_private = 1\nm.Save()\n")
        yield machine
    finally:
        machine.stop()


@pytest.fixture
def browser(host, tmp_path):
    trust_ca_for_chromium(host.root / CA.lstrip("/"), tmp_path)
    rules = ", ".join(f"MAP {domain} 127.0.0.1" for domain in (DOMAIN, OTHER_DOMAIN))
    opened = Browser(shutil.which("chromium"), host.netns, tmp_path, rules)
    yield opened
    opened.close()


def shot(browser: Browser, host: Host, name: str) -> None:
    browser.screenshot(SHOTS / f"{host.server}-{host.mode}-{name}.png")


def url(domain: str, path: str) -> str:
    return f"https://{domain}/mailman/{path}"


def admin_login(browser: Browser, page: str) -> None:
    browser.open(url(DOMAIN, page))
    browser.fill({"adminpw": PASSWORD})
    browser.click('[name="admlogin"]')


def test_each_domains_listinfo_shows_only_its_own_lists(host, browser):
    shown = {}
    for domain in (DOMAIN, OTHER_DOMAIN):
        browser.open(url(domain, "listinfo"))
        shot(browser, host, f"listinfo-{domain}")
        shown[domain] = set(browser.evaluate("[...document.querySelectorAll('a')].map(a => a.textContent.trim())"))
    assert "Users" in shown[DOMAIN] and "Netonly" not in shown[DOMAIN]
    assert "Netonly" in shown[OTHER_DOMAIN] and "Users" not in shown[OTHER_DOMAIN]


def test_subscribe_on_the_web_then_confirm_from_the_mail(host, browser):
    browser.open(url(DOMAIN, "listinfo/users"))
    browser.fill({"email": address("carol"), "fullname": "Carol Müller", "pw": "carolpw", "pw-conf": "carolpw"})
    browser.click('[name="email-button"]')
    shot(browser, host, "subscribe-requested")
    assert "confirmation" in browser.text.lower()
    request = host.wait_for_mail("carol", lambda m: (m["Subject"] or "").startswith("confirm "))
    link = re.search(rf"https://{re.escape(DOMAIN)}/mailman/confirm/users/\w+", request.get_payload(decode=True).decode())
    browser.open(link.group(0))
    shot(browser, host, "subscribe-confirm")
    browser.click('[name="submit"]')
    shot(browser, host, "subscribe-confirmed")
    wait_until(lambda: address("carol") in members(host, DOMAIN), what="carol to be a member")


def test_admin_changes_a_setting_and_it_is_kept(host, browser):
    admin_login(browser, "admin/users")
    description = "Liste für Grüße"
    browser.fill({"description": description})
    browser.click('[name="submit"]')
    browser.open(url(DOMAIN, "admin/users"))
    shot(browser, host, "admin-setting-kept")
    assert browser.evaluate("document.querySelector('[name=\"description\"]').value") == description


def test_a_held_post_approved_in_admindb_reaches_every_subscriber(host, browser):
    subject = "a question from mallory"
    host.send("mallory@example.com", f"users@{DOMAIN}", subject)  # a non-member: held for the moderator
    held = wait_until(lambda: sorted((host.root / prefix(DOMAIN).lstrip("/") / "data").glob("heldmsg-users-*.pck")),
                      what="the post to be held", timeout=90)
    request_id = held[-1].stem.rsplit("-", 1)[1]
    admin_login(browser, "admindb/users")
    browser.open(url(DOMAIN, "admindb/users?details=all"))  # each held post with its own choices
    shot(browser, host, "admindb-held")
    browser.choose(f'input[name="{request_id}"][value="1"]')  # Approve
    browser.click('[name="submit"]')
    for user in (user for user in ("bob", "carol") if address(user) in members(host, DOMAIN)):
        host.wait_for_mail(user, lambda m: subject in (m["Subject"] or ""), timeout=120)


def test_the_private_archive_after_login(host, browser):
    subject = "archived for members only"
    host.send(address("bob"), f"users@{DOMAIN}", subject, user="bob")
    archive = host.root / prefix(DOMAIN).lstrip("/") / "archives/private/users"
    wait_until(lambda: any(subject in page.read_text(errors="replace") for page in archive.glob("*/0*.html")),
               what="the post in the archive", timeout=120)
    browser.open(f"https://{DOMAIN}/pipermail/users/")
    assert "Not Found" in browser.text  # never served as files
    browser.open(url(DOMAIN, "private/users/"))
    browser.fill({"username": address("bob"), "password": PASSWORD})
    browser.click('[name="submit"]')
    shot(browser, host, "private-archive")
    browser.click('a[href$="/thread.html"]')
    browser.click('a[href$=".html"][href^="0"]')
    shot(browser, host, "private-archive-post")
    assert subject in browser.text


def test_http_redirects_to_https_and_acme_stays_on_http(host, browser):
    browser.open(f"http://{DOMAIN}/mailman/listinfo")
    assert browser.url == url(DOMAIN, "listinfo")
    challenges = host.root / prefix(DOMAIN).lstrip("/") / "webroot/.well-known/acme-challenge"
    (challenges / "browser-token").write_text("browser-token.thumbprint")
    browser.open(f"http://{DOMAIN}/.well-known/acme-challenge/browser-token")
    assert (browser.url, browser.text.strip()) == (f"http://{DOMAIN}/.well-known/acme-challenge/browser-token",
                                                  "browser-token.thumbprint")


# Each list's language, its description as stored and as a reader must see it. Mailman 2.1 stored
# characters its list's charset could not hold as character references (so does mmdeb-import).
DESCRIPTIONS = {
    "grusse": ("de", "Grüße", "Grüße"),
    "zazolc": ("pl", "Zażółć", "Zażółć"),
    "tesuto": ("ja", "テスト", "テスト"),
    "gemischt": ("de", "Grüße &#12486;&#12473;&#12488;", "Grüße テスト"),
}


def test_listinfo_shows_descriptions_in_every_charset_exactly(host, browser, upstream):
    for name, (language, stored, _) in DESCRIPTIONS.items():
        host.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", "-l", language, name, address("bob"), PASSWORD)
        # The fork stores text; 2.1 bytes in its charset for the list's language.
        value = stored.encode(LANGUAGE_CHARSETS[language]) if upstream.flavour == "gnu" else stored
        host.run(f"{prefix(DOMAIN)}/bin/withlist", "-l", name, input=f"m.description = {ascii(value)}\nm.Save()\n")
    shown = {name: text for name, (_, _, text) in DESCRIPTIONS.items()}
    browser.open(url(DOMAIN, "listinfo"))
    shot(browser, host, "listinfo-descriptions")
    rows = browser.evaluate("[...document.querySelectorAll('tr')].map(row => [...row.cells].map(cell => cell.innerText))")
    index = {row[0].strip(): " ".join(row[1].split()) for row in rows if len(row) == 2}
    assert {name: index.get(name.capitalize()) for name in DESCRIPTIONS} == shown
    for name in DESCRIPTIONS:
        browser.open(url(DOMAIN, f"listinfo/{name}"))
        shot(browser, host, f"listinfo-{name}")
        headings = browser.evaluate("[...document.querySelectorAll('b')].map(b => b.innerText)")
        title = f"{name.capitalize()} -- "
        assert [" ".join(text.split()) for text in headings if text.startswith(title)] == [title + shown[name]]


def test_a_public_archive_is_served_and_private_archives_are_closed_to_local_users(host, browser):
    """Mailman's recipe for shared hosts: the web server's user owns archives/private and serves
    the public archives through it; another local user (nobody) cannot enter it."""
    name = "announce"
    host.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", name, address("bob"), PASSWORD)
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", name, input=address("bob") + "\n")
    subject = "archived for everyone"
    host.send(address("bob"), f"{name}@{DOMAIN}", subject, user="bob")
    private = DomainPaths(DOMAIN).private_archives
    wait_until(lambda: any(subject in page.read_text(errors="replace")
                           for page in (host.root / private.lstrip("/") / name).glob("*/0*.html")),
               what="the post in the archive", timeout=120)
    browser.open(f"https://{DOMAIN}/pipermail/{name}/")
    shot(browser, host, "public-archive")
    browser.click('a[href$="/thread.html"]')
    browser.click('a[href$=".html"][href^="0"]')
    assert subject in browser.text
    for path in (f"{private}/users.mbox/users.mbox", f"{private}/users/index.html", f"{private}/{name}/index.html",
                 f"{prefix(DOMAIN)}/archives/public/{name}/index.html"):
        refused = host.run("cat", path, user="nobody", check=False)
        assert (refused.returncode, "Permission denied" in refused.stderr) == (1, True), path
