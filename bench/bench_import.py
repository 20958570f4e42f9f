#!/usr/bin/env python3
"""A large old installation through the importer: the plan on the build host, then mmdeb-import
with the real py3 fork.

    MMDEB_UPSTREAM_TARBALL=/path/mailman-2.2.0.tar.gz bench/bench_import.py [--lists 100]
        [--members 20000] [--messages 50000] [--months 10] [--work DIR]

Generates an old Mailman 2.1 tree in Debian's layout (var/lib/mailman, etc/mailman), written as
Python 2 writes it (tests/py2pickle.py): --lists German (iso-8859-1) lists of one domain, the
members and archived messages spread evenly, each list's archive with its mbox, pipermail's
HTML (a page per message and four indexes per month), its marshal databases (-article holding
pickled Articles) and pipermail.pck. The fork is installed into a prefix (tests/fork_prefix.py),
as the domain package would be, with mmdeb-import. Then measures:
1. plan: `mmdeb import plan SOURCE --json`;
2. copy: `cp -a` of the lists' and archives' directories, the floor for any import;
3. import: bin/mmdeb-import SOURCE, the whole command (genaliases and check_perms -f included),
   and that every list was imported with its members and messages;
4. where the import's time goes: the same import again, in bench/import_phases.py.
Each step is timed until its files are on disk (sync before and after).
Target: the import under 10 minutes on 2 cores, most of it copying.
Writes bench/results/import-<date>.json.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from bench_build import RESULTS, machine  # noqa: E402
from helpers.fork_prefix import install_fork, skeleton_config  # noqa: E402
from helpers.old_mailman import DEBIAN, debian_tree  # noqa: E402
from helpers.py2pickle import Py2Instance, dumps, marshal_dumps  # noqa: E402

DOMAIN = "lists.example.org"
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
               "November", "December")
NAME = "Jürgen Müller-Lüdenscheidt".encode("iso-8859-1")
BODY = ("Grüße aus Köln. " * 40 + "\n").encode("iso-8859-1")  # about 700 bytes, as a short post


def spread(total: int, parts: int) -> list[int]:
    return [total // parts + (index < total % parts) for index in range(parts)]


def write_list(root: Path, skeleton: dict, name: str, members: int, messages: int, months: int) -> None:
    addresses = [f"{name}-{index}@example.net".encode() for index in range(members)]
    list_dir = root / "lists" / name
    list_dir.mkdir(parents=True)
    (list_dir / "config.pck").write_bytes(dumps({
        **skeleton, b"real_name": name.encode(), b"host_name": DOMAIN.encode(), b"preferred_language": b"de",
        b"web_page_url": f"http://{DOMAIN}/mailman/".encode(), b"description": NAME,
        b"members": {address: 0 for address in addresses}, b"digest_members": {},
        b"usernames": {address: NAME for address in addresses}, b"passwords": {address: b"geheim" for address in addresses},
        b"language": {address: b"de" for address in addresses}, b"user_options": {address: 8 for address in addresses}}))
    (list_dir / "request.pck").write_bytes(dumps({b"version": (0, 1)}))
    archive = root / "archives/private" / name
    (archive / "database").mkdir(parents=True)
    (root / "archives/private" / f"{name}.mbox").mkdir()
    mbox = []
    archives = []
    sequence = 0
    for month_index, count in enumerate(spread(messages, months)):
        month = f"2024-{MONTH_NAMES[month_index % 12]}"
        archives.append(month.encode())
        (archive / month).mkdir()
        articles, by_date = {}, {}
        for _ in range(count):
            msgid = f"<{sequence}.{name}@example.net>".encode()
            when = 1704067200 + month_index * 2678400 + sequence
            subject = b"Betreff %d: " % sequence + NAME
            mbox.append(b"From %s Mon Jan  1 00:00:00 2024\nFrom: %s\nSubject: %s\nMessage-ID: %s\n"
                        b"Content-Type: text/plain; charset=iso-8859-1\n\n%s\n"
                        % (addresses[sequence % members], addresses[sequence % members], subject, msgid, BODY))
            (archive / month / f"{sequence:06d}.html").write_bytes(b"<html><body><h1>%s</h1><pre>%s</pre></body></html>\n"
                                                                  % (subject, BODY * 2))
            articles[msgid] = dumps(Py2Instance("Mailman.Archiver.HyperArch", "Article", {
                b"sequence": sequence, b"msgid": msgid, b"subject": subject, b"author": NAME,
                b"email": addresses[sequence % members], b"date": b"%d" % when, b"datestr": b"Mon Jan  1 2024",
                b"body": BODY.splitlines(True), b"_lang": b"de", b"charset": b"iso-8859-1", b"decoded": {}}))
            by_date[b"%d.0\x00%s" % (when, msgid)] = msgid
            sequence += 1
        for index in ("date", "thread", "subject", "author"):
            (archive / month / f"{index}.html").write_bytes(b"<ul>%s</ul>\n" % b"".join(
                b"<li>%s</li>" % key for key in by_date))
            (archive / "database" / f"{month}-{index}").write_bytes(marshal_dumps(by_date))
        (archive / "database" / f"{month}-article").write_bytes(marshal_dumps(articles))
    (archive / "index.html").write_bytes(b"<ul>%s</ul>\n" % b"".join(b"<li>%s</li>" % month for month in archives))
    (archive / "pipermail.pck").write_bytes(dumps({b"archives": archives, b"type": b"month", b"sequence": sequence,
                                                   b"firstdate": 1704067200.0, b"lastdate": 1704067200.0 + sequence}))
    (root / "archives/private" / f"{name}.mbox" / f"{name}.mbox").write_bytes(b"".join(mbox))


def generate(top: Path, skeleton: dict, lists: int, members: int, messages: int, months: int) -> float:
    start = time.monotonic()
    root = debian_tree(top)
    for index, (list_members, list_messages) in enumerate(zip(spread(members, lists), spread(messages, lists))):
        write_list(root, skeleton, f"liste{index:03d}", list_members, list_messages, months)
    return round(time.monotonic() - start, 1)


def timed(argv: list[str], **kwargs) -> tuple[float, subprocess.CompletedProcess]:
    """The time until what argv wrote is on disk: this VM's disk makes writeback of the
    step before, or after, vary the times threefold otherwise."""
    os.sync()
    start = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    os.sync()
    return round(time.monotonic() - start, 1), done


def remove_imported(prefix: Path) -> None:
    for imported in [*prefix.glob("lists/liste*"), *prefix.glob("archives/private/liste*"),
                     *prefix.glob("archives/public/liste*")]:
        shutil.rmtree(imported) if imported.is_dir() and not imported.is_symlink() else imported.unlink()


def size_mib(path: Path) -> float:
    return round(sum(item.stat().st_size for item in path.rglob("*") if item.is_file()) / 2**20, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=100)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=10)
    parser.add_argument("--work", type=Path, help="working directory (default: a temporary one, removed after)")
    args = parser.parse_args()
    tarball = os.environ.get("MMDEB_UPSTREAM_TARBALL")
    if not tarball:
        raise SystemExit("set MMDEB_UPSTREAM_TARBALL to the py3 fork's tarball")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-import-"))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    load_before = os.getloadavg()[0]  # other work on the host stretches the times
    try:
        prefix = install_fork(Path(tarball), work / "fork", DOMAIN)
        source = work / "old"
        generated_s = generate(source, skeleton_config(prefix), args.lists, args.members, args.messages, args.months)
        old_root = source / DEBIAN
        plan_s, plan = timed([sys.executable, "-m", "mmdeb", "--state", str(work / "mmdeb.toml"), "import", "plan",
                              str(source), "--json"])
        planned = json.loads(plan.stdout)["lists"]
        (work / "copy").mkdir()
        copy_s, _ = timed(["cp", "-a", str(old_root / "lists"), str(old_root / "archives"), str(work / "copy")])
        shutil.rmtree(work / "copy")
        import_s, imported = timed([str(prefix / "bin/mmdeb-import"), str(source)])
        rows = [line.split("\t") for line in imported.stdout.splitlines()[1:-1] if not line.startswith("  !")]
        assert len(rows) == args.lists and all(row[4] == "imported" for row in rows), imported.stdout[-3000:]
        assert sum(int(row[1]) for row in rows) == args.members and sum(int(row[2]) for row in rows) == args.messages
        remove_imported(prefix)
        _, profiled = timed([sys.executable, str(Path(__file__).parent / "import_phases.py"), str(source)],
                            env={**os.environ, "PYTHONPATH": str(prefix / "bin")})
        phases = json.loads(profiled.stdout)
        result = {
            "date": date.today().isoformat(), "started": started,
            "machine": machine(), "load_1min_before": round(load_before, 2), "lists": args.lists, "members": args.members, "messages": args.messages,
            "months_per_list": args.months, "source_mib": size_mib(source), "files": sum(1 for _ in source.rglob("*")),
            "generate_s": generated_s, "plan_s": plan_s, "planned_lists": len(planned),
            "copy_s": copy_s, "import_s": import_s, "cp_a_share_of_import": round(copy_s / import_s, 2),
            "import_phases_s": phases["phases_s"],
            "copying_share_of_phases": round(phases["phases_s"]["copying"] / phases["total_s"], 2),
            "target_import_s": 600,
        }
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"import-{result['date']}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
