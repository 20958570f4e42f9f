"""The catalogue of upstreams: the defaults shipped with mmdeb (mmdeb/upstream/catalogue.toml),
overridden entry by entry by the local catalogue (/etc/mmdeb/catalogue.toml when installed),
which `mmdeb upstream add|update` write. mmdeb never edits the shipped file."""

import fcntl
import os
import tomllib
from contextlib import contextmanager
from pathlib import Path

import tomli_w

from mmdeb.errors import MmdebError

DEFAULTS = Path(__file__).with_name("catalogue.toml")
LOCAL_HEADER = "# The local catalogue, written by `mmdeb upstream add|update`; its entries override mmdeb's.\n"


def read(path: Path) -> dict:
    """One catalogue file; signing_key paths become absolute (they are relative to the file)."""
    try:
        catalogue = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MmdebError(f"the catalogue {path} is not valid TOML ({exc})", f"correct {path}")
    for entry in [*catalogue.get("upstream", {}).values(), *catalogue.get("component", {}).values()]:
        if "signing_key" in entry:
            entry["signing_key"] = str(path.parent / entry["signing_key"])
    return catalogue


def load_catalogue(local: Path, shipped: Path = DEFAULTS) -> dict:
    catalogue = read(shipped.absolute())
    if local.exists():
        for table, entries in read(local).items():
            catalogue.setdefault(table, {}).update(entries)
    return catalogue


def unknown_upstream(name: str, catalogue: dict) -> MmdebError:
    known = ", ".join(sorted(catalogue.get("upstream", {}))) or "none"
    return MmdebError(f"unknown upstream {name!r}", f"give a tarball path or one of the catalogue names: {known}")


def default_upstream(catalogue: dict, flavour: str | None) -> str:
    """The catalogue's default upstream of flavour (or of all)."""
    name = catalogue.get("defaults", {}).get(f"upstream-{flavour}" if flavour else "upstream")
    if not name:
        raise MmdebError(f"the catalogue has no default upstream for the {flavour} flavour", "give --upstream TARBALL")
    return name


def local_entries(path: Path) -> dict:
    return read(path).get("upstream", {}) if path.exists() else {}


@contextmanager
def local_catalogue(path: Path):
    """Hold the lock of the local catalogue at path and yield its upstream entries as written
    (signing_key relative); they are saved atomically when the block ends without an error."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = tomllib.loads(path.read_text()) if path.exists() else {}
        upstreams = data.setdefault("upstream", {})
        yield upstreams
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(LOCAL_HEADER + tomli_w.dumps(data))
        os.replace(tmp, path)
