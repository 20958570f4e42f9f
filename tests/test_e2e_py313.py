"""Every CGI page and every bin/ and cron/ script of the real Mailman, run at least once on the
flavour's default distribution (trixie: Python 3.13 for py3), the way an administrator and the
web users run them: the pages through Apache, the scripts in a shell, the cron jobs as `list`.
A traceback or Python warning in a page, in a script's output, in Mailman's error log or in
Apache's error log fails the check that caused it.

Needs the real upstream tarball, root and the Debian mirror.
"""

import email.header
import email.utils
import html
import pickle
import re
import uuid

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from helpers.e2e_host import HOSTNAME, Host, web_host
from helpers.fork_prefix import py2_form
from mmdeb.upstream.dists import FLAVOURS
from helpers.old_mailman import GERMAN, debian_tree, german_list
from helpers.lists import address, wait_until
from helpers.web import LIST_PASSWORD, PREFIX, Logs, admin_login, assert_clean, csrf, held, page

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

def members(host: Host, listname: str = "users") -> list[str]:
    return host.run(f"{PREFIX}/bin/list_members", listname).stdout.split()


def send(host: Host, sender: str, listname: str, subject: str) -> None:
    message = f"From: {sender}\nTo: {listname}@{DOMAIN}\nSubject: {subject}\nMessage-ID: <{uuid.uuid4()}@{HOSTNAME}>\n\nbody\n"
    host.run("/usr/sbin/sendmail", "-f", sender, f"{listname}@{DOMAIN}", input=message)


@pytest.fixture(scope="module")
def host(request, upstream, tmp_path_factory):
    if upstream.flavour != "py3":
        pytest.skip("the Python 3.13 sweep is for the py3 flavour")
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    machine = web_host(tmp_path_factory.mktemp("e2e-every-script") / "host", upstream.dist, runtime, [DOMAIN])
    try:
        machine.install_offline(domain_debs(request.getfixturevalue("built"), DOMAIN))
        machine.run(f"{PREFIX}/bin/newlist", "-q", "users", address("bob"), LIST_PASSWORD)
        machine.run(f"{PREFIX}/bin/add_members", "-r", "-", "users", input=address("alice") + "\n")
        # The rmlist page is off unless the site allows owners to delete their lists; generated
        # passwords (reset_pw, subscriptions by mail) take the secure path, which is not the default.
        conffile = machine.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
        conffile.write_text(conffile.read_text() + "OWNERS_CAN_DELETE_THEIR_OWN_LISTS = Yes\nUSER_FRIENDLY_PASSWORDS = No\n")
        yield machine
    finally:
        machine.stop()


@pytest.fixture(scope="module")
def archived_post(host):
    """The subject of a post by member alice, once it is in the users list's archive."""
    subject = f"archived {uuid.uuid4().hex}"
    send(host, address("alice"), "users", subject)
    mbox = host.root / PREFIX.lstrip("/") / "archives/private/users.mbox/users.mbox"
    wait_until(lambda: mbox.exists() and subject in mbox.read_text(errors="replace"), what="the post in the archive", timeout=90)
    return subject


@pytest.fixture(scope="module")
def alice_password(host):
    """A password of member alice that the web tests can log in with."""
    host.run(f"{PREFIX}/bin/withlist", "-q", "-l", "users", input=f"m.setMemberPassword({address('alice')!r}, 'alicepw'); m.Save()\n")
    return "alicepw"


# -- the CGI pages ---------------------------------------------------------------------------

def test_listinfo(host):
    assert 'href="listinfo/users"' in page(host, "listinfo", "listinfo")
    assert 'ACTION="../subscribe/users"' in page(host, "listinfo", "listinfo/users")


def test_subscribe_then_confirm_with_the_token_from_the_mail(host):
    body = page(host, "subscribe", "subscribe/users", {
        "email": address("carol"), "fullname": "Carol R&eacute;my", "pw": "carolpw", "pw-conf": "carolpw",
        "digest": "0", "email-button": "Subscribe"})
    assert "Your subscription request has been received" in body
    request = host.wait_for_mail("carol", lambda m: (m["Subject"] or "").startswith("confirm "))
    token = request["Subject"].split()[1]
    assert "Confirm subscription request" in page(host, "confirm", f"confirm/users/{token}")
    body = page(host, "confirm", "confirm/users", {
        "cookie": token, "realname": "Carol R&eacute;my", "digests": "0", "language": "en", "submit": "Subscribe to list users"})
    assert "successfully" in body
    assert address("carol") in members(host)
    line = next(line for line in host.run(f"{PREFIX}/bin/list_members", "-f", "users").stdout.splitlines() if "carol" in line)
    name = email.utils.parseaddr(line)[0]  # RFC 2047-encoded
    assert str(email.header.make_header(email.header.decode_header(name))) == "Carol Rémy"


def test_options_login_settings_and_password(host, alice_password):
    body = page(host, "options", "options/users", {"email": address("alice"), "password": alice_password, "login": "Log in"})
    assert "membership configuration" in body
    user = address("alice").replace("@", "--at--")
    body = page(host, "options", f"options/users/{user}", {"csrf_token": csrf(body), "conceal": "1", "options-submit": "Submit My Changes"})
    assert "You have successfully set your options" in body
    body = page(host, "options", f"options/users/{user}", {
        "csrf_token": csrf(body), "newpw": alice_password, "confpw": alice_password, "changepw": "Change My Password"})
    assert "Password successfully changed" in body


ADMIN_PAGES = ("general", "passwords", "language", "nondigest", "digest", "members", "members/list", "members/add",
               "members/remove", "members/change", "privacy", "privacy/subscribing", "privacy/sender",
               "privacy/recipient", "privacy/spam", "bounce", "archive", "gateway", "autoreply", "contentfilter", "topics")


def test_admin_every_page_and_a_settings_change(host):
    body = admin_login(host, "admin")
    for name in ADMIN_PAGES:
        page(host, "admin", f"admin/users/{name}")
    body = page(host, "admin", "admin/users/general", {"csrf_token": csrf(body), "description": "Changed on the web", "submit": "Submit Your Changes"})
    assert "description = 'Changed on the web'" in host.run(f"{PREFIX}/bin/config_list", "-o", "-", "users").stdout
    page(host, "admin", "admin/users/members/add", {
        "csrf_token": csrf(body), "subscribees": "dan@example.com", "subscribe_or_invite": "0",
        "send_welcome_msg_to_this_batch": "0", "send_notifications_to_list_owner": "0", "setmemberopts_btn": "Submit Your Changes"})
    assert "dan@example.com" in members(host)


def test_admindb_approves_a_held_post(host):
    subject = f"held {uuid.uuid4().hex}"
    send(host, "mallory@example.com", "users", subject)  # a non-member: held for the moderator
    wait_until(lambda: held(host, "users"), what="the post to be held", timeout=90)
    msgid = held(host, "users")[-1].stem.rsplit("-", 1)[1]
    body = admin_login(host, "admindb")
    body = page(host, "admindb", "admindb/users")
    assert subject in body
    for query in ("?details=all", f"?msgid={msgid}", "?sender=mallory%40example.com", "?details=instructions"):
        page(host, "admindb", f"admindb/users{query}")
    page(host, "admindb", "admindb/users", {"csrf_token": csrf(body), msgid: "1", "submit": "Submit All Data"})
    host.wait_for_mail("alice", lambda m: subject in (m["Subject"] or ""))


def test_private_archive_after_login(host, archived_post, alice_password):
    # A path piece longer than the longest list name is cut as an attack (GetPathPieces): with
    # only short names, "users.mbox" would be.
    host.run(f"{PREFIX}/bin/newlist", "-q", "a-long-list-name", address("bob"), LIST_PASSWORD)
    page(host, "private", "private/users/")  # the login form
    body = page(host, "private", "private/users/", {"username": address("alice"), "password": alice_password, "submit": "Let me in..."})
    assert "The Users Archives" in body
    month = re.search(r'href="([^"/]+)/thread.html"', body).group(1)
    assert archived_post in page(host, "private", f"private/users/{month}/thread.html")
    assert archived_post in page(host, "private", "private/users.mbox/users.mbox")


def test_roster_after_login(host, alice_password):
    host.run(f"{PREFIX}/bin/add_members", "-r", "-", "users", input="erin@example.com\n")
    page(host, "roster", "roster/users", status=401)  # private roster: the login form
    body = page(host, "roster", "roster/users", {"roster-email": address("alice"), "roster-pw": alice_password, "SubscriberRoster": "Visit Subscriber List"})
    assert "erin at example.com" in body


def test_create_then_rmlist_on_the_web(host):
    site_password = (host.root / f"etc/mailmen/{DOMAIN}/site-list-password").read_text().strip()
    page(host, "create", "create")
    body = page(host, "create", "create", {
        "listname": "webmade", "owner": address("bob"), "autogen": "0", "password": "webpw", "confirm": "webpw",
        "notify": "0", "moderate": "0", "langs": "en", "auth": site_password, "doit": "Create List"})
    assert "You have successfully created the mailing list" in body
    lists = host.root / PREFIX.lstrip("/") / "lists"
    assert (lists / "webmade").is_dir()
    page(host, "rmlist", "rmlist/webmade")
    body = page(host, "rmlist", "rmlist/webmade", {"password": "webpw", "delarchives": "1", "doit": "Delete this list"})
    assert "Mailing list deletion results" in body
    assert not (lists / "webmade").exists()


def test_edithtml_changes_the_listinfo_page(host):
    admin_login(host, "edithtml")
    page(host, "edithtml", "edithtml/users")
    body = page(host, "edithtml", "edithtml/users/listinfo.html")
    code = re.search(r"<textarea[^>]*html_code[^>]*>(.*?)</textarea>", body, re.S | re.I).group(1)
    edited = html.unescape(code).replace("</BODY>", "<!-- edited on the web --></BODY>")
    body = page(host, "edithtml", "edithtml/users/listinfo.html", {"csrf_token": csrf(body), "html_code": edited, "submit": "Submit Changes"})
    assert "HTML successfully updated" in body
    assert "edited on the web" in page(host, "listinfo", "listinfo/users")


# -- the scripts in bin/ ---------------------------------------------------------------------

def run_script(host: Host, command: str, user: str | None = None, input: str | None = None) -> str:
    """A shell command in the prefix, as an administrator types it; a hang (a list left locked) fails too."""
    logs = Logs(host)
    result = host.run("timeout", "120", "sh", "-c", f"cd {PREFIX} && {command}", user=user, input=input, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{command} failed ({result.returncode}):\n{output[-3000:]}"
    assert_clean(command, output, logs)
    return output


def test_list_and_member_scripts(host):
    """On a list of their own, in the order an administrator would use them."""
    for command, expected in (
        ("bin/version", "2.2"),
        ("bin/newlist -q scratch bob@host.example scratchpw", ""),
        ("bin/list_lists -a -b", "scratch"),
        ("bin/list_admins scratch", "bob@host.example"),
        ("bin/list_owners -w scratch", "bob@host.example"),
        ("printf 'alice@host.example\\nbob@host.example\\n' | bin/add_members -r - scratch", "Subscribed: bob@host.example"),
        ("bin/list_members -f scratch", "alice@host.example"),
        ("bin/find_member alice", "scratch"),
        ("bin/clone_member alice@host.example carol@host.example", "clone address added: carol@host.example"),
        # carol is a member now; sync_members adds erin and removes carol, who has a real name.
        ("bin/withlist -q -l scratch <<'EOF'\nm.setMemberName('carol@host.example', 'Carol'); m.Save()\nEOF", ""),
        ("printf 'alice@host.example\\nbob@host.example\\nerin@host.example\\n' | bin/sync_members -w=no -f - scratch",
         "Removed: Carol <carol@host.example>"),
        ("bin/remove_members scratch erin@host.example", ""),
        ("bin/change_pw -l scratch -p scratchpw2", "New scratch password"),
        ("bin/config_list -o /tmp/scratch.cfg scratch", ""),
        ("bin/config_list -i /tmp/scratch.cfg scratch", ""),
        ("bin/withlist -l -r fix_url scratch -u lists.example.org", "Saving list"),
        ("bin/withlist -l -r convert scratch", "Saving list"),
        ("bin/withlist -l -r reset_pw scratch -v", "New password for member"),
        ("bin/export.py -l scratch -o /tmp/scratch.xml && grep -c '<member' /tmp/scratch.xml", "2"),
        ("bin/dumpdb lists/scratch/config.pck", "'real_name': 'Scratch'"),
        ("bin/check_db -a -v", "scratch"),
        ("bin/genaliases -q && grep -c scratch data/virtual-mailman", "10"),
        ("bin/mmsitepass -c creatorpw", "Password changed"),
        ("bin/mmsitepass \"$(cat /etc/mailmen/lists.example.org/site-list-password)\"", "Password changed"),
        ("bin/rmlist -a scratch", "Removing list info"),
        ("bin/list_lists -b", "users"),
    ):
        output = run_script(host, command)
        assert expected in output, f"{command}: no {expected!r} in:\n{output}"
    assert "scratch" not in run_script(host, "bin/list_lists -b")


def test_queue_scripts(host):
    """inject, show_qfiles, unshunt, discard, qrunner, on queue files Mailman made itself."""
    run_script(host, "bin/newlist -q queued bob@host.example queuedpw")
    run_script(host, "bin/add_members -r - queued", input=address("alice") + "\n")
    subject = f"unshunted {uuid.uuid4().hex}"
    post = f"From: {address('alice')}\nTo: queued@{DOMAIN}\nSubject: {subject}\n\nbody\n"
    run_script(host, "bin/inject -q shunt -l queued", input=post)  # the shunt queue has no runner
    shown = run_script(host, "bin/show_qfiles qfiles/shunt/*.pck")
    assert subject in shown and "====================> qfiles/shunt/" in shown
    run_script(host, "bin/unshunt")
    host.wait_for_mail("alice", lambda m: subject in (m["Subject"] or ""))
    run_script(host, "bin/inject -l queued", input=post.replace(address("alice"), "mallory@example.com"))
    wait_until(lambda: held(host, "queued"), what="the non-member post to be held", timeout=90)
    assert "Discarded held msg" in run_script(host, "bin/discard data/heldmsg-queued-*.pck")
    assert "Retry runs the RetryRunner" in run_script(host, "bin/qrunner -l")
    run_script(host, "bin/qrunner -r Retry -o")
    run_script(host, "bin/rmlist -a queued")


def test_archive_scripts_as_list(host, archived_post):
    """As list, whose archives they rewrite (run as root, they leave files the archiver cannot write)."""
    archive = "archives/private/users"
    assert archived_post in run_script(host, f"bin/cleanarch < {archive}.mbox/users.mbox", user="list")
    assert "Pickling archive state" in run_script(host, "bin/arch users", user="list")
    assert "Pickling archive state" in run_script(host, "bin/arch --wipe users", user="list")
    for script in ("rb-archfix", "b4b5-archfix"):
        assert f"processing: {archive}/database/" in run_script(host, f"bin/{script} {archive}/database/*-article", user="list")


def test_site_scripts(host):
    assert "mailman_user:    list" in run_script(host, "bin/mailman-config")
    run_script(host, "bin/check_perms")
    run_script(host, "bin/update -f")
    run_script(host, "bin/transcheck -q fr")
    run_script(host, "printf 'msgid \"a\"\\nmsgstr \"b\"\\n' > /tmp/test.po && bin/msgfmt.py -o /tmp/test.mo /tmp/test.po")
    run_script(host, "bin/mailmanctl reopen")
    run_script(host, "bin/mailmanctl -q restart")
    for script in ("b4b5-archfix", "discard", "rb-archfix", "show_qfiles", "qrunner", "mailmanctl", "update", "withlist"):
        run_script(host, f"bin/{script} --help")


def test_mmdeb_import_moves_an_old_list_in(host):
    """An old German list as 2.1 pickled it (iso-8859-1), with every attribute a new list has."""
    run_script(host, "bin/newlist -q skeleton bob@host.example skeletonpw")
    every_attribute = pickle.loads((host.root / PREFIX.lstrip("/") / "lists/skeleton/config.pck").read_bytes())
    run_script(host, "bin/rmlist -a skeleton")
    german_list(debian_tree(host.root / "srv/old-site"), "altliste", base=py2_form(every_attribute))
    assert "would be imported" in run_script(host, "bin/mmdeb-import --dry-run /srv/old-site")
    assert "1 imported, 0 failed" in run_script(host, "bin/mmdeb-import /srv/old-site")
    assert GERMAN in run_script(host, "bin/config_list -o - altliste")


def test_every_bin_script_is_run_here(host):
    """A script that a new upstream adds to bin/ fails this until a test above runs it."""
    source = open(__file__).read()
    shipped = {path.name for path in (host.root / PREFIX.lstrip("/") / "bin").iterdir()
               if path.is_file() and path.name != "paths.py"}
    # As bin/NAME, as a name in a loop over scripts, or as a withlist -r module (fix_url.py...).
    untested = {name for name in shipped
                if not re.search(rf"(bin/|-r |\"){re.escape(name.removesuffix('.py'))}(\.py)?(?![\w.-])", source)}
    assert not untested, f"scripts in bin/ that no test runs: {sorted(untested)}"


# -- the cron jobs ---------------------------------------------------------------------------

CRON = ("checkdbs", "mailpasswds", "senddigests", "gate_news", "nightly_gzip", "bumpdigests", "disabled", "cull_bad_shunt")


@pytest.mark.parametrize("job", CRON)
def test_cron_job_as_list(host, job):
    """As cron.d runs them: `python3 -S` as list. Some list gateways news, so gate_news has work
    (its server is not there: that is logged in fromusenet, not an error)."""
    settings = "nntp_host = '127.0.0.1'\nlinked_newsgroup = 'test.mailman'\ngateway_to_mail = 1\n"
    host.run("sh", "-c", f"printf \"{settings}\" > /tmp/news.cfg && {PREFIX}/bin/config_list -i /tmp/news.cfg users")
    run_script(host, f"{FLAVOURS['py3'].python} -S cron/{job}", user="list")
