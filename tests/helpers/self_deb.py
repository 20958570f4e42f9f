"""mmdeb's own .deb, as `mmdeb self-build` makes it, and installing it into a test host."""

import re
import shutil
import subprocess
from pathlib import Path

from helpers.e2e_host import Host
from mmdeb import PROJECT_ROOT
from mmdeb.cli import main
from mmdeb.build.selfpackage import project_version

VERSION = project_version(PROJECT_ROOT)


def deb(dist_dir: Path) -> Path:
    (path,) = dist_dir.glob(f"mmdeb_{VERSION}_all.deb")
    return path


def build_self_deb(out: Path) -> Path:
    """mmdeb's .deb for trixie, built with sbuild into out/trixie/."""
    assert main(["self-build", "--builder", "sbuild", "--dist", "trixie", "--out", str(out)]) == 0
    return deb(out / "trixie")


def depends_of(package: Path) -> list[str]:
    """The names of package's dependencies (each one's first alternative)."""
    field = subprocess.run(["dpkg-deb", "--field", str(package), "Depends"], capture_output=True, text=True, check=True).stdout
    return [re.split(r"[\s(:]", item.split("|")[0].strip())[0] for item in field.split(",")]


def install(machine: Host, package: Path) -> None:
    """apt-get install the .deb, from /var/tmp (a booted host has a tmpfs on /tmp)."""
    if package.parent != machine.root / "var/tmp":
        shutil.copy(package, machine.root / "var/tmp")
    machine.run("apt-get", "install", "--yes", "--no-install-recommends", f"/var/tmp/{package.name}")
