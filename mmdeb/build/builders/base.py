"""The interface of the builder backends."""

from abc import ABC, abstractmethod
from pathlib import Path

from debian.deb822 import Changes, Dsc

from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.fetch import sha256_of


class Builder(ABC):
    name: str
    sessions = False  # whether thin packages may build in one session of its chroot (session.py)

    @abstractmethod
    def check(self) -> None:
        """Raise MmdebError naming the fix if a prerequisite is missing."""

    def prepare(self, dist: str, arch: str, runner: Runner) -> None:
        """Make what every build for dist needs (a cached chroot), once per call."""

    @abstractmethod
    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        """Build the binary packages of dsc into result_dir."""


def built_package(dsc: Path) -> str:
    """"PACKAGE VERSION" of PACKAGE_VERSION.dsc, to say what a build was of."""
    return dsc.stem.replace("_", " ", 1)


def listed(control: Path, package: str, version: str, remedy: str) -> list[Path]:
    """The files a .dsc or .changes lists, each checked to lie beside it with the size and sha256 it records."""
    with open(control, encoding="utf-8") as fh:
        entries = (Dsc if control.suffix == ".dsc" else Changes)(fh).get("Checksums-Sha256", [])
    files = []
    for entry in entries:
        path = control.parent / entry["name"]
        if not path.is_file():
            problem = "is missing"
        elif path.stat().st_size != int(entry["size"]) or sha256_of(path) != entry["sha256"]:
            problem = "differs from its checksum there"
        else:
            files.append(path)
            continue
        raise MmdebError(f"the build of {package} {version} in {control.parent} is incomplete: "
                         f"{path.name}, listed in {control.name}, {problem}", remedy)
    return files
