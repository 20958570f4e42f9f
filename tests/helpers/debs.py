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


def uncompiled_modules(root: Path, package: str, prefix: str) -> list[str]:
    """The installed package's .py files in prefix (on the host at root) that have no byte-code:
    Python 3's in __pycache__, Python 2's beside the module. mm_cfg.py is left out: Mailman
    compiles it when it loads it (rules.j2)."""
    listed = subprocess.run(["chroot", str(root), "dpkg-query", "--listfiles", package],
                            check=True, capture_output=True, text=True).stdout.splitlines()
    modules = [root / name.lstrip("/") for name in listed
               if name.startswith(f"{prefix.lstrip('.')}/") and name.endswith(".py") and not name.endswith("/mm_cfg.py")]
    assert modules, f"{package} has no Python module"
    return [str(module) for module in modules
            if not [*module.parent.glob(f"__pycache__/{module.stem}.*.pyc"), *module.parent.glob(f"{module.name}c")]]


def byte_code_under(directory: Path) -> list[str]:
    return [str(path) for path in directory.rglob("*") if path.suffix in (".pyc", ".pyo") or path.name == "__pycache__"]

