"""A throwaway OpenPGP key that signs test releases."""

import os
import subprocess
from pathlib import Path


class Signer:
    def __init__(self, home: Path):
        self.home = home
        home.chmod(0o700)
        self.gpg("--passphrase", "", "--quick-gen-key", "mmdeb test <test@example.org>", "ed25519", "sign", "never")
        self.keyring = home / "signer.gpg"
        self.gpg("--output", str(self.keyring), "--export")

    def gpg(self, *args: str) -> None:
        subprocess.run(["gpg", "--batch", "--quiet", *args], env={**os.environ, "GNUPGHOME": str(self.home)},
                       check=True, capture_output=True)

    def sign(self, path: Path) -> Path:
        signature = path.with_name(path.name + ".sig")
        self.gpg("--yes", "--output", str(signature), "--detach-sign", str(path))
        return signature
