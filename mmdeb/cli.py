"""Command line: parses arguments, runs the pipeline, turns MmdebError into one line and exit 1."""

import argparse
import logging
import os
import sys
from pathlib import Path

from mmdeb import PATCHES_DIR, __version__
from mmdeb.errors import MmdebError
from mmdeb.pipeline import BuildRequest, run
from mmdeb.run import Runner
from mmdeb.spec import DEFAULT_CGI_GID, DEFAULT_MAIL_GID
from mmdeb.upstream import DIST_RELEASES, FLAVOURS


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mmdeb", description="Per-domain Debian packages of GNU Mailman 2.")
    top.add_argument("--version", action="version", version=f"mmdeb {__version__}")
    top.add_argument("-v", "--verbose", action="store_true", help="show every command and its output")
    commands = top.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("build", "build source and binary packages for each domain"),
        ("source", "build the source package only"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("domains", nargs="+", metavar="DOMAIN")
        sub.add_argument("--upstream", metavar="TARBALL|NAME", help="a Mailman tarball or a catalogue name")
        sub.add_argument("--flavour", choices=sorted(FLAVOURS), help="default: guessed from the tarball")
        sub.add_argument("--dist", choices=list(DIST_RELEASES), help="default: the flavour's first distribution")
        sub.add_argument("--out", type=Path, default=Path("build"), help="output directory (default: build/)")
        sub.add_argument("--mail-gid", default=DEFAULT_MAIL_GID, help="group the MTA runs the mail wrapper as")
        sub.add_argument("--cgi-gid", default=DEFAULT_CGI_GID, help="group the web server runs CGI scripts as")
        sub.add_argument("--revision", type=int, default=1, help="Debian revision (default 1)")
        sub.add_argument("--patches", type=Path, default=PATCHES_DIR, help="directory of <flavour>/series")
        if name == "build":
            sub.add_argument("--builder", choices=["sbuild", "pbuilder", "local"], default="sbuild")
            sub.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="domains built at once (default: one per CPU)")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    request = BuildRequest(
        domains=args.domains,
        upstream=args.upstream,
        flavour=args.flavour,
        dist=args.dist,
        builder=getattr(args, "builder", None),
        out=args.out,
        mail_gid=args.mail_gid,
        cgi_gid=args.cgi_gid,
        patches_dir=args.patches,
        jobs=max(1, getattr(args, "jobs", 1)),
        revision=args.revision,
    )
    try:
        for artifact in run(request, Runner(echo=args.verbose)):
            if artifact.suffix in (".dsc", ".deb"):
                print(artifact)
    except MmdebError as exc:
        print(f"mmdeb: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mmdeb: interrupted", file=sys.stderr)
        return 130
    return 0
