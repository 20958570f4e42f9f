#!/usr/bin/env python3
"""Time `mmdeb build` for one domain cold (no cached chroot) and warm, and the marginal time
per extra domain when N domains are built in one call (sequentially and with --jobs).

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_build.py --domains 3 [--dist trixie]

Writes bench/results/build-<flavour>-<dist>-<date>.json and prints a summary. Uses a fresh cache
directory, so the user's cached chroots are neither used nor touched.
"""

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from mmdeb.upstream.dists import FLAVOURS, flavour_for_version
from mmdeb.upstream.tarball import inspect_tarball
from mmdeb.upstream.fetch import sha256_of

RESULTS = Path(__file__).parent / "results"


def machine() -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kib = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                          if line.startswith("MemTotal")))
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 2**20, 1),
            "kernel": platform.release(), "os": platform.freedesktop_os_release().get("PRETTY_NAME")}


def timed_build(tarball: Path, domains: list[str], out: Path, env: dict, builder: str, jobs: int, dist: str) -> float:
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-m", "mmdeb", "build", *domains, "--upstream", str(tarball),
            "--builder", builder, "--jobs", str(jobs), "--out", str(out), "--dist", dist]
    start = time.monotonic()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - start, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=3, help="N for the N-domain runs")
    parser.add_argument("--builder", default="sbuild")
    parser.add_argument("--dist", help="default: the flavour's default distribution")
    args = parser.parse_args()
    tarball = Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve()
    version, _ = inspect_tarball(tarball)
    flavour = flavour_for_version(version).name
    dist = args.dist or FLAVOURS[flavour].dists[0]
    domains = [f"lists{i}.example.org" for i in range(args.domains)]
    with tempfile.TemporaryDirectory(prefix="mmdeb-bench-") as scratch:
        env = {**os.environ, "MMDEB_CACHE": f"{scratch}/cache"}
        out = Path(scratch) / "out"
        times = {
            "cold_one_domain_s": timed_build(tarball, domains[:1], out, env, args.builder, 1, dist),
            "warm_one_domain_s": timed_build(tarball, domains[:1], out, env, args.builder, 1, dist),
            f"warm_{args.domains}_domains_jobs1_s": timed_build(tarball, domains, out, env, args.builder, 1, dist),
            f"warm_{args.domains}_domains_jobs{os.cpu_count()}_s": timed_build(
                tarball, domains, out, env, args.builder, os.cpu_count(), dist),
        }
    warm = times["warm_one_domain_s"]
    for jobs in (1, os.cpu_count()):
        total = times[f"warm_{args.domains}_domains_jobs{jobs}_s"]
        times[f"marginal_per_domain_jobs{jobs}_s"] = round((total - warm) / (args.domains - 1), 1)
    result = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "builder": args.builder,
        "dist": dist,
        "upstream": {"file": tarball.name, "sha256": sha256_of(tarball), "version": version, "flavour": flavour},
        "times": times,
        "targets": {"warm_one_domain_s": 60, "marginal_per_domain_s": 20},
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"build-{flavour}-{dist}-{result['date']}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(times, indent=2))
    print(f"written to {target}")


if __name__ == "__main__":
    main()
