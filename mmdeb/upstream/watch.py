"""`mmdeb upstream check`: is there a newer upstream release than the catalogue's? (like uscan)

Each catalogue upstream has a `watch` table: `url`, a listing page, and `regex`, whose one
group captures a version in that page. Versions are compared in Debian order.
"""

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass

from debian.debian_support import Version

from mmdeb.errors import MmdebError
from mmdeb.upstream.catalogue import unknown_upstream
from mmdeb.upstream.fetch import read_text

LISTING_TIMEOUT = 30  # seconds; a listing is a small page


@dataclass(frozen=True)
class Release:
    version: str
    url: str


def newer_releases(listing_text: str, regex: str, current: str, base_url: str = "") -> list[Release]:
    """Releases in listing_text newer than current, newest first; each URL is the match,
    resolved against base_url (so a link in a page becomes absolute)."""
    found: dict[str, Release] = {}
    for match in re.finditer(regex, listing_text):
        version = match.group(1)
        # A version can appear several times (link text, .tgz and .sig); keep its first link.
        found.setdefault(version, Release(version, urllib.parse.urljoin(base_url, match.group(0))))
    newer = [release for release in found.values() if Version(release.version) > Version(current)]
    return sorted(newer, key=lambda release: Version(release.version), reverse=True)


def read_listing(url: str) -> str:
    """The listing page; OSError (URLError, timeouts, HTTP errors) is left to the caller."""
    return read_text(url, LISTING_TIMEOUT)


def check_line(name: str, entry: dict, listing_text: str) -> str:
    """One report line for an upstream whose listing was read."""
    watch = entry["watch"]
    if not re.search(watch["regex"], listing_text):
        return f"{name}  {entry['version']}  no release found at {watch['url']} (is the watch regex out of date?)"
    newer = newer_releases(listing_text, watch["regex"], entry["version"], watch["url"])
    if not newer:
        return f"{name}  {entry['version']}  up to date"
    others = f"; also {', '.join(release.version for release in newer[1:])}" if newer[1:] else ""
    return f"{name}  {entry['version']}  newer: {newer[0].version} ({newer[0].url}){others}"


def check(catalogue: dict, name: str | None = None) -> Iterator[str]:
    """Report lines for one upstream or all; at the end, MmdebError if a listing was unreachable."""
    upstreams = catalogue.get("upstream", {})
    if name is not None and name not in upstreams:
        raise unknown_upstream(name, catalogue)
    unreachable = []
    for each in [name] if name else sorted(upstreams):
        entry = upstreams[each]
        if "watch" not in entry:
            yield f"{each}  {entry.get('version', '?')}  not watched (no watch table in the catalogue)"
            continue
        try:
            listing = read_listing(entry["watch"]["url"])
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors; ValueError: a malformed URL
            unreachable.append(f"{each}: its listing {entry['watch']['url']} is unreachable ({getattr(exc, 'reason', exc)})")
            continue
        yield check_line(each, entry, listing)
    if unreachable:
        raise MmdebError(
            f"cannot check for newer releases of {'; '.join(unreachable)}",
            "check the network (or https_proxy) and run mmdeb upstream check again",
        )
