"""Command line: parses arguments, calls the pipeline, turns MmdebError into one line and exit 1."""

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

from mmdeb import __version__
from mmdeb.app import places
from mmdeb.app.conf import POLICIES, URGENCIES, load as load_conf
from mmdeb.app.host import Host
from mmdeb.build.builders import BUILDERS
from mmdeb.domains.settings import DEFAULTS, MODES, RUNNERS, DomainSettings
from mmdeb.errors import MmdebError
from mmdeb.importing.plan import plan_import, plan_lines, planned_domains, unimportable
from mmdeb.run import Runner
from mmdeb.upstream.dists import DIST_RELEASES, FLAVOURS, SELF_DISTS


# Defaults that depend on where mmdeb runs (see app/places.py); filled in by host_for.
WHERE = {
    "state": "./mmdeb.toml, or /var/lib/mmdeb/mmdeb.toml when mmdeb is installed",
    "out": "./build, or /var/lib/mmdeb/build when installed",
    "repo": "./repo, or /var/lib/mmdeb/repo when installed",
}


def host_for(args: argparse.Namespace) -> Host:
    """The Host of this run: its places and mmdeb.conf, with the options given overriding them."""
    where = places.current()
    where = replace(where, **{name: getattr(args, name) for name in ("state", "out", "repo")
                              if getattr(args, name, None) is not None})
    conf = load_conf(where.settings)
    overrides = {"builder": getattr(args, "builder", None), "jobs": getattr(args, "jobs", None),
                 "patches": str(args.patches) if getattr(args, "patches", None) else None,
                 "urgency": getattr(args, "urgency", None), "policy": getattr(args, "policy", None),
                 "mail_to": getattr(args, "mail_to", None)}
    conf = replace(conf, **{name: value for name, value in overrides.items() if value is not None})
    return Host(where, conf, Runner(echo=args.verbose))


def domain_settings(args: argparse.Namespace) -> DomainSettings:
    """The settings add_domain_settings' options give; an unset upstream, flavour or dist is left
    for Host.settle to default."""
    return DomainSettings(args.upstream or "", args.flavour or "", args.dist or "", args.mail_gid, args.cgi_gid,
                          getattr(args, "site_list_owner", ""), args.mode, args.runners)


def add_build_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--builder", choices=BUILDERS, help="default: build.builder in mmdeb.conf, or sbuild")
    sub.add_argument("--jobs", type=int, help="domains built at once (default: build.jobs in mmdeb.conf, or one per CPU)")
    sub.add_argument("--out", type=Path, help=f"output directory (default: {WHERE['out']})")
    sub.add_argument("--patches", type=Path, help="directory of <flavour>/series (default: build.patches in mmdeb.conf, "
                     "or mmdeb's patches/)")


def add_domain_settings(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--upstream", metavar="TARBALL|NAME", help="a Mailman tarball or a catalogue name")
    sub.add_argument("--flavour", choices=sorted(FLAVOURS), help="default: guessed from the tarball")
    sub.add_argument("--dist", choices=list(DIST_RELEASES), help="default: the flavour's first distribution")
    sub.add_argument("--mail-gid", default=DEFAULTS["mail_gid"], help="group the MTA runs the mail wrapper as")
    sub.add_argument("--cgi-gid", default=DEFAULTS["cgi_gid"], help="group the web server runs CGI scripts as")
    sub.add_argument("--mode", choices=MODES, default=DEFAULTS["mode"],
                     help="prefix: a whole Mailman per domain; shared: one core package, thin domain packages")
    sub.add_argument("--runners", choices=RUNNERS, default=DEFAULTS["runners"],
                     help="on-demand: queue runners start when mail arrives (systemd hosts); always-on: mailmanctl")


def add_record_settings(sub: argparse.ArgumentParser) -> None:
    """The settings a domain is recorded with in the state file (domains add, import plan --record)."""
    add_domain_settings(sub)
    sub.add_argument("--site-list-owner", default=DEFAULTS["site_list_owner"], help="debconf's default owner (default: postmaster@DOMAIN)")


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
        sub.add_argument("--no-common", dest="common", action="store_false",
                         help="without mailmen-common (DKIM signing), which every domain package recommends")
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
    status.add_argument("--patches", type=Path, help="directory of <flavour>/series (default: build.patches in mmdeb.conf)")
    status.set_defaults(handler=cmd_status)

    rebuild = commands.add_parser("rebuild", help="rebuild the domains whose inputs changed")
    rebuild.add_argument("domains", nargs="*", metavar="DOMAIN", help="default: every domain")
    rebuild.add_argument("--dist", choices=list(DIST_RELEASES), help="move the domains to this distribution")
    rebuild.add_argument("--mode", choices=MODES, help="switch the domains to this mode")
    rebuild.add_argument("--runners", choices=RUNNERS, help="switch the domains' queue runners to this setting")
    rebuild.add_argument("--urgency", choices=URGENCIES, help="of the changelog entry (default: autorebuild.urgency in mmdeb.conf, high)")
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


def say(line: str) -> None:
    print(line, flush=True)


def cmd_build(args, host: Host) -> None:
    print_artifacts(host.build(args.domains, domain_settings(args), args.revision, args.source_only, args.common))


def cmd_domains_add(args, host: Host) -> None:
    say("\n".join(host.add_domains(args.domains, domain_settings(args))))


def cmd_domains_list(args, host: Host) -> None:
    for name, domain in sorted(host.state().domains.items()):
        settings = domain.settings
        say(f"{name}\t{settings.flavour}\t{settings.dist}\t{settings.mode}\t{settings.runners}\t{settings.upstream}\t"
            f"built {domain.built or '-'}")


def cmd_domains_remove(args, host: Host) -> None:
    say("\n".join(host.remove_domains(args.domains)))


def cmd_status(args, host: Host) -> None:
    say("\n".join(host.status()))


def cmd_rebuild(args, host: Host) -> None:
    changes = {name: getattr(args, name) for name in ("dist", "mode", "runners") if getattr(args, name)}
    print_artifacts(host.rebuild(args.domains, changes, args.urgency, args.dry_run, say))


def cmd_publish(args, host: Host) -> None:
    host.publish(say)


def cmd_import_plan(args, host: Host) -> None:
    plan = plan_import(args.source, host.places.state)
    print(json.dumps(asdict(plan), indent=2, ensure_ascii=False) if args.json else "\n".join(plan_lines(plan)))
    error = unimportable(plan)
    if error:
        raise error
    if args.record:
        # After the plan, so the plan's flags show what the state file held before.
        domains = planned_domains(plan)
        lines = (host.add_domains(domains, domain_settings(args), keep_recorded=True) if domains
                 else ["no domain to record: the plan moves no list"])
        print("\n".join(lines), file=sys.stderr if args.json else sys.stdout)


def cmd_upstream_check(args, host: Host) -> None:
    for line in host.check_upstreams(args.name):
        say(line)


def cmd_upstream_add(args, host: Host) -> None:
    if bool(args.watch_url) != bool(args.watch_regex):
        raise MmdebError("a watch needs both --watch-url and --watch-regex", "give both, or neither")
    watch = {"url": args.watch_url, "regex": args.watch_regex} if args.watch_url else None
    recorded = host.add_upstream(args.name, args.url, args.sha256, args.signature_url, args.signing_key, watch)
    say(f"added {recorded.name}: Mailman {recorded.version}, sha256 {recorded.sha256}, verified by {recorded.verified_by}")


def cmd_upstream_update(args, host: Host) -> None:
    recorded = host.update_upstream(args.name)
    if recorded is None:
        say(f"{args.name} is up to date")
        return
    say(f"updated {recorded.name}: {recorded.old_version} -> {recorded.version} ({recorded.url}), "
        f"sha256 {recorded.sha256}, verified by {recorded.verified_by}")


def cmd_autorebuild(args, host: Host) -> None:
    report = host.autorebuild()
    print(report.text(), end="", flush=True)
    if report.eventful:
        kept = host.mail_report(report)
        say(f"report mailed to {host.conf.mail_to} and kept in {kept}")
    if report.failures:
        raise report.error(host.conf.mail_to)


def cmd_self_build(args, host: Host) -> None:
    print_artifacts(host.build_self(args.dist))


def cmd_chroot_list(args, host: Host) -> None:
    for line in host.chroot_list():
        say(line)


def cmd_chroot_update(args, host: Host) -> None:
    host.chroot_update(args.dists, say)


def cmd_chroot_prune(args, host: Host) -> None:
    for path in host.chroot_prune():
        say(f"removed {path}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.handler(args, host_for(args))
    except MmdebError as exc:
        print(f"mmdeb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmdeb: interrupted", file=sys.stderr)
        return 130
    return 0
