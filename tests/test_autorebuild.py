"""`mmdeb autorebuild` on an installed mmdeb's places (under MMDEB_ROOT), building with the
local backend: releases from a local HTTP server, rebuilt and published; failures change nothing.
The mail to the admin, the cron line and the .deb are in test_autorebuild_e2e."""

import fcntl
import subprocess
from pathlib import Path

import pytest

from helpers.fixture_upstream import make_fixture
from helpers.cli import mmdeb
from helpers.upstream_site import add_watched, as_version

DOMAIN = "lists.example.org"


def installed(tmp_path: Path, site, system: dict, policy: str, builder: str = "local") -> Path:
    """An installed mmdeb (places under system's root) with the fork upstream and DOMAIN; its root."""
    root = Path(system["MMDEB_ROOT"])
    _, patches = make_fixture(tmp_path / "fixture", "py3")
    (root / "etc/mmdeb/mmdeb.conf").write_text(
        f'[build]\nbuilder = "{builder}"\npatches = "{patches}"\n[autorebuild]\npolicy = "{policy}"\n')
    add_watched(site, system, tmp_path)
    result = mmdeb("domains", "add", DOMAIN, "--upstream", "fork", cwd=tmp_path, env=system)
    assert result.returncode == 0, result.stderr
    return root


def autorebuild(tmp_path: Path, system: dict) -> subprocess.CompletedProcess:
    return mmdeb("autorebuild", cwd=tmp_path, env=system)


@pytest.fixture
def published(tmp_path, site, system):
    """The first build of DOMAIN, published by autorebuild; the root."""
    root = installed(tmp_path, site, system, "build+publish")
    autorebuild(tmp_path, system)
    assert 'published = "2.2.0-1+deb13"' in (root / "var/lib/mmdeb/mmdeb.toml").read_text()
    yield root
    subprocess.run(["gpgconf", "--homedir", str(root / "var/lib/mmdeb/signing-key"), "--kill", "gpg-agent"], check=False)


def packages_index(root: Path) -> str:
    return (root / "var/lib/mmdeb/repo/current/dists/trixie/main/binary-amd64/Packages").read_text()


@pytest.mark.slow
def test_a_new_release_is_built_and_published(tmp_path, site, system, published):
    site.release("2.2.1")
    result = autorebuild(tmp_path, system)
    assert "new upstream release: fork 2.2.0 -> 2.2.1" in result.stdout, result.stdout + result.stderr
    assert "Version: 2.2.1-1+deb13" in packages_index(published)
    assert 'published = "2.2.1-1+deb13"' in (published / "var/lib/mmdeb/mmdeb.toml").read_text()


@pytest.mark.slow
def test_the_report_names_the_versions_and_the_build_logs(tmp_path, site, system, published):
    site.release("2.2.1")
    autorebuild(tmp_path, system)
    (report,) = [p for p in (published / "var/lib/mmdeb/reports").iterdir() if "2.2.1" in p.read_text()]
    log = published / f"var/lib/mmdeb/build/trixie/mailman-{DOMAIN}_2.2.1-1+deb13_amd64.build"
    assert f"built mailman-{DOMAIN} 2.2.1-1+deb13 for trixie; log: {log}" in report.read_text()
    assert log.is_file()


@pytest.mark.slow
def test_a_release_that_fails_to_build_leaves_state_catalogue_and_repository_as_they_were(tmp_path, site, system, published):
    kept = [published / "var/lib/mmdeb/mmdeb.toml", published / "etc/mmdeb/catalogue.toml"]
    before = [path.read_bytes() for path in kept] + [(published / "var/lib/mmdeb/repo/current").resolve()]
    fixture = site.root / "mailman-2.2.0.tar.gz"
    broken = as_version(fixture, "2.2.1", tmp_path / "broken.tar.gz", broken=True)
    site.release("2.2.1", tarball=broken)
    result = autorebuild(tmp_path, system)
    assert result.returncode == 1
    assert f"FAILED: mailman-{DOMAIN} 2.2.1-1+deb13 for trixie did not build" in result.stdout
    assert [path.read_bytes() for path in kept] + [(published / "var/lib/mmdeb/repo/current").resolve()] == before
    cache = published / "var/cache/mmdeb/upstream"
    assert "not recorded: upstream fork 2.2.1; the catalogue keeps 2.2.0, and its download is removed from " \
           f"{cache}" in result.stdout
    assert [path.name for path in cache.iterdir() if "2.2.1" in path.name] == []
    assert [path.name for path in cache.iterdir() if "2.2.0" in path.name], "the recorded release's download stays"


def test_the_report_policy_changes_nothing(tmp_path, site, system):
    root = installed(tmp_path, site, system, "report")
    state = (root / "var/lib/mmdeb/mmdeb.toml").read_bytes()
    site.release("2.2.1")
    result = autorebuild(tmp_path, system)
    assert "new upstream release: fork 2.2.0 -> 2.2.1" in result.stdout and "not downloaded (policy report)" in result.stdout
    assert f"would rebuild mailman-{DOMAIN} as 2.2.0-1+deb13: first build" in result.stdout
    assert (root / "var/lib/mmdeb/mmdeb.toml").read_bytes() == state
    assert not (root / "var/lib/mmdeb/build").exists()


def test_an_unreachable_upstream_site_fails_the_run_and_changes_nothing(tmp_path, site, system):
    root = installed(tmp_path, site, system, "build+publish")
    kept = [root / "var/lib/mmdeb/mmdeb.toml", root / "etc/mmdeb/catalogue.toml"]
    before = [path.read_bytes() for path in kept]
    site.close()
    result = autorebuild(tmp_path, system)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "FAILED: cannot reach the release listing of fork" in result.stdout
    (report,) = (root / "var/lib/mmdeb/reports").iterdir()
    assert "cannot reach the release listing of fork" in report.read_text()
    assert [path.read_bytes() for path in kept] == before and not (root / "var/lib/mmdeb/repo").exists()


def test_a_second_run_is_refused_while_one_runs(tmp_path, site, system):
    root = installed(tmp_path, site, system, "report")
    with open(root / "var/lib/mmdeb/.autorebuild.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = autorebuild(tmp_path, system)
    assert result.returncode == 1 and result.stderr.startswith("mmdeb: error: another mmdeb autorebuild is running")
    assert len(result.stderr.splitlines()) == 1


def test_nothing_to_do_is_said_and_not_mailed(tmp_path, system):
    result = autorebuild(tmp_path, system)
    assert (result.returncode, result.stderr) == (0, "")
    assert "nothing to do" in result.stdout and "mailed" not in result.stdout


@pytest.mark.chroot
def test_a_build_run_updates_the_chroot_first(tmp_path, site, system):
    root = installed(tmp_path, site, system, "build", builder="sbuild")
    result = autorebuild(tmp_path, system)
    assert "updated the trixie/amd64 build chroot" in result.stdout, result.stdout + result.stderr
    assert f"built mailman-{DOMAIN} 2.2.0-1+deb13 for trixie" in result.stdout
    (chroot,) = (root / "var/cache/mmdeb/chroots").glob("trixie-amd64-*.tar.zst")
    assert "trixie-security" in subprocess.run(["tar", "--zstd", "-xOf", str(chroot), "./etc/apt/sources.list"],
                                               capture_output=True, text=True, check=True).stdout
