"""What changed since each package's last build, and the next Debian revision for it.

Version policy: a new upstream version starts again at Debian revision 1; the same
upstream with anything else changed (patches, debian-templates, the domain's settings,
mmdeb itself) gets the next revision. Every rebuild gets a new version, so a version is
never built twice from different inputs.

mailmen-common is made of mmdeb's own files: its version is mmdeb's with a revision
(0.2.0+3+deb13), the next one whenever its files change.

In shared mode a domain package holds only what configure and the wrappers make of the
source, so patches that touch only the core's code (see CORE_ONLY) rebuild the core alone.
"""

import functools
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from mmdeb import TEMPLATES_DIR, __version__
from mmdeb.build.render import IMPORTER_MODULES, common_sources, common_timestamp, environment, importer_files, series_names, templates_for, with_includes
from mmdeb.build.spec import CommonSpec, CoreSpec, PackageSpec, split_common_version
from mmdeb.domains.domain import Domain
from mmdeb.domains.state import ChangelogEntry, DomainState, PackageState, State, Where, core_key
from mmdeb.errors import MmdebError
from mmdeb.upstream.tarball import Upstream

# What an upstream reference and a flavour stand for (upstream.tarball.describe): read from the
# catalogue and the files on disk, never downloaded, so planning works offline.
UpstreamOf = Callable[[str, str], Upstream]

# Source files whose changes reach only the core package: Python code, scripts, templates
# and translations. Makefiles, configure, the wrappers' C code, Defaults.py.in, paths.py.in
# and Mailman/__init__.py.in also shape each shared-mode domain package.
CORE_ONLY = re.compile(
    r"^(?!.*Makefile)(?!Mailman/(Defaults\.py|__init__\.py|mm_cfg\.py\.dist)\.in$)"
    r"(Mailman|bin|cron|scripts|templates|messages|tests)/(?!crontab)"
)


def patched_paths(patch: str) -> set[str]:
    """The source paths a quilt patch touches, without their a/ b/ (or tree) component."""
    paths = set()
    for line in patch.splitlines():
        if line.startswith(("--- ", "+++ ")):
            path = line[4:].split("\t")[0].strip()
            if path != "/dev/null" and "/" in path:
                paths.add(path.split("/", 1)[1])
    return paths


def reaches_domains(patch: str) -> bool:
    return any(not CORE_ONLY.match(path) for path in patched_paths(patch))


def digest_patches(series_dir: Path, domain_part_only: bool) -> str:
    """sha256 over the series' patches in order; only those that reach a shared-mode domain package if asked."""
    digest = hashlib.sha256()
    for name in series_names(series_dir):
        # Bytes: a patch to a file in a legacy encoding is not UTF-8.
        patch = (series_dir / name).read_bytes() if (series_dir / name).is_file() else b""
        if not domain_part_only or reaches_domains(patch.decode("utf-8", "replace")):
            digest.update(name.encode() + b"\0" + patch + b"\0")
    return digest.hexdigest()


@functools.cache  # the names depend on mmdeb's code only; planning asks once per domain
def template_inputs(kind: str) -> tuple[str, ...]:
    """The debian-templates a domain package (or the core) is rendered from, with those they include."""
    return tuple(with_includes(templates_for(kind, environment().list_templates())))


def digest_templates(kind: str) -> str:
    """sha256 over template_inputs(kind)."""
    digest = hashlib.sha256()
    for name in template_inputs(kind):
        digest.update(name.encode() + b"\0" + (TEMPLATES_DIR / name).read_bytes() + b"\0")
    return digest.hexdigest()


def digest_importer() -> str:
    """sha256 over the modules the domain packages ship as mmdeb-import."""
    digest = hashlib.sha256()
    for name, path in zip(IMPORTER_MODULES, importer_files()):
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def inputs_of(domain: DomainState, upstream: Upstream, patches_dir: Path) -> dict[str, str]:
    """Everything a domain package is made from, each as one comparable string."""
    return {
        "upstream": f"{upstream.version} {upstream.sha256}",
        "patches": digest_patches(patches_dir / upstream.flavour.name, domain.settings.mode == "shared"),
        "templates": digest_templates("domain"),
        "importer": digest_importer(),
        "settings": json.dumps(domain.settings.package_settings, sort_keys=True),
        "mmdeb": __version__,
    }


def core_inputs(upstream: Upstream, patches_dir: Path) -> dict[str, str]:
    return {
        "upstream": f"{upstream.version} {upstream.sha256}",
        "patches": digest_patches(patches_dir / upstream.flavour.name, False),
        "templates": digest_templates("core"),
        "mmdeb": __version__,
    }


def common_inputs() -> dict[str, str]:
    digest = hashlib.sha256()
    for name, path in common_sources().items():
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return {"templates": digest.hexdigest(), "mmdeb": __version__}


REASONS = {
    "upstream": "new upstream release {version}",
    "patches": "changed patches in patches/{flavour}",
    "templates": "changed debian-templates",
    "importer": "changed mmdeb-import",
    "settings": "changed domain settings ({settings})",
    "mmdeb": "mmdeb {mmdeb}",
}


@dataclass(frozen=True)
class Rebuild:
    spec: PackageSpec | CoreSpec | CommonSpec
    inputs: dict[str, str]
    reasons: tuple[str, ...]
    record: PackageState  # the planned record (a domain's settings included), which the build completes
    where: Where  # the record's place in the state file

    def land(self, state: State, published: bool = False) -> None:
        """Record the build (and, if published, its publishing) in state: the planned record replaces
        the one at where, so a domain's settings change with its build and never without it."""
        self.record.built, self.record.inputs, self.record.changelog = self.spec.version, self.inputs, list(self.spec.changelog)
        if published:
            self.record.published = self.spec.version
        state.put(self.where, self.record)


def split_version(version: str) -> tuple[str, int]:
    """'2.2.0-3+deb12' -> ('2.2.0', 3)."""
    upstream, debian = version.rsplit("-", 1)
    return upstream, int(debian.split("+")[0])


def next_revision(record: PackageState, upstream: Upstream) -> int:
    if not record.built:
        return 1
    built_upstream, revision = split_version(record.built)
    return revision + 1 if built_upstream == upstream.version else 1


def changed_reasons(record: PackageState, inputs: dict[str, str], upstream: Upstream | None) -> tuple[str, ...]:
    """Why record needs a rebuild for inputs; empty if it does not."""
    changed = [key for key in inputs if inputs[key] != record.inputs.get(key)]
    if not record.built:
        return ("first build",)
    old_settings = json.loads(record.inputs.get("settings") or "{}")
    context = {
        "version": upstream and upstream.version, "flavour": upstream and upstream.flavour.name, "mmdeb": __version__,
        "settings": ", ".join(f"{key} {value}" for key, value in json.loads(inputs.get("settings", "{}")).items()
                              if old_settings.get(key) != value),
    }
    return tuple(REASONS[key].format(**context) for key in changed)


def with_entry(spec, record: PackageState, urgency: str, reason: str, timestamp: int | None = None):
    """spec with a new changelog entry for reason on top of record's history, dated timestamp
    (default: SOURCE_DATE_EPOCH, else now)."""
    timestamp = timestamp or int(os.environ.get("SOURCE_DATE_EPOCH") or time.time())
    entry = ChangelogEntry(spec.version, spec.dist, urgency, timestamp, reason)
    history = tuple(old for old in record.changelog if old.version != spec.version)
    return replace(spec, changelog=(entry, *history))


def plan(name: str, domain: DomainState, urgency: str, patches_dir: Path, upstream_of: UpstreamOf) -> Rebuild | None:
    """The rebuild this domain needs, or None if nothing it is made from changed."""
    upstream = upstream_of(domain.settings.upstream, domain.settings.flavour)
    inputs = inputs_of(domain, upstream, patches_dir)
    reasons = changed_reasons(domain, inputs, upstream)
    if not reasons:
        return None
    spec = PackageSpec(Domain.parse(name), upstream, domain.settings, patches_dir, next_revision(domain, upstream))
    reason = f"Rebuild of Mailman {upstream.version} for {name} ({domain.settings.mode} mode): {'; '.join(reasons)}."
    return Rebuild(with_entry(spec, domain, urgency, reason), inputs, reasons, domain, ("domains", name))


def core_users(domains: dict[str, DomainState], flavour: str, dist: str) -> tuple[str, list[str]]:
    """The one upstream of the shared-mode domains of flavour on dist, and their names."""
    users = sorted(name for name, domain in domains.items()
                   if domain.settings.mode == "shared" and (domain.settings.flavour, domain.settings.dist) == (flavour, dist))
    upstreams = sorted({domains[name].settings.upstream for name in users})
    if len(upstreams) != 1:
        raise MmdebError(f"the shared-mode {flavour} domains on {dist} use different upstreams ({', '.join(upstreams)})",
                         "give them one upstream: they share one core package")
    return upstreams[0], users


def plan_core(core: PackageState, upstream: Upstream, dist: str, urgency: str, mail_domain: str,
              patches_dir: Path) -> Rebuild | None:
    """The rebuild the core package of upstream's flavour on dist needs, or None."""
    inputs = core_inputs(upstream, patches_dir)
    reasons = changed_reasons(core, inputs, upstream)
    if not reasons:
        return None
    spec = CoreSpec(upstream, dist, patches_dir, next_revision(core, upstream), mail_domain=mail_domain)
    reason = f"Rebuild of the shared Mailman {upstream.version} core: {'; '.join(reasons)}."
    return Rebuild(with_entry(spec, core, urgency, reason), inputs, reasons, core,
                   ("cores", core_key(upstream.flavour.name, dist)))


def plan_common(common: PackageState, dist: str, urgency: str) -> Rebuild | None:
    """The rebuild mailmen-common on dist needs, or None."""
    inputs = common_inputs()
    reasons = changed_reasons(common, inputs, None)
    if not reasons:
        return None
    built_with, revision = split_common_version(common.built) if common.built else ("", 0)
    spec = CommonSpec(dist, revision + 1 if built_with == __version__ else 1)
    reason = f"Rebuild of {spec.package}: {'; '.join(reasons)}."
    # Dated by its files: every state file that builds this version from them builds the same package.
    return Rebuild(with_entry(spec, common, urgency, reason, common_timestamp()), inputs, reasons, common,
                   ("commons", dist))


def plan_all(state: State, names: list[str], urgency: str, patches_dir: Path, upstream_of: UpstreamOf) -> list[Rebuild]:
    """The rebuilds of the named domains, of the core packages their shared-mode ones use, and
    of mailmen-common on their dists."""
    rebuilds = [item for name in names if (item := plan(name, state.get(name), urgency, patches_dir, upstream_of))]
    cores = dict.fromkeys((domain.settings.flavour, domain.settings.dist) for name in names
                          if (domain := state.get(name)).settings.mode == "shared")
    for flavour, dist in cores:
        upstream_ref, users = core_users(state.domains, flavour, dist)
        upstream = upstream_of(upstream_ref, flavour)
        if item := plan_core(state.core(flavour, dist), upstream, dist, urgency, users[0], patches_dir):
            rebuilds.insert(0, item)
    for dist in dict.fromkeys(state.get(name).settings.dist for name in names):
        if item := plan_common(state.common(dist), dist, urgency):
            rebuilds.insert(0, item)
    return rebuilds
