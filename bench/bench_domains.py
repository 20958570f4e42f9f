#!/usr/bin/env python3
"""Many domains on one small host: N domains (shared mode, on-demand runners) installed in one
booted host (tests/systemd_host.py), all idle, then one post to each of a few random domains.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_domains.py [--domains 100]
        [--posted 10] [--dist trixie] [--seed 1] [--project DIR]

Builds the core and N domain packages lists-NNN.example.org with `mmdeb rebuild` (--builder,
sbuild by default; one job per CPU) and publishes them; installs them all with one `apt-get install` in a fresh
booted host; creates a `users` list with bob as its member in each domain; waits until no
domain runs a process. Then measures:
1. idle: the Mailman processes of all domains (count, PSS), systemd's inotify instances and
   PSS (PID 1 holds the path units), the units loaded;
2. posts: one post to each of --posted domains drawn at random (--seed), each from `sendmail`
   until it is in bob's mailbox, sent together; every post must arrive. The Mailman
   processes' memory is sampled meanwhile.
--project DIR keeps the built project and reuses it when it is already built.
Writes bench/results/domains-<dist>-<date>.json.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from bench_runners import Mailbox, booted  # noqa: E402
from helpers.upstreams import TestUpstream, real_flavour  # noqa: E402
from helpers.e2e_host import prefix  # noqa: E402
from helpers.systemd_host import Project, pid1_inotify_instances  # noqa: E402
from helpers.lists import address, wait_until  # noqa: E402

from mmdeb import PATCHES_DIR  # noqa: E402

MAILMEN = "/var/lib/mailmen/"


def domain_names(count: int) -> list[str]:
    return [f"lists-{n:03d}.example.org" for n in range(1, count + 1)]


def built_repository(directory: Path, dist: str, upstream: TestUpstream, domains: list[str],
                     builder: str) -> tuple[Path, float | None]:
    """The project's signed repository, and its build time (None: it was already built)."""
    repo = directory / "repo"
    if (repo / "current").exists():
        return repo, None
    start = time.monotonic()
    project = Project(directory, upstream)
    project.add(*domains, dist=dist, mode="shared")
    project.rebuild_and_publish("--builder", builder)
    return repo, round(time.monotonic() - start, 1)


def mailman_processes(host) -> list[int]:
    """Every process running a program of a domain's prefix, or as list."""
    pids = []
    for line in host.run("ps", "-eo", "pid=,user=,args=").stdout.splitlines():
        pid, user, args = line.split(None, 2)
        if user == "list" or MAILMEN in args:
            pids.append(int(pid))
    return pids


def pss_kib(host, pids: list[int]) -> tuple[int, int]:
    """PSS summed over pids, and how many of them were still there to be counted."""
    if not pids:
        return 0, 0
    script = f"for p in {' '.join(map(str, pids))}; do grep '^Pss:' /proc/$p/smaps_rollup 2>/dev/null; done"
    values = [int(line.split()[1]) for line in host.run("sh", "-c", script).stdout.splitlines()]
    return sum(values), len(values)


def idle_state(host, domains: list[str]) -> dict:
    pids = mailman_processes(host)
    pss, counted = pss_kib(host, pids)
    pid1_pss, _ = pss_kib(host, [1])
    units = host.run("systemctl", "list-units", "--all", "--no-legend", "--plain", "mailman-*").stdout.splitlines()
    paths_active = sum(1 for line in units if line.split()[0].endswith(".path") and line.split()[2] == "active")
    return {"mailman_processes": counted, "mailman_pss_kib": pss, "systemd_pid1_pss_kib": pid1_pss,
            "systemd_inotify_instances": pid1_inotify_instances(host), "mailman_units_loaded": len(units),
            "path_units_active": paths_active, "domains": len(domains)}


def post_to(host, domains: list[str], timeout: float) -> dict:
    inbox = Mailbox(host, "bob")
    tokens = {domain: f"bench-{domain}-{time.time_ns()}" for domain in domains}
    start = time.monotonic()
    for domain, token in tokens.items():
        host.send(address("bob"), f"users@{domain}", token, user="bob")
    arrived: dict = {}
    seen, samples = b"", []
    while len(arrived) < len(tokens) and time.monotonic() - start < timeout:
        seen += inbox.new()
        for domain, token in tokens.items():
            if domain not in arrived and token.encode() in seen:
                arrived[domain] = round(time.monotonic() - start, 2)
        pids = mailman_processes(host)
        pss, counted = pss_kib(host, pids)
        samples.append({"t_s": round(time.monotonic() - start, 1), "processes": counted, "pss_kib": pss})
        time.sleep(0.5)
    return {"posted": domains, "delivered": len(arrived), "lost": sorted(set(tokens) - set(arrived)),
            "seconds_to_mailbox": arrived, "all_delivered_s": max(arrived.values()) if len(arrived) == len(tokens) else None,
            "peak_processes": max(s["processes"] for s in samples), "peak_pss_kib": max(s["pss_kib"] for s in samples),
            "samples": samples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--posted", type=int, default=10, help="domains that get a post")
    parser.add_argument("--dist", default="trixie")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=300, help="for the posts to arrive")
    parser.add_argument("--builder", default="sbuild",
                        help="local: dpkg-buildpackage on this host, about twice as fast; what runs is the same")
    parser.add_argument("--project", type=Path, help="keep the built project here; reused if already built")
    args = parser.parse_args()
    if not os.environ.get("MMDEB_UPSTREAM_TARBALL"):
        sys.exit("needs MMDEB_UPSTREAM_TARBALL (the real Mailman)")
    upstream = TestUpstream(Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve(), real_flavour(), PATCHES_DIR, True)
    domains = domain_names(args.domains)
    results = {"date": date.today().isoformat(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "dist": args.dist, "builder": args.builder, "upstream": upstream.tarball.name, "argv": sys.argv,
               "mode": "shared", "runners": "on-demand", "load_at_start": os.getloadavg(), "timings": {}}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"domains-{args.dist}-{results['date']}.json"

    def save(key: str, value) -> None:
        results[key] = value
        target.write_text(json.dumps(results, indent=2) + "\n")  # after each step: a later failure keeps it
        print(key, json.dumps(value)[:2000], flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-domains-") as work:
        directory = args.project or Path(work) / "project"
        directory.mkdir(parents=True, exist_ok=True)
        repo, build_s = built_repository(directory, args.dist, upstream, domains, args.builder)
        results["timings"]["build_and_publish_s"] = build_s if build_s is not None else "reused (--project)"
        start = time.monotonic()
        with booted(repo, Path(work), args.dist, [f"mailman-{domain}" for domain in domains], results) as host:
            results["timings"]["boot_and_install_s"] = round(time.monotonic() - start, 1)
            start = time.monotonic()
            for domain in domains:
                host.run(f"{prefix(domain)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
                host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")
            results["timings"]["lists_s"] = round(time.monotonic() - start, 1)
            wait_until(lambda: not mailman_processes(host), timeout=600, what="every domain to go idle")
            time.sleep(30)
            save("idle", idle_state(host, domains))
            chosen = random.Random(args.seed).sample(domains, args.posted)
            save("posts", post_to(host, chosen, args.timeout))
            wait_until(lambda: not mailman_processes(host), timeout=600, what="every domain to go idle again")
            save("idle_after_posts", idle_state(host, domains))
            results["load_at_end"] = os.getloadavg()
            save("finished", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
