"""mailmen, the list host's one command, on a fake host tree: what it reads, the argv it runs,
its backups and the refusals. Mailman's side (its lists, as MAILMAN_SCRIPT prints them) and
systemd answer from tables here; tests/test_mailmen_e2e.py runs it on a booted host with real Mailman."""

import io
import json
import os
import subprocess
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from helpers.backups import with_manifest
from helpers.rendering import rendered_common

from mmdeb.domains.layout import INSTALLED_DOMAINS, MAILMEN_COMMAND, DomainPaths
from mmdeb.listhost import mailmen
from mmdeb.listhost.mailmen import (END, LOCK_SCRIPT, MAILMAN_SCRIPT, MANIFEST, Host, as_user_argv, close_private_archives_argv,
                                    dpkg_query_argv, dkim_setup_argv, main, newer_argv, runner_units, systemctl_argv, sysv_argv)

ONE, TWO, THREE = "lists.example.org", "lists.example.net", "lists.example.com"
ALICE, BOB = "alice@example.com", "bob@example.com"
VERSION = "2.2.0-1+deb13"
LOG_TIME = "%b %d %H:%M:%S %Y"


class FakeHost(Host):
    """A host tree under root; external commands answer from its tables and are recorded."""

    def __init__(self, root: Path):
        super().__init__(root)
        self.calls: list[list[str]] = []
        # domain -> list -> {"members": [...], "owner": [...], "moderator": [...]}
        self.mailman: dict[str, dict[str, dict[str, list[str]]]] = {}
        self.units: dict[str, tuple[str, str]] = {}  # unit -> (is-enabled, is-active)
        self.shared: set[str] = set()
        self.versions: dict[str, str] = {}
        self.with_systemd = True

    def systemd(self) -> bool:
        return self.with_systemd

    def run(self, argv, check=True):
        self.calls.append(argv)
        if argv[0] == "dpkg-query":
            domain = argv[-1].removeprefix("mailman-")
            depends = "mailmen-common (>= 0.2.0)" + (", mailmen-core-py3 (>= 2.2.0)" if domain in self.shared else "")
            return done(f"{self.versions.get(domain, VERSION)}\t{depends}")
        if argv[0] == "dpkg":
            return subprocess.run(argv, capture_output=True, text=True)
        if argv in (dkim_setup_argv(), close_private_archives_argv(self.prefix(ONE))) or argv[0] == "/etc/init.d/mailmen":
            return done("")
        if argv[0] == "systemctl":
            column = {"is-enabled": 0, "is-active": 1}.get(argv[1])
            if column is None:
                return done("")
            return done("".join(f"{self.units.get(unit, ('disabled', 'inactive'))[column]}\n" for unit in argv[2:]))
        assert argv[:2] == ["runuser", "-u"], argv
        command = argv[6:]
        domain = next(name for name in self.mailman if f"/{name}/" in command[0] or command[3:4] == [self.prefix(name)])
        if Path(command[0]).name == "genaliases":
            return done("")
        if command[1:3] == ["-c", MAILMAN_SCRIPT]:
            address = command[4] if len(command) > 4 else None
            return done(json.dumps([self.entry(domain, name, lists, address) for name, lists in sorted(self.mailman[domain].items())]))
        assert Path(command[0]).name == "remove_members" and command[1:3] == ["--nouserack", "--noadminack"], command
        self.mailman[domain][command[3]]["members"].remove(command[4])
        return done("")

    @staticmethod
    def entry(domain, name, roles, address):
        entry = {"name": name, "address": f"{name}@{domain}", "members": len(roles["members"])}
        if address:
            entry.update({role: address in roles[f"{role}s" if role == "member" else role] for role in ("owner", "moderator")},
                         member=address in roles["members"])
        return entry

    @contextmanager
    def locked(self, domain):
        self.calls.append(["locked", domain])
        yield
        self.calls.append(["unlocked", domain])

    def exec(self, argv):
        self.calls.append(argv)
        return 0

    def commands(self, name: str) -> list[list[str]]:
        return [call for call in self.calls if call[0] == name]


def done(stdout: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess([], 0, stdout, "")


def make_domain(host: FakeHost, domain: str, lists: dict) -> Path:
    """A domain's installed tree: its marker, bin/, Defaults.py, lists, archives, data, queues, etc."""
    host.path(INSTALLED_DOMAINS).mkdir(parents=True, exist_ok=True)
    (host.path(INSTALLED_DOMAINS) / domain).touch()
    prefix = Path(host.prefix(domain))
    for program in ("list_members", "newlist", "remove_members"):
        (prefix / "bin").mkdir(parents=True, exist_ok=True)
        (prefix / "bin" / program).write_text("#! /usr/bin/python3\n")
    (prefix / "Mailman").mkdir()
    (prefix / "Mailman/Defaults.py").write_text("MAILMAN_USER = 'list'\nMAILMAN_GROUP = 'list'\n")
    for name in lists:
        (prefix / "lists" / name).mkdir(parents=True)
        (prefix / "lists" / name / "config.pck").write_bytes(f"config of {name}@{domain}".encode())
        (prefix / "archives/private" / name).mkdir(parents=True)
        (prefix / "archives/private" / name / "index.html").write_text("<html>")
        (prefix / "archives/public").mkdir(exist_ok=True)
        (prefix / "archives/public" / name).symlink_to(prefix / "archives/private" / name)
    (prefix / "data").mkdir()
    (prefix / "data/heldmsg-users-1.pck").write_bytes(b"held")
    (prefix / "qfiles/in").mkdir(parents=True)
    etc = host.path(DomainPaths(domain).etc_dir)
    etc.mkdir(parents=True)
    (etc / "mm_cfg.py").write_text("# the admin's\n")
    (etc / "site-list-password").write_text("secret\n")
    os.chmod(etc / "site-list-password", 0o600)
    host.mailman[domain] = lists
    return prefix


def users(members, owner=(), moderator=()):
    return {"members": list(members), "owner": list(owner), "moderator": list(moderator)}


@pytest.fixture
def host(tmp_path):
    machine = FakeHost(tmp_path / "root")
    make_domain(machine, ONE, {"users": users([ALICE, BOB], owner=[ALICE]), "news": users([BOB])})
    make_domain(machine, TWO, {"users": users([ALICE], moderator=[ALICE])})
    return machine


def tree(root: Path) -> dict[str, object]:
    """Every path under root with its content (files), target (links) or None (directories)."""
    found = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        found[name] = os.readlink(path) if path.is_symlink() else path.read_bytes() if path.is_file() else None
    return found


def test_the_commands_argv():
    assert as_user_argv("list", "list", ["/p/bin/newlist", "x"]) == ["runuser", "-u", "list", "-g", "list", "--",
                                                                      "/p/bin/newlist", "x"]
    assert dpkg_query_argv("mailman-a.org") == ["dpkg-query", "-W", "-f", "${Version}\t${Depends}", "mailman-a.org"]
    assert newer_argv("2", "1") == ["dpkg", "--compare-versions", "2", "gt", "1"]
    assert systemctl_argv("stop", ["u"]) == ["systemctl", "stop", "u"]
    assert dkim_setup_argv() == ["/usr/sbin/mailmen-dkim", "setup"]
    assert close_private_archives_argv("/p") == ["env", "PREFIX=/p", "sh", "-ec",
                                                 ". /usr/share/mailmen-common/domain-postinst; close_private_archives"]
    assert sysv_argv("status", ONE) == ["/etc/init.d/mailmen", "status", ONE]
    assert runner_units(ONE) == [f"mailmen-queue@{ONE}.path", f"mailmen-drain@{ONE}.service", f"mailmen@{ONE}.service"]


def test_a_domain_command_runs_its_bin_program_as_mailmans_user(host):
    assert main([ONE, "newlist", "--quiet", "team", "a@b.org", "pw"], host) == 0
    program = f"{host.prefix(ONE)}/bin/newlist"
    assert host.calls == [["runuser", "-u", "list", "-g", "list", "--", program, "--quiet", "team", "a@b.org", "pw"]]


def test_the_user_is_the_domains_own(host):
    (Path(host.prefix(TWO)) / "Mailman/mm_cfg.py").write_text("MAILMAN_USER = 'list-net'\nMAILMAN_GROUP = \"lists\"\n")
    assert host.user(TWO) == ("list-net", "lists") and host.user(ONE) == ("list", "list")


@pytest.mark.parametrize("argv", [
    ["lists.example.org;reboot", "newlist"], ["$(reboot).org", "list_lists"], ["`reboot`", "list_lists"],
    [ONE, "../../../bin/sh"], [ONE, "newlist;reboot"], [ONE, "sh"], ["lists.example.edu", "list_lists"],
    ["find-member", "a@b.org;reboot"], ["find-member", "$(reboot)@b.org"], ["find-member", "a b@c.org"],
    ["remove-member", "`reboot`@b.org", "--all-domains"], ["backup", "a.org|reboot"], ["backup", "lists.example.edu"],
])
def test_metacharacters_and_unknown_names_are_refused_in_one_line_before_anything_runs(host, argv, capsys):
    assert main(argv, host) == 1
    error = capsys.readouterr().err
    assert error.startswith("mailmen: error: ") and error.count("\n") == 1
    assert host.calls == []


def queue_and_logs(host: FakeHost, domain: str, now: float) -> None:
    qfiles = Path(host.prefix(domain)) / "qfiles"
    for name in ("in/1.pck", "out/2.pck", "retry/3.pck", "in/4.pck.tmp"):
        (qfiles / name).parent.mkdir(exist_ok=True)
        (qfiles / name).write_text("mail")
    logs = host.path(DomainPaths(domain).log_dir)
    logs.mkdir(parents=True)
    stamp = lambda seconds_ago: time.strftime(LOG_TIME, time.localtime(now - seconds_ago))  # noqa: E731
    (logs / "smtp").write_text(f"{stamp(7200)} (1) <a> smtp to users@{domain} for 2 recips\n"
                               f"{stamp(60)} (1) <b> smtp to users@{domain} for 2 recips\n")
    (logs / "error").write_text(f"{stamp(3 * 86400)} (1) old\n{stamp(600)} (1) Traceback:\n  File x\n{stamp(300)} (1) again\n")


def test_ls_shows_each_domain_with_its_runners_state(host, capsys):
    make_domain(host, THREE, {})
    host.shared.add(TWO)
    now = time.time()
    queue_and_logs(host, ONE, now)
    host.units = {f"mailmen@{ONE}.service": ("enabled", "active"),
                  f"mailmen-queue@{TWO}.path": ("enabled", "active"),
                  f"mailmen-queue@{THREE}.path": ("enabled", "inactive")}
    assert main(["ls"], host) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    last = time.strftime("%Y-%m-%d %H:%M", time.localtime(now - 60)).split()
    assert lines == [["Domain", "Mode", "Version", "Lists", "Members", "Queued", "Runners", "Last-delivery", "Errors-1d"],
                     [THREE, "prefix", VERSION, "0", "0", "0", "on-demand/inactive", "-", "0"],
                     [TWO, "shared", VERSION, "1", "1", "0", "on-demand/active", "-", "0"],
                     [ONE, "prefix", VERSION, "2", "3", "3", "always-on/active", *last, "2"]]


def test_ls_lists_the_other_domains_when_one_cannot_be_read(host, capsys):
    (Path(host.prefix(TWO)) / "bin/list_members").unlink()
    assert main(["ls"], host) == 0
    captured = capsys.readouterr()
    assert [line.split()[:2] for line in captured.out.splitlines()[1:]] == [[TWO, "?"], [ONE, "prefix"]]
    assert captured.err.startswith(f"mailmen: {TWO}: ") and captured.err.count("\n") == 1


def test_find_member_names_every_list_of_every_domain_and_the_roles(host, capsys):
    assert main(["find-member", ALICE], host) == 0
    assert capsys.readouterr().out.splitlines() == [f"users@{TWO} member,moderator", f"users@{ONE} member,owner"]
    assert main(["find-member", "nobody@example.com"], host) == 1


def test_remove_member_dry_run_changes_nothing_and_reports(host, tmp_path, capsys):
    report = tmp_path / "report"
    assert main(["remove-member", ALICE, "--all-domains", "--dry-run", "--report", str(report)], host) == 0
    assert host.mailman[ONE]["users"]["members"] == [ALICE, BOB] and host.mailman[TWO]["users"]["members"] == [ALICE]
    assert not [call for call in host.calls if "remove_members" in " ".join(call)]
    lines = report.read_text().splitlines()
    assert lines[0] == f"would remove {ALICE} from users@{TWO}" and lines[2] == f"would remove {ALICE} from users@{ONE}"
    assert capsys.readouterr().out == report.read_text()


def test_remove_member_takes_the_address_off_every_list_and_says_an_owner_stays_one(host, tmp_path):
    report = tmp_path / "report"
    report.write_text("an older report\n")
    assert main(["remove-member", ALICE, "--all-domains", "--report", str(report)], host) == 0
    assert host.mailman[ONE]["users"] == users([BOB], owner=[ALICE]) and host.mailman[TWO]["users"] == users([], moderator=[ALICE])
    assert report.read_text().splitlines() == [
        f"removed {ALICE} from users@{TWO}",
        f"{ALICE} stays moderator of users@{TWO}: change that on its admin page (General Options), or with: mailmen {TWO} config_list",
        f"removed {ALICE} from users@{ONE}",
        f"{ALICE} stays owner of users@{ONE}: change that on its admin page (General Options), or with: mailmen {ONE} config_list"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["report", "root"]  # no temporary file left
    with pytest.raises(SystemExit):  # --all-domains is required
        main(["remove-member", ALICE], host)


def backed_up(host: FakeHost, tmp_path: Path, domain: str = ONE) -> Path:
    assert main(["backup", domain, str(tmp_path)], host) == 0
    [made] = tmp_path.glob(f"{domain}-*.mailmen.tar.gz")
    return made


def test_backup_pauses_the_runners_locks_the_lists_and_holds_every_part(host, tmp_path):
    host.units = {f"mailmen-queue@{ONE}.path": ("enabled", "active")}
    (Path(host.prefix(ONE)) / "qfiles/in/1.pck.tmp").write_text("a queue file being written")
    made = backed_up(host, tmp_path)
    path, drain, always = runner_units(ONE)
    assert [call for call in host.calls if call[0] in ("locked", "unlocked") or call[1:2] in (["stop"], ["start"])] == [
        ["systemctl", "stop", path, drain, always], ["locked", ONE], ["unlocked", ONE], ["systemctl", "start", path]]
    assert oct(made.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(made) as tar:
        names = tar.getnames()
        manifest = json.loads(tar.extractfile(MANIFEST).read())
        link = tar.getmember("prefix/archives/public/users")
    assert names[0] == MANIFEST and names[-1] == END and "prefix/qfiles/in/1.pck.tmp" not in names
    assert {"prefix/lists/users/config.pck", "prefix/data/heldmsg-users-1.pck", "prefix/qfiles/in",
            "prefix/archives/private/news/index.html", "etc/mm_cfg.py", "etc/site-list-password"} <= set(names)
    assert manifest == {"format": 1, "domain": ONE, "package": f"mailman-{ONE}", "version": VERSION, "mode": "prefix",
                        "created": manifest["created"]}
    assert link.issym() and link.linkname == f"{host.prefix(ONE)}/archives/private/users"


def test_without_systemd_backup_stops_and_starts_the_init_scripts_mailmanctl(host, tmp_path, capsys):
    host.with_systemd = False
    backed_up(host, tmp_path)
    assert [call for call in host.calls if call[0] in ("/etc/init.d/mailmen", "locked", "unlocked")] == [
        sysv_argv("status", ONE), sysv_argv("stop", ONE), ["locked", ONE], ["unlocked", ONE], sysv_argv("start", ONE)]
    host.calls.clear()
    assert main(["ls"], host) == 0 and "sysv/running" in capsys.readouterr().out


def test_a_failed_backup_leaves_no_file_and_restarts_the_runners(host, tmp_path):
    host.units = {f"mailmen@{ONE}.service": ("enabled", "active")}

    @contextmanager
    def failing(domain):
        raise mailmen.MmdebError("the lists of x could not be locked")
        yield

    host.locked = failing
    assert main(["backup", ONE, str(tmp_path / "b.tar.gz")], host) == 1
    assert [path.name for path in tmp_path.iterdir()] == ["root"]
    assert host.calls[-1] == ["systemctl", "start", f"mailmen@{ONE}.service"]


def test_restore_puts_back_what_was_backed_up(host, tmp_path):
    etc = host.path(DomainPaths(ONE).etc_dir)
    before, etc_before = tree(Path(host.prefix(ONE))), tree(etc)
    made = backed_up(host, tmp_path)
    prefix = Path(host.prefix(ONE))
    (prefix / "lists/news/config.pck").unlink()
    (prefix / "lists/other").mkdir()
    (prefix / "qfiles/in/new.pck").write_text("x")
    (etc / "mm_cfg.py").write_text("changed\n")
    assert main(["restore", str(made)], host) == 0
    assert tree(prefix) == before and tree(etc) == etc_before
    assert host.calls[-3:] == [as_user_argv("list", "list", [f"{prefix}/bin/genaliases", "-q"]), dkim_setup_argv(),
                               close_private_archives_argv(str(prefix))]
    assert oct((etc / "site-list-password").stat().st_mode & 0o777) == "0o600"


REFUSALS = {"other domain": f"is a backup of {ONE}, not {TWO}", "not installed": f"{THREE} is not an installed domain",
            "truncated": "is not a whole mailmen backup", "newer format": "has backup format 2, newer",
            "newer package": "is of mailman-lists.example.org 2.2.1-1+deb13, newer than the installed",
            "member outside": "is not one of its parts", "link outside": "links out of its domain"}


@pytest.mark.parametrize("case", REFUSALS)
def test_restore_refuses_in_one_line_and_changes_nothing(host, tmp_path, case, capsys):
    (tmp_path / "backup").mkdir()
    made = backed_up(host, tmp_path / "backup")
    if case == "other domain":
        pass
    elif case == "not installed":
        made = with_manifest(made, tmp_path / "x.tar.gz", domain=THREE)
    elif case == "truncated":
        data = made.read_bytes()
        made.write_bytes(data[:len(data) - 100])
    elif case == "newer format":
        made = with_manifest(made, tmp_path / "x.tar.gz", format=2)
    elif case == "newer package":
        made = with_manifest(made, tmp_path / "x.tar.gz", version="2.2.1-1+deb13")
    else:
        with tarfile.open(made) as tar:
            members = tar.getmembers()
        extra = tarfile.TarInfo("prefix/../../../etc/passwd" if case == "member outside" else "prefix/lists/evil")
        if case == "link outside":
            extra.type, extra.linkname = tarfile.SYMTYPE, "/etc/shadow"
        with tarfile.open(made) as source, tarfile.open(tmp_path / "x.tar.gz", "w:gz") as tar:
            for member in members[:-1]:
                tar.addfile(member, source.extractfile(member) if member.isfile() else None)
            tar.addfile(extra)
            tar.addfile(members[-1], io.BytesIO(str(len(members)).encode()))
        made = tmp_path / "x.tar.gz"
    host.calls.clear()
    before = tree(host.root)
    assert main(["restore", str(made), *([TWO] if case == "other domain" else [])], host) == 1
    error = capsys.readouterr().err
    assert error.startswith("mailmen: error: ") and error.count("\n") == 1 and REFUSALS[case] in error, error
    assert tree(host.root) == before
    assert not [call for call in host.calls if call[0] == "systemctl"]


def test_the_package_ships_the_command_its_man_page_and_completion(tmp_path):
    debian = rendered_common(tmp_path)[1]
    rules = (debian / "rules").read_text()
    assert f"debian/mailmen $(CURDIR)/debian/mailmen-common{MAILMEN_COMMAND}" in rules
    assert "debian/mailmen.bash-completion $(CURDIR)/debian/mailmen-common/usr/share/bash-completion/completions/mailmen" in rules
    assert "debian/mailmen.8" in (debian / "mailmen-common.manpages").read_text().split()
    assert (debian / "mmdeb/listhost/mailmen.py").is_file() and os.access(debian / "mailmen", os.X_OK)
    completion = subprocess.run(["bash", "-n", str(debian / "mailmen.bash-completion")], capture_output=True, text=True)
    assert completion.returncode == 0, completion.stderr
    assert "find-member" in (debian / "mailmen.8").read_text() and "ls find-member" in (debian / "mailmen.bash-completion").read_text()


def test_the_mailman_scripts_compile_for_python_3():
    for script in (MAILMAN_SCRIPT, LOCK_SCRIPT):
        compile(script, "script", "exec")


def test_a_restore_that_stops_halfway_keeps_what_it_replaced(host, tmp_path, monkeypatch, capsys):
    made = backed_up(host, tmp_path)
    prefix = Path(host.prefix(ONE))
    (prefix / "archives/kept").write_text("the archives before the restore")
    rename = os.rename

    def failing(source, target):
        if Path(source).name == "archives" and Path(source).parent == prefix:
            raise OSError(28, "No space left on device")
        rename(source, target)
    monkeypatch.setattr(mailmen.os, "rename", failing)
    assert main(["restore", str(made)], host) == 1
    error = capsys.readouterr().err
    assert "stopped halfway" in error and error.count("\n") == 1
    [staging] = prefix.glob(".mailmen-restore.*")
    assert (staging / "old-lists/users/config.pck").is_file() and (prefix / "archives/kept").is_file()
