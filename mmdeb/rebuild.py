"""What changed since each domain's last build, and the next Debian revision for it.

Version policy: a new upstream version starts again at Debian revision 1; the same
upstream with anything else changed (patches, debian-templates, the domain's settings,
mmdeb itself) gets the next revision. Every rebuild gets a new version, so a version is
never built twice from different inputs.
"""

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

from mmdeb import PATCHES_DIR, TEMPLATES_DIR, __version__
from mmdeb.domain import Domain
from mmdeb.spec import ChangelogEntry, PackageSpec
from mmdeb.state import DomainState
from mmdeb.upstream import Upstream, resolve, sha256_of

URGENCIES = ("low", "medium", "high", "critical", "emergency")


def digest_tree(root: Path) -> str:
    """sha256 over the relative names and contents of every file under root."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_of(domain: DomainState, upstream: Upstream, patches_dir: Path) -> dict[str, str]:
    """Everything a domain package is made from, each as one comparable string."""
    series_dir = patches_dir / upstream.flavour.name
    settings = {key: getattr(domain, key) for key in ("dist", "mail_gid", "cgi_gid", "site_list_owner")}
    return {
        "upstream": f"{upstream.version} {sha256_of(upstream.tarball)}",
        "patches": digest_tree(series_dir) if series_dir.exists() else "",
        "templates": digest_tree(TEMPLATES_DIR),
        "settings": json.dumps(settings, sort_keys=True),
        "mmdeb": __version__,
    }


REASONS = {
    "upstream": "new upstream release {version}",
    "patches": "changed patches in patches/{flavour}",
    "templates": "changed debian-templates",
    "settings": "changed domain settings",
    "mmdeb": "mmdeb {mmdeb}",
}


@dataclass(frozen=True)
class Rebuild:
    name: str
    spec: PackageSpec
    inputs: dict[str, str]
    reasons: tuple[str, ...]


def split_version(version: str) -> tuple[str, int]:
    """'2.2.0-3+deb12' -> ('2.2.0', 3)."""
    upstream, debian = version.rsplit("-", 1)
    return upstream, int(debian.split("+")[0])


def next_revision(domain: DomainState, upstream: Upstream) -> int:
    if not domain.built:
        return 1
    built_upstream, revision = split_version(domain.built)
    return revision + 1 if built_upstream == upstream.version else 1


def plan(name: str, domain: DomainState, urgency: str, patches_dir: Path = PATCHES_DIR) -> Rebuild | None:
    """The rebuild this domain needs, or None if nothing it is made from changed."""
    upstream = resolve(domain.upstream, domain.flavour)
    inputs = inputs_of(domain, upstream, patches_dir)
    changed = [key for key in inputs if inputs[key] != domain.inputs.get(key)]
    if domain.built and not changed:
        return None
    context = {"version": upstream.version, "flavour": upstream.flavour.name, "mmdeb": __version__}
    reasons = tuple(REASONS[key].format(**context) for key in changed) if domain.built else ("first build",)
    spec = PackageSpec(Domain.parse(name), upstream, domain.dist, patches_dir, domain.mail_gid, domain.cgi_gid,
                       next_revision(domain, upstream), domain.site_list_owner)
    reason = f"Rebuild of Mailman {upstream.version} for {name}: {'; '.join(reasons)}."
    timestamp = int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    entry = ChangelogEntry(spec.version, spec.dist, urgency, timestamp, reason)
    history = tuple(old for old in domain.changelog if old.version != spec.version)
    return Rebuild(name, replace(spec, changelog=(entry, *history)), inputs, reasons)
