"""Downloads and their verification: the one HTTP client, sha256 and OpenPGP signatures."""

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.run import CommandFailed, Runner


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
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
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


def fetch_verified(entry: dict, what: str, cache: Path, runner: Runner | None = None) -> Path:
    """Return the cached file of a catalogue entry, downloading it if absent; verify its sha256,
    and its detached OpenPGP signature when the entry names a signing key."""
    target = cache / entry["filename"]
    if not target.exists():
        download(entry["url"], target, what)
    actual = sha256_of(target)
    if actual != entry["sha256"]:
        raise MmdebError(
            f"sha256 mismatch for {what} ({target}): expected {entry['sha256']}, got {actual}",
            f"delete {target} and try again; if it persists the download is not the pinned release",
        )
    if "signing_key" in entry:
        signature = cache / entry["signature_filename"]
        if not signature.exists():
            download(entry["signature_url"], signature, f"the signature of {what}")
        verify_signature(Path(entry["signing_key"]), signature, target, what, runner or Runner())
    return target
