"""dpkg-buildpackage on the host, for quick iteration; build dependencies must be installed."""

from pathlib import Path

from mmdeb.build.builders.base import Builder, built_package
from mmdeb.errors import MmdebError
from mmdeb.run import CommandFailed, Runner, require
from mmdeb.build.source import dpkg_source_extract_argv


BINARY_ARTIFACTS = (".deb", ".changes", ".buildinfo")


def dpkg_buildpackage_argv() -> list[str]:
    return ["dpkg-buildpackage", "--build=binary", "--no-sign"]


def dpkg_checkbuilddeps_argv() -> list[str]:
    return ["dpkg-checkbuilddeps"]


class LocalBuilder(Builder):
    name = "local"

    def check(self) -> None:
        require("dpkg-buildpackage", "dpkg-dev")
        require("dh", "debhelper")

    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        tree = result_dir / "local-build" / dsc.stem
        tree.parent.mkdir()
        package = built_package(dsc)
        runner.run(dpkg_source_extract_argv(dsc, tree), what=f"unpacking the source package of {package}")
        try:
            runner.run(dpkg_checkbuilddeps_argv(), cwd=tree, what=f"checking the build dependencies of {package}")
        except CommandFailed as exc:
            unmet = exc.output.strip().splitlines()[-1] if exc.output.strip() else "unmet build dependencies"
            raise MmdebError(f"this host lacks build dependencies: {unmet}", "apt-get install them, or use --builder sbuild")
        runner.run(dpkg_buildpackage_argv(), cwd=tree, what=f"building {package} with dpkg-buildpackage")
        for artifact in tree.parent.iterdir():
            if artifact.suffix in BINARY_ARTIFACTS:
                artifact.rename(result_dir / artifact.name)
