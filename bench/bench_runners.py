#!/usr/bin/env python3
"""On-demand queue runners against always-on ones (mailmanctl), in a booted host (tests/systemd_host.py):
memory of an idle domain, the latency of one post, the time of a burst of posts.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_runners.py [--dist trixie]
        [--latency-posts 200] [--posts 1000] [--members 50] [--project DIR]

Builds (sbuild, prefix mode) two domains of one project: lists.example.org with on-demand
runners, lists.example.net with always-on runners; installs both in one booted host; then
1. idle memory: PSS summed over each domain's processes (and their count), on-demand,
   always-on with one process per runner (mm_cfg.py as shipped), always-on with the fork's
   counts (the QRUNNERS line removed from mm_cfg.py);
2. latency: posts sent one after another, each waited for, to a list whose one member is
   the poster, from `sendmail` until the post is in the member's mailbox;
3. throughput: a burst of posts to a list of --members members, from the first `sendmail`
   until every post is in the mailbox. The members are virtual aliases of one local user,
   which Postfix merges, so Postfix delivers each post once; Mailman still sends each post
   to all of them. Busy memory is sampled meanwhile.
--project DIR keeps the project (build, signed repository) there and reuses it when it is
already built. Writes bench/results/runners-<dist>-<date>.json.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, TestUpstream, real_flavour  # noqa: E402
from helpers.e2e_host import HOSTNAME, prefix  # noqa: E402
from helpers.systemd_host import Project, path_unit, processes_of, unit, unit_property  # noqa: E402
from helpers.lists import address, wait_until  # noqa: E402
from helpers.systemd_host import boot_with_repository  # noqa: E402
from test_systemd import make_users_lists, qrunners, runners_up  # noqa: E402

from mmdeb import PATCHES_DIR  # noqa: E402

MODES = {"on-demand": DOMAIN, "always-on": OTHER_DOMAIN}
SETTLE_S = 15  # after a start, before idle memory is read
ONE_EACH = "QRUNNERS = [(name, 1) for name, processes in QRUNNERS]"
FORK_DEFAULT_RUNNERS = 19  # Incoming 4, Outgoing 8, Bounce 2, five others 1 each
SINK_USER = "carol"


def built_repository(directory: Path, dist: str, upstream: TestUpstream) -> tuple[Path, bool]:
    """The project's signed repository, and whether it was built now (not already there)."""
    repo = directory / "repo"
    if (repo / "current").exists():
        return repo, False
    project = Project(directory, upstream)
    for mode, domain in MODES.items():
        project.add(domain, dist=dist, runners=mode)
    project.rebuild_and_publish()
    return repo, True


# -- memory ------------------------------------------------------------------------

def memory(host, domain: str) -> dict:
    """PSS and RSS (KiB) summed over the domain's processes, as the host's kernel counts them."""
    processes = processes_of(host, domain)
    pids = " ".join(str(pid) for pid, _, _ in processes)
    # One command for all: a process may end meanwhile, and then adds nothing.
    script = f"for p in {pids}; do echo $p $(grep -E '^(Pss|Rss):' /proc/$p/smaps_rollup 2>/dev/null); done"
    pss = rss = runners_pss = 0
    counted = 0
    kinds = {pid: "runner" if "/bin/qrunner" in args or "/bin/mailmanctl" in args else "other" for pid, _, args in processes}
    for line in host.run("sh", "-c", script).stdout.splitlines() if pids else []:
        fields = line.split()
        values = dict(zip(fields[1::3], (int(v) for v in fields[2::3])))
        if "Pss:" not in values:
            continue
        counted += 1
        pss += values["Pss:"]
        rss += values["Rss:"]
        if kinds.get(int(fields[0])) == "runner":
            runners_pss += values["Pss:"]
    return {"processes": counted, "pss_kib": pss, "rss_kib": rss, "runners_pss_kib": runners_pss}


def cpu_seconds(host, domain: str) -> float:
    """User and system CPU time of the domain's processes now running, in seconds."""
    pids = " ".join(str(pid) for pid, _, _ in processes_of(host, domain))
    if not pids:
        return 0.0
    ticks = host.run("sh", "-c", f"cat {' '.join(f'/proc/{p}/stat' for p in pids.split())} 2>/dev/null; getconf CLK_TCK",
                     check=False).stdout.splitlines()
    per_second = int(ticks[-1])
    # Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
    return sum(int(f[11]) + int(f[12]) for f in (line.rsplit(")", 1)[1].split() for line in ticks[:-1])) / per_second


def idle(host, domain: str, expect_runners: int) -> dict:
    if expect_runners:
        wait_until(lambda: len(qrunners(host, domain)) >= expect_runners, timeout=120,
                   what=f"{expect_runners} qrunners of {domain}")
    time.sleep(SETTLE_S)
    before = cpu_seconds(host, domain)
    time.sleep(30)
    result = memory(host, domain)
    result["idle_cpu_s_per_min"] = round((cpu_seconds(host, domain) - before) * 2, 2)
    return result


def bench_idle_memory(host) -> dict:
    always = MODES["always-on"]
    results = {"on-demand": idle(host, MODES["on-demand"], 0), "always-on, one process per runner": idle(host, always, 8)}
    config = host.root / "etc/mailmen" / always / "mm_cfg.py"
    shipped = config.read_text()
    assert ONE_EACH in shipped, f"{config} has no line {ONE_EACH!r}"
    try:
        config.write_text(shipped.replace(ONE_EACH, ""))
        host.run("systemctl", "restart", unit(always))
        results["always-on, the fork's counts"] = idle(host, always, FORK_DEFAULT_RUNNERS)
    finally:
        config.write_text(shipped)
        host.run("systemctl", "restart", unit(always))
    runners_up(host, always)
    return results


# -- mail --------------------------------------------------------------------------

class Mailbox:
    """A local user's mbox file, read from where the last look ended."""

    def __init__(self, host, user: str):
        self.path = host.root / "var/mail" / user
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def new(self) -> bytes:
        if not self.path.exists():
            return b""
        with open(self.path, "rb") as mbox:
            mbox.seek(self.offset)
            data = mbox.read()
        data = data[:data.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(data)
        return data


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 3)


def bench_latency(host, domain: str, posts: int, timeout: float = 60) -> dict:
    """Posts from bob to the users list (bob alone), one after another."""
    latencies, lost = [], 0
    inbox = Mailbox(host, "bob")
    for n in range(posts):
        token = f"lat-{os.getpid()}-{n}-{time.time_ns()}".encode()
        seen = b""
        start = time.monotonic()
        host.send(address("bob"), f"users@{domain}", token.decode(), user="bob")
        while token not in seen and time.monotonic() - start < timeout:
            time.sleep(0.1)
            seen += inbox.new()
        if token in seen:
            latencies.append(round(time.monotonic() - start, 3))
        else:
            lost += 1
    return {"posts": posts, "delivered": len(latencies), "lost": lost,
            "p50_s": percentile(latencies, 50) if latencies else None,
            "p95_s": percentile(latencies, 95) if latencies else None,
            "mean_s": round(statistics.mean(latencies), 3) if latencies else None,
            "min_s": min(latencies, default=None), "max_s": max(latencies, default=None), "latencies_s": latencies}


def make_burst_lists(host, members: int) -> None:
    """A `burst` list in each domain with members sink1..sinkN@host, all virtual aliases of
    SINK_USER: Mailman sends every post to N recipients, Postfix delivers it once."""
    (host.root / "etc/postfix/bench-sinks").write_text(rf"/^sink[0-9]+@{re.escape(HOSTNAME)}$/ {SINK_USER}" + "\n")
    maps = host.run("postconf", "-h", "virtual_alias_maps").stdout.strip()
    host.run("postconf", "-e", f"virtual_alias_maps = {maps + ', ' if maps else ''}regexp:/etc/postfix/bench-sinks")
    # Else Postfix keeps one recipient per original address (for X-Original-To), so it would not merge them.
    host.run("postconf", "-e", "enable_original_recipient = no")
    host.run("postfix", "reload")
    sinks = "".join(f"sink{i}@{HOSTNAME}\n" for i in range(1, members + 1))
    for domain in MODES.values():
        host.run(f"{prefix(domain)}/bin/newlist", "-q", "burst", address("alice"), "listpassword")
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "burst", input=sinks)


def drains(host, domain: str, since: str) -> int:
    """Runs of the on-demand service that ended since then."""
    journal = host.run("journalctl", "--no-pager", "-o", "cat", "-u", unit(domain, on_demand=True), "--since", since,
                       check=False).stdout
    return journal.count("Deactivated successfully")


def bench_burst(host, domain: str, posts: int, members: int, timeout: float) -> dict:
    run = f"b{os.getpid()}x{time.time_ns() % 10**6}"
    sender = f"sink1@{HOSTNAME}"  # a member: a non-member's post would be held
    script = (f"i=0; while [ $i -lt {posts} ]; do i=$((i+1)); "
              f"printf 'From: {sender}\\nTo: burst@{domain}\\nSubject: {run}-%s\\n"
              f"Message-ID: <%s.{run}@{HOSTNAME}>\\n\\npost %s\\n' "
              f"$i $i $i | /usr/sbin/sendmail -f {sender} burst@{domain}; done")
    pattern = re.compile(rb"^Subject: .*" + run.encode() + rb"-(\d+)", re.M)
    inbox = Mailbox(host, SINK_USER)
    since = host.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    sent: dict = {}
    start = time.monotonic()

    def send() -> None:
        host.run("sh", "-c", script)
        sent["s"] = round(time.monotonic() - start, 1)

    sender_thread = threading.Thread(target=send)
    sender_thread.start()
    arrived, deliveries, samples, last = set(), 0, [], 0.0
    while len(arrived) < posts and time.monotonic() - start < timeout:
        found = pattern.findall(inbox.new())
        deliveries += len(found)
        arrived.update(found)
        delivered = len(arrived)
        if time.monotonic() - last >= 2:
            last = time.monotonic()
            samples.append({"t_s": round(last - start, 1), "delivered": delivered, **memory(host, domain)})
        else:
            time.sleep(0.5)
    elapsed = round(time.monotonic() - start, 1)
    sender_thread.join()
    delivered = len(arrived)
    result = {"posts": posts, "members": members, "delivered": delivered, "mailbox_deliveries": deliveries,
              "seconds": elapsed if delivered == posts else None, "sending_s": sent.get("s"),
              "posts_per_min": round(delivered / elapsed * 60, 1),
              "peak_pss_kib": max((s["pss_kib"] for s in samples), default=0),
              "peak_runners_pss_kib": max((s["runners_pss_kib"] for s in samples), default=0),
              "peak_processes": max((s["processes"] for s in samples), default=0), "samples": samples}
    if domain == MODES["on-demand"]:
        result["drain_runs"] = drains(host, domain, since)
    if delivered < posts:
        service = unit(domain, on_demand=domain == MODES["on-demand"])
        result["journal"] = host.run("journalctl", "--no-pager", "-n", "60", "-u", service, check=False).stdout
    return result


@contextmanager
def booted(repo: Path, work: Path, dist: str, packages: list[str], results: dict):
    """A booted host with packages installed from repo, removed at the end."""
    # boot_with_repository needs only the project's repository.
    host = boot_with_repository(SimpleNamespace(repo=repo), work / "host", dist, packages, results["timings"])
    try:
        yield host
    finally:
        host.stop()
        subprocess.run(["rm", "-rf", "--one-file-system", str(host.root)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dist", default="trixie")
    parser.add_argument("--latency-posts", type=int, default=200)
    parser.add_argument("--posts", type=int, default=1000, help="posts in the burst")
    parser.add_argument("--members", type=int, default=50, help="members of the burst's list")
    parser.add_argument("--burst-timeout", type=float, default=3600)
    parser.add_argument("--project", type=Path, help="keep the built project here; reused if already built")
    parser.add_argument("--only", default="memory,latency,burst", help="which benches, comma-separated")
    args = parser.parse_args()
    if not os.environ.get("MMDEB_UPSTREAM_TARBALL"):
        sys.exit("needs MMDEB_UPSTREAM_TARBALL (the real Mailman)")
    upstream = TestUpstream(Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve(), real_flavour(), PATCHES_DIR, True)
    only = args.only.split(",")
    results = {"date": date.today().isoformat(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "dist": args.dist, "upstream": upstream.tarball.name, "argv": sys.argv,
               "environment": {key: os.environ.get(key) for key in ("MMDEB_UPSTREAM_TARBALL", "MMDEB_UPSTREAM_FLAVOUR")},
               "load_at_start": os.getloadavg(), "domains": MODES, "timings": {}}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"runners-{args.dist}-{results['date']}.json"

    def save(key: str, value) -> None:
        results[key] = value
        target.write_text(json.dumps(results, indent=2) + "\n")  # after each bench: a later failure keeps it
        print(key, json.dumps(value if key != "latency" else {m: {k: v for k, v in r.items() if k != "latencies_s"}
                                                              for m, r in value.items()}), flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-runners-") as work:
        directory = args.project or Path(work) / "project"
        directory.mkdir(parents=True, exist_ok=True)
        start = time.monotonic()
        repo, built = built_repository(directory, args.dist, upstream)
        results["timings"]["build_s"] = round(time.monotonic() - start, 1) if built else "reused (--project)"
        with booted(repo, Path(work), args.dist, [f"mailman-{domain}" for domain in MODES.values()], results) as host:
            make_users_lists(host)
            if "memory" in only:
                save("idle_memory", bench_idle_memory(host))
            if "latency" in only:
                save("latency", {mode: bench_latency(host, domain, args.latency_posts) for mode, domain in MODES.items()})
            if "burst" in only:
                make_burst_lists(host, args.members)
                burst = {}
                for mode, domain in MODES.items():
                    burst[mode] = bench_burst(host, domain, args.posts, args.members, args.burst_timeout)
                    save("burst", burst)
            # A start limit hit by quick runs fails it, and the queues then wait for the timer.
            path = path_unit(MODES["on-demand"])
            results["path_unit_at_end"] = {prop: unit_property(host, path, prop) for prop in ("ActiveState", "Result")}
            results["load_at_end"] = os.getloadavg()
            save("finished", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
