"""Test upstreams: the real tarball from MMDEB_UPSTREAM_TARBALL, else the generated fixture (both flavours)."""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fixture_upstream import PATCH_MARKER, make_fixture  # noqa: E402
from upstream_site import UpstreamSite  # noqa: E402

from mmdeb import PATCHES_DIR  # noqa: E402
from mmdeb.cli import main  # noqa: E402
from mmdeb.upstream.dists import FLAVOURS, flavour_for_version
from mmdeb.upstream.tarball import inspect_tarball  # noqa: E402

REAL_TARBALL = os.environ.get("MMDEB_UPSTREAM_TARBALL")


@dataclass(frozen=True)
class TestUpstream:
    tarball: Path
    flavour: str
    patches: Path
    real: bool

    @property
    def dist(self) -> str:
        return FLAVOURS[self.flavour].dists[0]

    def patched_file(self) -> tuple[str, str]:
        """A file under the prefix and a line our patch series puts into it."""
        if not self.real:
            return "Mailman/Defaults.py", PATCH_MARKER
        if self.flavour == "py3":
            return "Mailman/Mailbox.py", "print(file=fileh)"
        return "bin/msgfmt.py", "#! /usr/bin/python2.7"


def real_flavour() -> str:
    return os.environ.get("MMDEB_UPSTREAM_FLAVOUR") or flavour_for_version(inspect_tarball(Path(REAL_TARBALL))[0]).name


@pytest.fixture(scope="session", params=[real_flavour()] if REAL_TARBALL else ["py3", "gnu"])
def upstream(request, tmp_path_factory) -> TestUpstream:
    if REAL_TARBALL:
        return TestUpstream(Path(REAL_TARBALL).resolve(), request.param, PATCHES_DIR, True)
    tarball, patches = make_fixture(tmp_path_factory.mktemp(f"fixture-{request.param}"), request.param)
    return TestUpstream(tarball, request.param, patches, False)


@pytest.fixture(scope="session")
def fixture_py3(tmp_path_factory) -> TestUpstream:
    """Always the fixture: for tests of mmdeb's own behaviour, whatever the real upstream is."""
    tarball, patches = make_fixture(tmp_path_factory.mktemp("fixture-py3-only"), "py3")
    return TestUpstream(tarball, "py3", patches, False)


DOMAIN = "lists.example.org"
OTHER_DOMAIN = "lists.example.net"


def build(upstream, out: Path, *domains: str, builder: str = "sbuild", revision: int = 1, mode: str = "prefix",
          dist: str | None = None) -> Path:
    """The build's directory of the given dist (default: the flavour's first)."""
    dist = dist or upstream.dist
    args = ["build", *domains, "--upstream", str(upstream.tarball), "--patches", str(upstream.patches), "--mode", mode]
    assert main([*args, "--builder", builder, "--dist", dist, "--out", str(out), "--revision", str(revision)]) == 0
    return out / dist


def deb_of(dist_dir: Path, domain: str, revision: int = 1) -> Path:
    (deb,) = dist_dir.glob(f"mailman-{domain}_*-{revision}+*_amd64.deb")
    return deb


def core_deb_of(dist_dir: Path, revision: int = 1) -> Path:
    (deb,) = dist_dir.glob(f"mailmen-core-*_*-{revision}+*_all.deb")
    return deb


@pytest.fixture(scope="session")
def built(upstream, tmp_path_factory) -> Path:
    """lists.example.org and lists.example.net, built in one call with sbuild."""
    return build(upstream, tmp_path_factory.mktemp(f"sbuild-{upstream.flavour}"), DOMAIN, OTHER_DOMAIN)


@pytest.fixture(scope="session")
def built_shared(upstream, tmp_path_factory) -> Path:
    """The core package and thin lists.example.org and lists.example.net packages (shared mode)."""
    return build(upstream, tmp_path_factory.mktemp(f"shared-{upstream.flavour}"), DOMAIN, OTHER_DOMAIN, mode="shared")


@pytest.fixture
def site(tmp_path):
    site = UpstreamSite(tmp_path / "www")
    yield site
    site.close()


@pytest.fixture
def system(tmp_path_factory):
    """An installed mmdeb's places under a new root (MMDEB_ROOT), and the environment to run it in.
    A short path: gpg-agent's socket in the repository's GNUPGHOME must fit in 108 bytes."""
    root = tmp_path_factory.mktemp("root")
    (root / "etc/mmdeb").mkdir(parents=True)
    return {"MMDEB_ROOT": str(root), "MMDEB_CACHE": str(root / "var/cache/mmdeb")}
