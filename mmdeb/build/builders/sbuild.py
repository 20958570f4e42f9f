"""sbuild in unshare mode, on a chroot tarball cached by mmdebstrap."""

import getpass
import os
from pathlib import Path

from mmdeb.build.builders.base import built_package
from mmdeb.build.builders.chroot import ChrootBuilder
from mmdeb.errors import MmdebError
from mmdeb.run import Runner, require

SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))
SUBID_RANGE = 65536
SUBID_FIRST = 100000  # login.defs' SUB_UID_MIN: the ids below are the host's own
USERMOD_OPTION = {"subuid": "--add-subuids", "subgid": "--add-subgids"}


def sbuild_argv(dsc: Path, dist: str, arch: str, chroot: Path, build_dir: Path) -> list[str]:
    return [
        "sbuild",
        "--chroot-mode=unshare",
        f"--chroot={chroot}",
        f"--dist={dist}",
        f"--arch={arch}",
        "--arch-any",
        "--arch-all",  # the shared core is Architecture: all
        "--no-source",
        f"--build-dir={build_dir}",
        "--nolog",  # mmdeb keeps the whole output in its own build log
        "--no-run-lintian",
        "--no-run-piuparts",
        "--no-run-autopkgtest",
        # The cached chroot already holds every build dependency.
        "--no-apt-update",
        "--no-apt-upgrade",
        "--no-apt-distupgrade",
        str(dsc),
    ]


def has_subid_range(path: Path, user: str, uid: int) -> bool:
    """True if path gives user a range of at least SUBID_RANGE ids."""
    if not path.exists():
        return False
    for line in path.read_text().splitlines():
        fields = line.strip().split(":")
        if len(fields) == 3 and fields[0] in (user, str(uid)) and fields[2].isdigit() and int(fields[2]) >= SUBID_RANGE:
            return True
    return False


def free_subid_range(texts: list[str]) -> tuple[int, int]:
    """The first and last id of a range of SUBID_RANGE ids after every range in texts (the
    contents of /etc/subuid and /etc/subgid), so it overlaps none. mmdeb's postinst gives root
    its range by the same rule."""
    ends = [int(fields[1]) + int(fields[2]) for text in texts for line in text.splitlines()
            if len(fields := line.strip().split(":")) == 3 and fields[1].isdigit() and fields[2].isdigit()]
    first = max([SUBID_FIRST, *ends])
    return first, first + SUBID_RANGE - 1


def check_subids(files: tuple[Path, ...] = SUBID_FILES) -> None:
    """Before any build: the user has the ranges sbuild needs, or the exact command that gives them."""
    user, uid = getpass.getuser(), os.getuid()
    missing = [path for path in files if not has_subid_range(path, user, uid)]
    if missing:
        first, last = free_subid_range([path.read_text() for path in files if path.exists()])
        options = " ".join(f"{USERMOD_OPTION[path.name]} {first}-{last}" for path in missing)
        absent = [str(path) for path in missing if not path.exists()]
        create = f"touch {' '.join(absent)} && " if absent else ""  # usermod adds to the files, never creates them
        raise MmdebError(
            f"{' and '.join(map(str, missing))} {'give' if len(missing) > 1 else 'gives'} {user} no range of "
            "subordinate ids, which sbuild --chroot-mode=unshare needs",
            f"run: {create}usermod {options} {user}",
        )


class SbuildBuilder(ChrootBuilder):
    name = "sbuild"
    sessions = True  # on the same tarball, with the same subordinate ids

    def check(self) -> None:
        require("sbuild", "sbuild")
        require("mmdebstrap", "mmdebstrap")
        require("newuidmap", "uidmap")
        require("ip", "iproute2")  # sbuild-usernsexec brings up the build's loopback with it
        require("unshare", "util-linux")  # a session of the chroot (session.py)
        check_subids()

    def build(self, dsc: Path, dist: str, arch: str, result_dir: Path, runner: Runner) -> None:
        runner.run(sbuild_argv(dsc, dist, arch, self.chroots.path(dist, arch), result_dir), cwd=result_dir,
                   what=f"building {built_package(dsc)} with sbuild")
