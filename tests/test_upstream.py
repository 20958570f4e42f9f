import gzip
import tarfile
import zipfile
from pathlib import Path

import pytest

from helpers.fixture_upstream import write_tarball
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.errors import MmdebError
from mmdeb.upstream.dists import FLAVOURS, flavour_for_version
from mmdeb.run import Runner
from mmdeb.upstream.tarball import describe, inspect_tarball, repack_zip, resolve
from mmdeb.upstream.fetch import sha256_of


def test_version_and_flavour_read_from_the_tarball(upstream):
    version, newest_mtime = inspect_tarball(upstream.tarball)
    assert flavour_for_version(version).name == upstream.flavour
    assert newest_mtime > 0


def test_flavour_guess():
    assert flavour_for_version("2.1.39").name == "gnu"
    assert flavour_for_version("2.2.0").name == "py3"


def test_gnu_carries_dnspython_as_a_component():
    assert FLAVOURS["gnu"].components == ("dnspython",)
    assert {"python3-legacy-cgi", "python3-standard-nntplib"} <= set(FLAVOURS["py3"].depends_for("trixie"))
    assert not {"python3-legacy-cgi", "python3-standard-nntplib"} & set(FLAVOURS["py3"].depends_for("bookworm"))


def test_missing_tarball(tmp_path):
    with pytest.raises(MmdebError, match="does not exist"):
        inspect_tarball(tmp_path / "mailman-2.1.39.tgz")


def test_truncated_tarball(fixture_py3, tmp_path):
    truncated = tmp_path / "mailman-2.2.0.tar.gz"
    data = fixture_py3.tarball.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MmdebError, match="truncated"):
        inspect_tarball(truncated)


def test_not_a_mailman_tarball(tmp_path):
    other = write_tarball(tmp_path / "hello-1.0.tar.gz", "hello-1.0", {"README": ("hello\n", 0o644)})
    with pytest.raises(MmdebError, match="not a Mailman 2 source tarball"):
        inspect_tarball(other)


def test_not_a_tarball_at_all(tmp_path):
    bogus = tmp_path / "mailman-2.2.0.tar.gz"
    bogus.write_bytes(gzip.compress(b"this is not tar"))
    with pytest.raises(MmdebError, match="truncated or not a valid tarball"):
        inspect_tarball(bogus)


def test_flavour_that_contradicts_the_tarball(fixture_py3, tmp_path):
    with pytest.raises(MmdebError, match="not gnu"):
        describe(str(fixture_py3.tarball), "gnu", read(DEFAULTS), tmp_path)


def test_catalogue_sha256_mismatch(tmp_path):
    cached = tmp_path / "upstream" / "mailman2-python3-b0de82ecac10b77b38e57ea472d18c6345ffd8c2.tar.gz"
    cached.parent.mkdir()
    cached.write_bytes(b"tampered")
    with pytest.raises(MmdebError, match="sha256 mismatch"):
        resolve("mailman2-python3-b0de82e", None, read(DEFAULTS), tmp_path, Runner())


def test_unknown_catalogue_name(tmp_path):
    with pytest.raises(MmdebError, match="unknown upstream 'mailman-9'"):
        describe("mailman-9", None, read(DEFAULTS), tmp_path)


def test_zip_component_repacked_deterministically(tmp_path):
    source = tmp_path / "dnspython-1.16.0.zip"
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("dnspython-1.16.0/dns/__init__.py", "# dns\n")
        zf.writestr("dnspython-1.16.0/setup.py", "# setup\n")
    first, second = tmp_path / "a.tar.xz", tmp_path / "b.tar.xz"
    repack_zip(source, first)
    repack_zip(source, second)
    assert sha256_of(first) == sha256_of(second)
    with tarfile.open(first) as tar:
        names = tar.getnames()
        assert names == sorted(names)
        assert tar.extractfile("dnspython-1.16.0/dns/__init__.py").read() == b"# dns\n"
        assert all(member.uid == 0 and member.gid == 0 for member in tar)


def test_catalogue_entries_are_complete():
    for name, entry in read(DEFAULTS)["upstream"].items():
        assert {"flavour", "version", "url", "filename", "sha256", "watch"} <= entry.keys(), name
        assert entry["flavour"] == flavour_for_version(entry["version"]).name, name
        if "signing_key" in entry:
            assert {"signature_url", "signature_filename"} <= entry.keys(), name
            assert Path(entry["signing_key"]).is_file(), name
