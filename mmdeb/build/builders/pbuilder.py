"""pbuilder, on the same cached mmdebstrap tarball as sbuild."""

import os
from pathlib import Path

from mmdeb.build.builders.base import built_package
from mmdeb.build.builders.chroot import ChrootBuilder, ChrootCache
from mmdeb.errors import MmdebError
from mmdeb.run import Runner, require


# pbuilder's default resolver needs aptitude, which the shared chroot lacks.
PBUILDERRC = 'PBUILDERSATISFYDEPENDSCMD="/usr/lib/pbuilder/pbuilder-satisfydepends-apt"\n'


def pbuilder_argv(dsc: Path, dist: str, arch: str, basetgz: Path, result_dir: Path, config: Path) -> list[str]:
    # pbuilder takes option values only as separate words.
    return [
        "pbuilder", "build",
        "--configfile", str(config),
        "--basetgz", str(basetgz),
        "--distribution", dist,
        "--architecture", arch,
        "--buildresult", str(result_dir),
        # Binaries only (any and all: the shared core is Architecture: all); else pbuilder
        # rebuilds the source package, with its own compression.
        "--debbuildopts", "--build=binary",
        str(dsc),
    ]


class PbuilderBuilder(ChrootBuilder):
    name = "pbuilder"

    def __init__(self, chroots: ChrootCache):
        super().__init__(chroots)
        self.config = chroots.root / "pbuilderrc"

    def check(self) -> None:
        require("pbuilder", "pbuilder")
        require("mmdebstrap", "mmdebstrap")
        if os.geteuid() != 0:
            raise MmdebError("pbuilder needs root", "run mmdeb as root, or use --builder sbuild")

    def prepare(self, dist: str, arch: str, runner: Runner) -> None:
        super().prepare(dist, arch, runner)
        self.config.write_text(PBUILDERRC)

    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        runner.run(pbuilder_argv(dsc, dist, arch, self.chroots.path(dist, arch), result_dir, self.config),
                   what=f"building {built_package(dsc)} with pbuilder")
