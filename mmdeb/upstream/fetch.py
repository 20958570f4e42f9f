"""Downloads and their verification: the one HTTP client, sha256 and OpenPGP signatures. Used
by the builds (catalogue upstreams and components) and by the tracker (new releases)."""

import hashlib
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from mmdeb import __version__
from mmdeb.errors import MmdebError
from mmdeb.run import CommandFailed, Runner

TIMEOUT = 60  # seconds without data before a download is given up


@dataclass(frozen=True)
class Signature:
    """A detached OpenPGP signature: where it is published, where it is kept, and the keyring of its key."""

    url: str
    path: Path
    keyring: Path


@dataclass(frozen=True)
class Verified:
    sha256: str
    by: str  # how: for the report


def open_url(url: str, timeout: int = TIMEOUT, method: str = "GET"):
    """The response for url; OSError (URLError, timeouts, HTTP errors) or ValueError (a malformed URL) if none."""
    request = urllib.request.Request(url, headers={"User-Agent": f"mmdeb/{__version__}"}, method=method)
    return urllib.request.urlopen(request, timeout=timeout)


def read_text(url: str, timeout: int = TIMEOUT) -> str:
    """A small page (a release listing, a published sha256); errors as open_url."""
    with open_url(url, timeout) as response:
        return response.read().decode(response.headers.get_content_charset() or "utf-8", errors="replace")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, what: str) -> None:
    """Download url to target atomically; offline, say where the file can be placed by hand."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-", delete=False) as tmp:
        try:
            with open_url(url) as response:
                shutil.copyfileobj(response, tmp)
        except (OSError, ValueError) as exc:
            os.unlink(tmp.name)
            raise MmdebError(
                f"cannot download {what} from {url} ({exc})",
                f"download it by other means and put it at {target}",
            )
    os.replace(tmp.name, target)


def gpgv_argv(keyring: Path, signature: Path, data: Path) -> list[str]:
    # gpgv looks for a keyring name without a slash in ~/.gnupg; an absolute path keeps it out.
    return ["gpgv", "--keyring", str(Path(keyring).absolute()), str(signature), str(data)]


def verify_signature(keyring: Path, signature: Path, data: Path, what: str, runner: Runner) -> None:
    try:
        runner.run(gpgv_argv(keyring, signature, data), what=f"checking the OpenPGP signature of {what}")
    except CommandFailed as exc:
        reason = exc.output.strip().splitlines()[-1] if exc.output.strip() else exc.message
        raise MmdebError(
            f"OpenPGP signature check failed for {what} ({data} with {signature}, key {keyring}): {reason}",
            f"do not use {data.name}; delete {data} and {signature} and try again; "
            "if it persists the download is not the signed release",
        )


def fetch_verified(url: str, target: Path, what: str, runner: Runner, *, sha256: str | None = None,
                   signature: Signature | None = None, remedy: str = "") -> Verified:
    """target, downloaded from url unless it is there; refused unless it has sha256 (when given)
    and a good signature (when given, also downloaded unless there)."""
    if not target.exists():
        download(url, target, what)
    actual = sha256_of(target)
    if sha256 and actual != sha256:
        raise MmdebError(f"sha256 mismatch for {what} ({target}): expected {sha256}, got {actual}",
                         remedy or f"delete {target} and try again; if it persists the download is not the pinned release")
    if signature:
        if not signature.path.exists():
            download(signature.url, signature.path, f"the signature of {what}")
        verify_signature(signature.keyring, signature.path, target, what, runner)
        return Verified(actual, f"OpenPGP signature {signature.url} with {signature.keyring}")
    return Verified(actual, f"sha256 {sha256}" if sha256 else "nothing: its sha256 is pinned from this download")
