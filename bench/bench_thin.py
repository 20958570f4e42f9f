#!/usr/bin/env python3
"""Time the thin (shared-mode) domain builds alone, for N domains in one call: the marginal
build time of a domain, and the repository bytes of each thin domain version.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_thin.py --domains 1 5 20 [--jobs 2] [--label after]

Uses the user's cached build chroots (~/.cache/mmdeb/chroots), made first if missing; only the
domains' packages are built (not the core, not mailmen-common). Writes
bench/results/thin-<flavour>-<dist>-<date>-<label>.json and prints a summary.
"""

import argparse
import json
import os
import subprocess
import tempfile
import time
from datetime import date
from pathlib import Path

from debian.deb822 import Dsc

from mmdeb.app.places import user_cache
from mmdeb.build.builders import get_builder
from mmdeb.build.builders.chroot import ChrootCache
from mmdeb.build.pipeline import build, first_specs
from mmdeb.domains.domain import Domain
from mmdeb.domains.settings import DomainSettings
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.upstream.tarball import describe

from bench_build import RESULTS, machine

PATCHES = Path(__file__).resolve().parent.parent / "patches"


def pool_bytes(artifacts: list[Path]) -> int:
    """A domain version's bytes in the repository: its .dsc, the files the .dsc lists, its .debs."""
    (dsc,) = (path for path in artifacts if path.suffix == ".dsc")
    with open(dsc, encoding="utf-8") as fh:
        sources = [dsc.parent / entry["name"] for entry in Dsc(fh)["Files"]]
    return sum(path.stat().st_size for path in [dsc, *sources, *(path for path in artifacts if path.suffix == ".deb")])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, nargs="+", default=[1, 5, 20], help="each N to time")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--builder", default="sbuild")
    parser.add_argument("--label", default="", help="a name for this code's results, e.g. before or after")
    args = parser.parse_args()
    tarball = Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="mmdeb-bench-thin-") as scratch:
        upstream = describe(str(tarball), None, read(DEFAULTS), Path(scratch))
        settings = DomainSettings(str(tarball), upstream.flavour.name, upstream.flavour.dists[0], mode="shared")
        builder = get_builder(args.builder, ChrootCache(user_cache() / "chroots", 30, "update"))
        result = {"date": date.today().isoformat(), "machine": machine(), "upstream": tarball.name,
                  "builder": args.builder, "flavour": upstream.flavour.name, "dist": settings.dist, "label": args.label,
                  "commit": commit, "runs": runs}
        name = f"thin-{upstream.flavour.name}-{settings.dist}-{result['date']}{'-' + args.label if args.label else ''}.json"
        for count in args.domains:
            domains = [Domain.parse(f"lists{i}.example.org") for i in range(count)]
            specs = [spec for spec in first_specs(domains, upstream, settings, PATCHES, 1, common=False) if spec.kind == "domain"]
            load = os.getloadavg()[0]
            start = time.monotonic()
            artifacts = build(specs, builder, Path(scratch) / f"out-{count}", args.jobs, Runner())
            seconds = time.monotonic() - start
            pool = pool_bytes([path for path in artifacts if path.name.startswith(f"{specs[0].package}_")])
            runs.append({"domains": count, "jobs": args.jobs, "seconds": round(seconds, 1),
                         "per_domain_s": round(seconds / count, 2), "load_before": round(load, 2),
                         "load_after": round(os.getloadavg()[0], 2), "pool_bytes_per_domain_version": pool})
            print(f"{count} thin domains, --jobs {args.jobs}: {seconds:.1f} s, {seconds / count:.2f} s each; "
                  f"{pool / 1024:.0f} KB in the pool per domain version (load {load:.2f} before)", flush=True)
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")  # after each run: a long one may be stopped
    print(f"written {RESULTS / name}")


if __name__ == "__main__":
    main()
