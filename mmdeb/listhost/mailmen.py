"""mailmen: the list host's one command for all of its domains, as pg_lsclusters and pg_ctlcluster
are postgresql-common's for its clusters (see mailmen(8)).

Runs on list hosts with the system python3 (bullseye's 3.9 too): mailmen-common ships it with
errors.py, domains/layout.py and listhost/dkim.py (the installed domains), standard library only.
Mailman's own code runs only in its domain's interpreter, as its user, from MAILMAN_SCRIPT or the
domain's bin/; nothing here passes through a shell.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmdeb.domains.layout import (ALWAYS_ON_UNIT, BACKUP_PARTS, CORE_PACKAGE_PREFIX, DKIM_COMMAND, DOMAIN_POSTINST, DRAIN_UNIT,
                                  INSTALLED_DOMAINS, MAILMEN_SUBCOMMANDS, QUEUE_UNIT, SYSV_SCRIPT, WAITING_QUEUES,
                                  DomainPaths, instance_unit)
from mmdeb.errors import MmdebError
from mmdeb.listhost.dkim import installed_domains

PROG = "mailmen"
# Names that reach argv only: refused unless plainly a domain, an address or a command of bin/.
DOMAIN_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+$")
ADDRESS = re.compile(r"^[A-Za-z0-9._%+=-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")
COMMAND = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
SETTING = re.compile(r"""^(MAILMAN_USER|MAILMAN_GROUP)\s*=\s*['"]([^'"]+)['"]""", re.M)
# A Mailman log line's time (Mailman/Logging/Logger.py); the error log's tracebacks have none.
LOG_TIME = "%b %d %H:%M:%S %Y"
LOG_TIME_LENGTH = 20
DAY = 24 * 3600
ETC_PART = "etc"
BACKUP_FORMAT = 1
MANIFEST = "mailmen-backup.json"  # the archive's first member
END = "mailmen-backup.end"  # its last: the number of members before it, so a cut archive is known

# Run by the domain's Python (2 or 3) as Mailman's user, argv: PREFIX [ADDRESS]. Prints each list's
# member count, and whether ADDRESS is a member, an owner or a moderator of it, as JSON.
MAILMAN_SCRIPT = """
import json, sys
sys.path.insert(0, sys.argv[1] + '/bin')
import paths
from Mailman import MailList, Utils
address = sys.argv[2].lower() if len(sys.argv) > 2 else None
found = []
for name in sorted(Utils.list_names()):
    mlist = MailList.MailList(name, lock=0)
    entry = {'name': name, 'address': mlist.GetListEmail(), 'members': len(mlist.getMembers())}
    if address:
        entry['member'] = bool(mlist.isMember(address))
        entry['owner'] = address in [owner.lower() for owner in mlist.owner]
        entry['moderator'] = address in [moderator.lower() for moderator in mlist.moderator]
    found.append(entry)
print(json.dumps(found))
"""
# The same, argv: PREFIX. Locks every list (in name order, as nothing else holds two), says so,
# and keeps them locked until its standard input ends: while a backup copies the domain.
LOCK_SCRIPT = """
import sys
sys.path.insert(0, sys.argv[1] + '/bin')
import paths
from Mailman import MailList, Utils
locked = []
try:
    for name in sorted(Utils.list_names()):
        mlist = MailList.MailList(name, lock=0)
        mlist.Lock()
        locked.append(mlist)
    sys.stdout.write('locked\\n')
    sys.stdout.flush()
    sys.stdin.read()
finally:
    for mlist in locked:
        mlist.Unlock()
"""


def check_domain_name(name: str) -> str:
    if not DOMAIN_NAME.match(name):
        raise MmdebError(f"{name!r} is not a domain name", "give a domain as `mailmen ls` shows it")
    return name


def check_address(address: str) -> str:
    if not ADDRESS.match(address):
        raise MmdebError(f"{address!r} is not a plain email address (letters, digits and ._%+=- before the @)",
                         "give the address as the list shows it")
    return address


# -- argv of the external commands ------------------------------------------------------------

def as_user_argv(user: str, group: str, argv: list[str]) -> list[str]:
    """argv run as Mailman's user and group: runuser execs it, no shell between."""
    return ["runuser", "-u", user, "-g", group, "--", *argv]


def dpkg_query_argv(package: str) -> list[str]:
    return ["dpkg-query", "-W", "-f", "${Version}\t${Depends}", package]


def dkim_setup_argv() -> list[str]:
    return [DKIM_COMMAND, "setup"]


def close_private_archives_argv(prefix: str) -> list[str]:
    """The domain postinst's own step: a backup from before it leaves the archives open."""
    return ["env", f"PREFIX={prefix}", "sh", "-ec", f". {DOMAIN_POSTINST}; close_private_archives"]


def newer_argv(version: str, than: str) -> list[str]:
    return ["dpkg", "--compare-versions", version, "gt", than]


def systemctl_argv(action: str, units: list[str]) -> list[str]:
    return ["systemctl", action, *units]


def sysv_argv(action: str, domain: str) -> list[str]:
    return [f"/etc/init.d/{SYSV_SCRIPT}", action, domain]


def runner_units(domain: str) -> list[str]:
    """The instances that run the domain's runners, the path unit first: stopping it first
    keeps it from starting a drain again."""
    return [instance_unit(template, domain) for template in (QUEUE_UNIT, DRAIN_UNIT, ALWAYS_ON_UNIT)]


@dataclass
class Runners:
    setting: str  # always-on, on-demand, sysv, or - (none enabled)
    state: str  # the main unit's (systemctl is-active), or the init script's running / stopped

    def __str__(self) -> str:
        return f"{self.setting}/{self.state}"


@dataclass
class DomainRow:
    name: str
    mode: str
    version: str
    lists: int
    members: int
    queued: int
    runners: Runners
    last_delivery: str
    errors: int


class Host:
    """A list host's installed domains, under root (/ but in the fast tests)."""

    def __init__(self, root: Path = Path("/")):
        self.root = root

    def path(self, absolute: str) -> Path:
        return self.root / absolute.lstrip("/")

    # -- the outside world: overridden by the fast tests -----------------------------------

    def run(self, argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(argv, capture_output=True, text=True)
        if check and done.returncode:
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise MmdebError(f"{' '.join(argv)} failed: {last}", "fix what it says, then run mailmen again")
        return done

    def exec(self, argv: list[str]) -> int:
        """Become argv (its terminal, signals and exit status are the caller's)."""
        os.execvp(argv[0], argv)

    def systemd(self) -> bool:
        return self.path("/run/systemd/system").is_dir()

    @contextmanager
    def locked(self, domain: str):
        """Every list of domain locked by Mailman's own locking while the body runs."""
        locker = subprocess.Popen(self.mailman_argv(domain, ["-c", LOCK_SCRIPT, self.prefix(domain)]),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            if locker.stdout.readline().strip() != "locked":
                raise MmdebError(f"the lists of {domain} could not be locked (exit {locker.wait()})",
                                 f"see {DomainPaths(domain).log_dir}/error")
            yield
        finally:
            locker.stdin.close()
            locker.wait()

    # -- a domain's facts --------------------------------------------------------------------

    def domains(self) -> list[str]:
        return installed_domains(self.path(INSTALLED_DOMAINS))

    def domain(self, name: str) -> str:
        """name, if it is an installed domain."""
        check_domain_name(name)
        if name not in self.domains():
            raise MmdebError(f"{name} is not an installed domain (no {INSTALLED_DOMAINS}/{name})",
                             f"install mailman-{name}, or give one that `mailmen ls` lists")
        return name

    def prefix(self, domain: str) -> str:
        return str(self.path(DomainPaths(domain).prefix))

    def user(self, domain: str) -> tuple[str, str]:
        """Mailman's user and group for domain: its mm_cfg.py's, else its Defaults.py's."""
        found: dict[str, str] = {}
        for name in ("mm_cfg.py", "Defaults.py"):
            source = Path(self.prefix(domain), "Mailman", name)
            if source.is_file():
                for setting, value in SETTING.findall(source.read_text(errors="replace")):
                    found.setdefault(setting, value)
        if "MAILMAN_USER" not in found or "MAILMAN_GROUP" not in found:
            raise MmdebError(f"{domain}'s Mailman names no MAILMAN_USER and MAILMAN_GROUP in {self.prefix(domain)}/Mailman",
                             f"reinstall mailman-{domain}")
        return found["MAILMAN_USER"], found["MAILMAN_GROUP"]

    def python(self, domain: str) -> str:
        """The interpreter of the domain's Mailman: its bin/ scripts' #! line."""
        first = Path(self.prefix(domain), "bin", "list_members").read_text(errors="replace").split("\n", 1)[0]
        return first.removeprefix("#!").split()[0]

    def mailman_argv(self, domain: str, args: list[str]) -> list[str]:
        return as_user_argv(*self.user(domain), [self.python(domain), *args])

    def package(self, domain: str) -> tuple[str, str]:
        """The domain package's version and mode (shared if it depends on a core)."""
        done = self.run(dpkg_query_argv(DomainPaths(domain).package), check=False)
        if done.returncode:
            return "-", "-"
        version, depends = done.stdout.split("\t", 1)
        shared = any(item.strip().startswith(CORE_PACKAGE_PREFIX) for item in depends.split(","))
        return version, "shared" if shared else "prefix"

    def lists(self, domain: str, address: str | None = None) -> list[dict]:
        args = ["-c", MAILMAN_SCRIPT, self.prefix(domain), *([address] if address else [])]
        return json.loads(self.run(self.mailman_argv(domain, args)).stdout)

    def queued(self, domain: str) -> int:
        qfiles = Path(self.prefix(domain), "qfiles")
        return sum(1 for queue in WAITING_QUEUES for path in (qfiles / queue).glob("*.pck"))

    def runners(self, domain: str) -> Runners:
        if not self.systemd():
            done = self.run(sysv_argv("status", domain), check=False)
            return Runners("sysv", "running" if done.returncode == 0 else "stopped")
        path, drain, always = runner_units(domain)
        enabled = dict(zip((path, drain, always), self.run(systemctl_argv("is-enabled", [path, drain, always]),
                                                           check=False).stdout.split()))
        active = dict(zip((path, drain, always), self.run(systemctl_argv("is-active", [path, drain, always]),
                                                          check=False).stdout.split()))
        if enabled.get(always) == "enabled" or active.get(always) == "active":
            return Runners("always-on", active.get(always, "unknown"))
        setting = "on-demand" if enabled.get(path) == "enabled" else "-"
        return Runners(setting, "running" if active.get(drain) == "active" else active.get(path, "unknown"))

    def log_lines(self, domain: str, log: str) -> list[str]:
        path = self.path(DomainPaths(domain).log_dir) / log
        return path.read_text(errors="replace").splitlines() if path.is_file() else []

    def row(self, domain: str, now: float) -> DomainRow:
        version, mode = self.package(domain)
        lists = self.lists(domain)
        times = [when for when in map(log_time, self.log_lines(domain, "smtp")) if when is not None]
        errors = sum(1 for when in map(log_time, self.log_lines(domain, "error")) if when is not None and now - when < DAY)
        last = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(times))) if times else "-"
        return DomainRow(domain, mode, version, len(lists), sum(entry["members"] for entry in lists),
                         self.queued(domain), self.runners(domain), last, errors)

    # -- runners paused while a domain is copied or replaced ------------------------------------

    @contextmanager
    def paused(self, domain: str):
        """The domain's runners stopped while the body runs, then those that ran started again
        (an on-demand domain's path unit starts a drain for what was queued meanwhile)."""
        if self.systemd():
            units = runner_units(domain)
            states = self.run(systemctl_argv("is-active", units), check=False).stdout.split()
            running = [unit for unit, state in zip(units, states) if state == "active" and unit != units[1]]
            stop, start = systemctl_argv("stop", units), systemctl_argv("start", running) if running else None
        else:
            running = self.run(sysv_argv("status", domain), check=False).returncode == 0
            stop, start = sysv_argv("stop", domain), sysv_argv("start", domain) if running else None
        self.run(stop)
        try:
            yield
        finally:
            if start:
                self.run(start)


def log_time(line: str) -> float | None:
    try:
        return time.mktime(time.strptime(line[:LOG_TIME_LENGTH], LOG_TIME))
    except ValueError:
        return None


def columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[index]) for row in rows) for index in range(len(rows[0]))]
    return "".join(" ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n" for row in rows)


LS_HEADER = ["Domain", "Mode", "Version", "Lists", "Members", "Queued", "Runners", "Last-delivery", "Errors-1d"]


def ls(host: Host, now: float, say=print) -> str:
    """The table; a domain whose Mailman cannot be read (a package half installed) has ? in it,
    and the reason goes to say, so the others are listed all the same."""
    rows = [LS_HEADER]
    for domain in host.domains():
        try:
            row = host.row(domain, now)
        except (MmdebError, OSError, ValueError) as error:
            say(f"{PROG}: {domain}: {error}")
            rows.append([domain, *"?" * (len(LS_HEADER) - 1)])
            continue
        rows.append([row.name, row.mode, row.version, str(row.lists), str(row.members), str(row.queued),
                     str(row.runners), row.last_delivery, str(row.errors)])
    return columns(rows)


def domain_command_argv(host: Host, domain: str, command: str, args: list[str]) -> list[str]:
    """argv that runs the domain's bin/COMMAND as its Mailman's user."""
    host.domain(domain)
    program = Path(host.prefix(domain), "bin", command)
    if not COMMAND.match(command) or not program.is_file():
        raise MmdebError(f"{command!r} is not a command of {domain} (none in {host.prefix(domain)}/bin)",
                         f"give one of: {' '.join(sorted(path.name for path in program.parent.glob('[a-z]*')))}")
    return as_user_argv(*host.user(domain), [str(program), *args])


@dataclass(frozen=True)
class Membership:
    domain: str
    list_name: str
    list_address: str
    roles: tuple[str, ...]  # member, owner, moderator


def memberships(host: Host, address: str) -> list[Membership]:
    found = []
    for domain in host.domains():
        for entry in host.lists(domain, address):
            roles = tuple(role for role in ("member", "owner", "moderator") if entry[role])
            if roles:
                found.append(Membership(domain, entry["name"], entry["address"], roles))
    return found


def remove_members_argv(host: Host, domain: str, list_name: str, address: str) -> list[str]:
    program = str(Path(host.prefix(domain), "bin", "remove_members"))
    return as_user_argv(*host.user(domain), [program, "--nouserack", "--noadminack", list_name, address])


def remove_member(host: Host, address: str, dry_run: bool) -> list[str]:
    """Take address off every list of every domain; the report's lines, one per list it is on."""
    lines = []
    for found in memberships(host, address):
        if "member" in found.roles:
            if not dry_run:
                host.run(remove_members_argv(host, found.domain, found.list_name, address))
            lines.append(f"{'would remove' if dry_run else 'removed'} {address} from {found.list_address}")
        for role in ("owner", "moderator"):
            if role in found.roles:
                lines.append(f"{address} stays {role} of {found.list_address}: change that on its admin page "
                             f"(General Options), or with: mailmen {found.domain} config_list")
    return lines


@contextmanager
def atomic_file(path: Path):
    """A temporary file beside path, to write (its name is yielded): renamed to path, mode 0600,
    once the block ends; removed if it raises. So path holds all or what it held before."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(handle)
    try:
        yield temporary
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o600)  # a report names addresses; a backup holds passwords and keys
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_atomically(path: Path, data: bytes) -> None:
    with atomic_file(path) as temporary:
        Path(temporary).write_bytes(data)


# -- backup and restore ---------------------------------------------------------------------

def backup_name(domain: str, now: float) -> str:
    return f"{domain}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}.mailmen.tar.gz"


def backup(host: Host, domain: str, target: Path | None, now: float) -> Path:
    """A tar.gz of the domain's lists, archives, data, queues and etc directory, taken with
    its runners stopped and its lists locked, written beside target and renamed to it."""
    host.domain(domain)
    version, mode = host.package(domain)
    target = target or Path(backup_name(domain, now))
    if target.is_dir():
        target = target / backup_name(domain, now)
    if not target.parent.is_dir():
        raise MmdebError(f"{target.parent} is not a directory", "make it, or give another file to write")
    manifest = {"format": BACKUP_FORMAT, "domain": domain, "package": DomainPaths(domain).package,
                "version": version, "mode": mode, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))}
    with atomic_file(target) as temporary, tarfile.open(temporary, "w:gz") as tar:
        add_bytes(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
        with host.paused(domain), host.locked(domain):
            for part in BACKUP_PARTS:
                add_tree(tar, Path(host.prefix(domain), part), f"prefix/{part}")
            add_tree(tar, host.path(DomainPaths(domain).etc_dir), ETC_PART)
        add_bytes(tar, END, str(len(tar.getmembers())).encode())
    return target


def add_tree(tar: tarfile.TarFile, source: Path, name: str) -> None:
    """source's tree as name, links as links. Mail goes on arriving: a queue file still being
    written (Mailman's .tmp, renamed when whole) is left out, and so is one gone by the time it
    is read (moved by the MTA's delivery, or never finished)."""
    if not source.exists():
        return
    tar.add(source, name, recursive=False)
    for directory, directories, files in os.walk(source):  # links to directories stay links
        for entry in sorted(directories) + sorted(entry for entry in files if not entry.endswith(".tmp")):
            path = Path(directory, entry)
            try:
                tar.add(path, f"{name}/{path.relative_to(source).as_posix()}", recursive=False)
            except FileNotFoundError:
                continue


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(data))


def read_backup(file: Path) -> tuple[dict, list[tarfile.TarInfo]]:
    """The manifest and members of a whole backup; MmdebError for anything else."""
    refuse = f"{file} is not a whole mailmen backup"
    try:
        with tarfile.open(file, "r:gz") as tar:
            members = tar.getmembers()  # reads to the end: a cut file fails here
            if not members or members[0].name != MANIFEST or members[-1].name != END:
                raise MmdebError(f"{refuse} (no {MANIFEST} first and {END} last)", "give the file mailmen backup wrote")
            manifest = json.loads(tar.extractfile(members[0]).read())
            count = int(tar.extractfile(members[-1]).read())
    except (tarfile.TarError, EOFError, OSError, ValueError, zlib.error) as error:
        raise MmdebError(f"{refuse} ({error})", "give the file mailmen backup wrote, whole") from None
    if count != len(members) - 1 or not isinstance(manifest, dict):
        raise MmdebError(f"{refuse} ({count} members written, {len(members) - 1} read)", "give the whole file")
    return manifest, members[1:-1]


def check_member(member: tarfile.TarInfo, prefix: str) -> None:
    """member is one of a backup's parts, and any link it is stays in the domain's prefix."""
    refuse = "the backup is not mailmen's"
    parts = Path(member.name).parts
    inside = (parts[:1] == (ETC_PART,) or (parts[:1] == ("prefix",) and len(parts) > 1 and parts[1] in BACKUP_PARTS))
    if member.name.startswith("/") or ".." in parts or not inside or not (member.isfile() or member.isdir() or member.issym()):
        raise MmdebError(f"{refuse} ({member.name} is not one of its parts)", "give the file mailmen backup wrote")
    if member.issym() and (".." in Path(member.linkname).parts or
                           (member.linkname.startswith("/") and not member.linkname.startswith(prefix + "/"))):
        raise MmdebError(f"{refuse} ({member.name} links out of its domain)", "give the file mailmen backup wrote")


def restore(host: Host, file: Path, domain: str | None) -> str:
    """Put the backup's parts in place of the domain's, its runners stopped; refused, with nothing
    changed, unless the backup is whole, of domain (if given), and not newer than what is installed."""
    manifest, members = read_backup(file)
    name = check_domain_name(str(manifest.get("domain")))
    if domain is not None and check_domain_name(domain) != name:
        raise MmdebError(f"{file} is a backup of {name}, not {domain}", f"restore it onto {name}'s host, or give {domain}'s backup")
    host.domain(name)
    if not isinstance(manifest.get("format"), int) or manifest["format"] > BACKUP_FORMAT:
        raise MmdebError(f"{file} has backup format {manifest.get('format')}, newer than this mailmen's {BACKUP_FORMAT}",
                         "upgrade mailmen-common first")
    version, _ = host.package(name)
    if host.run(newer_argv(str(manifest.get("version")), version), check=False).returncode == 0:
        raise MmdebError(f"{file} is of {manifest['package']} {manifest['version']}, newer than the installed {version}",
                         f"upgrade {manifest['package']} first")
    for member in members:
        check_member(member, host.prefix(name))
    prefix = Path(host.prefix(name))
    staging = Path(tempfile.mkdtemp(dir=prefix, prefix=".mailmen-restore."))
    try:
        with tarfile.open(file, "r:gz") as tar:
            tar.extractall(staging, members=members, **trusted())
    except BaseException:
        shutil.rmtree(staging)  # nothing is changed yet
        raise
    with host.paused(name):
        try:
            for part in BACKUP_PARTS:
                if (staging / "prefix" / part).exists():
                    if (prefix / part).exists():
                        os.rename(prefix / part, staging / f"old-{part}")
                    os.rename(staging / "prefix" / part, prefix / part)
            if (staging / ETC_PART).exists():
                copy_owned(staging / ETC_PART, host.path(DomainPaths(name).etc_dir))
        except OSError as error:  # the replaced parts are kept, never deleted
            raise MmdebError(f"the restore of {name} stopped halfway ({error}); the parts it replaced are "
                             f"{staging}/old-*", "free what the error names, and restore again") from None
        # This host's MTA maps and DKIM signer learn the restored lists and key.
        host.run(as_user_argv(*host.user(name), [str(prefix / "bin" / "genaliases"), "-q"]))
        host.run(dkim_setup_argv())
        host.run(close_private_archives_argv(str(prefix)))
    shutil.rmtree(staging)
    return f"restored {name} from {file} ({manifest['package']} {manifest['version']}, {manifest['created']})"


def copy_owned(source: Path, target: Path) -> None:
    """source's tree over target's, with its owners and modes (/etc may be another file system)."""
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    for path in [source, *source.rglob("*")]:
        stat = path.lstat()
        os.chown(target / path.relative_to(source), stat.st_uid, stat.st_gid, follow_symlinks=False)
    shutil.copystat(source, target)


def trusted() -> dict:
    """extractall's arguments: the members are checked already (check_member), and the pipermail
    links point into the prefix, which the data filter of Python >= 3.12 would refuse."""
    return {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


# -- the command line -----------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog=PROG, description="Every mmdeb list domain of this host, from one command.",
                                  epilog=f"{PROG} DOMAIN COMMAND [ARG...] runs the domain's bin/COMMAND (newlist, "
                                         "list_members, withlist...) as its Mailman's user.")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("ls", help="every domain: mode, version, lists, members, queued mail, runners, "
                                   "last delivery, errors in the last day")
    find = commands.add_parser("find-member", help="every list of every domain that has ADDRESS")
    find.add_argument("address")
    remove = commands.add_parser("remove-member", help="take ADDRESS off every list of every domain")
    remove.add_argument("address")
    remove.add_argument("--all-domains", action="store_true", required=True, help="every domain (required)")
    remove.add_argument("--dry-run", action="store_true", help="say what it would remove; change nothing")
    remove.add_argument("--report", type=Path, help="also write what it did to REPORT (atomically)")
    save = commands.add_parser("backup", help="a consistent snapshot of DOMAIN, taken while mail flows")
    save.add_argument("domain")
    save.add_argument("file", type=Path, nargs="?", help="the file or directory to write (default: here)")
    load = commands.add_parser("restore", help="put a backup in place of its domain's lists and data")
    load.add_argument("file", type=Path)
    load.add_argument("domain", nargs="?", help="refuse unless the backup is of DOMAIN")
    return top


def main(argv: list[str] | None = None, host: Host | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    host = host or Host()
    try:
        if argv and argv[0] not in MAILMEN_SUBCOMMANDS and not argv[0].startswith("-"):
            if len(argv) < 2:
                raise MmdebError(f"no command for {argv[0]}", f"give one: {PROG} {argv[0]} list_lists")
            command = domain_command_argv(host, argv[0], argv[1], argv[2:])
            return host.exec(command)
        return execute(parser().parse_args(argv), host)
    except MmdebError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 1


def execute(args, host: Host) -> int:
    now = time.time()
    if args.command == "ls":
        sys.stdout.write(ls(host, now, say=lambda line: print(line, file=sys.stderr)))
    elif args.command == "find-member":
        found = memberships(host, check_address(args.address))
        for item in found:
            print(f"{item.list_address} {','.join(item.roles)}")
        if not found:
            print(f"{args.address} is on no list of this host's domains", file=sys.stderr)
            return 1
    elif args.command == "remove-member":
        lines = remove_member(host, check_address(args.address), args.dry_run)
        lines = lines or [f"{args.address} is on no list of this host's domains"]
        text = "".join(f"{line}\n" for line in lines)
        if args.report:
            write_atomically(args.report, text.encode())
        sys.stdout.write(text)
    elif args.command == "backup":
        print(f"wrote {backup(host, check_domain_name(args.domain), args.file, now)}")
    elif args.command == "restore":
        print(restore(host, args.file, args.domain))
    return 0


if __name__ == "__main__":
    sys.exit(main())
