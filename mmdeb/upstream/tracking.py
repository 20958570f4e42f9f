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

from mmdeb.upstream.catalogue import load_catalogue, local_catalogue, local_entries, unknown_upstream
from mmdeb.errors import MmdebError
from mmdeb.app.places import current
from mmdeb.run import Runner
from mmdeb.upstream.tarball import TARBALL_SUFFIXES, cache_dir, inspect_tarball
from mmdeb.upstream.fetch import download, sha256_of, verify_signature
from mmdeb.upstream.dists import flavour_for_version
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


def tarball_suffix(url: str) -> str:
    suffix = next((s for s in TARBALL_SUFFIXES if url.endswith(s)), None)
    if not suffix:
        raise MmdebError(f"{url} is not a tarball ({', '.join(TARBALL_SUFFIXES)})", "give the URL of a Mailman release tarball")
    return suffix


def fetch_release(name: str, url: str, version: str | None, expected_sha256: str | None, signature_url: str | None,
                  signing_key: str | None, runner: Runner) -> tuple[dict, str]:
    """Download url into the cache as <name>-<version><suffix>, verified; return the entry's
    pinned fields and how it was verified."""
    cache = cache_dir() / "upstream"
    cache.mkdir(parents=True, exist_ok=True)
    suffix = tarball_suffix(url)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache))
    try:
        tarball = staging / f"release{suffix}"
        download(url, tarball, f"upstream {name}")
        actual = sha256_of(tarball)
        if expected_sha256 and actual != expected_sha256:
            raise MmdebError(f"sha256 mismatch for {url}: expected {expected_sha256}, got {actual}; nothing was recorded",
                             "check where the expected sum comes from; do not use this download")
        verified_by = f"sha256 {expected_sha256}" if expected_sha256 else "nothing: its sha256 is pinned from this download"
        signature_fields = {}
        if signing_key:
            signature = staging / f"release{suffix}.sig"
            download(signature_url, signature, f"the signature of upstream {name}")
            verify_signature(Path(signing_key), signature, tarball, f"upstream {name}", runner)
            verified_by = f"OpenPGP signature {signature_url} with {signing_key}"
        found_version, _ = inspect_tarball(tarball)
        if version and found_version != version:
            raise MmdebError(f"the release at {url} is Mailman {found_version}, not {version}; nothing was recorded",
                             "check the upstream's watch regex and the release")
        filename = f"{name}-{found_version}{suffix}"
        if signing_key:
            signature_fields = {"signature_url": signature_url, "signature_filename": filename + ".sig"}
            shutil.move(signature, cache / signature_fields["signature_filename"])
        shutil.move(tarball, cache / filename)
        fields = {"version": found_version, "flavour": flavour_for_version(found_version).name, "url": url,
                  "filename": filename, "sha256": actual, **signature_fields}
        return fields, verified_by
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def add(name: str, url: str, sha256: str | None, runner: Runner, signature_url: str | None = None,
        signing_key: Path | None = None, watch: dict | None = None) -> Recorded:
    if name in local_entries():
        raise MmdebError(f"{name} is already in the local catalogue", f"use mmdeb upstream update {name}")
    if bool(signature_url) != bool(signing_key):
        raise MmdebError("a signature needs both --signature-url and --signing-key", "give both, or neither")
    fields, verified_by = fetch_release(name, url, None, sha256, signature_url, str(signing_key) if signing_key else None, runner)
    entry = {**fields, **({"watch": watch} if watch else {})}
    with local_catalogue() as local:
        if signing_key:
            # A copy beside the catalogue: the key must outlive the file the admin named.
            entry["signing_key"] = f"keys/{name}.gpg"
            key = current().catalogue.parent / entry["signing_key"]
            key.parent.mkdir(exist_ok=True)
            shutil.copyfile(signing_key, key)
        local[name] = entry
    return Recorded(name, "", fields["version"], url, fields["sha256"], verified_by)


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
    staging = Path(tempfile.mkdtemp(prefix=".sha256-", dir=cache_dir()))
    try:
        download(url, staging / "sha256", "the published sha256")
        found = SHA256.search((staging / "sha256").read_text(errors="replace"))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not found:
        raise MmdebError(f"{url} holds no sha256", "correct watch.sha256_url in the catalogue")
    return found.group(0)


def update(name: str, runner: Runner) -> Recorded | None:
    """Record the newest release of name, if it is newer than the catalogue's; None if not."""
    catalogue = load_catalogue()
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
    fields, verified_by = fetch_release(name, release.url, release.version, expected, signature_url, signing_key, runner)
    if sha256_url and not signing_key:
        verified_by = f"the sha256 published at {sha256_url}"
    with local_catalogue() as local:
        kept = {key: value for key, value in (local.get(name) or entry).items() if key not in PINNED_ENTRY_KEYS}
        local[name] = {**kept, **fields}
    return Recorded(name, entry["version"], release.version, release.url, fields["sha256"], verified_by)
