"""Cached build chroot tarballs made by mmdebstrap, shared by the sbuild and pbuilder backends."""

import fcntl
import hashlib
import os
from pathlib import Path

from mmdeb.builders import Builder
from mmdeb.run import Runner, require
from mmdeb.selfpackage import BUILD_DEPENDS as SELF_BUILD_DEPENDS, SELF_DISTS
from mmdeb.upstream import FLAVOURS

DEFAULT_MIRROR = "http://deb.debian.org/debian"


def mirror() -> str:
    return os.environ.get("MMDEB_MIRROR", DEFAULT_MIRROR)


def preinstalled_packages(dist: str) -> list[str]:
    """Build dependencies of every flavour that runs on dist, so warm builds download nothing."""
    packages = {"debhelper", "fakeroot", "po-debconf"}
    for flavour in FLAVOURS.values():
        if dist in flavour.dists:
            packages.update(flavour.build_depends)
    packages.update(SELF_BUILD_DEPENDS if dist in SELF_DISTS else ())  # mmdeb self-build
    return sorted(packages)


def mmdebstrap_argv(dist: str, arch: str, target: Path, include: list[str], mirror_url: str) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=buildd",
        f"--architectures={arch}",
        f"--include={','.join(include)}",
        # Keep the package lists, so a build dependency missing from the tarball can still be installed.
        "--skip=cleanup/apt/lists",
        dist,
        str(target),
        mirror_url,
    ]


class ChrootCache:
    """One tarball per (dist, arch, package set, mirror); created once, under a lock."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, dist: str, arch: str) -> Path:
        key = "\n".join([*preinstalled_packages(dist), mirror()])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.root / f"{dist}-{arch}-{digest}.tar.zst"

    def ensure(self, dist: str, arch: str, runner: Runner) -> Path:
        require("mmdebstrap", "mmdebstrap")
        require("zstd", "zstd")
        target = self.path(dist, arch)
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # parallel mmdeb runs wait for one creator
            if not target.exists():
                print(f"==> creating the {dist} build chroot {target} (once)", flush=True)
                partial = target.with_name(f".partial-{target.name}")
                try:
                    runner.run(mmdebstrap_argv(dist, arch, partial, preinstalled_packages(dist), mirror()))
                    os.replace(partial, target)
                finally:
                    partial.unlink(missing_ok=True)
        return target


class ChrootBuilder(Builder):
    """A builder that runs in the cached mmdebstrap tarball of the dist."""

    def __init__(self, cache_root: Path):
        self.chroots = ChrootCache(cache_root / "chroots")

    def prepare(self, dist: str, arch: str, runner: Runner) -> None:
        self.chroots.ensure(dist, arch, runner)
