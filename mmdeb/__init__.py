"""mmdeb: per-domain Debian packages of GNU Mailman 2."""

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

try:
    __version__ = version("mmdeb")
except PackageNotFoundError:  # running from a checkout without installing
    __version__ = "0.1.0"

# debian-templates/ and patches/ live beside the package in the checkout; rebuilds
# depend on their contents, so mmdeb always runs from (an editable install of) the checkout.
PROJECT_ROOT = Path(__file__).resolve().parent.parent
TEMPLATES_DIR = PROJECT_ROOT / "debian-templates"
PATCHES_DIR = PROJECT_ROOT / "patches"
