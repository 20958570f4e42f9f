"""Fixtures shared by the test modules; the helpers they use are in helpers/."""

from pathlib import Path

import pytest

from helpers.fixture_upstream import make_fixture
from helpers.once import once_per_run
from helpers.self_deb import build_self_deb
from helpers.upstream_site import UpstreamSite
from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, TestUpstream, build, real_flavour
from mmdeb import PATCHES_DIR


@pytest.fixture(scope="session", params=[real_flavour()] if REAL_TARBALL else ["py3", "gnu"])
def upstream(request, tmp_path_factory) -> TestUpstream:
    if REAL_TARBALL:
        return TestUpstream(Path(REAL_TARBALL).resolve(), request.param, PATCHES_DIR, True)
    return once_per_run(tmp_path_factory, f"fixture-{request.param}", lambda directory: fixture_upstream(directory, request.param))


def fixture_upstream(directory: Path, flavour: str) -> TestUpstream:
    tarball, patches = make_fixture(directory, flavour)
    return TestUpstream(tarball, flavour, patches, False)


@pytest.fixture(scope="session")
def fixture_py3(tmp_path_factory) -> TestUpstream:
    """Always the fixture: for tests of mmdeb's own behaviour, whatever the real upstream is."""
    return once_per_run(tmp_path_factory, "fixture-py3-only", lambda directory: fixture_upstream(directory, "py3"))


@pytest.fixture(scope="session")
def built(upstream, tmp_path_factory) -> Path:
    """lists.example.org and lists.example.net, with mailmen-common, built in one call with sbuild."""
    return once_per_run(tmp_path_factory, f"sbuild-{upstream.flavour}", lambda out: build(upstream, out, DOMAIN, OTHER_DOMAIN))


@pytest.fixture(scope="session")
def built_shared(upstream, tmp_path_factory) -> Path:
    """The core package, mailmen-common and thin lists.example.org and lists.example.net packages (shared mode)."""
    return once_per_run(tmp_path_factory, f"shared-{upstream.flavour}",
                        lambda out: build(upstream, out, DOMAIN, OTHER_DOMAIN, mode="shared"))


@pytest.fixture(scope="session")
def self_deb(tmp_path_factory) -> Path:
    """mmdeb's own .deb for trixie, as `mmdeb self-build` makes it with sbuild."""
    return once_per_run(tmp_path_factory, "self-build", build_self_deb)


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


def pytest_collection_modifyitems(items):
    """A chroot or a booted host makes a test slow: `pytest -m "not slow"` is the fast lane."""
    for item in items:
        if item.get_closest_marker("chroot") or item.get_closest_marker("systemd"):
            item.add_marker(pytest.mark.slow)
