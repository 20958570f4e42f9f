"""A throw-away Debian host for end-to-end tests: an mmdebstrap chroot whose daemons run
in a network namespace of their own (loopback only), so nothing reaches the outside."""

import email
import mailbox
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

from mmdeb.publish.repo import KEYRING
from helpers.tls import preseed_certificates

HOSTNAME = "host.example"
MTA_DEBCONF = {
    "postfix": (
        "postfix postfix/main_mailer_type select Local only\n"
        f"postfix postfix/mailname string {HOSTNAME}\n"
    ),
    "exim4-daemon-light": (
        "exim4-config exim4/dc_eximconfig_configtype select local delivery only; not on a network\n"
        f"exim4-config exim4/mailname string {HOSTNAME}\n"
        f"exim4-config exim4/dc_other_hostnames string {HOSTNAME}\n"
        "exim4-config exim4/dc_local_interfaces string 127.0.0.1 ; ::1\n"
        "exim4-config exim4/use_split_config boolean true\n"
    ),
}


CALLS = "/var/log/mmdeb-test-calls.log"


def prefix(domain: str) -> str:
    return f"/var/lib/mailmen/{domain}"


class MailHost:
    """What every test host has: a root directory, run() inside it, and local mail to read."""

    root: Path

    def enter(self) -> list[str]:
        """The command that runs its arguments inside the host."""
        raise NotImplementedError

    def run(self, *argv: str, user: str | None = None, input: str | bytes | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
        """argv in the host; output as text, or as bytes when input is bytes."""
        command = self.enter()
        if user:
            command += ["runuser", "-u", user, "--"]
        result = subprocess.run([*command, *argv], input=input, capture_output=True, text=not isinstance(input, bytes),
                                env=command_env())
        if check and result.returncode:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def send(self, sender: str, recipient: str, subject: str, body: str = "", user: str | None = None) -> None:
        message = f"From: {sender}\nTo: {recipient}\nSubject: {subject}\nMessage-ID: <{uuid.uuid4()}@{HOSTNAME}>\n\n{body}\n"
        self.run("/usr/sbin/sendmail", "-f", sender, recipient, input=message, user=user)

    def mailbox(self, user: str) -> list[email.message.Message]:
        path = self.root / "var/mail" / user
        return list(mailbox.mbox(str(path))) if path.exists() else []

    def empty_mailbox(self, user: str) -> None:
        path = self.root / "var/mail" / user
        if path.exists():
            path.write_bytes(b"")  # the file stays, with its owner and mode

    def wait_for_mail(self, user: str, predicate, timeout: float = 90) -> email.message.Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.mailbox(user):
                if predicate(message):
                    return message
            time.sleep(1)
        subjects = [m["Subject"] for m in self.mailbox(user)]
        raise AssertionError(f"no matching mail for {user} within {timeout}s; mailbox has {subjects}")

    def use_repository(self, repo: Path, dist: str) -> None:
        """Trust mmdeb's signed repository at /srv/repo (copied in by test_e2e_repository.serve)."""
        shutil.copy(repo / "current" / KEYRING, self.root / "usr/share/keyrings" / KEYRING)
        (self.root / "etc/apt/sources.list.d/mmdeb.sources").write_text(
            f"Types: deb\nURIs: file:/srv/repo\nSuites: {dist}\nComponents: main\n"
            f"Signed-By: /usr/share/keyrings/{KEYRING}\n")


def command_env() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}



def add_netns(name: str) -> None:
    """A network namespace with only a loopback interface, up."""
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)

class Host(MailHost):
    def __init__(self, root: Path):
        self.root = root
        self.netns = f"mmdeb-{uuid.uuid4().hex[:8]}"
        self.mounts: list[Path] = []
        self.installed: dict[str, Path] = {}  # package -> the .deb install_offline last installed

    @classmethod
    def create(cls, root: Path, dist: str, packages: list[str], debconf: str = "") -> "Host":
        hooks = []
        if debconf:
            hooks.append(f"--essential-hook=printf '%s' '{debconf}' | chroot \"$1\" debconf-set-selections")
        subprocess.run(
            ["mmdebstrap", "--variant=apt", f"--include={','.join(packages)}", *hooks, dist, str(root)],
            check=True, capture_output=True,
        )
        return cls(root)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        add_netns(self.netns)
        for fs, target, options in (("proc", "proc", []), ("sysfs", "sys", []), ("devpts", "dev/pts", ["-o", "newinstance,ptmxmode=0666"])):
            path = self.root / target
            path.mkdir(exist_ok=True)
            subprocess.run(["mount", "-t", fs, *options, fs, str(path)], check=True)
            self.mounts.append(path)
        (self.root / "etc/hostname").write_text(HOSTNAME + "\n")
        (self.root / "etc/mailname").write_text(HOSTNAME + "\n")

    def stop(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        time.sleep(0.5)
        for path in reversed(self.mounts):
            subprocess.run(["umount", "-l", str(path)], check=False)
        self.mounts.clear()
        subprocess.run(["ip", "netns", "delete", self.netns], check=False)

    def pids(self) -> list[int]:
        """Processes whose root is this host's directory."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.readlink(entry / "root") == str(self.root):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    # -- commands ----------------------------------------------------------------

    def enter(self) -> list[str]:
        """Inside the host and its network namespace."""
        return ["ip", "netns", "exec", self.netns, "chroot", str(self.root)]

    def allow_service_starts(self) -> None:
        """Let maintainer scripts start services; they only ever run inside the namespace."""
        policy = self.root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 0\n")
        policy.chmod(0o755)

    def install_offline(self, debs: list[Path]) -> subprocess.CompletedProcess:
        """dpkg -i inside the namespace: the dependencies must already be in the host."""
        target = self.root / "tmp/debs"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for deb in debs:
            shutil.copy(deb, target)
        result = self.run("dpkg", "--install", *[f"/tmp/debs/{deb.name}" for deb in debs])
        self.installed.update((deb.name.split("_")[0], deb) for deb in debs)
        return result

    def apt_install_offline(self, debs: list[Path]) -> subprocess.CompletedProcess:
        """One `apt-get install` of the .deb files, inside the namespace (their dependencies must
        already be in the host; Recommends are not installed)."""
        target = self.root / "tmp/debs"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for deb in debs:
            shutil.copy(deb, target)
        result = self.run("apt-get", "install", "--yes", "--no-install-recommends",
                          *[f"/tmp/debs/{deb.name}" for deb in debs])
        self.installed.update((deb.name.split("_")[0], deb) for deb in debs)
        return result

    def count_calls(self, *commands: str) -> None:
        """From now on, each run of the commands (absolute paths) is logged in CALLS, then run."""
        for command in commands:
            self.run("dpkg-divert", "--local", "--rename", "--add", command)
            wrapper = self.root / command.lstrip("/")
            wrapper.write_text(f'#!/bin/sh\necho "{Path(command).name} $*" >> {CALLS}\nexec {command}.distrib "$@"\n')
            wrapper.chmod(0o755)

    def calls(self) -> list[str]:
        """The logged runs since the last call (see count_calls)."""
        log = self.root / CALLS.lstrip("/")
        lines = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return lines

    def removed(self) -> list[str]:
        """The packages install_offline installed that are no longer installed (removed or purged)."""
        return [package for package in self.installed
                if self.run("dpkg-query", "-W", "-f=${db:Status-Status}", package, check=False).stdout != "installed"]


# What serves the web in a test host, and how it is started without an init system.
WEB_SERVERS = {
    "apache2": (["apache2"], [["apache2ctl", "start"]]),
    "nginx": (["nginx", "fcgiwrap", "spawn-fcgi"], [["/etc/init.d/fcgiwrap", "start"], ["nginx"]]),
}


def start_web_server(host: Host, server: str) -> None:
    for start in WEB_SERVERS[server][1]:
        host.run(*start)


def web_host(root: Path, dist: str, packages: list[str], domains: list[str], server: str = "apache2") -> Host:
    """A started host with Postfix and the web server running, users alice, bob and carol, the
    packages (the domain packages' dependencies) and certificates of the test CA for domains."""
    machine = Host.create(root, dist, ["postfix", "curl", *WEB_SERVERS[server][0], *packages], MTA_DEBCONF["postfix"])
    machine.server = server
    machine.allow_service_starts()
    machine.start()
    try:
        machine.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        for user in ("alice", "bob", "carol"):
            machine.run("useradd", "--create-home", user)
        machine.run("postfix", "start")
        start_web_server(machine, server)
        preseed_certificates(machine, *domains)
    except BaseException:
        machine.stop()
        raise
    return machine
