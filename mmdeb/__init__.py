"""mmdeb: per-domain Debian packages of GNU Mailman 2."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("mmdeb")
except PackageNotFoundError:  # running from a checkout without installing (tests assert it matches pyproject.toml)
    __version__ = "0.3.0"

# debian-templates/ and patches/ live beside the package in the checkout; rebuilds
# depend on their contents, so mmdeb runs from (an editable install of) the checkout, or,
# installed as the Debian package mmdeb, from SYSTEM_DATA_DIR, where the package puts them.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SYSTEM_DATA_DIR = Path("/usr/share/mmdeb")


def data_dir(project_root: Path) -> Path:
    """The checkout when debian-templates/ is beside the package, else the installed data."""
    return project_root if (project_root / "debian-templates").is_dir() else SYSTEM_DATA_DIR


DATA_DIR = data_dir(PROJECT_ROOT)
TEMPLATES_DIR = DATA_DIR / "debian-templates"
PATCHES_DIR = DATA_DIR / "patches"
