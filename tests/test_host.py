"""The application layer: one Host per run, planning without the network, settings declared once."""

import shutil
import subprocess
from pathlib import Path

import pytest

from mmdeb import __version__

from helpers.cli import assert_refused, mmdeb as run_mmdeb
from mmdeb.cli import main

ORG = "lists.example.org"
UNREACHABLE = "http://127.0.0.1:1/gone"


def catalogue_with_an_unreachable_release(directory, version: str = "2.2.0"):
    """A local catalogue entry whose tarball is neither cached nor downloadable."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "catalogue.toml").write_text(f"""\
[upstream.faraway]
flavour = "py3"
version = "{version}"
url = "{UNREACHABLE}/faraway-{version}.tar.gz"
filename = "faraway-{version}.tar.gz"
sha256 = "{'0' * 64}"
""")


def mmdeb(cwd, *args: str) -> subprocess.CompletedProcess:
    return run_mmdeb(*args, cwd=cwd, env={"MMDEB_CACHE": str(cwd / "cache")})


def test_a_dry_run_plans_without_downloading(tmp_path):
    """Planning reads the catalogue and the state; the release it would build is not fetched."""
    catalogue_with_an_unreachable_release(tmp_path)
    (tmp_path / "mmdeb.toml").touch()
    assert mmdeb(tmp_path, "domains", "add", ORG, "--upstream", "faraway").returncode == 0
    result = mmdeb(tmp_path, "rebuild", "--dry-run")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == (f"rebuild mailmen-common as {__version__}+1+deb13: first build\n"
                             f"rebuild mailman-{ORG} as 2.2.0-1+deb13: first build\n")
    status = mmdeb(tmp_path, "status")
    assert status.returncode == 0 and "pending: first build" in status.stdout
    assert not (tmp_path / "cache/upstream/faraway-2.2.0.tar.gz").exists()


def test_a_build_fetches_what_the_plan_names(tmp_path):
    catalogue_with_an_unreachable_release(tmp_path)
    (tmp_path / "mmdeb.toml").touch()
    assert mmdeb(tmp_path, "domains", "add", ORG, "--upstream", "faraway").returncode == 0
    result = mmdeb(tmp_path, "rebuild", "--builder", "local")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mmdeb: error: cannot download upstream faraway from {UNREACHABLE}/faraway-2.2.0.tar.gz")
    assert "built" not in (tmp_path / "mmdeb.toml").read_text()


def test_an_unknown_key_in_the_state_file_is_named(tmp_path):
    catalogue_with_an_unreachable_release(tmp_path)
    (tmp_path / "mmdeb.toml").touch()
    assert mmdeb(tmp_path, "domains", "add", ORG, "--upstream", "faraway").returncode == 0
    state = tmp_path / "mmdeb.toml"
    state.write_text(state.read_text().replace('mode = "prefix"', 'mode = "prefix"\nmail_group = "mail"'))
    result = mmdeb(tmp_path, "domains", "list")
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert f"{state}, domain {ORG}, has an unknown key 'mail_group'" in line and "Fix: remove it" in line


@pytest.mark.slow  # a local package build
def test_build_patches_in_mmdeb_conf_is_honoured_by_every_command(tmp_path, fixture_py3):
    """status plans with mmdeb.conf's build.patches, as rebuild and autorebuild do."""
    state = tmp_path / "mmdeb.toml"
    assert main(["--state", str(state), "domains", "add", ORG, "--upstream", str(fixture_py3.tarball)]) == 0
    (tmp_path / "mmdeb.conf").write_text(f'[build]\npatches = "{fixture_py3.patches}"\nbuilder = "local"\n')
    built = mmdeb(tmp_path, "rebuild", "--out", str(tmp_path / "build"))
    assert built.returncode == 0, built.stderr
    assert mmdeb(tmp_path, "status").stdout.rstrip().endswith("up to date")
    (tmp_path / "mmdeb.conf").unlink()  # mmdeb's own patches/: not what it was built with
    assert "pending: changed patches in patches/py3" in mmdeb(tmp_path, "status").stdout


@pytest.mark.parametrize("hidden", ["tmp", "var/tmp"])
def test_an_installed_mmdeb_refuses_a_tarball_the_timer_cannot_read(tmp_path, system, fixture_py3, hidden):
    """mmdeb-autorebuild.service has a /tmp and /var/tmp of its own (PrivateTmp=yes): a tarball
    recorded from there would fail every scheduled build."""
    root = Path(system["MMDEB_ROOT"])
    for directory in (hidden, "srv"):
        (root / directory).mkdir(parents=True)
        shutil.copy(fixture_py3.tarball, root / directory)
    refused = run_mmdeb("domains", "add", ORG, "--upstream", str(root / hidden / fixture_py3.tarball.name), cwd=tmp_path, env=system)
    assert_refused(refused, root / "var/lib/mmdeb", f"is in {root / hidden}", "mmdeb-autorebuild.service", "outside /tmp and /var/tmp")
    added = run_mmdeb("domains", "add", ORG, "--upstream", str(root / "srv" / fixture_py3.tarball.name), cwd=tmp_path, env=system)
    assert added.returncode == 0, added.stderr
