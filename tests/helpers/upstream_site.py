"""A local HTTP server standing in for an upstream's release site (the fixtures `site` and
`system` are in conftest.py)."""

import functools
import hashlib
import http.server
import io
import re
import tarfile
import threading
from pathlib import Path

from helpers.fixture_upstream import make_fixture
from helpers.cli import mmdeb

LISTING_REGEX = r"mailman-([0-9.]+)\.tar\.gz"


def as_version(tarball: Path, version: str, target: Path, broken: bool = False) -> Path:
    """A new release made from tarball: its top directory renamed to mailman-<version> and
    Mailman/Version.py saying version; broken, its configure fails."""
    with tarfile.open(tarball) as source, tarfile.open(target, "w:gz", format=tarfile.GNU_FORMAT) as tar:
        for member in source:
            data = source.extractfile(member).read() if member.isfile() else None
            parts = member.name.split("/", 1)
            member.name = "/".join([f"mailman-{version}", *parts[1:]])
            if parts[1:] == ["Mailman/Version.py"]:
                data = re.sub(rb"^VERSION = .*$", f"VERSION = '{version}'".encode(), data, count=1, flags=re.M)
            if parts[1:] == ["configure"] and broken:
                data = b"#!/bin/sh\necho 'this release is broken' >&2\nexit 1\n"
            if data is not None:
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
    return target


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class UpstreamSite:
    """A directory of releases served on 127.0.0.1, with an index page linking each one."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=root))
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def release(self, version: str, sha256: str | None = None, signer=None, tarball: Path | None = None) -> Path:
        """Publish a release of version: the fixture's, or tarball's files as version (see as_version),
        with its sha256 file (the true sum unless given) and a signature by signer."""
        if tarball:
            target = as_version(tarball, version, self.root / f"mailman-{version}.tar.gz")
        else:
            made, _ = make_fixture(self.root / f".{version}", "py3", version)
            target = made.rename(self.root / made.name)
        digest = sha256 or hashlib.sha256(target.read_bytes()).hexdigest()
        (self.root / f"{target.name}.sha256").write_text(f"{digest}  {target.name}\n")
        if signer:
            signer.sign(target)
        links = sorted(p.name for p in self.root.glob("*.tar.gz"))
        (self.root / "index.html").write_text("".join(f'<a href="{name}">{name}</a>\n' for name in links))
        return target

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def add_watched(site: UpstreamSite, system: dict, cwd: Path, version: str = "2.2.0") -> None:
    tarball = site.release(version)
    result = mmdeb("upstream", "add", "fork", f"{site.url}/{tarball.name}", "--sha256", hashlib.sha256(tarball.read_bytes()).hexdigest(),
                   "--watch-url", f"{site.url}/", "--watch-regex", LISTING_REGEX, cwd=cwd, env=system)
    assert result.returncode == 0, result.stderr
