"""The build pipeline: specs -> source packages -> builder -> artifacts in <out>/<dist>/.

Everything the user can get wrong is checked before anything is written, and a
package's files appear in <out>/<dist>/ only once it has built.
"""

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path

from mmdeb import __version__
from mmdeb.build.builders import Builder
from mmdeb.build.builders.base import listed
from mmdeb.build.builders.session import Session
from mmdeb.build.render import common_timestamp
from mmdeb.build.source import build_common_source, build_source
from mmdeb.build.spec import CommonSpec, CoreSpec, PackageSpec
from mmdeb.domains.domain import Domain
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import ChangelogEntry
from mmdeb.errors import MmdebError
from mmdeb.run import Runner, require
from mmdeb.upstream.tarball import Upstream


def progress(message: str) -> None:
    print(f"==> {message}", flush=True)


Spec = PackageSpec | CoreSpec | CommonSpec
Outcome = tuple[Spec, list[Path] | MmdebError]  # a spec with its artifacts or the error it failed with


def first_specs(domains: list[Domain], upstream: Upstream, settings: DomainSettings, patches_dir: Path,
                revision: int, common: bool) -> list[Spec]:
    """One spec per domain (and the core first, in shared mode; mailmen-common, if asked), each
    with the changelog of a build without history: `mmdeb build`."""
    specs: list[Spec] = [CommonSpec(settings.dist, revision)] if common else []
    if settings.mode == "shared":
        specs.append(CoreSpec(upstream, settings.dist, patches_dir, revision, mail_domain=domains[0].name))
    specs.extend(PackageSpec(domain, upstream, settings, patches_dir, revision) for domain in dict.fromkeys(domains))
    return [replace(spec, changelog=(first_entry(spec),)) for spec in specs]


def first_entry(spec: Spec) -> ChangelogEntry:
    """The entry of a build without history. Its date is SOURCE_DATE_EPOCH if given, else
    taken from the input, so equal inputs build equal packages."""
    if spec.kind == "common":
        return ChangelogEntry(spec.version, spec.dist, "medium", common_timestamp(), f"{spec.package}, built by mmdeb {__version__}.")
    built_for = "shared-mode domains" if spec.kind == "core" else spec.domain.name
    reason = f"Mailman {spec.upstream.version} ({spec.flavour.summary}) for {built_for}, built by mmdeb {__version__}."
    timestamp = int(os.environ.get("SOURCE_DATE_EPOCH") or spec.upstream.newest_mtime)
    return ChangelogEntry(spec.version, spec.dist, "medium", timestamp, reason)


def host_arch(runner: Runner) -> str:
    return runner.run(["dpkg", "--print-architecture"], what="asking dpkg for the host's architecture").strip()


def build(specs: list[Spec], builder: Builder | None, out: Path, jobs: int, runner: Runner) -> list[Path]:
    """Build each spec's source package and, with a builder, its binaries, into <out>/<dist>/."""
    outcomes = build_each(specs, builder, out, jobs, runner)
    failure = next((outcome for _, outcome in outcomes if isinstance(outcome, MmdebError)), None)
    if failure:
        raise failure
    return [artifact for _, artifacts in outcomes for artifact in artifacts]


def build_each(specs: list[Spec], builder: Builder | None, out: Path, jobs: int, runner: Runner,
               landed: Callable[[list[Outcome]], None] | None = None) -> list[Outcome]:
    """Build every spec, one failure not stopping the others: each spec with its artifacts or its error.
    landed, in this thread, gets the outcomes of the builds that ended since its last call, in spec
    order; if it raises, the builds not yet started are cancelled."""
    if builder:
        builder.check()
    require("dpkg-source", "dpkg-dev")
    require("patch", "patch")  # a thin package's upstream files are patched before dpkg-source
    require("debconf-updatepo", "po-debconf")
    arch = host_arch(runner)
    if builder:
        for dist in dict.fromkeys(spec.dist for spec in specs):
            builder.prepare(dist, arch, runner)
    out = out.resolve()
    batch = batched(specs, builder)
    sessions = {dist: Session(builder.chroots.path(dist, arch), sum(spec.dist == dist for spec in batch), jobs,
                              out / f".session-{dist}-{os.getpid()}") for dist in dict.fromkeys(spec.dist for spec in batch)}
    sources = threading.Semaphore(jobs)  # the sources of a session's builds are made jobs at a time
    # A session's builds wait in their threads until the last one's source package is made.
    with ThreadPoolExecutor(max_workers=jobs) as pool, ThreadPoolExecutor(max_workers=max(1, len(batch))) as waiting:
        futures = [waiting.submit(build_one, spec, sessions[spec.dist], out, arch, runner, sources) if spec in batch
                   else pool.submit(build_one, spec, builder, out, arch, runner) for spec in specs]
        try:
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                ended: list[Outcome] = []
                try:
                    for spec, future in zip(specs, futures):
                        if future in done:
                            ended.append((spec, outcome(future)))
                finally:  # also those before a build that raised
                    if landed and ended:
                        landed(ended)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
        finally:
            for session in sessions.values():
                shutil.rmtree(session.directory, ignore_errors=True)
    return [(spec, outcome(future)) for spec, future in zip(specs, futures)]


def batched(specs: list[Spec], builder: Builder | None) -> list[Spec]:
    """The thin domain packages, built in one session of the chroot per dist (builders.session),
    with a builder that can. Each session unpacks the builder's tarball afresh, as the builder
    would for each package (tests/test_shared.py checks that both build the same files)."""
    if not (builder and builder.sessions):
        return []
    return [spec for spec in specs if spec.kind == "domain" and spec.thin]


def outcome(future: Future) -> list[Path] | MmdebError:
    """A build's artifacts, or the MmdebError it failed with; anything else is a bug and raised."""
    error = future.exception()
    return error if isinstance(error, MmdebError) else future.result()


def changes_name(package: str, version: str, arch: str) -> str:
    """The .changes of a binary build. sbuild, pbuilder and dpkg-buildpackage name it by the host's
    architecture, also for an Architecture: all package."""
    return f"{package}_{version}_{arch}.changes"


def built_files(out: Path, package: str, dist: str, version: str, arch: str) -> list[Path]:
    """The .dsc of a build and the .deb files its .changes lists, for publishing: exactly that
    build's, never another package's lying in the same directory."""
    directory = out / dist
    dsc = directory / f"{package}_{version}.dsc"
    changes = directory / changes_name(package, version, arch)
    remedy = f"give publish the --out {package} was built in, or build it there again"
    for control in (dsc, changes):
        if not control.is_file():
            raise MmdebError(f"the build of {package} {version} in {directory} is incomplete: {control.name} is missing",
                             remedy)
    listed(dsc, package, version, remedy)
    return [dsc, *(path for path in listed(changes, package, version, remedy) if path.suffix == ".deb")]


def build_one(spec: Spec, builder: Builder | None, out: Path, arch: str, runner: Runner,
              sources: threading.Semaphore | None = None) -> list[Path]:
    """Build spec with builder; with a Session, its source package is made under sources, and
    if that fails, the session is told not to wait for it."""
    def make_source(workdir: Path, log_runner: Runner) -> Path:
        if spec.kind == "common":
            return build_common_source(spec, workdir, log_runner)
        if not isinstance(builder, Session):
            return build_source(spec, workdir, out / spec.dist, log_runner)
        try:
            with sources:
                return build_source(spec, workdir, out / spec.dist, log_runner)
        except BaseException:
            builder.withdraw()
            raise

    return build_in(out, spec.dist, spec.package, spec.version, spec.log_name(arch), builder, arch, runner, make_source)


def build_in(out: Path, dist: str, package: str, version: str, log_name: str, builder: Builder | None, arch: str,
             runner: Runner, make_source: Callable[[Path, Runner], Path]) -> list[Path]:
    """make_source(workdir, runner) writes a source package into a fresh work directory under out and
    returns its .dsc; the builder builds it there. The files move into out/dist/ only once everything
    succeeded; the build log is written in place at out/dist/log_name, so it survives a failure."""
    dist_dir = out / dist
    dist_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{package}-", dir=out))
    log_path = dist_dir / log_name
    log_path.unlink(missing_ok=True)
    log_runner = runner.with_log(log_path)
    try:
        progress(f"{package} {version}: source package")
        dsc = make_source(workdir, log_runner)
        if builder:
            progress(f"{package} {version}: binary packages with {builder.name} for {dist}/{arch}")
            builder.build(dsc, dist, arch, workdir, log_runner)
        produced = []
        for artifact in sorted(workdir.iterdir()):
            if artifact.is_file():
                os.replace(artifact, dist_dir / artifact.name)
                produced.append(dist_dir / artifact.name)
        progress(f"{package} {version}: done, log {log_path}")
        return produced
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
