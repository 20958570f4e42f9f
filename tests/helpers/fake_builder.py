"""A builder that compiles nothing: for each source package it makes one tiny binary package and
the .changes listing it, as a real builder leaves them, and a tiny native source package stands
in for the real one (fake_source), so tests of what happens around builds (recording,
publishing, resuming) take a second. It fails, raises or makes a broken .deb for the packages it
is told to, and keeps the order it was asked to build in."""

import hashlib
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mmdeb.build.builders.base import Builder
from mmdeb.build.pipeline import changes_name
from mmdeb.errors import MmdebError
from mmdeb.run import Runner


class Bug(Exception):
    """What a builder raises that is not a build failure: a bug, stopping the run."""


class FakeBuilder(Builder):
    name = "fake"

    def __init__(self, failing: set[str] = frozenset(), raising: set[str] = frozenset(),
                 broken: set[str] = frozenset(), before: Callable[[str], None] | None = None):
        self.failing, self.raising, self.broken, self.before = failing, raising, broken, before
        self.asked: list[str] = []  # the packages, in the order their builds started

    def check(self) -> None:
        pass

    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        package, version = dsc.stem.split("_")
        self.asked.append(package)
        if self.before:
            self.before(package)
        if package in self.failing:
            raise MmdebError(f"building {package} {version} failed", "correct the fake builder")
        if package in self.raising:
            raise Bug(f"the fake builder raised while building {package}")
        deb = result_dir / f"{package}_{version}_{arch}.deb"
        if package in self.broken:
            deb.write_bytes(b"not a Debian package")
        else:
            tiny_deb(deb, package, version, arch)
        listing(result_dir / changes_name(package, version, arch), version, [deb])


def fake_source(spec, workdir: Path, *_) -> Path:
    """Stands in for build_source and build_common_source: a native source package of one file."""
    tarball = workdir / f"{spec.package}_{spec.version}.tar.gz"
    with tempfile.TemporaryDirectory() as tree:
        (Path(tree) / "README").write_text(f"{spec.package} {spec.version}, made by the fake builder\n")
        subprocess.run(["tar", "--create", "--gzip", "--file", str(tarball), "--directory", tree, "README"], check=True)
    data = tarball.read_bytes()
    size = len(data)
    dsc = workdir / f"{spec.package}_{spec.version}.dsc"
    dsc.write_text(
        f"Format: 3.0 (native)\nSource: {spec.package}\nBinary: {spec.package}\nArchitecture: any\n"
        f"Section: mail\nPriority: optional\nVersion: {spec.version}\nMaintainer: mmdeb tests <root@localhost>\n"
        f"Checksums-Sha256:\n {hashlib.sha256(data).hexdigest()} {size} {tarball.name}\n"
        f"Files:\n {hashlib.md5(data).hexdigest()} {size} {tarball.name}\n")
    return dsc


def tiny_deb(deb: Path, package: str, version: str, arch: str) -> None:
    with tempfile.TemporaryDirectory() as tree:
        (Path(tree) / "DEBIAN").mkdir()
        (Path(tree) / "DEBIAN/control").write_text(
            f"Package: {package}\nVersion: {version}\nArchitecture: {arch}\nSection: mail\nPriority: optional\n"
            "Maintainer: mmdeb tests <root@localhost>\nDescription: made by the fake builder\n")
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", tree, str(deb)], check=True,
                       capture_output=True)


def listing(changes: Path, version: str, files: list[Path]) -> None:
    lines = [f"Format: 1.8\nVersion: {version}\nChecksums-Sha256:"]
    lines += [f" {hashlib.sha256(path.read_bytes()).hexdigest()} {path.stat().st_size} {path.name}" for path in files]
    changes.write_text("\n".join(lines) + "\n")


def wait_for(condition: Callable[[], bool], what: str, limit: float = 60) -> None:
    """Return once condition() holds; a Bug naming what was awaited if it does not within limit seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise Bug(f"waited {limit:.0f} s in vain for {what}")
        time.sleep(0.05)
