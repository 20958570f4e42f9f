#!/usr/bin/env python3
"""Time the booted-system test harness (tests/systemd_host.py): making the cached tree, a
host's copy of it, boot until `systemctl is-system-running` says running, reboot, poweroff;
and the wall time of the whole tests/test_systemd.py run (real tarball): with --module it
runs it, else it takes the timings its last run wrote (build/test-artifacts/).

    bench/bench_systemd.py --dists trixie,bookworm --boots 5
    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_systemd.py --module

Writes bench/results/systemd-<date>.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from helpers.systemd_host import SystemdHost, base_tree  # noqa: E402

MODULE_TIMINGS = Path(__file__).parent.parent / "build" / "test-artifacts" / "systemd-timings.json"


def timed(action) -> tuple[float, object]:
    start = time.monotonic()
    result = action()
    return round(time.monotonic() - start, 2), result


def bench_dist(dist: str, boots: int) -> dict:
    tree_s, _ = timed(lambda: base_tree(dist))  # ~0 when the tree is cached already
    with tempfile.TemporaryDirectory(prefix="bench-systemd-") as work:
        copy_s, host = timed(lambda: SystemdHost.create(Path(work) / "host", dist))
        boot_times, reboot_times, poweroff_times = [], [], []
        try:
            for _ in range(boots):
                boot_times.append(round(host.boot(), 2))
                reboot_s, _ = timed(host.reboot)  # shutdown, then boot until running
                reboot_times.append(reboot_s)
                poweroff_s, _ = timed(host.poweroff)
                poweroff_times.append(poweroff_s)
        finally:
            host.stop()
            subprocess.run(["rm", "-rf", "--one-file-system", str(host.root)], check=False)
    return {"tree_s": tree_s, "copy_s": copy_s, "boot_s": boot_times, "boot_median_s": statistics.median(boot_times),
            "reboot_s": reboot_times, "poweroff_s": poweroff_times}


def bench_module() -> dict:
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/test_systemd.py"],
                            cwd=Path(__file__).parent.parent, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    return {"wall_s": round(time.monotonic() - start, 1), "pytest_summary": summary,
            "inside": json.loads(MODULE_TIMINGS.read_text()) if MODULE_TIMINGS.exists() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dists", default="trixie,bookworm")
    parser.add_argument("--boots", type=int, default=5)
    parser.add_argument("--module", action="store_true", help="also time tests/test_systemd.py (needs the real tarball)")
    args = parser.parse_args()
    results = {"date": date.today().isoformat(), "machine": machine(), "dists": {}}
    for dist in args.dists.split(","):
        results["dists"][dist] = bench_dist(dist, args.boots)
        print(dist, results["dists"][dist], flush=True)
    if args.module:
        if not os.environ.get("MMDEB_UPSTREAM_TARBALL"):
            sys.exit("--module needs MMDEB_UPSTREAM_TARBALL")
        results["test_systemd_module"] = bench_module()
        print(results["test_systemd_module"], flush=True)
    elif MODULE_TIMINGS.exists():
        results["test_systemd_module"] = {"last_run": json.loads(MODULE_TIMINGS.read_text())}
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"systemd-{results['date']}.json"
    target.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
