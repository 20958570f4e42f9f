#!/usr/bin/env python3
"""Time a security rebuild of N domains: `mmdeb rebuild` + `mmdeb publish` in shared and in
prefix mode, and a naive loop of one `mmdeb build` per domain; and the installed size per domain.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_rebuild.py --counts 1,10,50

Scenario: a stand-in security fix to Mailman's Python code is added to the patch series.
- shared: N domains and the core are built and published first (timed separately as
  `setup_s`); then the fix is added and `rebuild` + `publish` are timed.
- prefix: every domain package is rebuilt with the fix, so the work is a full build of N
  domains; it is timed as the first `rebuild` + `publish` of N domains with the fix
  already in the series (the same builds; only the changelog differs), which saves
  building them all twice.
- naive: one `mmdeb build` call per domain, one after the other, up to --naive-max
  domains; above that it is reported as N times the measured per-domain time and marked
  as extrapolated.
Writes bench/results/rebuild-<flavour>-<date>.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from bench_build import RESULTS, machine
from mmdeb import PATCHES_DIR
from mmdeb.upstream.dists import flavour_for_version
from mmdeb.upstream.tarball import inspect_tarball
from mmdeb.upstream.fetch import sha256_of

FIX = """\
Description: bench stand-in for a security fix to Mailman's Python code
--- a/Mailman/Version.py
+++ b/Mailman/Version.py
@@ -1,2 +1,3 @@
 # Copyright (C) 1998-2018 by the Free Software Foundation, Inc.
+BENCH_SECURITY_FIX = True
 #
"""


def mmdeb(work: Path, env: dict, *args: str) -> float:
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "mmdeb", "--state", str(work / "mmdeb.toml"), *args],
                   check=True, env=env, cwd=work, stdout=subprocess.DEVNULL)
    return round(time.monotonic() - start, 1)


def installed_kib(deb: Path) -> int:
    return int(subprocess.run(["dpkg-deb", "--field", str(deb), "Installed-Size"], check=True,
                              capture_output=True, text=True).stdout)


def add_fix(patches: Path, flavour: str) -> None:
    (patches / flavour / "bench-security-fix.patch").write_text(FIX)
    with open(patches / flavour / "series", "a") as series:
        series.write("bench-security-fix.patch\n")


def security_rebuild(tarball: Path, flavour: str, mode: str, count: int, scratch: Path, env: dict) -> dict:
    work = scratch / f"{mode}-{count}"
    patches = work / "patches"
    shutil.copytree(PATCHES_DIR, patches)
    domains = [f"lists{i}.example.org" for i in range(count)]
    build = ["--patches", str(patches), "--out", str(work / "build")]
    mmdeb(work, env, "domains", "add", *domains, "--upstream", str(tarball), "--mode", mode)
    result = {}
    if mode == "shared":
        result["setup_s"] = round(mmdeb(work, env, "rebuild", *build) + mmdeb(work, env, "publish", "--out", str(work / "build")), 1)
    add_fix(patches, flavour)
    result["rebuild_s"] = mmdeb(work, env, "rebuild", *build)
    result["publish_s"] = mmdeb(work, env, "publish", "--out", str(work / "build"))
    result["rebuild_and_publish_s"] = round(result["rebuild_s"] + result["publish_s"], 1)
    result["domain_installed_kib"] = installed_kib(sorted((work / "build").glob("*/mailman-lists0.example.org_*.deb"))[-1])
    if cores := sorted((work / "build").glob("*/mailmen-core-*_all.deb")):
        result["core_installed_kib"] = installed_kib(cores[-1])
    shutil.rmtree(work)
    return result


def naive_loop(tarball: Path, count: int, scratch: Path, env: dict) -> float:
    work = scratch / f"naive-{count}"
    work.mkdir()
    total = 0.0
    for i in range(count):
        total += mmdeb(work, env, "build", f"lists{i}.example.org", "--upstream", str(tarball),
                       "--jobs", "1", "--out", str(work / "build"))
    shutil.rmtree(work)
    return round(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,10,50", help="the values of N")
    parser.add_argument("--naive-max", type=int, default=10, help="largest N for which the naive loop is run")
    args = parser.parse_args()
    tarball = Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve()
    version, _ = inspect_tarball(tarball)
    flavour = flavour_for_version(version).name
    counts = [int(n) for n in args.counts.split(",")]
    results = {}
    with tempfile.TemporaryDirectory(prefix="mmdeb-bench-") as scratch_dir:
        scratch = Path(scratch_dir)
        env = {**os.environ, "MMDEB_CACHE": os.environ.get("MMDEB_CACHE", str(Path.home() / ".cache/mmdeb"))}
        for count in counts:
            results[count] = {mode: security_rebuild(tarball, flavour, mode, count, scratch, env)
                              for mode in ("shared", "prefix")}
            if count <= args.naive_max:
                results[count]["naive_loop_s"] = naive_loop(tarball, count, scratch, env)
            shared, prefix = results[count]["shared"], results[count]["prefix"]
            results[count]["prefix_over_shared"] = round(prefix["rebuild_and_publish_s"] / shared["rebuild_and_publish_s"], 1)
            print(count, json.dumps(results[count]), flush=True)
    measured = max(count for count in results if "naive_loop_s" in results[count])
    per_domain = results[measured]["naive_loop_s"] / measured
    for count in results:
        if "naive_loop_s" not in results[count]:
            results[count]["naive_loop_s_extrapolated"] = round(per_domain * count, 1)
    result = {
        "date": date.today().isoformat(),
        "machine": machine(),
        "builder": "sbuild",
        "upstream": {"file": tarball.name, "sha256": sha256_of(tarball), "version": version, "flavour": flavour},
        "scenario": "a new patch to Mailman/Version.py (Python code only), then rebuild + publish; see the docstring",
        "results": results,
        "targets": {"shared_50_domains_s": 180, "prefix_over_shared": 10, "domain_installed_kib": 1024},
    }
    RESULTS.mkdir(exist_ok=True)
    target = RESULTS / f"rebuild-{flavour}-{result['date']}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {target}")


if __name__ == "__main__":
    main()
