"""lintian in a cached tree of the release whose lintian judges a flavour's packages: the
host's lintian can be older than the target's (bookworm's misses trixie's checks)."""

import fcntl
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from mmdeb.build.builders.base import built_package, listed

from mmdeb.build.builders.chroot import mirror
from mmdeb.app.places import current as current_places

# py3: the current stable's, errors and warnings. GNU 2.1 (bullseye): bookworm's, errors
# only; bullseye's does not know the tags our overrides name, trixie's takes bullseye's
# /lib paths for errors, and each Python 2 script draws a warning.
LINTIAN = {"py3": ("trixie", "error,warning"), "gnu": ("bookworm", "error")}


def lintian_tree(dist: str) -> Path:
    """An mmdebstrap tree of dist with lintian, made once (under a lock, atomically)."""
    root = current_places().cache / "lintian"
    root.mkdir(parents=True, exist_ok=True)
    tree = root / dist
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not tree.is_dir():
            partial = root / f".partial-{dist}"
            shutil.rmtree(partial, ignore_errors=True)
            subprocess.run(["mmdebstrap", "--variant=apt", "--include=lintian", dist, str(partial), mirror()],
                           check=True, capture_output=True)
            os.replace(partial, tree)
    return tree


def with_sources(artifact: Path) -> list[Path]:
    """artifact, and for a .dsc the files it names."""
    if artifact.suffix != ".dsc":
        return [artifact]
    return [artifact, *listed(artifact, *built_package(artifact).split(), "build it again")]


def run_lintian(flavour: str, artifacts: list[Path]) -> subprocess.CompletedProcess:
    """The flavour's lintian on artifacts (a .dsc brings the files it names)."""
    return run_dist_lintian(*LINTIAN[flavour], artifacts)


def run_dist_lintian(dist: str, fail_on: str, artifacts: list[Path]) -> subprocess.CompletedProcess:
    """dist's lintian on artifacts, failing on the fail_on severities."""
    tree = lintian_tree(dist)
    work = Path(tempfile.mkdtemp(prefix="lintian-", dir=tree / "tmp"))
    try:
        for artifact in artifacts:
            for path in with_sources(artifact):
                shutil.copy(path, work)
        inside = [f"/tmp/{work.name}/{artifact.name}" for artifact in artifacts]
        return subprocess.run(["chroot", str(tree), "lintian", "--fail-on", fail_on, *inside],
                              capture_output=True, text=True)
    finally:
        shutil.rmtree(work)

