"""A booted Debian for tests of what only an init system shows (units, timers, restarts,
reboots): an mmdebstrap tree booted by systemd-nspawn, with a real systemd as PID 1 and a
network namespace of its own (loopback only), so nothing reaches the outside.

The tree of each dist is made once and cached; each host boots its own copy of it, which
keeps its state across reboots."""

import fcntl
import hashlib
import os
import re
import shutil
import signal
import site
import subprocess
import sys
import time
import uuid
from pathlib import Path

from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, MailHost, prefix
from helpers.lists import USERS
from helpers.repository import serve
from helpers.tls import preseed_certificates
from helpers.upstreams import runtime_packages
from mmdeb.build.builders.chroot import mirror
from mmdeb.cli import main
from mmdeb.domains.layout import ALWAYS_ON_UNIT, DRAIN_UNIT, QUEUE_UNIT, instance_unit, unit_instance
from mmdeb.app.places import current as current_places

BOOT_TIMEOUT = 120
# Installed, not only downloaded: the guest has no mirror, so apt there installs our
# packages from our repository alone. cron and logrotate are the packages' Recommends.
# apache2 and curl: the web interface, tested through Apache.
# opendkim: for mailmen-common, which the domain packages depend on.
BASE_PACKAGES = ("systemd-sysv", "dbus", "postfix", "opendkim", "procps", "cron", "logrotate", "apache2", "curl")

# Runs on the host with $1 = the tree, after the packages are installed.
CUSTOMIZE = f"""\
set -e
echo {HOSTNAME} > "$1/etc/hostname"
printf '127.0.0.1 localhost {HOSTNAME}\\n::1 localhost ip6-localhost ip6-loopback\\n' > "$1/etc/hosts"
# No entry for /: under nspawn systemd-remount-fs would fail on it and the boot be 'degraded'.
: > "$1/etc/fstab"
# Loopback only: waiting for a network that never comes would time out the boot.
ln -sf /dev/null "$1/etc/systemd/system/systemd-networkd-wait-online.service"
chroot "$1" postconf -e 'myhostname = {HOSTNAME}'
# The guest reaches no mirror; only the repositories a test adds.
rm -f "$1/etc/apt/sources.list" "$1"/etc/apt/sources.list.d/*
"""


def base_packages(dist: str) -> list[str]:
    return sorted({*BASE_PACKAGES, *runtime_packages("py3", dist)})


def mmdebstrap_argv(dist: str, target: Path, packages: list[str], mirror_url: str) -> list[str]:
    return [
        "mmdebstrap", "--variant=apt", f"--include={','.join(packages)}",
        f"--essential-hook=printf '%s' '{MTA_DEBCONF['postfix']}' | chroot \"$1\" debconf-set-selections",
        f"--customize-hook={CUSTOMIZE}",
        dist, str(target), mirror_url,
    ]


# The unified cgroup hierarchy (cgroup v2), as on a real bookworm or trixie host, also when
# this host runs the legacy one.
NSPAWN_ENV = {**os.environ, "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY": "1"}
# The hierarchies whose cgroup systemd-nspawn --keep-unit gives its container: pure v2, or
# a hybrid host's v2 and systemd-named v1 ones.
CGROUP_ROOTS = [Path("/sys/fs/cgroup")] if Path("/sys/fs/cgroup/cgroup.procs").exists() else [
    Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup/systemd")]


def own_cgroups(name: str) -> list[Path]:
    """A new cgroup per hierarchy, below this process's own, for one container. Without it,
    every container started from here has the same cgroup, so each one's systemd sees (and
    kills, or fails to kill) the others' units' processes."""
    created = []
    for root in CGROUP_ROOTS:
        if not (root / "cgroup.procs").exists():
            continue
        controller = "" if root.name in ("cgroup", "unified") else "name=systemd"
        current = next(line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines()
                       if line.split(":", 2)[1] == controller)
        cgroup = root / current.strip("/") / name
        cgroup.mkdir(exist_ok=True)
        created.append(cgroup)
    return created


def remove_cgroups(cgroups: list[Path]) -> None:
    """Deepest first; the container's processes are gone with its PID 1."""
    for cgroup in cgroups:
        for directory in sorted((d for d in cgroup.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            directory.rmdir()
        cgroup.rmdir()


def nspawn_argv(root: Path, private_network: bool = True) -> list[str]:
    """private_network=False shares this machine's network (to reach the Debian mirror)."""
    return [
        "systemd-nspawn", "--quiet", f"--directory={root}", "--boot",
        # This host has no systemd as init, hence no machined to register with nor a unit to create.
        "--register=no", "--keep-unit",
        *(["--private-network"] if private_network else []),
        # Else /etc/localtime and /etc/resolv.conf are bind mounts, which tzdata's postinst cannot replace.
        "--timezone=off", "--resolv-conf=off",
        "--console=read-only",
    ]


def base_tree(dist: str, extra: tuple[str, ...] = ()) -> Path:
    """The cached tree of dist, with extra packages, made once (under a lock, atomically) per
    package list and mirror."""
    packages = sorted({*base_packages(dist), *extra})
    key = "\n".join([*packages, mirror(), CUSTOMIZE])
    root = current_places().cache / "systemd-hosts"
    target = root / f"{dist}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not target.exists():
            partial = target.with_name(f".partial-{target.name}")
            # --one-file-system: an interrupted mmdebstrap may leave /proc and /sys mounted in it.
            remove = ["rm", "-rf", "--one-file-system", str(partial)]
            subprocess.run(remove, check=True)
            try:
                subprocess.run(mmdebstrap_argv(dist, partial, packages, mirror()), check=True, capture_output=True, text=True)
                os.replace(partial, target)
            finally:
                subprocess.run(remove, check=False)
    return target


class SystemdHost(MailHost):
    def __init__(self, root: Path, private_network: bool = True):
        self.root = root
        self.private_network = private_network
        self.nspawn: subprocess.Popen | None = None
        self.leader = 0  # the container's PID 1, as the host sees it
        self.boots = 0
        self.cgroups: list[Path] = []

    @classmethod
    def create(cls, root: Path, dist: str, extra: tuple[str, ...] = (), private_network: bool = True) -> "SystemdHost":
        """A copy of dist's cached tree (with extra packages) at root, for this host alone."""
        subprocess.run(["cp", "-a", "--reflink=auto", str(base_tree(dist, extra)), str(root)], check=True)
        return cls(root, private_network)

    # -- lifecycle ---------------------------------------------------------------

    def boot(self) -> float:
        """Boot the tree; return the seconds until systemd reports the system running."""
        assert self.nspawn is None, "already booted"
        started = time.monotonic()
        self.boots += 1
        console = open(self.root.with_name(f"{self.root.name}-console-{self.boots}.log"), "w")
        self.cgroups = own_cgroups(f"mmdeb-nspawn-{uuid.uuid4().hex[:12]}")
        procs = [cgroup / "cgroup.procs" for cgroup in self.cgroups]
        self.nspawn = subprocess.Popen(nspawn_argv(self.root, self.private_network), stdin=subprocess.DEVNULL, stdout=console,
                                       stderr=subprocess.STDOUT, start_new_session=True, env=NSPAWN_ENV,
                                       preexec_fn=lambda: [path.write_text("0") for path in procs])
        console.close()
        self.leader = self._wait_for_leader(started)
        state = self._wait_until_booted(started)
        if state != "running":
            failed = self.run("systemctl", "--failed", "--no-pager", check=False).stdout
            raise AssertionError(f"the system is {state}, not running:\n{failed}")
        return time.monotonic() - started

    def _wait_for_leader(self, started: float) -> int:
        while time.monotonic() - started < BOOT_TIMEOUT:
            if self.nspawn.poll() is not None:
                raise AssertionError(f"systemd-nspawn exited with {self.nspawn.returncode}; see {self.console_log()}")
            children = Path(f"/proc/{self.nspawn.pid}/task/{self.nspawn.pid}/children").read_text().split()
            for child in children:
                # PID 1 in its own namespace: the container's init, not nspawn's helper.
                status = Path(f"/proc/{child}/status").read_text()
                if any(line.split()[-1] == "1" for line in status.splitlines() if line.startswith("NSpid:")):
                    return int(child)
            time.sleep(0.05)
        raise AssertionError("systemd-nspawn started no container")

    def _wait_until_booted(self, started: float) -> str:
        while time.monotonic() - started < BOOT_TIMEOUT:
            result = self.run("systemctl", "is-system-running", "--wait", check=False)
            state = result.stdout.strip()
            if state in ("running", "degraded", "maintenance"):
                return state
            time.sleep(0.1)  # not yet systemd, or its manager not yet listening
        raise AssertionError(f"not booted within {BOOT_TIMEOUT}s; see {self.console_log()}")

    def console_log(self) -> Path:
        return self.root.with_name(f"{self.root.name}-console-{self.boots}.log")

    def _wait_for_exit(self, timeout: float) -> bool:
        try:
            self.nspawn.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _exited(self) -> None:
        self.nspawn = None
        remove_cgroups(self.cgroups)
        self.cgroups = []

    def poweroff(self, timeout: float = 90) -> None:
        self.run("systemctl", "poweroff", check=False)
        if not self._wait_for_exit(timeout):
            raise AssertionError(f"no poweroff within {timeout}s")
        self._exited()

    def reboot(self) -> float:
        """systemd-nspawn exits when its container reboots: boot the same tree again."""
        self.run("systemctl", "reboot", check=False)
        if not self._wait_for_exit(90):
            raise AssertionError("no reboot within 90s")
        self._exited()
        return self.boot()

    def stop(self) -> None:
        """Power off if it can, else kill the container: for fixtures' teardown."""
        if self.nspawn is None:
            return
        self.nspawn.send_signal(signal.SIGTERM)  # nspawn asks the container's systemd to power off
        if not self._wait_for_exit(30):
            for pid in (self.leader, self.nspawn.pid):  # killing PID 1 kills its whole namespace
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.nspawn.wait()
        self._exited()

    # -- commands ----------------------------------------------------------------

    def enter(self) -> list[str]:
        """In the container's namespaces and root (its systemd does not supervise the command)."""
        return ["nsenter", f"--target={self.leader}", "--all"]


class Project:
    """An mmdeb project in a directory: state file, a copy of the patch series, build
    output and signed repository, driven through mmdeb's command line."""

    def __init__(self, directory: Path, upstream):
        self.upstream = upstream
        self.state, self.out, self.repo = directory / "mmdeb.toml", directory / "build", directory / "repo"
        self.patches = directory / "patches"
        if not self.patches.exists():  # else a project made earlier in directory, reused
            shutil.copytree(upstream.patches, self.patches)

    def mmdeb(self, *args: str, code: Path | None = None) -> None:
        """mmdeb's command line; with code, that of another copy of mmdeb's code (an earlier version)."""
        if code is None:
            assert main(["--state", str(self.state), *args]) == 0, f"mmdeb {' '.join(args)} failed"
            return
        # -S: no site initialisation, so no editable install's import hook finds this checkout's mmdeb
        # (nor does the working directory, first on the path).
        path = os.pathsep.join([str(code), *site.getsitepackages()])
        subprocess.run([sys.executable, "-S", "-c", "import sys; from mmdeb.cli import main; sys.exit(main(sys.argv[1:]))",
                        "--state", str(self.state), *args], env={**os.environ, "PYTHONPATH": path}, cwd=code, check=True)

    def add(self, *domains: str, dist: str, mode: str = "prefix", runners: str = "on-demand") -> None:
        self.mmdeb("domains", "add", *domains, "--upstream", str(self.upstream.tarball), "--dist", dist, "--mode", mode,
                   "--runners", runners)

    def rebuild_and_publish(self, *options: str, code: Path | None = None) -> None:
        self.mmdeb("rebuild", "--patches", str(self.patches), "--out", str(self.out), *options, code=code)
        self.mmdeb("publish", "--repo", str(self.repo), "--out", str(self.out), code=code)


# -- the units of a domain, as seen inside a booted host --------------------------

def unit(domain: str, on_demand: bool = False) -> str:
    """The domain's runner service: mailmanctl's (always on), or the drain's (on demand)."""
    return instance_unit(DRAIN_UNIT if on_demand else ALWAYS_ON_UNIT, domain)


def path_unit(domain: str) -> str:
    return instance_unit(QUEUE_UNIT, domain)


def instance_links(host: SystemdHost, domain: str) -> list[str]:
    """The names of the unit links in /etc/systemd/system that name an instance of domain."""
    # Not a glob of the name: escaped instances hold backslashes ("lists\\x2d1.example.org").
    infix = f"@{unit_instance(domain)}."
    return sorted(path.name for path in (host.root / "etc/systemd/system").rglob("*") if infix in path.name and path.is_symlink())


def daemon_reloads(host: SystemdHost) -> int:
    """How many times systemd has reloaded its units since it booted: it logs "Reloading..."
    (trixie) or "Reloading." (bookworm) each time."""
    journal = host.run("journalctl", "--boot", "--no-pager", "-o", "cat", "_PID=1").stdout
    return len(re.findall(r"^Reloading\.(\.\.)?$", journal, re.M))


def unit_property(host: SystemdHost, name: str, prop: str) -> str:
    return host.run("systemctl", "show", f"--property={prop}", "--value", name).stdout.strip()


def processes_of(host: SystemdHost, domain: str) -> list[tuple[int, str, str]]:
    """(pid, user, command line) of every process running a program of domain's prefix."""
    found = []
    for line in host.run("ps", "-eo", "pid=,user=,args=").stdout.splitlines():
        pid, user, args = line.split(None, 2)
        if f"{prefix(domain)}/" in args:
            found.append((int(pid), user, args))
    return found


def pid1_inotify_instances(host: SystemdHost) -> int:
    """systemd's inotify instances: its path units hold one per watched path."""
    return int(host.run("sh", "-c", "find /proc/1/fd -lname 'anon_inode:inotify' | wc -l").stdout)


def cgroup_of(host: SystemdHost, pid: int) -> str:
    return host.run("cat", f"/proc/{pid}/cgroup").stdout


def boot_with_repository(project: Project, root, dist: str, domains: list[str], timings: dict) -> SystemdHost:
    """A booted host with users and the project's repository, the domains' packages installed
    by apt, with certificates from the test CA."""
    machine = SystemdHost.create(root, dist)
    timings.setdefault("boot_s", []).append(round(machine.boot(), 2))
    for user in USERS:
        machine.run("useradd", "--create-home", user)
    machine.use_repository(project.repo, dist)
    serve(project.repo, machine)
    preseed_certificates(machine, *domains)
    machine.run("apt-get", "install", "--yes", *[f"mailman-{domain}" for domain in domains])
    return machine
