"""What a built .deb holds."""

import io
import subprocess
import tarfile
from pathlib import Path


def data_tar(deb: Path) -> tarfile.TarFile:
    data = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(deb)], check=True, capture_output=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data))


def prefix_of(domain: str) -> str:
    return f"./var/lib/mailmen/{domain}"
