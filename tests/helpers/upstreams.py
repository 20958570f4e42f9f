"""Test upstreams: the real tarball from MMDEB_UPSTREAM_TARBALL, else the generated fixture (both
flavours); the domains the tests build and where their packages land."""

import os
from dataclasses import dataclass
from pathlib import Path

from mmdeb.build.spec import COMMON_DEPENDS, domain_depends
from mmdeb.cli import main
from mmdeb.upstream.dists import FLAVOURS, flavour_for_version
from mmdeb.upstream.tarball import inspect_tarball

from helpers.fixture_upstream import PATCH_MARKER

REAL_TARBALL = os.environ.get("MMDEB_UPSTREAM_TARBALL")
DOMAIN = "lists.example.org"
OTHER_DOMAIN = "lists.example.net"


@dataclass(frozen=True)
class TestUpstream:
    __test__ = False  # not a test class, whatever module imports it

    tarball: Path
    flavour: str
    patches: Path
    real: bool

    @property
    def dist(self) -> str:
        """MMDEB_UPSTREAM_DIST (to run the tests on another release of the flavour), else its default."""
        return os.environ.get("MMDEB_UPSTREAM_DIST") or FLAVOURS[self.flavour].dists[0]

    def patched_file(self) -> tuple[str, str]:
        """A file under the prefix and a line our patch series puts into it."""
        if not self.real:
            return "Mailman/Defaults.py", PATCH_MARKER
        if self.flavour == "py3":
            return "Mailman/Mailbox.py", "print(file=fileh)"
        return "bin/msgfmt.py", "#! /usr/bin/python2.7"


def real_flavour() -> str:
    return os.environ.get("MMDEB_UPSTREAM_FLAVOUR") or flavour_for_version(inspect_tarball(Path(REAL_TARBALL))[0]).name


def build(upstream, out: Path, *domains: str, builder: str = "sbuild", revision: int = 1, mode: str = "prefix",
          dist: str | None = None, common: bool = True) -> Path:
    """The build's directory of the given dist (default: the flavour's first), with mailmen-common,
    which every domain package depends on, unless asked (a test that installs none saves its build)."""
    dist = dist or upstream.dist
    args = ["build", *domains, "--upstream", str(upstream.tarball), "--patches", str(upstream.patches), "--mode", mode,
            *([] if common else ["--no-common"])]
    assert main([*args, "--builder", builder, "--dist", dist, "--out", str(out), "--revision", str(revision)]) == 0
    return out / dist


def deb_of(dist_dir: Path, domain: str, revision: int = 1) -> Path:
    (deb,) = dist_dir.glob(f"mailman-{domain}_*-{revision}+*_amd64.deb")
    return deb


def runtime_packages(flavour: str, dist: str) -> list[str]:
    """What a test host needs before `dpkg --install` of mailmen-common and domain packages of
    flavour: their Depends (the first of each alternative)."""
    return [*domain_depends(FLAVOURS[flavour], dist), *(depends.split(" | ")[0] for depends in COMMON_DEPENDS)]


def domain_debs(dist_dir: Path, *domains: str, revision: int = 1) -> list[Path]:
    """The domains' packages with what they depend on that the build made: mailmen-common, and the
    core package in shared mode."""
    core = list(dist_dir.glob(f"mailmen-core-*_*-{revision}+*_all.deb"))
    return [common_deb_of(dist_dir), *core, *(deb_of(dist_dir, domain, revision) for domain in domains)]


def common_deb_of(dist_dir: Path) -> Path:
    (deb,) = dist_dir.glob("mailmen-common_*_all.deb")
    return deb


def core_deb_of(dist_dir: Path, revision: int = 1) -> Path:
    (deb,) = dist_dir.glob(f"mailmen-core-*_*-{revision}+*_all.deb")
    return deb
