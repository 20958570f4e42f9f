"""mailmen backups changed as the refusal tests need them."""

import io
import json
import tarfile
from pathlib import Path

from mmdeb.listhost.mailmen import MANIFEST


def with_manifest(made: Path, target: Path, **changes) -> Path:
    """A copy of the backup made, at target, its manifest's fields changed."""
    with tarfile.open(made) as source, tarfile.open(target, "w:gz") as tar:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if member.name == MANIFEST:
                data = json.dumps({**json.loads(data), **changes}).encode()
                member.size = len(data)
            tar.addfile(member, None if data is None else io.BytesIO(data))
    return target
