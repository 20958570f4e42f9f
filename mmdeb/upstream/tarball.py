"""Upstream Mailman tarballs: what a catalogue name or a path stands for, and what a tarball holds."""

import calendar
import os
import re
import tarfile
import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import unknown_upstream
from mmdeb.upstream.dists import FLAVOURS, Flavour, flavour_for_version
from mmdeb.upstream.fetch import Signature, fetch_verified, sha256_of

TARBALL_SUFFIXES = {".tar.gz": "gz", ".tgz": "gz", ".tar.xz": "xz", ".tar.bz2": "bz2"}
VERSION_LINE = re.compile(rb"""^VERSION\s*=\s*['"]([0-9][0-9A-Za-z.+~]*)['"]""", re.M)


@dataclass(frozen=True)
class Download:
    """A catalogue entry's file: where it comes from, how it is verified, and where it is cached."""

    url: str
    path: Path
    sha256: str
    signature: Signature | None

    @classmethod
    def of(cls, entry: dict, directory: Path) -> "Download":
        signature = (Signature(entry["signature_url"], directory / entry["signature_filename"], Path(entry["signing_key"]))
                     if "signing_key" in entry else None)
        return cls(entry["url"], directory / entry["filename"], entry["sha256"], signature)

    def fetch(self, what: str, runner: Runner) -> None:
        fetch_verified(self.url, self.path, what, runner, sha256=self.sha256, signature=self.signature)


@dataclass(frozen=True)
class Component:
    name: str
    version: str
    import_name: str  # the Python package installed into the prefix's pythonlib
    tarball: Path  # a tar.xz ready to be the orig-NAME tarball
    download: Download

    def fetch(self, runner: Runner) -> None:
        self.download.fetch(f"component {self.name} {self.version}", runner)
        if self.download.path != self.tarball and not self.tarball.exists():
            repack_zip(self.download.path, self.tarball)


@dataclass(frozen=True)
class Upstream:
    """What an upstream reference (a catalogue name or a tarball path) stands for. Made without
    downloading (see describe), so planning never touches the network; fetch() makes the files
    a build needs."""

    ref: str
    tarball: Path
    version: str
    flavour: Flavour
    sha256: str
    components: tuple[Component, ...]
    download: Download | None  # None: a local tarball

    @property
    def compression(self) -> str:
        return next(c for suffix, c in TARBALL_SUFFIXES.items() if self.tarball.name.endswith(suffix))

    @cached_property
    def contents(self) -> tuple[str, int]:
        """The tarball's Mailman version and newest member mtime, read once (after fetch)."""
        return inspect_tarball(self.tarball)

    @property
    def newest_mtime(self) -> int:
        """Of any member: a date that depends only on the input."""
        return self.contents[1]

    def fetch(self, runner: Runner) -> None:
        """Download (unless cached) and verify the tarball and the components."""
        if self.download:
            self.download.fetch(f"upstream {self.ref}", runner)
            version, _ = self.contents
            if version != self.version:
                # `mmdeb upstream check` compares releases with the catalogue's version, so it must be true.
                raise MmdebError(
                    f"the catalogue says {self.ref} is version {self.version}, but {self.tarball.name} is Mailman {version}",
                    f"correct version = \"{version}\" for {self.ref} in the catalogue",
                )
        for component in self.components:
            component.fetch(runner)


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


def describe_component(name: str, catalogue: dict, cache: Path) -> Component:
    entry = catalogue["component"][name]
    download = Download.of(entry, cache / "upstream")
    tarball = download.path.with_name(download.path.name.removesuffix(".zip") + ".tar.xz") \
        if download.path.name.endswith(".zip") else download.path
    return Component(name, entry["version"], entry["import"], tarball, download)


def describe(ref: str, flavour_name: str | None, catalogue: dict, cache: Path) -> Upstream:
    """What ref (a catalogue name or a tarball path) with --flavour stands for, without
    downloading: a catalogue upstream is described by its entry, a tarball by its contents."""
    entry = catalogue.get("upstream", {}).get(ref)
    if entry:
        if "version" not in entry:
            raise MmdebError(f"the catalogue entry {ref} has no version", f"add version = \"...\" to {ref} in the catalogue")
        download = Download.of(entry, cache / "upstream")
        tarball, version, sha256 = download.path, entry["version"], download.sha256
    elif "/" in ref or any(ref.endswith(suffix) for suffix in TARBALL_SUFFIXES):
        download, tarball = None, Path(ref).resolve()
        version, _ = inspect_tarball(tarball)
        sha256 = sha256_of(tarball)
    else:
        raise unknown_upstream(ref, catalogue)
    guessed = flavour_for_version(version)
    if flavour_name and flavour_name != guessed.name:
        raise MmdebError(
            f"{tarball.name} is Mailman {version}, which is the {guessed.name} flavour, not {flavour_name}",
            f"use --flavour {guessed.name} or a {FLAVOURS[flavour_name].summary} tarball",
        )
    components = tuple(describe_component(name, catalogue, cache) for name in guessed.components)
    return Upstream(ref, tarball, version, guessed, sha256, components, download)


def resolve(ref: str, flavour_name: str | None, catalogue: dict, cache: Path, runner: Runner) -> Upstream:
    """describe, then fetch: an Upstream whose files are there and verified."""
    upstream = describe(ref, flavour_name, catalogue, cache)
    upstream.fetch(runner)
    return upstream
