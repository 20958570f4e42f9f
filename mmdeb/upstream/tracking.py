"""`mmdeb upstream add|update`: download a release, verify it, and record it in the local
catalogue. Nothing is recorded, and no file is left in the cache, unless the release is
verified and is the Mailman version it claims to be.

How a release is verified, strongest first: the OpenPGP signature (the entry's signing_key,
the signature at watch.signature_url), a sha256 published at watch.sha256_url, a sha256 the
admin gives (--sha256); an upstream with none of these (GitHub tags) gets its sha256 pinned
at the first download, and the report says so.
"""

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import local_catalogue, local_entries, unknown_upstream
from mmdeb.upstream.dists import flavour_for_version
from mmdeb.upstream.fetch import Signature, fetch_verified, read_text
from mmdeb.upstream.tarball import TARBALL_SUFFIXES, inspect_tarball
from mmdeb.upstream.watch import Release, newer_releases, read_listing

SHA256 = re.compile(r"\b[0-9a-f]{64}\b")
PINNED_ENTRY_KEYS = ("version", "flavour", "url", "filename", "sha256", "signature_url", "signature_filename")


@dataclass(frozen=True)
class Recorded:
    name: str
    old_version: str
    version: str
    url: str
    sha256: str
    verified_by: str
    files: tuple[Path, ...] = ()  # what it put in the cache


def cached_files(fields: dict, cache: Path) -> tuple[Path, ...]:
    return tuple(cache / fields[key] for key in ("filename", "signature_filename") if key in fields)


def forget(recorded: Recorded) -> None:
    """Remove a release's download, once its record in the local catalogue is undone."""
    for path in recorded.files:
        path.unlink(missing_ok=True)


def tarball_suffix(url: str) -> str:
    suffix = next((s for s in TARBALL_SUFFIXES if url.endswith(s)), None)
    if not suffix:
        raise MmdebError(f"{url} is not a tarball ({', '.join(TARBALL_SUFFIXES)})", "give the URL of a Mailman release tarball")
    return suffix


def fetch_release(name: str, url: str, version: str | None, expected_sha256: str | None, signature_url: str | None,
                  signing_key: str | None, runner: Runner, cache: Path) -> tuple[dict, str]:
    """Download url into cache as <name>-<version><suffix>, verified; return the entry's
    pinned fields and how it was verified."""
    cache.mkdir(parents=True, exist_ok=True)
    suffix = tarball_suffix(url)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        tarball = staging / f"release{suffix}"
        signature = Signature(signature_url, staging / f"release{suffix}.sig", Path(signing_key)) if signing_key else None
        verified = fetch_verified(url, tarball, f"upstream {name}", runner, sha256=expected_sha256, signature=signature,
                                  remedy="nothing was recorded; check where the expected sum comes from and do not use this download")
        found_version, _ = inspect_tarball(tarball)
        if version and found_version != version:
            raise MmdebError(f"the release at {url} is Mailman {found_version}, not {version}; nothing was recorded",
                             "check the upstream's watch regex and the release")
        filename = f"{name}-{found_version}{suffix}"
        signature_fields = {}
        if signature:
            signature_fields = {"signature_url": signature_url, "signature_filename": filename + ".sig"}
            shutil.move(signature.path, cache / signature_fields["signature_filename"])
        shutil.move(tarball, cache / filename)
        fields = {"version": found_version, "flavour": flavour_for_version(found_version).name, "url": url,
                  "filename": filename, "sha256": verified.sha256, **signature_fields}
        return fields, verified.by
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def add(name: str, url: str, sha256: str | None, runner: Runner, local: Path, cache: Path,
        signature_url: str | None = None, signing_key: Path | None = None, watch: dict | None = None) -> Recorded:
    """Record a release in the local catalogue at local, its files in cache."""
    if name in local_entries(local):
        raise MmdebError(f"{name} is already in the local catalogue", f"use mmdeb upstream update {name}")
    if bool(signature_url) != bool(signing_key):
        raise MmdebError("a signature needs both --signature-url and --signing-key", "give both, or neither")
    fields, verified_by = fetch_release(name, url, None, sha256, signature_url, str(signing_key) if signing_key else None,
                                        runner, cache)
    entry = {**fields, **({"watch": watch} if watch else {})}
    with local_catalogue(local) as entries:
        if signing_key:
            # A copy beside the catalogue: the key must outlive the file the admin named.
            entry["signing_key"] = f"keys/{name}.gpg"
            key = local.parent / entry["signing_key"]
            key.parent.mkdir(exist_ok=True)
            shutil.copyfile(signing_key, key)
        entries[name] = entry
    return Recorded(name, "", fields["version"], url, fields["sha256"], verified_by, cached_files(fields, cache))


def newest_release(name: str, entry: dict) -> Release | None:
    """The newest release of a watched upstream newer than the catalogue's, or None."""
    if "watch" not in entry:
        raise MmdebError(f"{name} has no watch table, so mmdeb cannot look for its releases",
                         f"add it again with --watch-url and --watch-regex: mmdeb upstream add {name} ...")
    watch = entry["watch"]
    try:
        listing = read_listing(watch["url"])
    except (OSError, ValueError) as exc:
        raise MmdebError(f"cannot reach the release listing of {name} at {watch['url']} ({getattr(exc, 'reason', exc)})",
                         "check the network (or https_proxy) and try again")
    newer = newer_releases(listing, watch["regex"], entry["version"], watch["url"])
    return newer[0] if newer else None


def published_sha256(url: str) -> str:
    try:
        found = SHA256.search(read_text(url))
    except (OSError, ValueError) as exc:
        raise MmdebError(f"cannot download the published sha256 from {url} ({getattr(exc, 'reason', exc)})",
                         "check the network (or https_proxy) and try again")
    if not found:
        raise MmdebError(f"{url} holds no sha256", "correct watch.sha256_url in the catalogue")
    return found.group(0)


def update(name: str, catalogue: dict, runner: Runner, local: Path, cache: Path) -> Recorded | None:
    """Record the newest release of name in the local catalogue at local, if it is newer than
    the catalogue's; None if not."""
    entry = catalogue.get("upstream", {}).get(name)
    if entry is None:
        raise unknown_upstream(name, catalogue)
    release = newest_release(name, entry)
    if release is None:
        return None
    watch = entry["watch"]
    expand = {"url": release.url, "version": release.version}
    signing_key = entry.get("signing_key")
    signature_url = watch.get("signature_url", "{url}.sig").format(**expand) if signing_key else None
    sha256_url = watch["sha256_url"].format(**expand) if "sha256_url" in watch else None
    expected = published_sha256(sha256_url) if sha256_url else None
    fields, verified_by = fetch_release(name, release.url, release.version, expected, signature_url, signing_key, runner, cache)
    if sha256_url and not signing_key:
        verified_by = f"the sha256 published at {sha256_url}"
    with local_catalogue(local) as entries:
        kept = {key: value for key, value in (entries.get(name) or entry).items() if key not in PINNED_ENTRY_KEYS}
        entries[name] = {**kept, **fields}
    return Recorded(name, entry["version"], release.version, release.url, fields["sha256"], verified_by,
                    cached_files(fields, cache))
