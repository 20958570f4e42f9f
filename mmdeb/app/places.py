"""Where mmdeb keeps its files: beside ./mmdeb.toml in a working directory, or, when mmdeb
is installed as a Debian package (it ships /etc/mmdeb), in the system's places:

  /etc/mmdeb/mmdeb.conf        settings                /var/lib/mmdeb/mmdeb.toml   state
  /etc/mmdeb/catalogue.toml    the local catalogue     /var/lib/mmdeb/build/       build output
  /var/cache/mmdeb/            chroots and downloads   /var/lib/mmdeb/repo/        apt repository
                                                       /var/lib/mmdeb/signing-key/ its private key (0700)
                                                       /var/lib/mmdeb/reports/     autorebuild reports
A directory that holds mmdeb.toml keeps working as it always did, installed or not. The signing
key is always beside the repository, never in it: an admin who copies the repository to a web
host must not copy the key. mmdeb-autorebuild.service has a /tmp and /var/tmp of its own
(PrivateTmp=yes), so the scheduled runs cannot read what is kept there.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

from mmdeb.upstream.catalogue import DEFAULTS as SHIPPED_CATALOGUE

STATE_NAME = "mmdeb.toml"
SIGNING_KEY_NAME = "signing-key"


@dataclass(frozen=True)
class Places:
    system: bool
    state: Path
    out: Path
    repo: Path
    cache: Path
    settings: Path
    catalogue: Path  # the local one
    reports: Path
    shipped_catalogue: Path = SHIPPED_CATALOGUE
    private_tmp: tuple[Path, ...] = ()  # what the scheduled runs do not see

    @property
    def signing_key(self) -> Path:
        """The repository's GnuPG home; it follows the repository when --repo moves it."""
        return self.repo.resolve().parent / SIGNING_KEY_NAME


def user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mmdeb"


def working(directory: Path) -> Places:
    return Places(False, directory / STATE_NAME, directory / "build", directory / "repo", user_cache(),
                  directory / "mmdeb.conf", directory / "catalogue.toml", directory / "reports")


def system(root: Path) -> Places:
    lib = root / "var/lib/mmdeb"
    return Places(True, lib / STATE_NAME, lib / "build", lib / "repo", root / "var/cache/mmdeb",
                  root / "etc/mmdeb/mmdeb.conf", root / "etc/mmdeb/catalogue.toml", lib / "reports",
                  private_tmp=(root / "tmp", root / "var/tmp"))


def choose(cwd: Path, root: Path) -> Places:
    if (cwd / STATE_NAME).exists() or not (root / "etc/mmdeb").is_dir():
        return working(cwd)
    return system(root)


def current() -> Places:
    """The places of this run. $MMDEB_ROOT moves the system places under another root (tests);
    $MMDEB_CACHE moves the cache, $MMDEB_CATALOGUE replaces the shipped catalogue."""
    places = choose(Path.cwd(), Path(os.environ.get("MMDEB_ROOT") or "/"))
    if os.environ.get("MMDEB_CACHE"):
        places = replace(places, cache=Path(os.environ["MMDEB_CACHE"]))
    if os.environ.get("MMDEB_CATALOGUE"):
        places = replace(places, shipped_catalogue=Path(os.environ["MMDEB_CATALOGUE"]))
    return places
