"""A private network namespace with a real DNS server (dnsmasq) and an SMTP sink, for running
Mailman's side of a test where its resolver and its SMTPHOST are ours. Needs root and iproute2;
`ip netns exec` bind-mounts /etc/netns/<name>/resolv.conf over /etc/resolv.conf."""

import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from helpers.e2e_host import add_netns

NETNS_ETC = Path("/etc/netns")
LOOPBACK = "127.0.0.1"
SMTP_PORT = 2525  # each namespace has its own ports, so a fixed one is free
SMTP_SINK = Path(__file__).with_name("smtp_sink.py")


class Netns:
    def __init__(self, name: str):
        self.name = name

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    def run(self, argv: list[str], input: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(argv), input=input, capture_output=True, text=True)
        if done.returncode:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
        return done

    @contextmanager
    def daemon(self, argv: list[str], ready: str):
        """A server in the namespace, yielded with the output line holding ready (it listens then)
        once it has printed it; its later output is kept in .output (read, so it never blocks)."""
        process = subprocess.Popen(self.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        process.output = []
        try:
            for line in process.stdout:
                process.output.append(line)
                if ready in line:
                    break
            else:
                raise RuntimeError(f"{argv[0]} exited before it was ready: {''.join(process.output)}")
            threading.Thread(target=lambda: process.output.extend(process.stdout), daemon=True).start()
            yield process, line
        finally:
            process.terminate()
            process.wait()


@contextmanager
def netns(name: str):
    """A namespace with only a loopback interface, whose resolv.conf names a server on it."""
    add_netns(name)
    etc = NETNS_ETC / name
    try:
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(f"nameserver {LOOPBACK}\n")
        yield Netns(name)
    finally:
        (etc / "resolv.conf").unlink(missing_ok=True)
        if etc.exists():
            etc.rmdir()
        subprocess.run(["ip", "netns", "delete", name], check=True)


def dnsmasq_argv(zones: tuple[str, ...], txt: dict[str, list[list[str]]], silent: str | None = None,
                 mx: dict[str, str] | None = None, addresses: dict[str, str] | None = None) -> list[str]:
    """dnsmasq answering for zones (NXDOMAIN for names it does not hold) with each name's TXT
    records, each of one or more character strings (without commas), each mail domain's MX host
    and each host's address; REFUSED outside them; no answer at all under silent (forwarded to a
    closed port)."""
    records = (f"--txt-record={name},{','.join(strings)}" for name, rdatas in txt.items() for strings in rdatas)
    exchangers = (f"--mx-host={domain},{host},10" for domain, host in (mx or {}).items())
    hosts = (f"--host-record={host},{address}" for host, address in (addresses or {}).items())
    return ["dnsmasq", "--keep-in-foreground", "--log-facility=-", "--log-queries", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--bind-interfaces", f"--listen-address={LOOPBACK}", "--pid-file=",
            f"--local=/{'/'.join(zones)}/", *([f"--server=/{silent}/{LOOPBACK}#9"] if silent else []), *records,
            *exchangers, *hosts]


@contextmanager
def dns_server(ns: Netns, zones: tuple[str, ...], txt: dict[str, list[list[str]]], silent: str):
    with ns.daemon(dnsmasq_argv(zones, txt, silent), ready="started") as (process, _):
        yield process


@contextmanager
def smtp_sink(ns: Netns, directory: Path):
    """An SMTP server on the namespace's LOOPBACK:SMTP_PORT writing each message it takes into directory."""
    with ns.daemon([sys.executable, str(SMTP_SINK), str(directory), str(SMTP_PORT)], ready="listening"):
        yield
