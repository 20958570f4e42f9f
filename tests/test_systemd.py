"""Real Mailman under a real systemd: two domains installed with apt from mmdeb's signed
repository into a booted Debian (systemd-nspawn), for each supported distribution. What a
chroot cannot show: the units, their restarts, the journal, a reboot, upgrades of the
running services, and the timers. The domains run their queue runners on demand (the
default), in prefix and in shared mode, except those of always_on_host. Needs the real
upstream tarball."""

import json
from email.header import decode_header, make_header
import platform
import threading
import time
import uuid
from datetime import datetime, timezone

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL
from helpers.e2e_host import HOSTNAME, prefix
from mmdeb import PROJECT_ROOT
from mmdeb.upstream.dists import FLAVOURS
from mmdeb.plan.rebuild import split_version
from mmdeb.build.spec import Job, job_template
from mmdeb.domains.layout import COMMON_PACKAGE, JOBS_COMMAND, JOBS_UNIT, RETRY_JOB, instance_unit
from helpers.systemd_host import (Project, boot_with_repository, cgroup_of, instance_links, path_unit, pid1_inotify_instances,
                                  processes_of, unit, unit_property)
from helpers.lists import (address, check_alice_leaves_by_mail, check_post_reaches_alice_and_bob_not_carol, confirm_by_reply,
                           members, set_members, wait_until)
from helpers.web import admin_login, csrf, held, page
from helpers.repository import FIX_MARKER, add_fix, serve
from helpers.tls import HOST_TLS_DIR, fingerprint, served_fingerprint

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

DOMAINS = (DOMAIN, OTHER_DOMAIN)
JOBS = ("checkdbs", "disabled", "senddigests", "mailpasswds", "nightly_gzip", "cull_bad_shunt")
QUIET_JOBS = ("checkdbs", "disabled", "senddigests", "nightly_gzip", "cull_bad_shunt")  # mail no member
RETRY_TIMER = f"mailmen-{RETRY_JOB}.timer"
RETRY_SERVICE = JOBS_UNIT.replace("@", f"@{RETRY_JOB}")
TIMINGS = PROJECT_ROOT / "build" / "test-artifacts" / "systemd-timings.json"


def active(host, domain: str) -> bool:
    return host.run("systemctl", "is-active", unit(domain), check=False).stdout.strip() == "active"


def qrunners(host, domain: str) -> list[tuple[int, str, str]]:
    return [process for process in processes_of(host, domain) if "/bin/qrunner " in process[2]]


def runners_up(host, domain: str) -> list[tuple[int, str, str]]:
    """Wait for the service to be active with its qrunners (mailmanctl forks them after it returns)."""
    return wait_until(lambda: active(host, domain) and len(qrunners(host, domain)) >= 8 and qrunners(host, domain),
                      what=f"{domain}'s qrunners")


def subject(message) -> str:
    return str(make_header(decode_header(message["Subject"] or "")))


def drains(host, domain: str) -> list[int]:
    return [pid for pid, _, args in processes_of(host, domain) if "/bin/qrunner --drain" in args]


def idle(host, domain: str) -> bool:
    """No process of the domain runs: its on-demand service has done its work."""
    return not processes_of(host, domain) and unit_property(host, unit(domain, on_demand=True), "ActiveState") in ("inactive", "failed")


def wait_idle(host, domain: str) -> None:
    wait_until(lambda: idle(host, domain), timeout=120, what=f"{domain} to go idle")


def mailman_python(host, domain: str, code: str) -> str:
    """Run Python code as list with the domain's Mailman importable."""
    return host.run("python3", "-c", f"import sys; sys.path.insert(0, '{prefix(domain)}/bin'); import paths\n{code}",
                    user="list").stdout


def master(host, domain: str) -> int:
    return int(unit_property(host, unit(domain), "MainPID"))


def versions(host, *packages: str) -> list[str]:
    return [host.run("dpkg-query", "-W", "-f=${Version}", package).stdout for package in packages]


def send_posts(host, domain: str, label: str, count: int = 3) -> list[str]:
    """Posts from bob, a member of both users lists (a non-member's post would be held)."""
    tokens = [uuid.uuid4().hex for _ in range(count)]
    for token in tokens:
        host.send(address("bob"), f"users@{domain}", f"{label} {token}", user="bob")
    return tokens


def delivered(host, tokens: list[str], user: str = "bob") -> None:
    # Postfix retries a delivery deferred while a wrapper was being replaced only after
    # minutes (minimal_backoff_time); flush the queue so the test need not wait that long.
    host.run("postqueue", "-f")

    def missing() -> set[str]:
        subjects = " ".join(message["Subject"] or "" for message in host.mailbox(user))
        return {token for token in tokens if token not in subjects}

    try:
        wait_until(lambda: not missing(), timeout=180, what=f"{len(tokens)} posts in {user}'s mailbox")
    except AssertionError:
        raise AssertionError(f"not delivered: {sorted(missing())}") from None


def upgrade_while_posting(host, domains: tuple[str, ...]) -> list[str]:
    """apt-get upgrade, with posts to each domain sent all the while; return their tokens."""
    upgrade: dict = {}
    worker = threading.Thread(target=lambda: upgrade.update(result=host.run("apt-get", "upgrade", "--yes", check=False)))
    worker.start()
    tokens = []
    while worker.is_alive():
        for domain in domains:
            tokens += send_posts(host, domain, "during-upgrade", count=1)
        time.sleep(2)
    worker.join()
    assert upgrade["result"].returncode == 0, upgrade["result"].stdout + upgrade["result"].stderr
    return tokens


def make_users_lists(host) -> None:
    """A `users` list with bob in each domain."""
    for domain in DOMAINS:
        host.run(f"{prefix(domain)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")


@pytest.fixture(scope="module", autouse=True)
def timings():
    """Boot times and this module's wall time, builds included, for bench/ (recorded, never asserted)."""
    record = {"started": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": platform.node()}
    start = time.monotonic()
    yield record
    record["module_wall_s"] = round(time.monotonic() - start, 1)
    TIMINGS.parent.mkdir(parents=True, exist_ok=True)
    TIMINGS.write_text(json.dumps(record, indent=2) + "\n")


@pytest.fixture(scope="module", params=["bookworm", "trixie"])
def dist(request, upstream):
    if request.param not in FLAVOURS[upstream.flavour].dists:
        pytest.skip(f"the {upstream.flavour} flavour does not run on {request.param}")
    return request.param


def booted_domains(directory, upstream, dist: str, timings: dict, **settings):
    """Both domains with settings, built, published and installed in a booted host (a generator)."""
    project = Project(directory, upstream)
    project.add(*DOMAINS, dist=dist, **settings)
    project.rebuild_and_publish()
    machine = boot_with_repository(project, directory / "host", dist, list(DOMAINS), timings)
    machine.project = project
    machine.mode = settings.get("mode", "prefix")
    try:
        make_users_lists(machine)
        yield machine
    finally:
        machine.stop()


@pytest.fixture(scope="module")
def prefix_host(dist, upstream, tmp_path_factory, timings):
    yield from booted_domains(tmp_path_factory.mktemp(f"systemd-{dist}"), upstream, dist, timings)


@pytest.fixture(scope="module")
def shared_host(dist, upstream, tmp_path_factory, timings):
    yield from booted_domains(tmp_path_factory.mktemp(f"systemd-shared-{dist}"), upstream, dist, timings, mode="shared")


@pytest.fixture(scope="module", params=["prefix", "shared"])
def host(request, dist):
    """Both domains, with on-demand runners, in prefix mode and in shared mode."""
    return request.getfixturevalue(f"{request.param}_host")


@pytest.fixture(scope="module")
def always_on_host(dist, upstream, tmp_path_factory, timings):
    """Both domains with always-on runners (mailmanctl)."""
    yield from booted_domains(tmp_path_factory.mktemp(f"systemd-always-on-{dist}"), upstream, dist, timings, runners="always-on")


# -- 1. on-demand runners --------------------------------------------------------

def test_idle_domains_run_no_process(host):
    for domain in DOMAINS:
        wait_idle(host, domain)
        for watcher in (path_unit(domain), RETRY_TIMER):
            assert unit_property(host, watcher, "ActiveState") == "active", watcher


def test_the_path_unit_holds_one_inotify_instance_per_watched_queue(host):
    """What the package's sysctl file sizes fs.inotify.max_user_instances by."""
    path = path_unit(DOMAIN)
    host.run("systemctl", "stop", path)
    try:
        without = pid1_inotify_instances(host)
    finally:
        host.run("systemctl", "start", path)
    assert pid1_inotify_instances(host) - without == 7  # in, out, virgin, commands, bounces, archive, news


def test_a_post_starts_one_run_as_list_that_ends_when_the_queues_are_empty(host):
    tokens = send_posts(host, DOMAIN, "on-demand", count=1)
    users = wait_until(lambda: {user for _, user, args in processes_of(host, DOMAIN) if "--drain" in args},
                       timeout=30, what="a run")
    assert users == {"list"}
    delivered(host, tokens)
    wait_idle(host, DOMAIN)
    assert unit_property(host, unit(DOMAIN, on_demand=True), "Result") == "success"
    queues = host.root / prefix(DOMAIN).lstrip("/") / "qfiles"
    assert not [path for name in ("in", "out", "virgin", "archive") for path in (queues / name).iterdir()]


def test_runs_of_one_domain_never_overlap(host):
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            samples.append(len(drains(host, DOMAIN)))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        tokens = []
        for _ in range(10):
            tokens += send_posts(host, DOMAIN, "overlap", count=2)
            host.run("systemctl", "start", "--no-block", unit(DOMAIN, on_demand=True), RETRY_SERVICE)
        delivered(host, tokens)
    finally:
        stop.set()
        sampler.join()
    assert max(samples) == 1, samples


def test_a_killed_run_loses_nothing_and_the_next_run_goes_on(host):
    tokens = send_posts(host, DOMAIN, "killed", count=10)
    (victim, *_) = wait_until(lambda: drains(host, DOMAIN), timeout=30, what="a run")
    host.run("kill", "-KILL", str(victim))
    delivered(host, tokens)
    wait_idle(host, DOMAIN)
    queues = host.root / prefix(DOMAIN).lstrip("/") / "qfiles"
    assert not list(queues.rglob("*.bak")), "a message left half-processed"


def test_removal_during_a_run_stops_it_and_loses_no_mail(host):
    tokens = send_posts(host, DOMAIN, "removed", count=1)
    wait_until(lambda: unit_property(host, unit(DOMAIN, on_demand=True), "ActiveState") == "activating", timeout=30, what="a run")
    try:
        host.run("apt-get", "remove", "--yes", f"mailman-{DOMAIN}")
        assert processes_of(host, DOMAIN) == []
    finally:
        host.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
    delivered(host, tokens)
    wait_idle(host, DOMAIN)


def test_a_run_waits_for_the_master_lock_and_breaks_it_when_its_holder_is_gone(host):
    """Mailman's master qrunner lock: a run never works beside another master (mailmanctl)."""
    holder = "mailman-test-lock-holder"
    wait_idle(host, DOMAIN)  # so the holder, not a run, takes the lock
    host.run("systemd-run", f"--unit={holder}", "--uid=list", "--gid=list", "python3", "-c",
             f"import sys, time; sys.path.insert(0, '{prefix(DOMAIN)}/bin'); import paths\n"
             "import os; from Mailman import LockFile, mm_cfg\n"
             "lock = LockFile.LockFile(os.path.join(mm_cfg.LOCK_DIR, mm_cfg.MASTER_LOCK_FILE), 3600)\n"
             "lock.lock(); time.sleep(3600)")
    lock = f"/run/lock/mailmen/{DOMAIN}/master-qrunner"  # on the host's own /run (a tmpfs)
    try:
        wait_until(lambda: host.run("test", "-e", lock, check=False).returncode == 0, timeout=30, what="the lock to be held")
        tokens = send_posts(host, DOMAIN, "locked", count=1)
        wait_until(lambda: drains(host, DOMAIN), timeout=30, what="a run")
        time.sleep(10)
        assert drains(host, DOMAIN) and tokens[0] not in " ".join(m["Subject"] or "" for m in host.mailbox("bob"))
    finally:
        host.run("systemctl", "kill", "--signal=KILL", holder, check=False)
    delivered(host, tokens)
    wait_idle(host, DOMAIN)


# -- 1b. always-on runners ---------------------------------------------------------

def test_always_on_domain_runs_one_qrunner_per_runner_as_list_in_its_unit(always_on_host):
    host = always_on_host
    for domain in DOMAINS:
        runners = runners_up(host, domain)
        assert len(runners) == 8, runners
        assert {user for _, user, _ in runners} == {"list"}
        for pid, _, _ in [*runners, (master(host, domain), "", "")]:
            assert cgroup_of(host, pid).endswith(f".slice/{unit(domain)}\n")


def test_reload_and_restart_keep_the_runners_up(always_on_host):
    host = always_on_host
    for action in ("reload", "restart"):
        before = {pid for pid, _, _ in runners_up(host, DOMAIN)}
        host.run("systemctl", action, unit(DOMAIN))
        wait_until(lambda: before.isdisjoint(pid for pid, _, _ in runners_up(host, DOMAIN)), what=f"new runners after {action}")
    assert runners_up(host, OTHER_DOMAIN)


def test_stop_leaves_no_process_of_the_domain(always_on_host):
    host = always_on_host
    host.run("systemctl", "stop", unit(DOMAIN))
    try:
        assert not active(host, DOMAIN)
        assert processes_of(host, DOMAIN) == []
        assert runners_up(host, OTHER_DOMAIN), "the other domain runs on"
    finally:
        host.run("systemctl", "start", unit(DOMAIN))
    assert runners_up(host, DOMAIN)


def test_killed_master_is_restarted_by_systemd(always_on_host):
    host = always_on_host
    old_runners = {pid for pid, _, _ in runners_up(host, DOMAIN)}
    killed = master(host, DOMAIN)
    host.run("kill", "-KILL", str(killed))
    wait_until(lambda: master(host, DOMAIN) not in (0, killed), what="a new master")
    runners = {pid for pid, _, _ in runners_up(host, DOMAIN)}
    assert not old_runners & runners, "the killed master's runners were stopped with it"
    assert int(unit_property(host, unit(DOMAIN), "NRestarts")) >= 1


# -- 2. the journal --------------------------------------------------------------

def test_journal_shows_the_service_start_and_stop(always_on_host):
    host = always_on_host
    host.run("systemctl", "restart", unit(OTHER_DOMAIN))
    runners_up(host, OTHER_DOMAIN)
    journal = host.run("journalctl", "--no-pager", "-u", unit(OTHER_DOMAIN)).stdout
    description = f"Mailman mailing lists of {OTHER_DOMAIN}"
    assert f"Started {unit(OTHER_DOMAIN)} - {description}" in journal or f"Started {description}" in journal, journal
    assert f"Stopped {unit(OTHER_DOMAIN)} - {description}" in journal or f"Stopped {description}" in journal, journal


# -- 3. mail through Postfix -----------------------------------------------------

@pytest.fixture
def only_bob_subscribed(host):
    """Each users list with bob only, as make_users_lists left them."""
    for domain in DOMAINS:
        set_members(host, domain, "bob")


@pytest.fixture
def alice_and_bob_subscribed(host):
    set_members(host, DOMAIN, "alice", "bob")


def test_join_by_mail(host, only_bob_subscribed):
    seen = {m["Subject"] for m in host.mailbox("alice")}
    host.send(address("alice"), f"users-join@{DOMAIN}", "join", user="alice")
    confirm_by_reply(host, "alice", seen)
    host.wait_for_mail("alice", lambda m: "Welcome" in (m["Subject"] or ""))
    assert members(host, DOMAIN) == [address("alice"), address("bob")]
    assert members(host, OTHER_DOMAIN) == [address("bob")]


def test_post_reaches_every_subscriber_of_that_domain_only(host, alice_and_bob_subscribed):
    host.run(f"{prefix(OTHER_DOMAIN)}/bin/add_members", "-r", "-", "users", input=address("carol") + "\n")
    check_post_reaches_alice_and_bob_not_carol(host)


def test_leave_by_mail(host, alice_and_bob_subscribed):
    check_alice_leaves_by_mail(host)


def test_list_mail_is_dkim_signed_by_mailmen_commons_signer(host, alice_and_bob_subscribed):
    """apt installed the recommended mailmen-common; its opendkim instance runs under systemd and
    Postfix's smtpd has it sign what Mailman hands over (signed on receipt, so local copies too)."""
    assert host.run("systemctl", "is-active", "mailmen-dkim.service").stdout.strip() == "active"
    token = uuid.uuid4().hex
    host.send(address("alice"), f"users@{DOMAIN}", f"signed {token}", user="alice")
    post = host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))
    signature = "".join((post["DKIM-Signature"] or "").split())
    assert f"d={DOMAIN};" in signature and "list-unsubscribe" in signature.lower(), post.as_string()[:3000]


def test_post_is_archived(host):
    (token,) = send_posts(host, DOMAIN, "archived", count=1)
    delivered(host, [token])
    archive = host.root / prefix(DOMAIN).lstrip("/") / "archives/private/users"
    wait_until(lambda: any(token in path.read_text(errors="replace") for path in archive.glob("*.txt")),
               what="the post in the archive")


BOUNCE = """\
From: MAILER-DAEMON@{hostname}
To: users-bounces@{domain}
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="report"

--report
Content-Type: text/plain

Your message could not be delivered.
--report
Content-Type: message/delivery-status

Reporting-MTA: dns; {hostname}

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 no such user

--report--
"""


def test_bounce_is_registered(host):
    carol = address("carol")
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "users", input=carol + "\n")
    bounce = BOUNCE.format(hostname=HOSTNAME, domain=DOMAIN, recipient=carol)
    host.run("/usr/sbin/sendmail", "-f", f"MAILER-DAEMON@{HOSTNAME}", f"users-bounces@{DOMAIN}", input=bounce)
    code = "from Mailman import MailList; print(sorted(MailList.MailList('users', lock=0).bounce_info))"
    wait_until(lambda: carol in mailman_python(host, DOMAIN, code), what="carol's bounce registered")


def test_digest_is_sent_by_the_periodic_job(host):
    carol = address("carol")
    host.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", "digests", address("bob"), "listpassword")
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-r", "-", "digests", input=address("bob") + "\n")
    host.run(f"{prefix(DOMAIN)}/bin/add_members", "-d", "-", "digests", input=carol + "\n")
    token = uuid.uuid4().hex
    host.send(address("bob"), f"digests@{DOMAIN}", f"digested {token}", body=f"body {token}", user="bob")
    delivered(host, [token])
    host.run("systemctl", "start", "mailmen-jobs@senddigests.service")  # as its timer does, for every domain
    digest = host.wait_for_mail("carol", lambda m: "Digests Digest" in subject(m))
    assert token in "".join(part.get_payload(decode=True).decode(errors="replace")
                            for part in digest.walk() if not part.is_multipart())


def test_held_post_approved_on_the_web_reaches_the_members(host):
    subject = f"held {uuid.uuid4().hex}"
    host.send("mallory@example.com", f"users@{DOMAIN}", subject)  # a non-member: held for the moderator
    wait_until(lambda: held(host, "users"), what="the post to be held", timeout=90)
    msgid = held(host, "users")[-1].stem.rsplit("-", 1)[1]
    body = admin_login(host, "admindb")
    body = page(host, "admindb", "admindb/users")
    assert subject in body
    page(host, "admindb", "admindb/users", {"csrf_token": csrf(body), msgid: "1", "submit": "Submit All Data"})
    host.wait_for_mail("bob", lambda m: subject in (m["Subject"] or ""))


def test_dpkg_reconfigure_changes_the_certificate(host):
    package = f"mailman-{DOMAIN}"
    snakeoil = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")
    issued = (f"{HOST_TLS_DIR}/{DOMAIN}.pem", f"{HOST_TLS_DIR}/{DOMAIN}.key")
    served = {}
    for certificate, key in (snakeoil, issued):
        host.run("debconf-set-selections", input=f"{package} {package}/tls_certificate string {certificate}\n"
                                                 f"{package} {package}/tls_key string {key}\n")
        host.run("dpkg-reconfigure", "-fnoninteractive", package)
        served[certificate] = served_fingerprint(host, DOMAIN)
    assert served == {certificate: fingerprint(host, certificate) for certificate in (snakeoil[0], issued[0])}


# -- 4. reboot -------------------------------------------------------------------

def test_posts_queued_before_a_reboot_are_delivered_after_it(host, timings):
    # The service too: bookworm's systemd does not pass the path unit's stop on (PartOf=).
    host.run("systemctl", "stop", path_unit(DOMAIN), unit(DOMAIN, on_demand=True))
    tokens = send_posts(host, DOMAIN, "queued")
    queue = host.root / prefix(DOMAIN).lstrip("/") / "qfiles/in"
    wait_until(lambda: len(list(queue.glob("*.pck"))) == len(tokens), what="the posts in qfiles/in")

    started = time.monotonic()
    host.reboot()
    timings.setdefault("reboot_s", []).append(round(time.monotonic() - started, 2))

    delivered(host, tokens)
    for domain in DOMAINS:
        wait_idle(host, domain)


# -- 5. upgrade ------------------------------------------------------------------

def test_upgrade_delivers_posts_sent_during_it(host, capsys):
    """In shared mode, a change to Mailman's code upgrades the core only."""
    project = host.project
    core = FLAVOURS[project.upstream.flavour].core_package
    if host.mode == "shared":
        upgraded, code_dirs = [core], [FLAVOURS[project.upstream.flavour].core_prefix]
    else:
        upgraded, code_dirs = [f"mailman-{domain}" for domain in DOMAINS], [prefix(domain) for domain in DOMAINS]
    before = versions(host, *upgraded)  # whatever the module's other tests rebuilt before this one
    add_fix(project.patches, project.upstream.flavour)  # Mailman/Version.py: code only
    capsys.readouterr()
    project.rebuild_and_publish()
    plan = capsys.readouterr().out
    serve(project.repo, host)

    tokens = upgrade_while_posting(host, DOMAINS)

    if host.mode == "shared":
        assert f"rebuild {core} as" in plan and "rebuild mailman-" not in plan, plan
    for old, new in zip(before, versions(host, *upgraded)):
        upstream, revision = split_version(old)
        assert split_version(new) == (upstream, revision + 1), (old, new)
    for code_dir in code_dirs:
        assert FIX_MARKER in (host.root / code_dir.lstrip("/") / "Mailman/Version.py").read_text()
    delivered(host, tokens)
    for domain in DOMAINS:
        wait_idle(host, domain)


def test_switch_to_always_on_and_back_keeps_lists_members_and_archives(host):
    project = host.project
    kept = {domain: members(host, domain) for domain in DOMAINS}
    archive = host.root / prefix(DOMAIN).lstrip("/") / "archives/private/users"
    archived = sorted(path.name for path in archive.iterdir())
    project.rebuild_and_publish("--runners", "always-on")
    serve(project.repo, host)
    tokens = upgrade_while_posting(host, DOMAINS)
    for domain in DOMAINS:
        assert len(runners_up(host, domain)) == 8
        assert unit_property(host, path_unit(domain), "ActiveState") == "inactive"
        assert instance_links(host, domain) == [unit(domain)]
    delivered(host, tokens)

    project.rebuild_and_publish("--runners", "on-demand")
    serve(project.repo, host)
    tokens = upgrade_while_posting(host, DOMAINS)
    delivered(host, tokens)
    for domain in DOMAINS:
        wait_idle(host, domain)
        assert unit_property(host, path_unit(domain), "ActiveState") == "active"
        assert instance_links(host, domain) == [path_unit(domain)]
        assert members(host, domain) == kept[domain]
    assert set(archived) <= {path.name for path in archive.iterdir()}


# -- 7. timers (the jobs of /etc/cron.d, as systemd timers) ------------------------

def test_every_job_has_one_timer_for_every_domain(host):
    listed = host.run("systemctl", "list-timers", "--all", "--no-pager").stdout
    for job in JOBS:
        assert f"mailmen-{job}.timer" in listed and f"mailmen-jobs@{job}.service" in listed, listed
    assert not [line for line in listed.splitlines() if "mailman-" in line], listed  # none of a domain's own


@pytest.mark.parametrize("job", QUIET_JOBS)
def test_a_job_runs_as_list_for_every_domain(host, job):
    since = host.run("date", "+@%s").stdout.strip()
    host.run("systemctl", "start", f"mailmen-jobs@{job}.service")  # returns when every domain's run has ended
    for domain in DOMAINS:
        service = instance_unit(job_template(Job(job, 0, 0)), domain)
        # systemd unloads a finished instance, so its journal tells how it ran.
        journal = host.run("journalctl", "--no-pager", "-o", "cat", "-u", service, "--since", since).stdout
        assert "Deactivated successfully" in journal and "Failed" not in journal, journal
        assert unit_property(host, service, "User") == "list"


def test_cron_jobs_do_nothing_under_systemd(host):
    """The timers run the jobs; a cron line that ran them too would run each twice."""
    jobs = [line.split("\t") for line in (host.root / f"etc/cron.d/{COMMON_PACKAGE}").read_text().splitlines()
            if line and not line.startswith(("#", "PATH="))]
    assert len(jobs) == len(JOBS)
    for _schedule, user, command in jobs:
        trace = host.run("sh", "-x", "-c", command, user=user, check=False).stderr
        assert f"+ {JOBS_COMMAND}" not in trace, f"{command} ran its job:\n{trace}"
