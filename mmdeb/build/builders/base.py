"""The interface of the builder backends."""

from abc import ABC, abstractmethod
from pathlib import Path

from mmdeb.run import Runner


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
