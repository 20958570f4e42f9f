#!/usr/bin/env python3
"""From empty to serving: N domains (shared mode, on-demand runners) on a booted host (issue 24).

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_hundred.py --domains 20
        [--dist trixie] [--builder sbuild] [--project DIR]

1. build and publish: `mmdeb domains add`, `rebuild` and `publish` of the core, mailmen-common
   and N thin domain packages lists-NNN.example.org; the repository's bytes per thin domain
   version (its .deb, .dsc and source files in the pool).
2. install, in a booted host (tests/helpers/systemd_host.py) with Postfix and Apache running:
   all but the last 10 domains in one `apt-get install`, then the last 10 in another, each
   timed, with the daemon-reloads (PID 1's journal), Apache's reloads and restarts, Postfix's
   reloads and the unit links of each domain counted per transaction.
3. serving: every domain's listinfo over HTTPS; a post to the first, middle and last domain's
   `users` list, each in bob's mailbox.
4. one more: domain N+1 added, built, published and installed on that host, timed.
--project DIR keeps the built project and reuses it when it is already built.
Writes bench/results/hundred-<N>-<dist>-<date>.json, after each step.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from helpers.e2e_host import prefix  # noqa: E402
from helpers.lists import USERS, address, wait_until  # noqa: E402
from helpers.repository import serve  # noqa: E402
from helpers.systemd_host import Project, SystemdHost, daemon_reloads, instance_links  # noqa: E402
from helpers.tls import curl_argv, preseed_certificates  # noqa: E402
from helpers.upstreams import TestUpstream, real_flavour  # noqa: E402

from mmdeb import PATCHES_DIR  # noqa: E402
from mmdeb.domains.state import State  # noqa: E402

LAST = 10  # the last domains, installed in a transaction of their own


def domain_names(first: int, count: int) -> list[str]:
    return [f"lists-{n:03d}.example.org" for n in range(first, first + count)]


def journal_count(host, unit: str, *starts: str) -> int:
    """Lines of unit's journal (this boot) that start with one of starts."""
    lines = host.run("journalctl", "--boot", "--no-pager", "-o", "cat", "-u", unit, check=False).stdout.splitlines()
    return sum(1 for line in lines if line.startswith(starts))


def server_events(host) -> dict[str, int]:
    """What has happened to systemd and the servers since boot: reloads and restarts."""
    postfix = host.run("journalctl", "--boot", "--no-pager", "-o", "cat", "-t", "postfix/master", check=False).stdout
    return {"daemon_reloads": daemon_reloads(host),
            "apache_reloads": journal_count(host, "apache2.service", "Reloading"),
            "apache_restarts": journal_count(host, "apache2.service", "Stopping"),
            "postfix_reloads": postfix.count("reload -- version")}


def since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in before}


def pool_bytes(repo: Path, domain: str) -> int:
    """The repository's bytes of every version of domain's package."""
    return sum(path.stat().st_size for path in (repo / "current").rglob(f"mailman-{domain}_*") if path.is_file())


def timed_install(host, domains: list[str]) -> dict:
    before = server_events(host)
    start = time.monotonic()
    host.run("apt-get", "install", "--yes", *[f"mailman-{domain}" for domain in domains])
    seconds = round(time.monotonic() - start, 1)
    return {"domains": len(domains), "seconds": seconds, "seconds_per_domain": round(seconds / len(domains), 2),
            **since(before, server_events(host))}


def serving(host, domains: list[str]) -> dict:
    """Each domain's listinfo over HTTPS, and a post to the first, middle and last domain."""
    failing = [domain for domain in domains
               if host.run(*curl_argv(domain, "mailman/listinfo"), "-sf", "-o", "/dev/null", check=False).returncode]
    posted = list(dict.fromkeys([domains[0], domains[len(domains) // 2], domains[-1]]))
    for domain in posted:
        host.run(f"{prefix(domain)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=address("bob") + "\n")
    start = time.monotonic()
    tokens = {domain: f"bench-{domain}-{time.time_ns()}" for domain in posted}
    for domain, token in tokens.items():
        host.send(address("bob"), f"users@{domain}", token, user="bob")
    boxes = lambda: " ".join(str(message["Subject"]) for message in host.mailbox("bob"))  # noqa: E731
    wait_until(lambda: all(token in boxes() for token in tokens.values()), timeout=300, what="the posts")
    return {"listinfo_failing": failing, "posted": posted, "all_delivered_s": round(time.monotonic() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--dist", default="trixie")
    parser.add_argument("--builder", default="sbuild")
    parser.add_argument("--project", type=Path, help="keep the built project here; reused if already built")
    args = parser.parse_args()
    if not os.environ.get("MMDEB_UPSTREAM_TARBALL"):
        sys.exit("needs MMDEB_UPSTREAM_TARBALL (the real Mailman)")
    upstream = TestUpstream(Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve(), real_flavour(), PATCHES_DIR, True)
    domains = domain_names(1, args.domains)
    results = {"date": date.today().isoformat(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "machine": machine(), "dist": args.dist, "builder": args.builder, "upstream": upstream.tarball.name,
               "argv": sys.argv, "mode": "shared", "runners": "on-demand", "load_at_start": os.getloadavg()}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"hundred-{args.domains}-{args.dist}-{results['date']}.json"

    def save(key: str, value) -> None:
        results[key] = value
        target.write_text(json.dumps(results, indent=2) + "\n")
        print(key, json.dumps(value)[:1000], flush=True)

    start_all = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-hundred-") as work:
        directory = args.project or Path(work) / "project"
        directory.mkdir(parents=True, exist_ok=True)
        project = Project(directory, upstream)
        if not (project.repo / "current").exists():
            start = time.monotonic()
            project.add(*domains, dist=args.dist, mode="shared")
            project.rebuild_and_publish("--builder", args.builder)
            save("build_and_publish_s", round(time.monotonic() - start, 1))
        save("repository_bytes_per_domain", round(sum(pool_bytes(project.repo, domain) for domain in domains) / len(domains)))
        host = SystemdHost.create(Path(work) / "host", args.dist)
        try:
            host.boot()
            for user in USERS:
                host.run("useradd", "--create-home", user)
            host.use_repository(project.repo, args.dist)
            serve(project.repo, host)
            extra = domain_names(args.domains + 1, 1)
            preseed_certificates(host, *domains, *extra)
            first, last = domains[:-LAST] or domains[:1], domains[-LAST:] if len(domains) > LAST else domains[1:]
            save("install_first", timed_install(host, first))
            if last:
                save("install_last_10", timed_install(host, last))
            save("unit_links_per_domain", max(len(instance_links(host, domain)) for domain in domains))
            save("serving", serving(host, domains))
            save("from_empty_to_serving_s", round(time.monotonic() - start_all, 1))
            start = time.monotonic()
            if extra[0] not in State.load(project.state).domains:  # a reused project may have it
                project.add(*extra, dist=args.dist, mode="shared")
            project.rebuild_and_publish("--builder", args.builder)
            serve(project.repo, host)
            added = timed_install(host, extra)
            save("one_more_domain", {"build_publish_install_s": round(time.monotonic() - start, 1), "install": added})
        finally:
            host.stop()
    results["load_at_end"] = os.getloadavg()
    save("finished", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
