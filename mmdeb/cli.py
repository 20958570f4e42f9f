"""Command line: parses arguments, calls the pipeline, turns MmdebError into one line and exit 1."""

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mmdeb import PATCHES_DIR, __version__
from mmdeb.app import places
from mmdeb.upstream import tracking
from mmdeb.app.autorebuild import autorebuild, deliver
from mmdeb.build.builders.chroot import ChrootCache
from mmdeb.upstream.catalogue import load_catalogue
from mmdeb.domains.domain import Domain
from mmdeb.errors import MmdebError
from mmdeb.importing.plan import plan_import, plan_lines, planned_domains, unimportable
from mmdeb.build.pipeline import BuildRequest, build, built_files, default_upstream, host_arch, run
from mmdeb.plan.rebuild import plan_all, split_version
from mmdeb.publish.repo import KEYRING, Repository, sources_stanza
from mmdeb.run import Runner
from mmdeb.build.selfpackage import SELF_DISTS, build_self
from mmdeb.app.conf import BUILDERS, POLICIES, URGENCIES, load as load_settings
from mmdeb.build.spec import DEFAULT_CGI_GID, DEFAULT_MAIL_GID, MODES, RUNNERS, SETTINGS, PackageSpec
from mmdeb.domains.state import DomainState, State, locked
from mmdeb.upstream.dists import DIST_RELEASES, FLAVOURS
from mmdeb.upstream.tarball import cache_dir, resolve
from mmdeb.upstream.watch import check


# Defaults that depend on where mmdeb runs (see places.py); filled in by with_defaults.
WHERE = {
    "state": "./mmdeb.toml, or /var/lib/mmdeb/mmdeb.toml when mmdeb is installed",
    "out": "./build, or /var/lib/mmdeb/build when installed",
    "repo": "./repo, or /var/lib/mmdeb/repo when installed",
}


def with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """args with every option left unset taken from this run's places and mmdeb.conf."""
    where = places.current()
    settings = load_settings(where.settings)
    defaults = {"state": where.state, "out": where.out, "repo": where.repo,
                "builder": settings.builder, "jobs": settings.build_jobs}
    for name, value in defaults.items():
        if getattr(args, name, "unused") is None:
            setattr(args, name, value)
    return args


def add_build_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--builder", choices=BUILDERS, help="default: build.builder in mmdeb.conf, or sbuild")
    sub.add_argument("--jobs", type=int, help="domains built at once (default: build.jobs in mmdeb.conf, or one per CPU)")
    sub.add_argument("--out", type=Path, help=f"output directory (default: {WHERE['out']})")
    sub.add_argument("--patches", type=Path, default=PATCHES_DIR, help="directory of <flavour>/series")


def add_domain_settings(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--upstream", metavar="TARBALL|NAME", help="a Mailman tarball or a catalogue name")
    sub.add_argument("--flavour", choices=sorted(FLAVOURS), help="default: guessed from the tarball")
    sub.add_argument("--dist", choices=list(DIST_RELEASES), help="default: the flavour's first distribution")
    sub.add_argument("--mail-gid", default=DEFAULT_MAIL_GID, help="group the MTA runs the mail wrapper as")
    sub.add_argument("--cgi-gid", default=DEFAULT_CGI_GID, help="group the web server runs CGI scripts as")
    sub.add_argument("--mode", choices=MODES, default="prefix",
                     help="prefix: a whole Mailman per domain; shared: one core package, thin domain packages")
    sub.add_argument("--runners", choices=RUNNERS, default="on-demand",
                     help="on-demand: queue runners start when mail arrives (systemd hosts); always-on: mailmanctl")


def add_record_settings(sub: argparse.ArgumentParser) -> None:
    """The settings a domain is recorded with in the state file (domains add, import plan --record)."""
    add_domain_settings(sub)
    sub.add_argument("--site-list-owner", default="", help="debconf's default owner (default: postmaster@DOMAIN)")


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mmdeb", description="Per-domain Debian packages of GNU Mailman 2.")
    top.add_argument("--version", action="version", version=f"mmdeb {__version__}")
    top.add_argument("-v", "--verbose", action="store_true", help="show every command and its output")
    top.add_argument("--state", type=Path, help=f"the state file (default: {WHERE['state']})")
    commands = top.add_subparsers(dest="command", required=True)

    for name, help_text in (("build", "build source and binary packages for each domain"),
                            ("source", "build the source package only")):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("domains", nargs="+", metavar="DOMAIN")
        add_domain_settings(sub)
        sub.add_argument("--revision", type=int, default=1, help="Debian revision (default 1)")
        add_build_options(sub)
        sub.set_defaults(handler=cmd_build, source_only=name == "source")

    domains = commands.add_parser("domains", help="the domains recorded in the state file")
    actions = domains.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="record domains and their settings")
    add.add_argument("domains", nargs="+", metavar="DOMAIN")
    add_record_settings(add)
    add.set_defaults(handler=cmd_domains_add)
    actions.add_parser("list", help="list the domains").set_defaults(handler=cmd_domains_list)
    remove = actions.add_parser("remove", help="forget domains (their packages stay)")
    remove.add_argument("domains", nargs="+", metavar="DOMAIN")
    remove.set_defaults(handler=cmd_domains_remove)

    status = commands.add_parser("status", help="versions and pending rebuilds")
    status.add_argument("--patches", type=Path, default=PATCHES_DIR, help="directory of <flavour>/series")
    status.set_defaults(handler=cmd_status)

    rebuild = commands.add_parser("rebuild", help="rebuild the domains whose inputs changed")
    rebuild.add_argument("domains", nargs="*", metavar="DOMAIN", help="default: every domain")
    rebuild.add_argument("--dist", choices=list(DIST_RELEASES), help="move the domains to this distribution")
    rebuild.add_argument("--mode", choices=MODES, help="switch the domains to this mode")
    rebuild.add_argument("--runners", choices=RUNNERS, help="switch the domains' queue runners to this setting")
    rebuild.add_argument("--urgency", choices=URGENCIES, default="medium")
    rebuild.add_argument("--dry-run", action="store_true", help="print the plan only")
    add_build_options(rebuild)
    rebuild.set_defaults(handler=cmd_rebuild)

    publish = commands.add_parser("publish", help="put built packages into the signed apt repository")
    publish.add_argument("--repo", type=Path, help=f"repository directory (default: {WHERE['repo']})")
    publish.add_argument("--out", type=Path, help=f"where the packages were built (default: {WHERE['out']})")
    publish.set_defaults(handler=cmd_publish)

    importing = commands.add_parser("import", help="move lists of an old Mailman 2 into domain packages")
    import_actions = importing.add_subparsers(dest="action", required=True)
    import_plan = import_actions.add_parser(
        "plan", help="show each list of an old Mailman 2 and what needs a decision (reads SOURCE only)")
    import_plan.add_argument("source", type=Path, metavar="SOURCE",
                             help="the old Mailman's directory (such as /var/lib/mailman) or a tarball of it")
    import_plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    import_plan.add_argument("--record", action="store_true",
                             help="add the plan's domains to the state file with the settings below "
                                  "(domains already there are kept as they are)")
    add_record_settings(import_plan)
    import_plan.set_defaults(handler=cmd_import_plan)

    upstream = commands.add_parser("upstream", help="the upstreams of the catalogue")
    upstream_actions = upstream.add_subparsers(dest="action", required=True)
    upstream_check = upstream_actions.add_parser(
        "check", help="report newer upstream releases (exit 0 when every upstream could be checked)")
    upstream_check.add_argument("name", nargs="?", metavar="NAME", help="default: every upstream in the catalogue")
    upstream_check.set_defaults(handler=cmd_upstream_check)
    upstream_add = upstream_actions.add_parser(
        "add", help="download a release, verify it and record it in the local catalogue under NAME")
    upstream_add.add_argument("name", metavar="NAME")
    upstream_add.add_argument("url", metavar="URL", help="the release tarball")
    upstream_add.add_argument("--sha256", help="refuse the download unless it has this sha256")
    upstream_add.add_argument("--signature-url", help="its detached OpenPGP signature (with --signing-key)")
    upstream_add.add_argument("--signing-key", type=Path, help="a binary keyring holding the release key; copied beside the catalogue")
    upstream_add.add_argument("--watch-url", help="a page listing the releases (for mmdeb upstream update)")
    upstream_add.add_argument("--watch-regex", help="a regex whose one group captures a version in that page")
    upstream_add.set_defaults(handler=cmd_upstream_add)
    upstream_update = upstream_actions.add_parser(
        "update", help="record NAME's newest release, downloaded and verified, in the local catalogue")
    upstream_update.add_argument("name", metavar="NAME")
    upstream_update.set_defaults(handler=cmd_upstream_update)

    auto = commands.add_parser(
        "autorebuild", help="look for new releases and changes, then rebuild, publish and mail a report as mmdeb.conf allows")
    auto.add_argument("--policy", choices=POLICIES, help="default: autorebuild.policy in mmdeb.conf (report)")
    auto.add_argument("--mail-to", help="default: autorebuild.mail_to in mmdeb.conf (root)")
    auto.set_defaults(handler=cmd_autorebuild)

    self_build = commands.add_parser("self-build", help="build mmdeb's own Debian package from this mmdeb's files")
    self_build.add_argument("--builder", choices=BUILDERS, help="default: build.builder in mmdeb.conf, or sbuild")
    self_build.add_argument("--dist", choices=SELF_DISTS, default=SELF_DISTS[0])
    self_build.add_argument("--out", type=Path, help=f"output directory (default: {WHERE['out']})")
    self_build.set_defaults(handler=cmd_self_build)

    chroot = commands.add_parser("chroot", help="the cached build chroots (in the cache's chroots/)")
    chroot_actions = chroot.add_subparsers(dest="action", required=True)
    chroot_actions.add_parser("list", help="each cached chroot: dist, arch, age, size, whether a domain uses it"
                              ).set_defaults(handler=cmd_chroot_list)
    chroot_update = chroot_actions.add_parser("update", help="make the chroots again from the distribution as it is now")
    chroot_update.add_argument("dists", nargs="*", metavar="DIST",
                               help=f"{', '.join(DIST_RELEASES)} (default: every cached chroot a domain uses)")
    chroot_update.set_defaults(handler=cmd_chroot_update)
    chroot_actions.add_parser("prune", help="remove the chroots no domain uses, and unfinished ones"
                              ).set_defaults(handler=cmd_chroot_prune)
    return top


def print_artifacts(artifacts: list[Path]) -> None:
    for artifact in artifacts:
        if artifact.suffix in (".dsc", ".deb"):
            print(artifact)


def cmd_build(args, runner: Runner) -> None:
    request = BuildRequest(
        domains=args.domains, upstream=args.upstream, flavour=args.flavour, dist=args.dist,
        builder=None if args.source_only else args.builder, out=args.out, mail_gid=args.mail_gid,
        cgi_gid=args.cgi_gid, patches_dir=args.patches, jobs=max(1, args.jobs), revision=args.revision,
        mode=args.mode, runners=args.runners,
    )
    print_artifacts(run(request, runner))


def cmd_domains_add(args, runner: Runner) -> None:
    print("\n".join(add_domains(args, args.domains)))


def add_domains(args, names: list[str], keep_recorded: bool = False) -> list[str]:
    """Record names in args.state with the settings of args (add_record_settings' options), all
    or none, and say what was done. A domain already recorded is refused, or with keep_recorded
    left as it is."""
    upstream_name = args.upstream or default_upstream(args.flavour)
    upstream = resolve(upstream_name, args.flavour)
    dist = args.dist or upstream.flavour.dists[0]
    # A catalogue name stays a name; a tarball is recorded by absolute path.
    upstream_ref = upstream_name if upstream_name in load_catalogue().get("upstream", {}) else str(upstream.tarball)
    with locked(args.state) as state:
        lines = []
        for raw in names:
            domain = Domain.parse(raw)
            if domain.name in state.domains:
                if not keep_recorded:
                    raise MmdebError(f"{domain.name} is already a domain of {args.state}", "remove it first to change it")
                lines.append(f"kept {domain.name}: already a domain of {args.state}, its settings unchanged")
                continue
            # Validates dist, groups and owner exactly as a build would.
            PackageSpec.for_domain(domain, upstream, dist, PATCHES_DIR, args)
            state.domains[domain.name] = DomainState(upstream_ref, upstream.flavour.name, dist,
                                                     **{key: getattr(args, key) for key in SETTINGS})
            lines.append(f"added {domain.name} ({upstream.flavour.name} on {dist}, {args.mode} mode, runners {args.runners})")
        state.save()
    return lines


def cmd_domains_list(args, runner: Runner) -> None:
    state = State.load(args.state)
    for name, domain in sorted(state.domains.items()):
        print(f"{name}\t{domain.flavour}\t{domain.dist}\t{domain.mode}\t{domain.runners}\t{domain.upstream}\tbuilt {domain.built or '-'}")


def cmd_domains_remove(args, runner: Runner) -> None:
    with locked(args.state) as state:
        for raw in args.domains:
            name = Domain.parse(raw).name
            state.get(name)
            del state.domains[name]
            print(f"removed {name} from {args.state}; its packages and build/ files are untouched")
        state.save()


def cmd_status(args, runner: Runner) -> None:
    state = State.load(args.state)
    pending = {(item.spec.package, item.spec.dist): item for item in plan_all(state, sorted(state.domains), "medium", args.patches)}
    print("PACKAGE\tDIST\tBUILT\tPUBLISHED\tUPSTREAM\tREBUILD")
    for package, dist, record in state.packages():
        item = pending.get((package, dist))
        upstream = item.spec.upstream.version if item else split_version(record.built)[0] if record.built else "-"
        why = "pending: " + "; ".join(item.reasons) if item else "up to date"
        print(f"{package}\t{dist}\t{record.built or '-'}\t{record.published or '-'}\t{upstream}\t{why}")


def cmd_rebuild(args, runner: Runner) -> None:
    with locked(args.state) as state:
        names = [Domain.parse(raw).name for raw in args.domains] or sorted(state.domains)
        if not names:
            raise MmdebError(f"{args.state} records no domain", "add one with: mmdeb domains add DOMAIN")
        for name in names:
            domain = state.get(name)
            domain.dist = args.dist or domain.dist
            domain.mode = args.mode or domain.mode
            domain.runners = args.runners or domain.runners
        rebuilds = plan_all(state, names, args.urgency, args.patches)
        for item in rebuilds:
            print(f"rebuild {item.spec.package} as {item.spec.version}: {'; '.join(item.reasons)}")
        if not rebuilds:
            print("nothing to rebuild: every package is up to date")
        if args.dry_run or not rebuilds:
            return
        print_artifacts(build([item.spec for item in rebuilds], args.builder, args.out, max(1, args.jobs), runner))
        for item in rebuilds:
            item.record_build()
        state.save()


def cmd_publish(args, runner: Runner) -> None:
    with locked(args.state) as state:
        pending = [(package, dist, record) for package, dist, record in state.packages()
                   if record.built and record.built != record.published]
        if not pending:
            print("nothing to publish: every built version is published")
            return
        packages: dict[str, list[Path]] = {}
        arch = host_arch(runner)
        for package, dist, record in pending:
            packages.setdefault(dist, []).extend(built_files(args.out, package, dist, record.built, arch))
        current = Repository(args.repo, runner).publish(packages)
        for package, dist, record in pending:
            record.published = record.built
            print(f"published {package} {record.built} to {dist}")
        state.save()
    print(f"\nCopy {current / KEYRING} to /usr/share/keyrings/ on each list host, and add this")
    print("to /etc/apt/sources.list.d/mmdeb.sources (serve the directory over HTTP for remote hosts):\n")
    print(sources_stanza(args.repo.resolve() / "current", sorted(packages)))


def cmd_import_plan(args, runner: Runner) -> None:
    plan = plan_import(args.source, args.state)
    print(json.dumps(asdict(plan), indent=2, ensure_ascii=False) if args.json else "\n".join(plan_lines(plan)))
    error = unimportable(plan)
    if error:
        raise error
    if args.record:
        # After the plan, so the plan's flags show what the state file held before.
        domains = planned_domains(plan)
        lines = add_domains(args, domains, keep_recorded=True) if domains else ["no domain to record: the plan moves no list"]
        print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)


def cmd_upstream_check(args, runner: Runner) -> None:
    for line in check(load_catalogue(), args.name):
        print(line, flush=True)


def cmd_upstream_add(args, runner: Runner) -> None:
    if bool(args.watch_url) != bool(args.watch_regex):
        raise MmdebError("a watch needs both --watch-url and --watch-regex", "give both, or neither")
    watch = {"url": args.watch_url, "regex": args.watch_regex} if args.watch_url else None
    recorded = tracking.add(args.name, args.url, args.sha256, runner, args.signature_url, args.signing_key, watch)
    print(f"added {recorded.name}: Mailman {recorded.version}, sha256 {recorded.sha256}, verified by {recorded.verified_by}")


def cmd_upstream_update(args, runner: Runner) -> None:
    recorded = tracking.update(args.name, runner)
    if recorded is None:
        print(f"{args.name} is up to date")
        return
    print(f"updated {recorded.name}: {recorded.old_version} -> {recorded.version} ({recorded.url}), "
          f"sha256 {recorded.sha256}, verified by {recorded.verified_by}")


def cmd_autorebuild(args, runner: Runner) -> None:
    where = replace(places.current(), state=args.state)
    settings = load_settings(where.settings)
    settings = replace(settings, policy=args.policy or settings.policy, mail_to=args.mail_to or settings.mail_to)
    report = autorebuild(where, settings, runner)
    print(report.text(), end="", flush=True)
    if report.eventful:
        kept = deliver(report, where, settings.mail_to, runner)
        print(f"report mailed to {settings.mail_to} and kept in {kept}")
    if report.failures:
        raise report.error(settings.mail_to)


def cmd_self_build(args, runner: Runner) -> None:
    print_artifacts(build_self(args.dist, args.builder, args.out, runner))


def chroots_in_use(args, runner: Runner) -> tuple[ChrootCache, str, set[Path]]:
    """The chroot cache, the host architecture, and the tarballs the state file's domains build in."""
    chroots = ChrootCache.configured(cache_dir())
    arch = host_arch(runner)
    return chroots, arch, {chroots.path(domain.dist, arch) for domain in State.load(args.state).domains.values()}


def cmd_chroot_list(args, runner: Runner) -> None:
    chroots, _, used = chroots_in_use(args, runner)
    for entry in chroots.cached():
        print(f"{entry.dist}\t{entry.arch}\t{entry.age_days:.1f} days\t{entry.size / 2**20:.0f} MiB\t"
              f"{'used' if entry.path in used else 'unused'}\t{entry.path}")


def cmd_chroot_update(args, runner: Runner) -> None:
    for dist in args.dists:
        if dist not in DIST_RELEASES:
            raise MmdebError(f"unknown distribution {dist!r}", f"name one of {', '.join(DIST_RELEASES)}")
    chroots, arch, used = chroots_in_use(args, runner)
    dists = args.dists or [entry.dist for entry in chroots.cached() if entry.path in used]
    if not dists:
        print(f"no cached chroot is used by a domain of {args.state}; name the distributions to update")
    for dist in dict.fromkeys(dists):
        print(f"updated {chroots.update(dist, arch, runner)}", flush=True)


def cmd_chroot_prune(args, runner: Runner) -> None:
    chroots, _, used = chroots_in_use(args, runner)
    for path in chroots.prune(used):
        print(f"removed {path}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.handler(with_defaults(args), Runner(echo=args.verbose))
    except MmdebError as exc:
        print(f"mmdeb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmdeb: interrupted", file=sys.stderr)
        return 130
    return 0
