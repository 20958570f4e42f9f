#!/usr/bin/python3
"""Where mmdeb-import's time goes: runs it in this process, as bin/mmdeb-import does, with each
phase of ListImport timed. Prints JSON. Run with the fork's bin/ on PYTHONPATH (for paths.py):

    PYTHONPATH=PREFIX/bin python3 bench/import_phases.py SOURCE
"""

import contextlib
import io
import json
import sys
import time
from collections import Counter

import paths  # noqa: F401  (the domain's Mailman and pythonlib/mmdeb)
from mmdeb.importing import listimport

PHASES = {
    "copying": ("copy_tree",),  # files moved as they are: pipermail's pages, the mbox
    "converting": ("config", "requests", "list_data", "templates", "archive_data"),  # py2 data for the fork
    "permissions": ("own",),
}
spent = Counter()


def timed(phase, function):
    def run(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[phase] += time.perf_counter() - start
    return run


def main():
    for phase, methods in PHASES.items():
        for method in methods:
            setattr(listimport.ListImport, method, timed(phase, getattr(listimport.ListImport, method)))
    make_target = listimport.mailman_target

    def mailman_target():
        target, python, prefix = make_target()
        target.finish = timed("mailman", target.finish)  # MailList load and save, fix_url
        return target, python, prefix

    listimport.mailman_target = mailman_target
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = listimport.main(sys.argv[1:])
    total = time.perf_counter() - start
    phases = {phase: round(seconds, 1) for phase, seconds in spent.items()}
    phases["other"] = round(total - sum(spent.values()), 1)  # genaliases, check_perms -f, reading SOURCE
    print(json.dumps({"status": status, "total_s": round(total, 1), "phases_s": phases}))


if __name__ == "__main__":
    main()
