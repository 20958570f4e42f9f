"""What a session fixture makes once per test run, even when pytest-xdist splits the run among
workers: the first worker to ask makes it, the others wait for it and take the same."""

import fcntl
import os
import pickle
import shutil


def once_per_run(tmp_path_factory, name: str, make):
    """make(directory)'s result, made in a directory of the run's own, by one worker only."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return make(tmp_path_factory.mktemp(name))
    root = tmp_path_factory.getbasetemp().parent  # this run's, shared by its workers
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        made = root / f"{name}.pickle"
        if not made.exists():
            directory = root / name
            shutil.rmtree(directory, ignore_errors=True)  # a worker that failed to make it
            directory.mkdir()
            made.write_bytes(pickle.dumps(make(directory)))
        return pickle.loads(made.read_bytes())
