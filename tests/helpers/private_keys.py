"""Private key material in a directory tree: what a published repository must never hold."""

import subprocess
import tempfile
from pathlib import Path

# An ASCII-armoured secret key export; gpg-agent's key files (private-keys-v1.d/*.key), old and extended format.
MARKERS = (b"PRIVATE KEY", b"private-key")
SECRET_PACKETS = (":secret key packet:", ":secret sub key packet:")


def holds_private_key(path: Path, gnupghome: Path) -> bool:
    """True if path has a marker or OpenPGP secret-key packets (a binary secret key export)."""
    if any(marker in path.read_bytes() for marker in MARKERS):
        return True
    packets = subprocess.run(["gpg", "--homedir", str(gnupghome), "--batch", "--list-packets", str(path)],
                             capture_output=True, text=True, errors="replace")
    return any(packet in packets.stdout for packet in SECRET_PACKETS)


def private_key_files(tree: Path) -> list[Path]:
    """Every file under tree that holds private key material."""
    with tempfile.TemporaryDirectory(prefix="gnupg-") as home:  # an empty keyring: the scan trusts nothing
        return [path for path in sorted(tree.rglob("*")) if path.is_file() and holds_private_key(path, Path(home))]
