"""Upstream Mailman tarballs: what a catalogue name or a path stands for, and what a tarball holds."""

import calendar
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mmdeb.app import places
from mmdeb.upstream.catalogue import load_catalogue, unknown_upstream
from mmdeb.errors import MmdebError
from mmdeb.upstream.dists import FLAVOURS, Flavour, flavour_for_version
from mmdeb.upstream.fetch import fetch_verified

TARBALL_SUFFIXES = {".tar.gz": "gz", ".tgz": "gz", ".tar.xz": "xz", ".tar.bz2": "bz2"}
VERSION_LINE = re.compile(rb"""^VERSION\s*=\s*['"]([0-9][0-9A-Za-z.+~]*)['"]""", re.M)


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    import_name: str  # the Python package installed into the prefix's pythonlib
    tarball: Path  # a tar.xz ready to be the orig-NAME tarball


@dataclass(frozen=True)
class Upstream:
    tarball: Path
    version: str
    flavour: Flavour
    components: tuple[Component, ...]
    newest_mtime: int  # of any member: a date that depends only on the input

    @property
    def compression(self) -> str:
        return next(c for suffix, c in TARBALL_SUFFIXES.items() if self.tarball.name.endswith(suffix))


def cache_dir() -> Path:
    return places.current().cache


def inspect_tarball(path: Path) -> tuple[str, int]:
    """Read the whole tarball (catching truncation); return Mailman's version and the newest mtime."""
    if not path.is_file():
        raise MmdebError(f"upstream tarball {path} does not exist", "give the path of a Mailman 2 tarball or a catalogue name")
    suffix = next((suffix for suffix in TARBALL_SUFFIXES if path.name.endswith(suffix)), None)
    if not suffix:
        raise MmdebError(
            f"{path.name} is not a tarball mmdeb can use as an orig tarball",
            f"give a file ending in one of {', '.join(TARBALL_SUFFIXES)}",
        )
    if path.stat().st_size == 0:
        raise MmdebError(f"upstream tarball {path} is empty (0 bytes)", "download the upstream tarball again")
    version = None
    newest_mtime = 0
    tops = set()
    try:
        # The compression its name says (dpkg-source names the orig by it), so a failure has one reason.
        with tarfile.open(path, f"r:{TARBALL_SUFFIXES[suffix]}") as tar:
            for member in tar:
                parts = member.name.lstrip("./").split("/")
                tops.add(parts[0])
                newest_mtime = max(newest_mtime, int(member.mtime))
                if parts[1:] == ["Mailman", "Version.py"] and member.isfile():
                    match = VERSION_LINE.search(tar.extractfile(member).read())
                    version = match.group(1).decode() if match else None
    except (tarfile.TarError, EOFError, OSError) as exc:
        reason = " ".join(str(exc).split())
        raise MmdebError(f"{path} is truncated or not a valid tarball ({reason})",
                         "download the upstream tarball again")
    if version is None or len(tops) != 1:
        raise MmdebError(
            f"{path} is not a Mailman 2 source tarball (no single top directory with Mailman/Version.py)",
            "give a GNU Mailman 2.1 or mailman2-python3 tarball",
        )
    return version, newest_mtime


def repack_zip(zip_path: Path, target: Path) -> None:
    """Repack a zip as tar.xz with sorted names, zip timestamps and root ownership."""
    tmp = target.with_name(f".{target.name}.tmp")
    with zipfile.ZipFile(zip_path) as zf, tarfile.open(tmp, "w:xz", format=tarfile.GNU_FORMAT) as tar:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            member = tarfile.TarInfo(info.filename.rstrip("/"))
            member.mtime = calendar.timegm(info.date_time + (0, 0, -1))
            member.uid = member.gid = 0
            if info.is_dir():
                member.type, member.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(member)
            else:
                member.mode = 0o755 if (info.external_attr >> 16) & 0o111 else 0o644
                member.size = info.file_size
                with zf.open(info) as data:
                    tar.addfile(member, data)
    os.replace(tmp, target)


def component(name: str, cache: Path, catalogue: dict) -> Component:
    entry = catalogue["component"][name]
    source = fetch_verified(entry, f"component {name} {entry['version']}", cache / "upstream")
    if source.name.endswith(".zip"):
        tarball = source.with_name(source.name.removesuffix(".zip") + ".tar.xz")
        if not tarball.exists():
            repack_zip(source, tarball)
    else:
        tarball = source
    return Component(name, entry["version"], entry["import"], tarball)


def resolve(spec: str, flavour_name: str | None = None, cache: Path | None = None) -> Upstream:
    """Turn --upstream (a path or a catalogue name) and --flavour into a verified Upstream."""
    cache = cache or cache_dir()
    catalogue = load_catalogue()
    entry = catalogue.get("upstream", {}).get(spec)
    if entry:
        tarball = fetch_verified(entry, f"upstream {spec}", cache / "upstream")
    elif "/" in spec or any(spec.endswith(suffix) for suffix in TARBALL_SUFFIXES):
        tarball = Path(spec).resolve()
    else:
        raise unknown_upstream(spec, catalogue)
    version, newest_mtime = inspect_tarball(tarball)
    if entry and entry.get("version", version) != version:
        # `mmdeb upstream check` compares releases with the catalogue's version, so it must be true.
        raise MmdebError(
            f"the catalogue says {spec} is version {entry['version']}, but {tarball.name} is Mailman {version}",
            f"correct version = \"{version}\" for {spec} in the catalogue",
        )
    guessed = flavour_for_version(version)
    if flavour_name and flavour_name != guessed.name:
        raise MmdebError(
            f"{tarball.name} is Mailman {version}, which is the {guessed.name} flavour, not {flavour_name}",
            f"use --flavour {guessed.name} or a {FLAVOURS[flavour_name].summary} tarball",
        )
    components = tuple(component(name, cache, catalogue) for name in guessed.components)
    return Upstream(tarball, version, guessed, components, newest_mtime)
