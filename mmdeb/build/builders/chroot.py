"""Cached build chroot tarballs made by mmdebstrap, shared by the sbuild and pbuilder backends.

A tarball's path only ever changes by os.replace of a complete file, so builds read it without
a lock; making or updating one takes the lock of its dist and arch, so two never run at once.
"""

import fcntl
import hashlib
import os
import re
import time
import urllib.error
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mmdeb.build.builders.base import Builder
from mmdeb.errors import MmdebError
from mmdeb.run import CommandFailed, Runner, require
from mmdeb.upstream.dists import chroot_packages
from mmdeb.upstream.fetch import open_url

DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SECURITY_MIRROR = "http://security.debian.org/debian-security"
TARBALL = re.compile(r"(?P<dist>[a-z]+)-(?P<arch>.+)-[0-9a-f]{12}\.tar\.zst")
PARTIAL = ".partial-"
DAY = 86400
RELEASE_TIMEOUT = 30  # seconds; a HEAD request


def mirror() -> str:
    return os.environ.get("MMDEB_MIRROR", DEFAULT_MIRROR)


def security_mirror() -> str:
    return os.environ.get("MMDEB_SECURITY_MIRROR", DEFAULT_SECURITY_MIRROR)


@dataclass(frozen=True)
class Mirror:
    """Where a distribution's build chroot comes from. Its fields are the keys of a dist's
    entry in mmdeb.conf's chroot.mirrors (mirror_setting_line), each optional there."""

    debian: str
    security: str


# Where Debian keeps a release after its support ended.
ARCHIVE = Mirror("http://archive.debian.org/debian", "http://archive.debian.org/debian-security")


def mirror_setting_line(dist: str, chosen: Mirror) -> str:
    """The line under [chroot] in mmdeb.conf that makes dist's chroots come from chosen."""
    return f'mirrors.{dist} = {{ debian = "{chosen.debian}", security = "{chosen.security}" }}'


def release_url(mirror_url: str, suite: str) -> str:
    return f"{mirror_url.rstrip('/')}/dists/{suite}/Release"


def release_found(url: str) -> bool | None:
    """Whether the mirror has that Release file; None when it cannot be told (no network)."""
    try:
        with open_url(url, RELEASE_TIMEOUT, method="HEAD"):
            return True
    except urllib.error.HTTPError as exc:
        return False if exc.code in (404, 410) else None
    except urllib.error.URLError as exc:  # file://: the file is missing
        return False if isinstance(exc.reason, FileNotFoundError) else None
    except (OSError, ValueError):
        return None


def missing_suite_error(dist: str, suite: str, chosen: Mirror, settings: Path) -> MmdebError:
    """Why the chroot of dist cannot be made when suite's Release is missing from its mirror:
    dist itself gone from a mirror other than the archive means it has moved to the archive."""
    url = suite_mirror(suite, chosen)
    if suite == dist and chosen.debian != ARCHIVE.debian:
        return MmdebError(f"the {dist} build chroot cannot be made: {url} no longer has {dist} ({release_url(url, suite)} "
                          "is missing), so it has moved to archive.debian.org",
                          f"add this line under [chroot] in {settings}: {mirror_setting_line(dist, ARCHIVE)}")
    return MmdebError(f"the {dist} build chroot cannot be made: {url} has no {suite} ({release_url(url, suite)} is missing)",
                      f"correct mirrors.{dist} under [chroot] in {settings}, e.g. {mirror_setting_line(dist, ARCHIVE)}")


def suites(dist: str) -> list[str]:
    """The suites a build chroot of dist uses, as on Debian's buildds. forky (testing) gets its
    -updates and -security too: both exist, almost always empty (testing is fixed by migration
    from unstable), but an urgent fix for testing goes to -security, and nothing has to change
    when forky is released."""
    return [dist, f"{dist}-updates", f"{dist}-security"]


def suite_mirror(suite: str, chosen: Mirror) -> str:
    return chosen.security if suite.endswith("-security") else chosen.debian


def sources_lines(dist: str, chosen: Mirror) -> list[str]:
    return [f"deb {suite_mirror(suite, chosen)} {suite} main" for suite in suites(dist)]


def mmdebstrap_argv(dist: str, arch: str, target: Path, include: list[str], sources: list[str]) -> list[str]:
    return [
        "mmdebstrap",
        "--variant=buildd",
        f"--architectures={arch}",
        f"--include={','.join(include)}",
        # Keep the package lists, so a build dependency missing from the tarball can still be installed.
        "--skip=cleanup/apt/lists",
        dist,
        str(target),
        *sources,  # whole sources.list lines, one per suite
    ]


@dataclass(frozen=True)
class Cached:
    path: Path
    dist: str
    arch: str
    age_days: float
    size: int


class ChrootCache:
    """One tarball per (dist, arch, package set, sources), made again when older than max_age_days."""

    def __init__(self, root: Path, max_age_days: int, when_old: str, mirrors: dict[str, dict[str, str]] | None = None,
                 settings: Path = Path("mmdeb.conf")):
        self.root = root
        self.max_age_days = max_age_days
        self.when_old = when_old
        self.mirrors = mirrors or {}  # chroot.mirrors of mmdeb.conf: dist -> some of Mirror's fields
        self.settings = settings  # that file, for the errors' fixes

    def mirror(self, dist: str) -> Mirror:
        """dist's mirrors: its chroot.mirrors entry, else $MMDEB_MIRROR and $MMDEB_SECURITY_MIRROR, else Debian's."""
        return Mirror(**{"debian": mirror(), "security": security_mirror(), **self.mirrors.get(dist, {})})

    def check_mirror(self, dist: str) -> None:
        """Before mmdebstrap: each suite's Release is on its mirror, or one line says which is not and what to set."""
        chosen = self.mirror(dist)
        for suite in suites(dist):
            if release_found(release_url(suite_mirror(suite, chosen), suite)) is False:
                raise missing_suite_error(dist, suite, chosen, self.settings)

    def path(self, dist: str, arch: str) -> Path:
        key = "\n".join([*chroot_packages(dist), *sources_lines(dist, self.mirror(dist))])
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        return self.root / f"{dist}-{arch}-{digest}.tar.zst"

    @contextmanager
    def lock(self, dist: str, arch: str, wait: bool = True):
        """Held while the tarball of dist and arch is made; raises BlockingIOError if not wait and taken."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / f".{dist}-{arch}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            yield

    def age_days(self, path: Path) -> float:
        return (time.time() - path.stat().st_mtime) / DAY

    def fresh(self, path: Path) -> bool:
        return path.exists() and self.age_days(path) < self.max_age_days

    def ensure(self, dist: str, arch: str, runner: Runner) -> Path:
        """The tarball of dist, made if missing, updated (or refused) if old."""
        target = self.path(dist, arch)
        if self.fresh(target):
            return target
        with self.lock(dist, arch):  # then look again: another mmdeb may have made it meanwhile
            if not target.exists():
                print(f"==> creating the {dist} build chroot {target} (once)", flush=True)
                self.make(dist, arch, runner)
            elif not self.fresh(target):
                age = f"{self.age_days(target):.0f} days old, older than chroot.max_age_days = {self.max_age_days}"
                if self.when_old == "refuse":
                    raise MmdebError(f"the {dist} build chroot {target} is {age}", f"run: mmdeb chroot update {dist}")
                print(f"==> updating the {dist} build chroot {target} ({age})", flush=True)
                self.make(dist, arch, runner)
        return target

    def update(self, dist: str, arch: str, runner: Runner) -> Path:
        with self.lock(dist, arch):
            return self.make(dist, arch, runner)

    def make(self, dist: str, arch: str, runner: Runner) -> Path:
        """A new tarball, from the distribution as it is now, replacing the old one whole; under lock()."""
        require("mmdebstrap", "mmdebstrap")
        require("zstd", "zstd")
        self.check_mirror(dist)
        target = self.path(dist, arch)
        partial = target.with_name(PARTIAL + target.name)
        try:
            # When writing the tarball fails, mmdebstrap sends SIGHUP to its process group.
            runner.run(mmdebstrap_argv(dist, arch, partial, chroot_packages(dist),
                                       sources_lines(dist, self.mirror(dist))), own_group=True,
                       what=f"making the {dist}/{arch} build chroot with mmdebstrap")
            os.replace(partial, target)
        except CommandFailed as exc:
            if "No space left on device" in exc.output:
                kept = "; the old one is kept" if target.exists() else ""
                raise MmdebError(f"the disk of {self.root} is full: the {dist} build chroot was not written{kept}",
                                 f"free space in {self.root}, then run: mmdeb chroot update {dist}")
            raise
        finally:
            partial.unlink(missing_ok=True)
        return target

    def cached(self) -> list[Cached]:
        entries = []
        for path in sorted(self.root.glob("*.tar.zst")):
            match = TARBALL.fullmatch(path.name)
            if match:
                entries.append(Cached(path, match["dist"], match["arch"], self.age_days(path), path.stat().st_size))
        return entries

    def prune(self, used: set[Path]) -> list[Path]:
        """Remove the tarballs not in used and the partial files no update is writing; return them."""
        removed = []
        for entry in self.cached():
            if entry.path not in used:
                entry.path.unlink()
                removed.append(entry.path)
        for partial in sorted(self.root.glob(PARTIAL + "*")):
            match = TARBALL.fullmatch(partial.name.removeprefix(PARTIAL))
            if not match:
                continue  # not a file mmdeb makes
            try:
                with self.lock(match["dist"], match["arch"], wait=False):  # held, so no update starts writing it
                    partial.unlink()
            except BlockingIOError:
                continue  # an update is writing it
            removed.append(partial)
        return removed


class ChrootBuilder(Builder):
    """A builder that runs in the cached mmdebstrap tarball of the dist."""

    def __init__(self, chroots: ChrootCache):
        self.chroots = chroots

    def prepare(self, dist: str, arch: str, runner: Runner) -> None:
        self.chroots.ensure(dist, arch, runner)
