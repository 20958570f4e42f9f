"""mailmen on booted trixie hosts (systemd-nspawn) with real Mailman: ls, find-member and
remove-member over two domains that both have a `users` list, and a backup taken while posts
arrive, restored onto a fresh host. Needs the real upstream tarball."""

import json
import shutil
import threading
import uuid
from pathlib import Path

import pytest

from helpers.backups import with_manifest
from helpers.e2e_host import prefix
from helpers.lists import address, members, wait_until
from helpers.systemd_host import Project, boot_with_repository, path_unit, unit
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL
from mmdeb.domains.layout import MAILMEN_COMMAND

pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

DIST = "trixie"
DOMAINS = (DOMAIN, OTHER_DOMAIN)
LIST_DUMP = Path(__file__).parent / "helpers/list_dump.py"


def mailmen(host, *args: str, check: bool = True):
    return host.run(MAILMEN_COMMAND, *args, check=check)


def dump(host, domain: str, *names: str) -> dict:
    """Each list as its Mailman reads it: config, members, archive, held posts, pending confirmations."""
    shutil.copy(LIST_DUMP, host.root / "srv/list_dump.py")  # a booted host has its own /tmp
    return json.loads(host.run("python3", "/srv/list_dump.py", prefix(domain), *names, user="list").stdout)


def post(host, domain: str, label: str, sender: str = "bob") -> str:
    token = f"{label} {uuid.uuid4().hex}"
    host.send(address(sender), f"users@{domain}", token, body=token, user=sender)
    return token


def delivered(host, tokens, user: str = "alice") -> None:
    def missing():
        subjects = " ".join(message["Subject"] or "" for message in host.mailbox(user))
        return {token for token in tokens if token not in subjects}
    host.run("postqueue", "-f")
    wait_until(lambda: not missing(), timeout=180, what=f"{len(tokens)} posts in {user}'s mailbox")


def ls(host) -> dict[str, list[str]]:
    """mailmen ls by domain: its columns."""
    lines = mailmen(host, "ls").stdout.splitlines()
    assert lines[0].split()[0] == "Domain"
    return {line.split()[0]: line.split() for line in lines[1:]}


def stop_runners(host, domain: str) -> None:
    """The domain stopped: its path unit, then the end of a run it may have started."""
    host.run("systemctl", "stop", path_unit(domain))
    wait_until(lambda: host.run("systemctl", "is-active", unit(domain, on_demand=True), check=False).stdout.strip() != "active",
               what=f"{domain}'s run to end")


def held_and_pending(host, domain: str) -> None:
    """A post held (carol is no member) and a subscription that waits for its confirmation."""
    host.send(address("carol"), f"users@{domain}", "held post", user="carol")
    host.send(address("carol"), f"users-join@{domain}", "join", user="carol")
    wait_until(lambda: (found := dump(host, domain, "users")["users"]) and found["held"] and found["pending"],
               timeout=120, what="a held post and a pending subscription")


@pytest.fixture(scope="module", params=["prefix", "shared"])
def project(request, upstream, tmp_path_factory):
    directory = tmp_path_factory.mktemp(f"mailmen-{request.param}")
    project = Project(directory, upstream)
    project.add(*DOMAINS, dist=DIST, mode=request.param)
    project.rebuild_and_publish()
    project.directory, project.mode = directory, request.param
    return project


@pytest.fixture(scope="module")
def host(project):
    """Both domains, each with a users list: alice and bob members, alice the owner of OTHER_DOMAIN's."""
    machine = boot_with_repository(project, project.directory / "host", DIST, list(DOMAINS), {})
    try:
        for domain, owner in ((DOMAIN, "bob"), (OTHER_DOMAIN, "alice")):
            mailmen(machine, domain, "newlist", "-q", "users", address(owner), "listpassword")
            (machine.root / "srv/members").write_text(f"{address('alice')}\n{address('bob')}\n")
            mailmen(machine, domain, "add_members", "-r", "/srv/members", "--welcome-msg=n", "users")
        yield machine
    finally:
        machine.stop()


def test_ls_shows_each_domains_lists_and_runners_truly(host, project):
    token = post(host, DOMAIN, "ls")
    delivered(host, [token])
    wait_until(lambda: ls(host)[DOMAIN][6] == "on-demand/active", what="the path unit waiting")
    row = ls(host)[DOMAIN]
    version = host.run("dpkg-query", "-W", "-f=${Version}", f"mailman-{DOMAIN}").stdout
    assert row[1:6] == [project.mode, version, "2", "2", "0"]  # the site list and users; bob and alice; nothing queued
    # OTHER_DOMAIN's runners made always on, as its package does with --runners always-on.
    host.run("systemctl", "disable", "--now", path_unit(OTHER_DOMAIN))
    host.run("systemctl", "enable", "--now", unit(OTHER_DOMAIN))
    try:
        wait_until(lambda: ls(host)[OTHER_DOMAIN][6] == "always-on/active", what="OTHER_DOMAIN always on")
        stop_runners(host, DOMAIN)
        queued = post(host, DOMAIN, "queued")
        wait_until(lambda: ls(host)[DOMAIN][5] == "1", what=f"the post queued: {ls(host)[DOMAIN]}")
        assert ls(host)[DOMAIN][6] == "on-demand/inactive"
        host.run("systemctl", "start", path_unit(DOMAIN))
        delivered(host, [queued])
    finally:
        host.run("systemctl", "disable", "--now", unit(OTHER_DOMAIN))
        host.run("systemctl", "enable", "--now", path_unit(OTHER_DOMAIN))
    row = ls(host)[DOMAIN]
    assert row[7] != "-" and row[-1].isdigit()  # a last delivery


def test_find_member_and_remove_member_over_two_domains(host, tmp_path):
    found = mailmen(host, "find-member", address("alice")).stdout.splitlines()
    assert sorted(found) == sorted([f"users@{OTHER_DOMAIN} member,owner", f"users@{DOMAIN} member"])
    before = {domain: members(host, domain) for domain in DOMAINS}
    dry = mailmen(host, "remove-member", address("alice"), "--all-domains", "--dry-run", "--report", "/srv/dry").stdout
    assert {domain: members(host, domain) for domain in DOMAINS} == before
    assert dry == (host.root / "srv/dry").read_text() and dry.count("would remove") == 2
    done = mailmen(host, "remove-member", address("alice"), "--all-domains", "--report", "/srv/report").stdout
    report = (host.root / "srv/report").read_text()
    assert done == report and report.count("removed") == 2
    assert f"{address('alice')} stays owner of users@{OTHER_DOMAIN}" in report
    assert {domain: members(host, domain) for domain in DOMAINS} == {domain: [address("bob")] for domain in DOMAINS}
    assert mailmen(host, "find-member", address("alice")).stdout.splitlines() == [f"users@{OTHER_DOMAIN} owner"]
    mailmen(host, DOMAIN, "add_members", "-r", "/srv/members", "--welcome-msg=n", "users")  # for the next tests


def test_bad_names_are_refused_and_reach_no_shell(host):
    for argv in ([f"{DOMAIN};touch /srv/pwned", "list_lists"], [DOMAIN, "list_lists;touch /srv/pwned"],
                 ["find-member", "$(touch /srv/pwned)@example.org"]):
        refused = mailmen(host, *argv, check=False)
        assert refused.returncode == 1 and refused.stderr.startswith("mailmen: error: ") and refused.stderr.count("\n") == 1
    assert not (host.root / "srv/pwned").exists()


def test_backup_while_posts_arrive_restores_on_a_fresh_host(host, project):
    held_and_pending(host, DOMAIN)
    # 1. A backup while bob posts all the while: the runners pause and go on; no post is lost.
    tokens, posting = [], threading.Event()

    def keep_posting():
        while not posting.is_set():
            tokens.append(post(host, DOMAIN, "during"))
    sender = threading.Thread(target=keep_posting)
    sender.start()
    try:
        wait_until(lambda: len(tokens) >= 2, what="bob posting")
        mailmen(host, "backup", DOMAIN, "/srv/during.tar.gz")
    finally:
        posting.set()
        sender.join()
    assert host.run("systemctl", "is-active", path_unit(DOMAIN)).stdout.strip() == "active"
    delivered(host, tokens)
    # 2. The backup to compare: the runners stopped, so the lists stay as it saw them, and two
    # posts queued that the restored host delivers.
    stop_runners(host, DOMAIN)
    waiting = int(ls(host)[DOMAIN][5])
    queued = [post(host, DOMAIN, "queued") for _ in range(2)]
    wait_until(lambda: ls(host)[DOMAIN][5] == str(waiting + 2), what=f"two posts queued (had {waiting}): {ls(host)[DOMAIN]}")
    mailmen(host, "backup", DOMAIN, "/srv/quiet.tar.gz")
    names = ["mailman", "users"]
    wanted = dump(host, DOMAIN, *names)
    assert archived(wanted["users"]) == wanted["users"]["config"]["post_id"] - 1  # what the check below relies on
    host.run("systemctl", "start", path_unit(DOMAIN))

    fresh = boot_with_repository(project, project.directory / "fresh", DIST, [DOMAIN], {})
    try:
        for name in ("during", "quiet"):
            shutil.copy(host.root / f"srv/{name}.tar.gz", fresh.root / f"srv/{name}.tar.gz")
        check_refusals(fresh)
        mailmen(fresh, "restore", "/srv/during.tar.gz")
        wait_until(lambda: ls(fresh)[DOMAIN][5] == "0", timeout=180, what="the backup's queued mail delivered")
        check_taken_while_posts_arrive(dump(fresh, DOMAIN, *names), wanted)
        stop_runners(fresh, DOMAIN)  # so that the restored lists are compared as they were
        mailmen(fresh, "restore", "/srv/quiet.tar.gz", DOMAIN)
        restored = dump(fresh, DOMAIN, *names)
        for name in names:
            for field, value in wanted[name]["config"].items():
                assert restored[name]["config"].get(field) == value, f"{name}: {field}"
            assert {key: restored[name][key] for key in ("members", "archive", "held", "pending")} == \
                {key: wanted[name][key] for key in ("members", "archive", "held", "pending")}
        assert restored["users"]["held"] and restored["users"]["pending"] and restored["users"]["archive"]
        fresh.run("systemctl", "start", path_unit(DOMAIN))
        delivered(fresh, queued)
        delivered(fresh, [post(fresh, DOMAIN, "after the restore")])
    finally:
        fresh.stop()


def archived(found: dict) -> int:
    return sum(found["archive"].values())


def check_taken_while_posts_arrive(restored: dict, wanted: dict) -> None:
    """The backup taken while bob posted, restored and its queues drained, against the lists later.
    Only what posts move may differ: the post counter and its time, and the digest's volume, number
    and time (a digest goes out when the posts since the last one pass its size, on either host).
    Every post the counter numbered was kept, in the archive or a queue, so the archive has
    exactly that many."""
    moving = {"post_id", "last_post_time", "volume", "next_digest_number", "digest_last_sent_at"}
    for name, found in restored.items():
        for field, value in wanted[name]["config"].items():
            if field not in moving:
                assert found["config"].get(field) == value, f"{name}: {field}"
        for key in ("members", "held", "pending"):
            assert found[key] == wanted[name][key], f"{name}: {key}"
        assert archived(found) == found["config"]["post_id"] - 1, f"{name}: posts numbered and archived"
        assert found["config"]["post_id"] <= wanted[name]["config"]["post_id"]
    assert restored["users"]["config"]["post_id"] > 3  # some of bob's posts while the backup ran


def check_refusals(fresh) -> None:
    """Another domain's backup, a cut one and one from a newer package: one line each, nothing changed."""
    before = dump(fresh, DOMAIN, "mailman")
    data = (fresh.root / "srv/quiet.tar.gz").read_bytes()
    (fresh.root / "srv/cut.tar.gz").write_bytes(data[:len(data) // 2])
    version = fresh.run("dpkg-query", "-W", "-f=${Version}", f"mailman-{DOMAIN}").stdout
    with_manifest(fresh.root / "srv/quiet.tar.gz", fresh.root / "srv/newer.tar.gz", version=f"{version}+1")
    for argv in (["/srv/quiet.tar.gz", OTHER_DOMAIN], ["/srv/cut.tar.gz"], ["/srv/newer.tar.gz"]):
        refused = mailmen(fresh, "restore", *argv, check=False)
        assert refused.returncode == 1 and refused.stderr.count("\n") == 1, refused.stderr
    assert dump(fresh, DOMAIN, "mailman") == before
