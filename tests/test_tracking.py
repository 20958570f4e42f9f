"""`mmdeb upstream add|update` against a local HTTP server standing in for the upstream site:
releases are recorded in the local catalogue only when verified."""

import subprocess
import tomllib
from pathlib import Path

import pytest

from helpers.cli import mmdeb
from helpers.signer import Signer
from helpers.upstream_site import LISTING_REGEX, add_watched
from mmdeb.upstream.catalogue import DEFAULTS


def local_catalogue(system: dict) -> Path:
    return Path(system["MMDEB_ROOT"]) / "etc/mmdeb/catalogue.toml"


def test_add_records_a_verified_release_in_the_local_catalogue(tmp_path, site, system):
    shipped = DEFAULTS.read_bytes()
    add_watched(site, system, tmp_path)
    text = local_catalogue(system).read_text()
    assert '[upstream.fork]' in text and 'version = "2.2.0"' in text and 'flavour = "py3"' in text
    assert (Path(system["MMDEB_CACHE"]) / "upstream/fork-2.2.0.tar.gz").is_file()
    assert DEFAULTS.read_bytes() == shipped


def test_add_refuses_a_wrong_sha256_and_records_nothing(tmp_path, site, system):
    tarball = site.release("2.2.0")
    result = mmdeb("upstream", "add", "fork", f"{site.url}/{tarball.name}", "--sha256", "0" * 64, cwd=tmp_path, env=system)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "sha256 mismatch" in result.stderr
    assert not local_catalogue(system).exists()
    assert [p.name for p in (Path(system["MMDEB_CACHE"]) / "upstream").iterdir()] == []


def test_update_records_the_newest_release(tmp_path, site, system):
    add_watched(site, system, tmp_path)
    site.release("2.2.1")
    result = mmdeb("upstream", "update", "fork", cwd=tmp_path, env=system)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("updated fork: 2.2.0 -> 2.2.1")
    entry = tomllib.loads(local_catalogue(system).read_text())["upstream"]["fork"]
    # The watch table the release was found with stays.
    assert (entry["version"], entry["watch"]["regex"]) == ("2.2.1", LISTING_REGEX)


def test_update_says_when_there_is_nothing_newer(tmp_path, site, system):
    add_watched(site, system, tmp_path)
    result = mmdeb("upstream", "update", "fork", cwd=tmp_path, env=system)
    assert (result.returncode, result.stdout) == (0, "fork is up to date\n")


def test_update_refuses_a_release_whose_published_sha256_does_not_match(tmp_path, site, system):
    add_watched(site, system, tmp_path)
    text = local_catalogue(system).read_text().replace("[upstream.fork.watch]\n", "[upstream.fork.watch]\nsha256_url = \"{url}.sha256\"\n")
    local_catalogue(system).write_text(text)
    site.release("2.2.1", sha256="1" * 64)
    result = mmdeb("upstream", "update", "fork", cwd=tmp_path, env=system)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "sha256 mismatch" in result.stderr
    assert local_catalogue(system).read_text() == text
    assert sorted(p.name for p in (Path(system["MMDEB_CACHE"]) / "upstream").iterdir()) == ["fork-2.2.0.tar.gz"]


@pytest.fixture
def signers(tmp_path):
    """The release key and a stranger's; their gpg-agents end with the test."""
    homes = [tmp_path / "signer", tmp_path / "stranger"]
    for home in homes:
        home.mkdir()
    yield [Signer(home) for home in homes]
    for home in homes:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def test_update_refuses_a_release_whose_signature_does_not_verify(tmp_path, site, system, signers):
    signer, stranger = signers
    tarball = site.release("2.2.0", signer=signer)
    result = mmdeb("upstream", "add", "fork", f"{site.url}/{tarball.name}", "--signature-url", f"{site.url}/{tarball.name}.sig",
                   "--signing-key", str(signer.keyring), "--watch-url", f"{site.url}/", "--watch-regex", LISTING_REGEX,
                   cwd=tmp_path, env=system)
    assert result.returncode == 0, result.stderr
    assert "verified by OpenPGP signature" in result.stdout
    before = local_catalogue(system).read_text()
    site.release("2.2.1", signer=stranger)
    result = mmdeb("upstream", "update", "fork", cwd=tmp_path, env=system)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1 and "signature check failed" in result.stderr
    assert local_catalogue(system).read_text() == before


def test_update_of_an_unreachable_site_is_one_line(tmp_path, site, system):
    add_watched(site, system, tmp_path)
    site.close()
    result = mmdeb("upstream", "update", "fork", cwd=tmp_path, env=system)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert "cannot reach the release listing of fork" in result.stderr and "Traceback" not in result.stderr


def test_the_local_catalogue_overrides_a_shipped_entry(tmp_path, site, system):
    shipped = "mailman2-python3-b0de82e"
    tarball = site.release("2.2.1")
    result = mmdeb("upstream", "add", shipped, f"{site.url}/{tarball.name}", cwd=tmp_path, env=system)
    assert result.returncode == 0, result.stderr
    assert "pinned from this download" in result.stdout
    check = mmdeb("upstream", "check", shipped, cwd=tmp_path, env=system)
    assert check.stdout.startswith(f"{shipped}  2.2.1  ")
