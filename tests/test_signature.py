"""OpenPGP verification of catalogue downloads: a throwaway key signs a small fixture release."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers.cli import assert_refused, mmdeb
from helpers.signer import Signer
from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import read
from mmdeb.upstream.fetch import sha256_of
from mmdeb.upstream.tarball import Download, resolve

pytestmark = pytest.mark.skipif(not (shutil.which("gpg") and shutil.which("gpgv")), reason="needs gpg and gpgv")


def fetch_verified(entry: dict, what: str, cache: Path) -> Path:
    """A catalogue entry's file in cache, fetched as a build fetches it."""
    download = Download.of(entry, cache)
    download.fetch(what, Runner())
    return download.path


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    signer = Signer(tmp_path_factory.mktemp("gnupg"))
    yield signer
    subprocess.run(["gpgconf", "--homedir", str(signer.home), "--kill", "gpg-agent"], check=False)


def release(directory: Path, signer: Signer, data: bytes = b"a small release\n") -> dict:
    """A signed file served from file:// URLs, and its catalogue entry."""
    directory.mkdir(parents=True, exist_ok=True)
    tarball = directory / "hello-1.0.tar.gz"
    tarball.write_bytes(data)
    signature = signer.sign(tarball)
    return {
        "url": tarball.as_uri(), "filename": tarball.name, "sha256": sha256_of(tarball),
        "signature_url": signature.as_uri(), "signature_filename": signature.name, "signing_key": str(signer.keyring),
    }


def test_good_signature_is_accepted_and_cached(tmp_path, signer):
    entry = release(tmp_path / "server", signer)
    cache = tmp_path / "cache"
    assert fetch_verified(entry, "upstream hello", cache) == cache / "hello-1.0.tar.gz"
    assert sorted(p.name for p in cache.iterdir()) == ["hello-1.0.tar.gz", "hello-1.0.tar.gz.sig"]
    # Cached files are verified again, without the network.
    entry["url"] = entry["signature_url"] = "http://127.0.0.1:1/gone"
    assert fetch_verified(entry, "upstream hello", cache) == cache / "hello-1.0.tar.gz"


def test_bad_signature_is_refused(tmp_path, signer):
    entry = release(tmp_path / "server", signer)
    # The file changes after signing, and the pin follows it: only the signature can tell.
    tarball = tmp_path / "server" / "hello-1.0.tar.gz"
    tarball.write_bytes(b"a different release\n")
    entry["sha256"] = sha256_of(tarball)
    with pytest.raises(MmdebError, match="OpenPGP signature check failed for upstream hello") as raised:
        fetch_verified(entry, "upstream hello", tmp_path / "cache")
    assert "BAD signature" in raised.value.message
    assert "delete" in raised.value.remedy
    assert "\n" not in str(raised.value)


def test_signature_by_another_key_is_refused(tmp_path, signer):
    entry = release(tmp_path / "server", signer)
    other = tmp_path / "other.gpg"
    other.write_bytes(b"")  # an empty keyring: the signer's key is not in it
    entry["signing_key"] = str(other)
    with pytest.raises(MmdebError, match="No public key"):
        fetch_verified(entry, "upstream hello", tmp_path / "cache")


def test_missing_signature_offline_names_where_to_put_it(tmp_path, signer):
    entry = release(tmp_path / "server", signer)
    entry["signature_url"] = "http://127.0.0.1:1/hello-1.0.tar.gz.sig"
    cache = tmp_path / "cache"
    with pytest.raises(MmdebError, match="cannot download the signature of upstream hello") as raised:
        fetch_verified(entry, "upstream hello", cache)
    assert str(cache / "hello-1.0.tar.gz.sig") in raised.value.remedy
    assert sorted(p.name for p in cache.iterdir()) == ["hello-1.0.tar.gz"]  # no half-written download


def catalogue_for(tarball: Path, signer: Signer, directory: Path, version: str) -> Path:
    """A catalogue whose signing key is a path relative to the catalogue, as in mmdeb/keys/."""
    (directory / "keys").mkdir(parents=True)
    shutil.copy(signer.keyring, directory / "keys" / "test.gpg")
    signature = signer.sign(tarball)
    catalogue = directory / "catalogue.toml"
    catalogue.write_text(f"""
[upstream.fixture]
flavour = "py3"
version = "{version}"
url = "{tarball.as_uri()}"
filename = "{tarball.name}"
sha256 = "{sha256_of(tarball)}"
signature_url = "{signature.as_uri()}"
signature_filename = "{signature.name}"
signing_key = "keys/test.gpg"
""")
    return catalogue


def test_resolve_verifies_a_catalogue_upstream(tmp_path, signer, fixture_py3, monkeypatch):
    tarball = shutil.copy(fixture_py3.tarball, tmp_path / fixture_py3.tarball.name)
    monkeypatch.setenv("MMDEB_CATALOGUE", str(catalogue_for(Path(tarball), signer, tmp_path / "cat", "2.2.0")))
    upstream = resolve("fixture", None, read(Path(os.environ["MMDEB_CATALOGUE"])), tmp_path / "cache", Runner())
    assert upstream.version == "2.2.0"
    assert (tmp_path / "cache" / "upstream" / (fixture_py3.tarball.name + ".sig")).exists()


def test_resolve_refuses_a_catalogue_version_that_is_not_the_tarballs(tmp_path, signer, fixture_py3, monkeypatch):
    tarball = shutil.copy(fixture_py3.tarball, tmp_path / fixture_py3.tarball.name)
    monkeypatch.setenv("MMDEB_CATALOGUE", str(catalogue_for(Path(tarball), signer, tmp_path / "cat", "2.2.1")))
    with pytest.raises(MmdebError, match="the catalogue says fixture is version 2.2.1"):
        resolve("fixture", None, read(Path(os.environ["MMDEB_CATALOGUE"])), tmp_path / "cache", Runner())


def test_build_with_a_bad_signature_stops_with_one_line(tmp_path, signer, fixture_py3):
    tarball = Path(shutil.copy(fixture_py3.tarball, tmp_path / fixture_py3.tarball.name))
    catalogue = catalogue_for(tarball, signer, tmp_path / "cat", "2.2.0")
    # Re-sign something else under the signature's name: the pinned sha256 still matches.
    other = tmp_path / "other"
    other.write_bytes(b"not the tarball")
    shutil.move(signer.sign(other), tarball.with_name(tarball.name + ".sig"))
    result = mmdeb("build", "lists.example.org", "--upstream", "fixture", cwd=tmp_path,
                   env={"MMDEB_CATALOGUE": str(catalogue), "MMDEB_CACHE": str(tmp_path / "cache")})
    assert_refused(result, tmp_path / "build", "OpenPGP signature check failed", "BAD signature")
