"""Upstream Mailman: flavours, the catalogue, download, verification and inspection."""

import calendar
import hashlib
import os
import re
import shutil
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from mmdeb import places
from mmdeb.catalogue import load_catalogue, unknown_upstream
from mmdeb.errors import MmdebError
from mmdeb.run import CommandFailed, Runner

TARBALL_SUFFIXES = {".tar.gz": "gz", ".tgz": "gz", ".tar.xz": "xz", ".tar.bz2": "bz2"}
VERSION_LINE = re.compile(rb"""^VERSION\s*=\s*['"]([0-9][0-9A-Za-z.+~]*)['"]""", re.M)

# Debian release numbers, for the +debNN version suffix.
DIST_RELEASES = {"bullseye": "11", "bookworm": "12", "trixie": "13", "forky": "14"}


@dataclass(frozen=True)
class Flavour:
    name: str
    summary: str
    dists: tuple[str, ...]
    python: str  # the interpreter compiled into the setgid wrappers
    build_depends: tuple[str, ...]
    depends: tuple[str, ...]
    depends_by_dist: dict[str, tuple[str, ...]] = field(default_factory=dict)
    components: tuple[str, ...] = ()

    @property
    def python_command(self) -> str:
        return self.python.rsplit("/", 1)[-1]

    @property
    def core_package(self) -> str:
        return f"mailmen-core-{self.name}"

    @property
    def core_prefix(self) -> str:
        return f"/usr/lib/mailmen/{self.name}"

    def depends_for(self, dist: str) -> tuple[str, ...]:
        return self.depends + self.depends_by_dist.get(dist, ())

    def check_dist(self, dist: str) -> None:
        if dist not in self.dists:
            raise MmdebError(
                f"the {self.name} flavour ({self.summary}) cannot run on {dist}",
                f"use --dist {' or --dist '.join(self.dists)}",
            )


FLAVOURS = {
    "py3": Flavour(
        name="py3",
        summary="the Python 3 fork, mailman2-python3 2.2.x",
        dists=("trixie", "bookworm", "forky"),  # the first is the default; forky is testing
        python="/usr/bin/python3",
        build_depends=("python3-dev", "python3-dnspython"),
        depends=("python3", "python3-dnspython", "python3-html2text"),
        # Python 3.13 dropped modules Mailman imports: cgi (the CGI scripts) and
        # nntplib (the mail-news gateway: gate_news and the news runner).
        depends_by_dist={dist: ("python3-legacy-cgi", "python3-standard-nntplib") for dist in ("trixie", "forky")},
    ),
    "gnu": Flavour(
        name="gnu",
        summary="GNU Mailman 2.1 on Python 2",
        dists=("bullseye",),
        python="/usr/bin/python2.7",
        build_depends=("python2.7-dev",),
        depends=("python2.7", "python3"),  # python3: mmdeb-import, which drives 2.1 through its scripts
        # configure refuses to run without dnspython < 2, which bullseye lacks for Python 2.
        components=("dnspython",),
    ),
}


def flavour_for_version(version: str) -> Flavour:
    major_minor = tuple(int(part) for part in version.split(".")[:2])
    return FLAVOURS["py3"] if major_minor >= (2, 2) else FLAVOURS["gnu"]


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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, target: Path, what: str) -> None:
    """Download url to target atomically; offline, say where the file can be placed by hand."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".download-", delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as exc:
            os.unlink(tmp.name)
            raise MmdebError(
                f"cannot download {what} from {url} ({exc})",
                f"download it by other means and put it at {target}",
            )
    os.replace(tmp.name, target)


def gpgv_argv(keyring: Path, signature: Path, data: Path) -> list[str]:
    # gpgv looks for a keyring name without a slash in ~/.gnupg; an absolute path keeps it out.
    return ["gpgv", "--keyring", str(Path(keyring).absolute()), str(signature), str(data)]


def verify_signature(keyring: Path, signature: Path, data: Path, what: str, runner: Runner) -> None:
    try:
        runner.run(gpgv_argv(keyring, signature, data))
    except CommandFailed as exc:
        reason = exc.output.strip().splitlines()[-1] if exc.output.strip() else exc.message
        raise MmdebError(
            f"OpenPGP signature check failed for {what} ({data} with {signature}, key {keyring}): {reason}",
            f"do not use {data.name}; delete {data} and {signature} and try again; "
            "if it persists the download is not the signed release",
        )


def fetch_verified(entry: dict, what: str, cache: Path, runner: Runner | None = None) -> Path:
    """Return the cached file of a catalogue entry, downloading it if absent; verify its sha256,
    and its detached OpenPGP signature when the entry names a signing key."""
    target = cache / entry["filename"]
    if not target.exists():
        download(entry["url"], target, what)
    actual = sha256_of(target)
    if actual != entry["sha256"]:
        raise MmdebError(
            f"sha256 mismatch for {what} ({target}): expected {entry['sha256']}, got {actual}",
            f"delete {target} and try again; if it persists the download is not the pinned release",
        )
    if "signing_key" in entry:
        signature = cache / entry["signature_filename"]
        if not signature.exists():
            download(entry["signature_url"], signature, f"the signature of {what}")
        verify_signature(Path(entry["signing_key"]), signature, target, what, runner or Runner())
    return target


def inspect_tarball(path: Path) -> tuple[str, int]:
    """Read the whole tarball (catching truncation); return Mailman's version and the newest mtime."""
    if not path.is_file():
        raise MmdebError(f"upstream tarball {path} does not exist", "give the path of a Mailman 2 tarball or a catalogue name")
    if not any(path.name.endswith(suffix) for suffix in TARBALL_SUFFIXES):
        raise MmdebError(
            f"{path.name} is not a tarball mmdeb can use as an orig tarball",
            f"give a file ending in one of {', '.join(TARBALL_SUFFIXES)}",
        )
    version = None
    newest_mtime = 0
    tops = set()
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                parts = member.name.lstrip("./").split("/")
                tops.add(parts[0])
                newest_mtime = max(newest_mtime, int(member.mtime))
                if parts[1:] == ["Mailman", "Version.py"] and member.isfile():
                    match = VERSION_LINE.search(tar.extractfile(member).read())
                    version = match.group(1).decode() if match else None
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise MmdebError(f"{path} is truncated or not a valid tarball ({exc})", "download the upstream tarball again")
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
