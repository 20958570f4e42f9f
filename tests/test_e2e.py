"""End to end, on real Mailman: two domains with a `users` list each, real Postfix and Apache,
in a fresh mmdebstrap chroot whose daemons run in their own network namespace.

Needs the real upstream tarball (the fixture is no Mailman), root and the Debian mirror.
"""

import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, build, core_deb_of, deb_of, domain_debs, runtime_packages
from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, Host, prefix
from helpers.lists import (ARTIFACTS, USERS, address, check_alice_leaves_by_mail, check_post_reaches_alice_and_bob_not_carol,
                           confirm_by_reply, members, set_members, wait_until)
from helpers.tls import CA, HOST_TLS_DIR, curl_argv, name_certificates, preseed_certificates, trust_ca_for_chromium
from mmdeb.domains.layout import COMMON_PACKAGE, POSTFIX_MAPS_DIR, PRIVATE_ARCHIVES_MODE, WEB_SERVER_USER, DomainPaths
from mmdeb.upstream.dists import FLAVOURS

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

EXIM_DEBCONF = "etc/exim4/update-exim4.conf.conf"  # exim4-config's, which we must not edit
MTA_START = {"postfix": ["postfix", "start"], "exim4-daemon-light": ["/etc/init.d/exim4", "start"]}
def runner_pids(host: Host, domain: str) -> list[int]:
    """The live master qrunner of domain (mailmanctl stop may leave its pid file behind)."""
    pid_file = host.root / prefix(domain).lstrip("/") / "data/master-qrunner.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else 0
    return [pid] if pid and Path(f"/proc/{pid}").exists() else []


@pytest.fixture(scope="module", params=[(mta, mode) for mode in ("prefix", "shared") for mta in ("postfix", "exim4-daemon-light")],
                ids=lambda param: "-".join(param))
def host(request, upstream, tmp_path_factory):
    mta, mode = request.param
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    root = tmp_path_factory.mktemp(f"e2e-{mta}-{mode}") / "host"
    machine = Host.create(root, upstream.dist, [mta, "apache2", "curl", *runtime], MTA_DEBCONF[mta])
    machine.mta, machine.mode = mta, mode
    machine.allow_service_starts()
    machine.start()
    try:
        if mta == "postfix":
            machine.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        for user in USERS:
            machine.run("useradd", "--create-home", user)
        machine.run(*MTA_START[mta])
        machine.run("apache2ctl", "start")
        if mta == "exim4-daemon-light":
            machine.exim_debconf = (root / EXIM_DEBCONF).read_bytes()
        preseed_certificates(machine, DOMAIN, OTHER_DOMAIN)
        built = request.getfixturevalue("built_shared" if mode == "shared" else "built")
        installed = machine.install_offline(domain_debs(built, DOMAIN, OTHER_DOMAIN))
        machine.install_log = installed.stdout + installed.stderr
        # As the first install left them: a test may purge a domain (which drops /etc/mailmen/<domain>),
        # and its reinstall keeps the site list, so it writes no password file.
        machine.site_password_modes = {domain: (root / f"etc/mailmen/{domain}/site-list-password").stat().st_mode & 0o777
                                       for domain in (DOMAIN, OTHER_DOMAIN)}
        for domain in (DOMAIN, OTHER_DOMAIN):
            machine.run(f"{prefix(domain)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
        yield machine
    finally:
        machine.stop()


@pytest.fixture(autouse=True)
def installed(host):
    """Each test starts with every package installed: what a test before it removed or purged
    is installed again (the debconf certificates too, which a purge forgets)."""
    if removed := host.removed():
        name_certificates(host, *[domain for domain in (DOMAIN, OTHER_DOMAIN) if f"mailman-{domain}" in removed])
        host.install_offline([host.installed[package] for package in removed])


@pytest.fixture
def nobody_subscribed(host):
    """Both users lists without members, and alice's mailbox without an older confirmation request."""
    for domain in (DOMAIN, OTHER_DOMAIN):
        set_members(host, domain)
    host.empty_mailbox("alice")


@pytest.fixture
def alice_subscribed(host):
    set_members(host, DOMAIN, "alice")


@pytest.fixture
def alice_and_bob_subscribed(host):
    set_members(host, DOMAIN, "alice", "bob")


@pytest.fixture
def bob_subscribed(host):
    set_members(host, DOMAIN, "bob")


@pytest.fixture
def netonly(host):
    """A second list, on OTHER_DOMAIN only."""
    if not (host.root / prefix(OTHER_DOMAIN).lstrip("/") / "lists/netonly").is_dir():
        host.run(f"{prefix(OTHER_DOMAIN)}/bin/newlist", "-q", "netonly", address("bob"), "listpassword")


def test_install_starts_each_domains_runners(host):
    for domain in (DOMAIN, OTHER_DOMAIN):
        wait_until(lambda: runner_pids(host, domain), what=f"{domain}'s qrunners")
        assert host.site_password_modes[domain] == 0o600
        assert (host.root / prefix(domain).lstrip("/") / "lists/mailman").is_dir(), "site list created"
    said = "Postfix delivers mail for lists.example.net, lists.example.org" if host.mta == "postfix" else \
        "Exim delivers mail for lists.example.org"
    assert said in host.install_log


def test_alias_database_owned_by_the_mail_gid_user(host):
    if host.mta != "postfix":
        pytest.skip("Exim routes by directory lookup, without alias maps")
    result = host.run("stat", "-c", "%U:%G", f"{POSTFIX_MAPS_DIR}/aliases-daemon.db")
    assert result.stdout.strip() == "daemon:list"


def test_join_by_mail(host, nobody_subscribed):
    seen: set[str] = set()
    host.send(address("alice"), f"users-join@{DOMAIN}", "join", user="alice")
    confirm_by_reply(host, "alice", seen)
    host.wait_for_mail("alice", lambda m: "Welcome" in (m["Subject"] or ""))
    assert members(host, DOMAIN) == [address("alice")]
    assert members(host, OTHER_DOMAIN) == []


def test_post_reaches_every_subscriber_of_that_domain_only(host, alice_subscribed):
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")
    host.run(f"{prefix(OTHER_DOMAIN)}/bin/add_members", "-r", "-", "users", input=address("carol") + "\n")
    check_post_reaches_alice_and_bob_not_carol(host)


def test_leave_by_mail(host, alice_and_bob_subscribed):
    check_alice_leaves_by_mail(host)


def test_listinfo_shows_only_the_domains_own_lists(host, netonly):
    listed = {}
    for domain in (DOMAIN, OTHER_DOMAIN):
        page = host.run(*curl_argv(domain, "mailman/listinfo"), "-sSf").stdout
        listed[domain] = set(re.findall(r'href="listinfo/([^"]+)"', page))
    assert "users" in listed[DOMAIN] and "netonly" not in listed[DOMAIN]
    assert {"users", "netonly"} <= listed[OTHER_DOMAIN]


def test_http_redirects_to_https(host):
    head = host.run(*curl_argv(DOMAIN, "mailman/listinfo", scheme="http"), "-sSI").stdout
    assert head.split()[1] == "301" and f"Location: https://{DOMAIN}/mailman/listinfo" in head, head


def test_acme_challenges_are_served_over_http(host):
    challenges = host.root / prefix(DOMAIN).lstrip("/") / "webroot/.well-known/acme-challenge"
    (challenges / "token-1").write_text("token-1.thumbprint")
    argv = curl_argv(DOMAIN, ".well-known/acme-challenge/token-1", scheme="http")
    assert host.run(*argv, "-sSf").stdout == "token-1.thumbprint"


def web_page_url(host: Host, listname: str = "users") -> str:
    config = host.run(f"{prefix(DOMAIN)}/bin/dumpdb", f"{prefix(DOMAIN)}/lists/{listname}/config.pck").stdout
    return re.search(r"'web_page_url': '([^']*)'", config).group(1)


def test_lists_link_to_https(host):
    assert web_page_url(host) == f"https://{DOMAIN}/mailman/"


def test_another_site_serving_the_domain_over_https_is_named_and_left_alone(host):
    site = host.root / "etc/apache2/sites-available/zz-other.conf"
    site.write_text(f"<VirtualHost *:443>\n\tServerName {DOMAIN}\n\tSSLEngine on\n"
                    f"\tSSLCertificateFile {HOST_TLS_DIR}/{DOMAIN}.pem\n\tSSLCertificateKeyFile {HOST_TLS_DIR}/{DOMAIN}.key\n"
                    "</VirtualHost>\n")
    host.run("a2ensite", "-q", "zz-other")
    try:
        said = host.run("dpkg-reconfigure", "-fnoninteractive", f"mailman-{DOMAIN}").stderr
    finally:
        host.run("a2dissite", "-q", "zz-other")
        site.unlink()
    assert f"zz-other.conf:1 already serves https://{DOMAIN}" in said, said


@pytest.mark.parametrize("problem", ["missing", "wrong key"])
def test_a_bad_certificate_is_refused_and_the_old_one_kept(host, problem):
    package = f"mailman-{DOMAIN}"
    certificate, key = f"{HOST_TLS_DIR}/{DOMAIN}.pem", f"{HOST_TLS_DIR}/{OTHER_DOMAIN}.key"
    if problem == "missing":
        certificate, key = "/etc/ssl/nonexistent.pem", f"{HOST_TLS_DIR}/{DOMAIN}.key"
    host.run("debconf-set-selections", input=f"{package} {package}/tls_certificate string {certificate}\n"
                                             f"{package} {package}/tls_key string {key}\n")
    said = host.run("dpkg-reconfigure", "-fnoninteractive", package).stderr
    reason = "does not exist" if problem == "missing" else "does not belong to the certificate"
    assert reason in said and "keeps the certificate it had" in said, said
    assert f"{HOST_TLS_DIR}/{DOMAIN}.key" in (host.root / f"etc/mailmen/{DOMAIN}/apache-tls.conf").read_text()
    host.run("apache2ctl", "configtest")
    assert "users" in host.run(*curl_argv(DOMAIN, "mailman/listinfo"), "-sSf").stdout


def smtp_refusal(host: Host, recipient: str) -> str:
    """What the MTA answers a remote sender (127.0.0.2 is outside Exim's relay_from_hosts)
    offering mail for recipient, if it refuses it; empty if it accepts it."""
    result = host.run("curl", "-sS", "--interface", "127.0.0.2", "--url", "smtp://127.0.0.1", "--mail-from", address("alice"),
                      "--mail-rcpt", recipient, "-T", "/etc/hostname", check=False)
    return result.stdout + result.stderr if result.returncode else ""


def test_unknown_list_address_refused_at_smtp_time(host):
    assert "550" in smtp_refusal(host, f"nosuchlist@{DOMAIN}")


def test_listinfo_screenshot(host, tmp_path):
    chromium = shutil.which("chromium")
    if not chromium or not shutil.which("certutil"):
        pytest.skip("chromium or certutil is not installed (apt-get install chromium libnss3-tools)")
    trust_ca_for_chromium(host.root / CA.lstrip("/"), tmp_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for domain in (DOMAIN, OTHER_DOMAIN):
        shot = ARTIFACTS / f"listinfo-{domain}-{host.mta}-{host.mode}.png"
        shot.unlink(missing_ok=True)
        subprocess.run(
            ["ip", "netns", "exec", host.netns, chromium, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path}/chromium-{domain}",
             f"--host-resolver-rules=MAP {domain} 127.0.0.1", f"--screenshot={shot}", "--window-size=1000,700",
             f"https://{domain}/mailman/listinfo"],
            check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)},
        )
        assert shot.stat().st_size > 1000


def cron_jobs(host: Host) -> list[list[str]]:
    """The (schedule, user, command) lines of mailmen-common's cron file, for every domain."""
    return [line.split("\t") for line in (host.root / f"etc/cron.d/{COMMON_PACKAGE}").read_text().splitlines()
            if line and not line.startswith(("#", "PATH="))]


def test_cron_jobs_run_as_list(host):
    # This host runs no systemd, so the cron file runs the jobs.
    jobs = cron_jobs(host)
    assert {job[1] for job in jobs} == {"list"}
    assert len(jobs) == 6
    for _schedule, user, command in jobs:
        result = host.run("sh", "-c", command, user=user, check=False)
        assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"


def test_cron_does_nothing_where_systemd_runs(host):
    # There the timers run the jobs; each line stops at its first test.
    marker = host.root / "run/systemd/system"
    marker.mkdir(parents=True)
    try:
        for _schedule, user, command in cron_jobs(host):
            trace = host.run("sh", "-xc", command, user=user, check=False).stderr
            assert trace.splitlines() == ["+ [ ! -d /run/systemd/system ]"], trace
    finally:
        marker.rmdir()


def test_check_perms_finds_no_problem(host):
    for domain in (DOMAIN, OTHER_DOMAIN):
        checked = host.run(f"{prefix(domain)}/bin/check_perms").stdout
        # Not even its warning for shared hosts: the private archives are closed to other users.
        assert "No problems found" in checked and "other-executable" not in checked, checked


EVIL = "/tmp/evil"
# It must run even as Python 3's encodings package, before open() exists (then only the
# built-in _io does), and as Python 2's site.py (where _io may be in the planted lib-dynload).
PAYLOAD = """\
try:
    open('/tmp/pwned', 'ab').write(b'{name}\\n')
except NameError:
    import _io
    _io.FileIO('/tmp/pwned', 'a').write(b'{name}\\n')
"""


def plant_attacker_code(host: Host, python: str) -> dict[str, str]:
    """Modules and scripts under EVIL that a wrapper would run if it trusted its caller; the
    environment that points Python and Mailman at them."""
    stdlib = host.run(python, "-c", "import sys; print('lib/python%d.%d' % sys.version_info[:2])").stdout.strip()
    modules = ["sitecustomize.py", "usercustomize.py", "paths.py", "startup.py", "Mailman/__init__.py",
               "Mailman/mm_cfg.py", "Mailman/Utils.py", "scripts/post", "scripts/driver", "mail/mailman",
               "cgi-bin/listinfo", f"{stdlib}/encodings/__init__.py", f"{stdlib}/os.py", f"{stdlib}/site.py"]
    for module in modules:
        path = host.root / EVIL.lstrip("/") / module
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(PAYLOAD.format(name=module))
        path.chmod(0o755)
    return {
        "PYTHONPATH": EVIL, "PYTHONHOME": EVIL, "PYTHONSTARTUP": f"{EVIL}/startup.py", "PYTHONINSPECT": "1",
        "PYTHONUSERBASE": EVIL, "MAILMAN_PREFIX": EVIL, "MAILMAN_VAR_PREFIX": EVIL,
        "MAILMAN_HOME": EVIL, "MAILMAN_CONFIG": f"{EVIL}/Mailman/mm_cfg.py", "MAILMAN_CORE": EVIL, "PATH": f"{EVIL}:/usr/bin:/bin",
    }


def run_as_attacker(host: Host, group: str, env: dict[str, str], argv0: str, *argv: str, input: str = ""):
    """argv as user mallory with real gid group (the wrapper's caller check passes), env only, and argv[0] faked."""
    variables = [f"{key}={value}" for key, value in env.items()]
    return host.run("setpriv", "--reuid=mallory", f"--regid={group}", "--clear-groups", "env", "-i", *variables,
                    "bash", "-c", 'exec -a "$0" "$@"', argv0, *argv, input=input, check=False)


def test_new_lists_munge_dmarc_posters_by_the_local_public_suffix_list(host, upstream):
    """mm_cfg.py's DMARC defaults on a list made with newlist, and the organizational domain
    from the publicsuffix package's list (the host cannot reach publicsuffix.org: without the
    list, the fork and 2.1.39 take the last two labels, co.uk)."""
    code = (f"import sys; sys.path.insert(0, '{prefix(DOMAIN)}/bin'); import paths\n"
            "from Mailman import MailList, Utils\nmlist = MailList.MailList('users', lock=False)\n"
            "print('%d %d %d %s' % (mlist.dmarc_moderation_action, mlist.dmarc_quarantine_moderation_action,\n"
            "                       mlist.from_is_list, Utils.get_org_dom('mail.reject.co.uk')))")
    assert host.run(FLAVOURS[upstream.flavour].python, "-c", code, user="list").stdout.split() == ["1", "1", "0", "reject.co.uk"]


def test_wrappers_run_no_attacker_code(host, upstream):
    """The setgid wrappers, called by a local user of the right group with Python and Mailman
    variables and argv[0] pointing at the attacker's code, run only this domain's Mailman."""
    host.run("useradd", "--no-create-home", "mallory")
    env = plant_attacker_code(host, FLAVOURS[upstream.flavour].python)
    marker = host.root / "tmp/pwned"
    # Control: the same interpreter run directly with this environment does run the planted code.
    run_as_attacker(host, "daemon", env, "python", FLAVOURS[upstream.flavour].python, "-c", "pass")
    assert marker.exists(), "the planted code is not reachable; the test would prove nothing"
    marker.unlink()
    cgi_env = {**env, "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/mailman/listinfo", "HTTP_HOST": DOMAIN,
               "SERVER_NAME": DOMAIN, "QUERY_STRING": "", "PATH_INFO": ""}
    page = run_as_attacker(host, "www-data", cgi_env, f"{EVIL}/scripts/driver", f"{prefix(DOMAIN)}/cgi-bin/listinfo")
    post = f"From: mallory@{HOSTNAME}\nTo: users@{DOMAIN}\nSubject: attack\n\nhello\n"
    accepted = run_as_attacker(host, "daemon", env, f"{EVIL}/mail/mailman", f"{prefix(DOMAIN)}/mail/mailman",
                               "post", "users", input=post)
    traversal = run_as_attacker(host, "daemon", env, "mailman", f"{prefix(DOMAIN)}/mail/mailman",
                                "../../../tmp/evil/scripts/post", "users", input=post)
    assert not marker.exists(), f"attacker code ran: {marker.read_text()}"
    assert 'href="listinfo/users"' in page.stdout, page.stdout + page.stderr  # the real listinfo ran
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert traversal.returncode != 0


def test_upgrade_delivers_every_queued_post_and_keeps_settings(host, upstream, tmp_path_factory, bob_subscribed):
    newer = build(upstream, tmp_path_factory.mktemp("upgrade"), DOMAIN, revision=2, mode=host.mode, common=False)
    conffile = host.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
    conffile.write_text(conffile.read_text() + "# kept across upgrades\n")
    host.run("/etc/init.d/mailmen", "stop", DOMAIN)
    wait_until(lambda: not runner_pids(host, DOMAIN), what="runners to stop")
    tokens = [uuid.uuid4().hex for _ in range(3)]
    for token in tokens:
        host.send(address("bob"), f"users@{DOMAIN}", f"queued {token}", body=token, user="bob")
    queue = host.root / prefix(DOMAIN).lstrip("/") / "qfiles/in"
    wait_until(lambda: len(list(queue.glob("*.pck"))) == 3, what="three posts in qfiles/in")
    # As an HTTP-only revision left the list.
    host.run(f"{prefix(DOMAIN)}/bin/withlist", "-l", "users", input=f"m.web_page_url = 'http://{DOMAIN}/mailman/'\nm.Save()\n")
    (host.root / prefix(DOMAIN).lstrip("/") / "data/https-urls").unlink()
    # As packages left the private archives before they were closed to other local users.
    private = DomainPaths(DOMAIN).private_archives
    host.run("chown", "root:list", private)
    host.run("chmod", "2771", private)

    host.install_offline([deb_of(newer, DOMAIN, revision=2)])

    for token in tokens:
        host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))
    assert "# kept across upgrades" in conffile.read_text()
    assert members(host, DOMAIN) == [address("bob")]
    assert runner_pids(host, DOMAIN), "runners started again after the upgrade"
    assert web_page_url(host) == f"https://{DOMAIN}/mailman/"
    assert host.run("stat", "-c", "%U:%G %a", private).stdout.split() == [f"{WEB_SERVER_USER}:list", f"{PRIVATE_ARCHIVES_MODE:o}"]


def test_drain_delivers_the_queued_posts_and_exits(host, upstream):
    """`qrunner --drain`, what on-demand runners run (patch), on this flavour's Python: a chroot
    has no systemd, so it is run here by hand, with mailmanctl's runners stopped."""
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")  # or is one
    host.run("/etc/init.d/mailmen", "stop", DOMAIN)
    try:
        tokens = [uuid.uuid4().hex for _ in range(3)]
        for token in tokens:
            host.send(address("bob"), f"users@{DOMAIN}", f"drained {token}", body=token, user="bob")
        queues = host.root / prefix(DOMAIN).lstrip("/") / "qfiles"
        wait_until(lambda: len(list((queues / "in").glob("*.pck"))) == 3, what="three posts in qfiles/in")
        host.run(FLAVOURS[upstream.flavour].python, f"{prefix(DOMAIN)}/bin/qrunner", "--drain=0", "--runner=All", user="list")
        assert not [path for queue in ("in", "out", "virgin", "archive") for path in (queues / queue).iterdir()]
        for token in tokens:
            host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))
    finally:
        host.run("/etc/init.d/mailmen", "start", DOMAIN)


def qrunners(host: Host, domain: str) -> list[str]:
    """The command lines of domain's queue runners."""
    # Only this host's: other test hosts share the process table, each with its own network.
    result = host.run("sh", "-c", 'pgrep --ns $$ --nslist net -a -u list -f "$0"', f"{prefix(domain)}/bin/qrunner ",
                      check=False)
    return result.stdout.splitlines()


def test_core_only_upgrade_with_posts_arriving_keeps_every_domain_running(host, upstream, tmp_path_factory):
    """Without systemd: the core's trigger restarts both domains through the init script while
    posts arrive; each restart must wait for the old runners, so no domain is left down."""
    if host.mode != "shared":
        pytest.skip("only shared mode has a core package")
    newer = build(upstream, tmp_path_factory.mktemp("core-upgrade"), DOMAIN, revision=3, mode="shared", common=False)
    senders = {DOMAIN: "bob", OTHER_DOMAIN: "carol"}
    for domain, user in senders.items():
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=address(user) + "\n")
    for domain in senders:
        wait_until(lambda: runner_pids(host, domain), what=f"{domain}'s qrunners")
    runners_before = {domain: len(qrunners(host, domain)) for domain in senders}
    sent: list[tuple[str, str]] = []
    upgrading = threading.Event()

    def post_while_upgrading():
        while not upgrading.is_set() or len(sent) < 12:
            for domain, user in senders.items():
                token = uuid.uuid4().hex
                host.send(address(user), f"users@{domain}", f"during core upgrade {token}", body=token, user=user)
                sent.append((user, token))
            time.sleep(0.5)

    poster = threading.Thread(target=post_while_upgrading)
    poster.start()
    try:
        host.install_offline([core_deb_of(newer, revision=3)])
    finally:
        upgrading.set()
        poster.join()

    for user, token in sent:
        host.wait_for_mail(user, lambda m: token in (m["Subject"] or ""), timeout=180)
    for domain, count in runners_before.items():
        assert runner_pids(host, domain), f"{domain} has no master qrunner after the core upgrade"
        assert len(qrunners(host, domain)) == count, f"{domain}: {qrunners(host, domain)}"


def exim_local(host: Host, domain: str) -> bool:
    expansion = f"${{if match_domain{{{domain}}}{{+local_domains}}{{yes}}{{no}}}}"
    return host.run("exim4", "-be", expansion).stdout.strip() == "yes"


def test_admins_own_local_domains_stay_local(host):
    if host.mta != "exim4-daemon-light":
        pytest.skip("Exim only")
    macros = host.root / "etc/exim4/conf.d/main/00_localmacros"
    macros.write_text("MAIN_LOCAL_DOMAINS = @:localhost:admins.example\n")
    try:
        host.run("update-exim4.conf")
        assert exim_local(host, "admins.example") and exim_local(host, DOMAIN)
    finally:
        macros.unlink()
        host.run("update-exim4.conf")


def test_unsplit_mta_configuration_is_reported(host):
    """Debian's default unsplit configuration reads nothing in /etc/exim4/conf.d: postinst says so."""
    if host.mta != "exim4-daemon-light":
        pytest.skip("Exim only")
    conf = host.root / EXIM_DEBCONF
    conf.write_text(conf.read_text().replace("dc_use_split_config='true'", "dc_use_split_config='false'"))
    try:
        result = host.run("dpkg-reconfigure", f"mailman-{DOMAIN}")
        assert f"Exim does not read the files of {DOMAIN} in /etc/exim4/conf.d" in result.stdout + result.stderr
        assert "550" in smtp_refusal(host, f"users@{DOMAIN}")
    finally:
        conf.write_bytes(host.exim_debconf)
        host.run("update-exim4.conf")
        host.run("invoke-rc.d", "exim4", "reload")


def test_remove_keeps_lists_and_purge_keeps_archives(host, netonly):
    lists = host.root / prefix(OTHER_DOMAIN).lstrip("/") / "lists"
    host.run("dpkg", "--remove", f"mailman-{OTHER_DOMAIN}")
    assert (lists / "users").is_dir() and (lists / "netonly").is_dir()
    if host.mta == "postfix":
        assert host.run("postmap", "-q", OTHER_DOMAIN, f"hash:{POSTFIX_MAPS_DIR}/domains", check=False).returncode
    else:
        assert "550" in smtp_refusal(host, f"users@{OTHER_DOMAIN}")
    purge = host.run("dpkg", "--purge", f"mailman-{OTHER_DOMAIN}")
    assert (lists / "users").is_dir()
    assert not (host.root / f"etc/mailmen/{OTHER_DOMAIN}").exists()
    assert not (host.root / f"var/log/mailmen/{OTHER_DOMAIN}").exists()
    assert f"kept in {prefix(OTHER_DOMAIN)}" in purge.stdout + purge.stderr


def test_install_and_remove_leave_the_mta_packages_files_untouched(host):
    """Our domains are hooked into Exim by files of our own: exim4-config's
    update-exim4.conf.conf and conffiles stay byte for byte as they were."""
    if host.mta != "exim4-daemon-light":
        pytest.skip("Exim only")
    conf = host.root / EXIM_DEBCONF
    assert conf.read_bytes() == host.exim_debconf
    for domain in (DOMAIN, OTHER_DOMAIN):
        host.run("dpkg", "--purge", f"mailman-{domain}")
    assert conf.read_bytes() == host.exim_debconf
    assert host.run("dpkg", "--verify", "exim4-config", "exim4-base").stdout == ""
    assert not exim_local(host, DOMAIN)
    assert exim_local(host, HOSTNAME)
    # Only mailmen-common's DKIM macros stay (every domain package depends on it).
    generated = (host.root / "var/lib/exim4/config.autogenerated").read_text()
    assert "mailman_" not in generated and "MAILMEN_LOCAL_DOMAINS" not in generated and DOMAIN not in generated
