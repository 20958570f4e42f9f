"""The application layer: the build host's operations, shared by the command line and the
scheduled autorebuild. A Host is made once per run from its Places, its mmdeb.conf Settings and
a Runner; the modules below get what they need from it as parameters."""

import socket
from collections.abc import Callable, Iterator
from copy import deepcopy
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path

from mmdeb.app.autorebuild import Report, deliver, restore, single_run
from mmdeb.app.conf import Settings
from mmdeb.app.places import Places
from mmdeb.build.builders import Builder, get_builder
from mmdeb.build.builders.chroot import ChrootCache
from mmdeb.build.pipeline import Outcome, build, build_each, built_files, first_specs, host_arch
from mmdeb.build.selfpackage import build_self
from mmdeb.build.spec import PackageSpec
from mmdeb.domains.domain import Domain
from mmdeb.domains.layout import COMMON_PACKAGE
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import DomainState, State, locked
from mmdeb.errors import MmdebError
from mmdeb.plan.rebuild import Rebuild, plan_all, split_version
from mmdeb.publish.repo import KEYRING, Repository, sources_stanza
from mmdeb.run import Runner
from mmdeb.upstream import tracking
from mmdeb.upstream.catalogue import default_upstream, load_catalogue
from mmdeb.upstream.dists import DIST_RELEASES
from mmdeb.upstream.tarball import Upstream, describe
from mmdeb.upstream.watch import check

Say = Callable[[str], None]


@dataclass(frozen=True)
class Host:
    places: Places
    conf: Settings
    runner: Runner

    # Upstreams

    def catalogue(self) -> dict:
        """Read afresh: `upstream update` changes the local catalogue during a run."""
        return load_catalogue(self.places.catalogue, self.places.shipped_catalogue)

    def upstream_of(self) -> Callable[[str, str], Upstream]:
        """What an upstream reference and a flavour stand for, without downloading; each described once."""
        catalogue = self.catalogue()
        return cache(lambda ref, flavour: describe(ref, flavour, catalogue, self.places.cache))

    def check_upstreams(self, name: str | None) -> Iterator[str]:
        """Report lines as each upstream is checked; MmdebError at the end if one was unreachable."""
        return check(self.catalogue(), name)

    def add_upstream(self, name: str, url: str, sha256: str | None, signature_url: str | None,
                     signing_key: Path | None, watch: dict | None) -> tracking.Recorded:
        return tracking.add(name, url, sha256, self.runner, self.places.catalogue, self.upstream_cache,
                            signature_url, signing_key, watch)

    def update_upstream(self, name: str) -> tracking.Recorded | None:
        return tracking.update(name, self.catalogue(), self.runner, self.places.catalogue, self.upstream_cache)

    @property
    def upstream_cache(self) -> Path:
        return self.places.cache / "upstream"

    # Domains

    def settle(self, settings: DomainSettings) -> tuple[DomainSettings, Upstream]:
        """settings with an unset upstream, flavour or dist given its default, and what the
        upstream stands for. A catalogue name stays a name; a tarball is kept by absolute path."""
        catalogue = self.catalogue()
        ref = settings.upstream or default_upstream(catalogue, settings.flavour or None)
        upstream = describe(ref, settings.flavour or None, catalogue, self.places.cache)
        if ref not in catalogue.get("upstream", {}):
            ref = str(upstream.tarball)
        dist = settings.dist or upstream.flavour.dists[0]
        return replace(settings, upstream=ref, flavour=upstream.flavour.name, dist=dist), upstream

    def add_domains(self, names: list[str], settings: DomainSettings, keep_recorded: bool = False) -> list[str]:
        """Record names in the state file with settings, all or none, and say what was done. A
        domain already recorded is refused, or with keep_recorded left as it is."""
        settled, upstream = self.settle(settings)
        self.check_visible_to_autorebuild(upstream)
        with locked(self.places.state) as state:
            lines = []
            for raw in names:
                domain = Domain.parse(raw)
                if domain.name in state.domains:
                    if not keep_recorded:
                        raise MmdebError(f"{domain.name} is already a domain of {self.places.state}", "remove it first to change it")
                    lines.append(f"kept {domain.name}: already a domain of {self.places.state}, its settings unchanged")
                    continue
                PackageSpec(domain, upstream, settled, self.conf.patches_dir)  # validates the dist as a build would
                clash = next((other for other in state.domains if Domain(other).ident == domain.ident), None)
                if clash:
                    raise MmdebError(f"{domain.name} and {clash} would both be {domain.ident} in Exim's configuration "
                                     "(where dots and hyphens are underscores)",
                                     f"host {domain.name} on another list host than {clash}")
                state.domains[domain.name] = DomainState(settings=settled)
                lines.append(f"added {domain.name} ({settled.flavour} on {settled.dist}, {settled.mode} mode, "
                             f"runners {settled.runners})")
            state.save()
        return lines

    def check_visible_to_autorebuild(self, upstream: Upstream) -> None:
        """A tarball recorded by path must stay where the scheduled runs read it."""
        if upstream.download:  # a catalogue's, downloaded into the cache
            return
        tarball = upstream.tarball.resolve()
        hidden = next((d for d in self.places.private_tmp if tarball.is_relative_to(d.resolve())), None)
        if hidden:
            raise MmdebError(f"upstream tarball {tarball} is in {hidden}, which mmdeb-autorebuild.service cannot read "
                             "(it has a /tmp and /var/tmp of its own)",
                             "move the tarball to a directory outside /tmp and /var/tmp (e.g. /srv/mailman/) and give that path")

    def remove_domains(self, names: list[str]) -> list[str]:
        with locked(self.places.state) as state:
            lines = []
            for raw in names:
                name = Domain.parse(raw).name
                state.get(name)
                del state.domains[name]
                lines.append(f"removed {name} from {self.places.state}; its packages and build/ files are untouched")
            state.save()
        return lines

    def state(self) -> State:
        return State.load(self.places.state)

    # Builds

    def builder(self) -> Builder:
        return get_builder(self.conf.builder, self.chroot_cache())

    def build(self, names: list[str], settings: DomainSettings, revision: int, source_only: bool,
              common: bool = True) -> list[Path]:
        """`mmdeb build`: packages of names with settings (and mailmen-common), recorded nowhere."""
        if not names:
            raise MmdebError("no domain given", "name at least one domain, e.g. mmdeb build lists.example.org")
        domains = [Domain.parse(raw) for raw in names]
        settled, upstream = self.settle(settings)
        upstream.fetch(self.runner)
        specs = first_specs(domains, upstream, settled, self.conf.patches_dir, revision, common)
        return build(specs, None if source_only else self.builder(), self.places.out, self.conf.build_jobs, self.runner)

    def build_self(self, dist: str) -> list[Path]:
        return build_self(dist, self.builder(), self.places.out, self.runner)

    def plan(self, state: State, names: list[str], urgency: str) -> list[Rebuild]:
        """The rebuilds names need (and the cores their shared-mode ones use); nothing is downloaded."""
        return plan_all(state, names, urgency, self.conf.patches_dir, self.upstream_of())

    def fetch(self, rebuilds: list[Rebuild]) -> None:
        """Download and verify what the planned builds are made from."""
        for upstream in {(item.spec.upstream.ref, item.spec.flavour.name): item.spec.upstream for item in rebuilds
                         if item.spec.kind != "common"}.values():
            upstream.fetch(self.runner)

    def status(self) -> list[str]:
        state = self.state()
        pending = {(item.spec.package, item.spec.dist): item for item in self.plan(state, sorted(state.domains), "medium")}
        lines = ["PACKAGE\tDIST\tBUILT\tPUBLISHED\tUPSTREAM\tREBUILD"]
        for package, dist, record in state.packages():
            item = pending.get((package, dist))
            upstream = "-" if package == COMMON_PACKAGE else item.spec.upstream.version if item else \
                split_version(record.built)[0] if record.built else "-"
            why = "pending: " + "; ".join(item.reasons) if item else "up to date"
            lines.append(f"{package}\t{dist}\t{record.built or '-'}\t{record.published or '-'}\t{upstream}\t{why}")
        return lines

    def rebuild(self, names: list[str], changes: dict[str, str], urgency: str | None, dry_run: bool, say: Say) -> list[Path]:
        """Rebuild what changed of names (default: every domain), after applying changes (dist,
        mode, runners) to their settings. Each package's record, its new settings included, is
        saved as soon as it has built, so a run that stops part way keeps what it built and the
        next one builds the rest. With dry_run, say the plan only."""
        with locked(self.places.state) as state:
            names = [Domain.parse(raw).name for raw in names] or sorted(state.domains)
            if not names:
                raise MmdebError(f"{self.places.state} records no domain", "add one with: mmdeb domains add DOMAIN")
            planned = deepcopy(state)  # the records as the builds will leave them, each saved when it lands
            for name in names:
                domain = planned.get(name)
                domain.settings = replace(domain.settings, **changes)
            rebuilds = self.plan(planned, names, urgency or self.conf.urgency)
            for item in rebuilds:
                say(f"rebuild {item.spec.package} as {item.spec.version}: {'; '.join(item.reasons)}")
            if not rebuilds:
                say("nothing to rebuild: every package is up to date")
            if dry_run or not rebuilds:
                return []
            self.fetch(rebuilds)
            landed: list[Rebuild] = []

            def land(outcomes: list[Outcome]) -> None:
                built = [item for item, outcome in planned_outcomes(rebuilds, outcomes) if not isinstance(outcome, MmdebError)]
                for item in built:
                    item.land(state)
                if built:
                    state.save()
                    landed.extend(built)
                for item in built:
                    say(f"recorded {item.spec.package} {item.spec.version} in {state.path}")

            try:
                outcomes = build_each([item.spec for item in rebuilds], self.builder(), self.places.out,
                                      self.conf.build_jobs, self.runner, land)
            except MmdebError as exc:
                raise MmdebError(f"{exc.message}; {landings(rebuilds, landed, state.path)}", resume(exc.remedy)) from exc
            except BaseException:
                say(landings(rebuilds, landed, state.path))
                raise
            failed = [(spec, outcome) for spec, outcome in outcomes if isinstance(outcome, MmdebError)]
            if failed:
                spec, first = failed[0]
                raise MmdebError(f"{len(failed)} of {len(rebuilds)} builds failed, the first {spec.package} {spec.version} "
                                 f"for {spec.dist} ({first.message}); {landings(rebuilds, landed, state.path)}",
                                 resume(first.remedy))
        return [artifact for _, artifacts in outcomes for artifact in artifacts]

    # Publishing

    def repository(self) -> Repository:
        return Repository(self.places.repo, self.places.signing_key, self.runner)

    def publish_files(self, packages: list[tuple[str, str, str]], arch: str, say: Say) -> Path:
        """Publish the (package, dist, version)s built on arch: the files their builds made."""
        files: dict[str, list[Path]] = {}
        for package, dist, version in packages:
            files.setdefault(dist, []).extend(built_files(self.places.out.resolve(), package, dist, version, arch))
        return self.repository().publish(files, say)

    def publish(self, say: Say) -> None:
        """Publish every recorded build not yet published, and say how hosts use the repository."""
        with locked(self.places.state) as state:
            pending = [(package, dist, record) for package, dist, record in state.packages()
                       if record.built and record.built != record.published]
            if not pending:
                say("nothing to publish: every built version is published")
                return
            current = self.publish_files([(package, dist, record.built) for package, dist, record in pending],
                                         host_arch(self.runner), say)
            for package, dist, record in pending:
                record.published = record.built
                say(f"published {package} {record.built} to {dist}")
            state.save()
        say(f"\nCopy {current / KEYRING} to /usr/share/keyrings/ on each list host, and add this")
        say("to /etc/apt/sources.list.d/mmdeb.sources (serve the directory over HTTP for remote hosts):\n")
        say(sources_stanza(self.places.repo.resolve() / "current", sorted({dist for _, dist, _ in pending})))

    # Build chroots

    def chroot_cache(self) -> ChrootCache:
        return ChrootCache(self.places.cache / "chroots", self.conf.max_age_days, self.conf.when_old, self.conf.mirrors,
                           self.places.settings)

    def chroots_in_use(self) -> tuple[ChrootCache, str, set[Path]]:
        """The chroot cache, the host architecture, and the tarballs the state file's domains build in."""
        chroots = self.chroot_cache()
        arch = host_arch(self.runner)
        return chroots, arch, {chroots.path(domain.settings.dist, arch) for domain in self.state().domains.values()}

    def chroot_list(self) -> list[str]:
        chroots, _, used = self.chroots_in_use()
        return [f"{entry.dist}\t{entry.arch}\t{entry.age_days:.1f} days\t{entry.size / 2**20:.0f} MiB\t"
                f"{'used' if entry.path in used else 'unused'}\t{entry.path}" for entry in chroots.cached()]

    def chroot_update(self, dists: list[str], say: Say) -> None:
        for dist in dists:
            if dist not in DIST_RELEASES:
                raise MmdebError(f"unknown distribution {dist!r}", f"name one of {', '.join(DIST_RELEASES)}")
        chroots, arch, used = self.chroots_in_use()
        dists = dists or [entry.dist for entry in chroots.cached() if entry.path in used]
        if not dists:
            say(f"no cached chroot is used by a domain of {self.places.state}; name the distributions to update")
        for dist in dict.fromkeys(dists):
            say(f"updated {chroots.update(dist, arch, self.runner)}")

    def chroot_prune(self) -> list[Path]:
        chroots, _, used = self.chroots_in_use()
        return chroots.prune(used)

    # The scheduled run

    def autorebuild(self) -> Report:
        """Look for releases, then plan, build, publish and record as conf.policy allows. Each
        package is recorded as soon as it has built and, under build+publish, is published. A run
        that fails before anything is recorded leaves the state file, the local catalogue and the
        repository as they were; a build that fails is not published, the others are."""
        report = Report(self.conf.policy)
        with single_run(self.places.state), locked(self.places.state) as state:
            catalogue_before = self.places.catalogue.read_bytes() if self.places.catalogue.exists() else None
            landed: list[Rebuild] = []
            rebuilds: list[Rebuild] = []
            releases: list[tracking.Recorded] = []
            try:
                if not state.domains:
                    report.lines.append(f"nothing to do: {self.places.state} records no domain")
                    return report
                self.look_for_releases(state, report, releases)
                rebuilds = self.plan(state, sorted(state.domains), self.conf.urgency)
                if not rebuilds:
                    report.lines.append("nothing to rebuild: every package is up to date")
                elif self.conf.policy == "report":
                    for item in rebuilds:
                        report.add(f"would rebuild {item.spec.package} as {item.spec.version}: {'; '.join(item.reasons)}")
                else:
                    self.build_and_publish(rebuilds, report, state, landed)
            except MmdebError as exc:
                report.fail(exc)
            if report.failures and not landed:
                restore(self.places.catalogue, catalogue_before)
                for release in releases:
                    tracking.forget(release)
                    report.add(f"not recorded: upstream {release.name} {release.version}; the catalogue keeps "
                               f"{release.old_version}, and its download is removed from {self.upstream_cache}")
            elif report.failures:
                report.add(landings(rebuilds, landed, state.path))
        return report

    def look_for_releases(self, state: State, report: Report, releases: list[tracking.Recorded]) -> None:
        """Report the new releases of the state's upstreams; under a build policy record each,
        downloaded and verified, in the local catalogue and add it to releases."""
        catalogue = self.catalogue()["upstream"]
        for name in sorted({domain.settings.upstream for domain in state.domains.values()} & set(catalogue)):
            if report.policy == "report":
                release = tracking.newest_release(name, catalogue[name])
                if release:
                    report.add(f"new upstream release: {name} {catalogue[name]['version']} -> {release.version} "
                               f"({release.url}); not downloaded (policy report)")
            elif recorded := self.update_upstream(name):
                releases.append(recorded)
                report.add(f"new upstream release: {name} {recorded.old_version} -> {recorded.version} "
                           f"({recorded.url}), sha256 {recorded.sha256}, verified by {recorded.verified_by}")

    def build_and_publish(self, rebuilds: list[Rebuild], report: Report, state: State, landed: list[Rebuild]) -> None:
        """Build every rebuild. As builds end, publish (policy build+publish) the ones that built,
        then record them in state and add them to landed: a record never names a version that is
        not where it says. Publishing overlaps the builds still running."""
        self.fetch(rebuilds)
        arch = host_arch(self.runner)
        if self.conf.builder != "local":
            chroots = self.chroot_cache()
            for dist in dict.fromkeys(item.spec.dist for item in rebuilds):
                chroots.update(dist, arch, self.runner)
                report.add(f"updated the {dist}/{arch} build chroot")
        publish = self.conf.policy == "build+publish"

        def land(outcomes: list[Outcome]) -> None:
            built = []
            for item, outcome in planned_outcomes(rebuilds, outcomes):
                spec = item.spec
                if isinstance(outcome, MmdebError):
                    # outcome names the log when a command failed; other failures say why themselves.
                    report.fail(MmdebError(f"{spec.package} {spec.version} for {spec.dist} did not build ({outcome.message})",
                                           outcome.remedy))
                else:
                    log = self.places.out.resolve() / spec.dist / spec.log_name(arch)
                    report.add(f"built {spec.package} {spec.version} for {spec.dist}; log: {log}")
                    built.append(item)
            if not built:
                return
            if publish:
                self.publish_files([(item.spec.package, item.spec.dist, item.spec.version) for item in built], arch, report.add)
                for item in built:
                    report.add(f"published {item.spec.package} {item.spec.version} to {item.spec.dist} in {self.places.repo}")
            for item in built:
                item.land(state, published=publish)
            state.save()
            landed.extend(built)

        build_each([item.spec for item in rebuilds], self.builder(), self.places.out, self.conf.build_jobs, self.runner, land)

    def mail_report(self, report: Report) -> Path:
        return deliver(report, self.places.reports, self.conf.mail_to, socket.getfqdn(), self.runner)


def planned_outcomes(rebuilds: list[Rebuild], outcomes: list[Outcome]) -> Iterator[tuple[Rebuild, list[Path] | MmdebError]]:
    """Each outcome with the rebuild it is of."""
    planned = {(item.spec.package, item.spec.dist): item for item in rebuilds}
    for spec, outcome in outcomes:
        yield planned[spec.package, spec.dist], outcome


def landings(rebuilds: list[Rebuild], landed: list[Rebuild], state: Path) -> str:
    """Which of rebuilds a run that stopped part way recorded in state, and which not."""
    if not landed:
        return f"nothing is recorded in {state}"
    def names(items: list[Rebuild]) -> str:
        return ", ".join(f"{item.spec.package} {item.spec.version}" for item in items)
    return f"recorded in {state}: {names(landed)}; not recorded: {names([item for item in rebuilds if item not in landed])}"


def resume(remedy: str) -> str:
    again = "then run it again: it builds only what is not recorded"
    return f"{remedy}; {again}" if remedy else again
