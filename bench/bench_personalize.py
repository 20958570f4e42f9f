#!/usr/bin/env python3
"""The SMTP cost of per-recipient (personalized) delivery against bulk delivery, for one post to
a list of --members members: SMTP transactions and bytes handed to the MTA, and the wall and CPU
time of the Outgoing runner.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_personalize.py [--members 1000] [--runs 3]

Installs the py3 fork with our patch series into a temporary prefix (tests/helpers/fork_prefix.py)
and makes three lists of the same members (spread over 4 top-level domains, as Mailman's bulk
delivery groups recipients by them): bulk (personalize off), personalized (personalize on: each
member's copy carries its RFC 8058 one-click URL) and the same personalized delivery with
one-click-unsubscribe.patch's Mailman/Handlers hunks taken out (what the tokens cost). Each run
injects a post, runs the Incoming runner, then times `qrunner -r Outgoing -o` (its start-up included) delivering to an
SMTP sink (tests/helpers/smtp_sink.py) in a network namespace. Needs root and iproute2.
Writes bench/results/personalize-<date>.json.
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from helpers.fork_prefix import PYTHON, fork_python, fork_script, install_fork, patch_part, without_patch  # noqa: E402
from helpers.netns_dns import LOOPBACK, SMTP_PORT, netns, smtp_sink  # noqa: E402

from mmdeb import PATCHES_DIR  # noqa: E402

DOMAIN = "lists.example.org"
SERIES = PATCHES_DIR / "py3"
PATCH = SERIES / "one-click-unsubscribe.patch"
TLDS = ("com", "net", "org", "de")
MODES = {"bulk": 0, "personalized": 1, "personalized without one-click": 1}


def make_list(prefix: Path, name: str, personalize: int, members: int) -> None:
    fork_script(prefix, "newlist", "-q", name, f"owner@{DOMAIN}", "pw")
    fork_python(prefix, f"from Mailman import MailList\nm = MailList.MailList({name!r})\n"
                        f"m.personalize = {personalize}\nm.generic_nonmember_action = 0\nm.Save()\nm.Unlock()\n")
    addresses = "".join(f"member{i}@host{i % 7}.example.{TLDS[i % len(TLDS)]}\n" for i in range(members))
    fork_script(prefix, "add_members", "-r", "-", "-w", "n", "-a", "n", name, stdin=addresses)


def one_run(prefix: Path, name: str, sink: Path, run: int) -> dict:
    fork_script(prefix, "inject", "-l", name, stdin=(
        f"From: poster@example.org\nTo: {name}@{DOMAIN}\nSubject: run {run}\nMessage-ID: <{name}.{run}@example.org>\n\n"
        + "A post of about a kilobyte.\n" * 40))
    fork_script(prefix, "qrunner", "-r", "Incoming", "-o")
    sink.mkdir()
    with netns(f"mmdeb-bench-{os.getpid()}") as ns, smtp_sink(ns, sink):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
        subprocess.run(ns.argv([PYTHON, str(prefix / "bin/qrunner"), "-r", "Outgoing", "-o"]), check=True)
        seconds, after = time.monotonic() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    copies = list(sink.iterdir())
    assert not any((prefix / "qfiles/out").iterdir()), "Outgoing left work"
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "transactions": len(copies),
            "bytes": sum(path.stat().st_size for path in copies)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tarball = Path(os.environ["MMDEB_UPSTREAM_TARBALL"]).resolve()
    with tempfile.TemporaryDirectory(prefix="bench-personalize-") as top:
        top = Path(top)
        prefix = install_fork(tarball, top / "fork", DOMAIN, SERIES)
        mm_cfg = prefix / "Mailman/mm_cfg.py"
        mm_cfg.write_text(mm_cfg.read_text() + "DEFAULT_URL_PATTERN = 'https://%s/mailman/'\n"
                          f"SMTPHOST = '{LOOPBACK}'\nSMTPPORT = {SMTP_PORT}\n")
        handlers = patch_part(PATCH, "Mailman/Handlers/", top / "handlers.patch")
        results = {}
        for index, (mode, personalize) in enumerate(MODES.items()):
            name = f"bench{index}"
            make_list(prefix, name, personalize, args.members)
            without = without_patch(prefix, handlers) if mode.endswith("without one-click") else nullcontext()
            with without:
                runs = [one_run(prefix, name, top / f"sink-{index}-{run}", run) for run in range(args.runs)]
            results[mode] = {"runs": runs, "median_seconds": statistics.median(run["seconds"] for run in runs),
                             "median_cpu_seconds": statistics.median(run["cpu_seconds"] for run in runs),
                             "transactions": runs[-1]["transactions"], "bytes": runs[-1]["bytes"]}
            print(mode, json.dumps(results[mode]), flush=True)
    today = date.today().isoformat()
    out = RESULTS / f"personalize-{today}.json"
    out.write_text(json.dumps({"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                               "tarball": tarball.name, "members": args.members, "runs": args.runs,
                               "load_average": os.getloadavg(), "modes": results}, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
