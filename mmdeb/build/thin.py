"""The source tree of a shared-mode domain package (thin package): the few upstream files its
binaries are built from, patched, and what debian/mmdeb-configure substitutes into them in
place of Mailman's configure."""

import shlex
from pathlib import Path

from mmdeb.build.spec import MAILMAN_GROUP, MAILMAN_USER, PackageSpec

# What Makefile.in builds and installs for a thin package (rules.j2's DOMAIN_PART), and the
# files the thin package keeps from the rest (Mailman/: its Defaults and package __init__).
THIN_DIRS = ("bin", "cron", "misc", "scripts", "src")
THIN_FILES = ("Makefile.in", "mkinstalldirs", "Mailman/Defaults.py.in", "Mailman/__init__.py", "Mailman/__init__.py.in")
# Of misc/, what is installed into the domain's part: the shared core has the icons, and
# pythonlib's packages (the email and codecs tarballs) are the core's too.
THIN_MISC = ("Makefile.in", "paths.py.in", "mailman.in", "sitelist.cfg")
# Mailman's configure writes every kept bin/ and cron/ script, its interpreter substituted, into build/.
BUILD_DIRS = ("bin", "cron")
# Of the kept scripts, those that stay whole: mailman-config records this domain's configure arguments.
WHOLE_SCRIPTS = ("bin/mailman-config",)
# What configure finds on every Debian release for the wrappers' sources (src/common.[ch]).
WRAPPER_DEFS = "-DHAVE_STRERROR=1 -DHAVE_SETREGID=1 -DHAVE_SYSLOG=1 -DHAVE_SYSLOG_H=1 -DGETGROUPS_T=gid_t -DHAVE_VSNPRINTF=1"


def kept(name: str) -> bool:
    """Whether the thin package keeps the upstream file name (relative to the tree's top)."""
    top, _, rest = name.partition("/")
    if top == "misc":
        return rest in THIN_MISC
    return (top in THIN_DIRS and bool(rest)) or name in THIN_FILES


def stub(name: str, text: str, core_prefix: str) -> str | None:
    """The stub that replaces the kept script name (or its X.in) of text: a Python script in
    bin/, cron/ or scripts/ (there, also one without a #! line: the wrappers run it) imports the
    domain's paths.py and runs the core's copy, keeping its #! line for configure to substitute.
    The thin source carries the stub, not the script. None for any other file."""
    top, _, rest = name.partition("/")
    script = name.removesuffix(".in")
    if top not in (*BUILD_DIRS, "scripts") or "/" in rest or rest == "Makefile.in" or script in WHOLE_SCRIPTS:
        return None
    first = text.partition("\n")[0]
    if first.startswith("#!") and not ("python" in first or "@PYTHON@" in first):
        return None
    if not first.startswith("#!") and top != "scripts":
        return None
    shebang = [first] if first.startswith("#!") else []
    return "\n".join([*shebang, f"# mmdeb shared core: run the core's {script} with this domain's paths.py.", "import paths",
                      f"__file__ = '{core_prefix}/{script}'", "exec(compile(open(__file__, 'rb').read(), __file__, 'exec'))", ""])


def configured_files(names: list[str]) -> list[tuple[str, str]]:
    """(input, output) of each file configure would write from the kept files names:
    X.in -> X, and bin/X, cron/X -> build/bin/X, build/cron/X."""
    pairs = []
    for name in sorted(names):
        if name.endswith(".in"):
            pairs.append((name, name.removesuffix(".in")))
        elif name.partition("/")[0] in BUILD_DIRS:
            pairs.append((name, f"build/{name}"))
    return pairs


def substitutions(spec: PackageSpec) -> dict[str, str]:
    """configure's values for the kept files (config.status's), but the build flags and the
    build date, which debian/mmdeb-configure takes from the build's environment."""
    return {
        "prefix": spec.prefix, "exec_prefix": "${prefix}", "VAR_PREFIX": spec.prefix, "bindir": "${exec_prefix}/bin",
        "srcdir": ".", "CC": "gcc", "INSTALL": "/usr/bin/install -c", "OPT": "-g -O2", "DEFS": WRAPPER_DEFS, "LIBS": "",
        "PYTHON": spec.flavour.python, "MAILMAN_USER": MAILMAN_USER, "MAILMAN_GROUP": MAILMAN_GROUP,
        "MAIL_GROUP": spec.mail_gid, "CGI_GROUP": spec.cgi_gid, "CGIEXT": "",
        "MAILHOST": spec.domain.name, "URLHOST": spec.domain.name, "MM_VERSION": spec.upstream.version,
        "CONFIGURE_OPTS": " ".join(spec.configure_options),
        # misc/: no Python packages for the prefix's pythonlib, which is the core's.
        "EMAILPKG": "", "JACODECSPKG": "", "KOCODECSPKG": "",
    }


def patch_argv(patch: Path) -> list[str]:
    # dpkg-source's own options for a quilt series: no fuzz, no backups.
    return ["patch", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch", "--remove-empty-files",
            "--strip=1", f"--input={patch}"]


def sed_expressions(spec: PackageSpec) -> list[str]:
    """configure's edits with substitutions(spec), as sed expressions, each quoted for the shell."""
    def escape(value: str) -> str:
        return "".join("\\" + c if c in "|&\\" else c for c in value)
    # configure empties a VPATH line when the sources are in the build directory (srcdir ".").
    vpath = r"s|^[[:blank:]]*VPATH[[:blank:]]*=[[:blank:]]*@srcdir@[[:blank:]]*$||"
    return [shlex.quote(expression) for expression in
            [vpath, *(f"s|@{name}@|{escape(value)}|g" for name, value in substitutions(spec).items())]]
