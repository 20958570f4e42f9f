"""Render debian/ from debian-templates/ and write debian/changelog with python-debian."""

import os
import shlex
import shutil
import textwrap
import time
from pathlib import Path

import jinja2
import jinja2.meta
from debian.changelog import Changelog, Version
from debian.deb822 import Deb822

import mmdeb
from mmdeb import TEMPLATES_DIR, __version__
from mmdeb.errors import MmdebError
from mmdeb.build.spec import COMMON_DEPENDS, JOBS, CommonSpec, CoreSpec, PackageSpec
from mmdeb.build.thin import THIN_DIRS, sed_expressions
from mmdeb.domains import layout
from mmdeb.upstream.dists import PYTHON_SUBSTVARS, python_addon

HOMEPAGE = "https://www.list.org/"
EXECUTABLE = {"rules", "mmdeb-shared-domain", "mmdeb-configure", "mmdeb-import", "mailmen-dkim", "mailmen-jobs",
              "mailmen-postfix", "mailmen-hookup", "mailmen"}
CORE_DIR = "core/"  # the core package's own templates; it shares the rest listed here
CORE_SHARED = {"rules.j2", "copyright.j2", "MmdebPostfix.py.j2", "source/format.j2", "source/lintian-overrides.j2"}
INCLUDE_DIR = "include/"  # parts that templates include; no file of their own
SELF_DIR = "self/"  # mmdeb's own debian/ (mmdeb self-build); never part of a Mailman package
COMMON_DIR = "common/"  # mailmen-common's debian/
JOB = "JOB"  # in a template's name: rendered once per periodic job, JOB replaced by the job's unit name
# mmdeb-import's modules (standard library only), relative to the package mmdeb: copied to debian/mmdeb/,
# installed as <prefix>/pythonlib/mmdeb/.
IMPORTER_MODULES = ("__init__.py", "domains/__init__.py", "domains/layout.py", "importing/__init__.py",
                    "importing/py2data.py", "importing/oldtree.py", "importing/listimport.py")
# Their packages (directories), which rules.j2 installs one by one.
IMPORTER_PACKAGES = tuple(sorted({str(Path(name).parent).removeprefix(".") for name in IMPORTER_MODULES}))
IMPORTER_DIR = "mmdeb"
IMPORTER_PATH = f"pythonlib/{IMPORTER_DIR}"  # in the prefix
IMPORTER_PYTHON = "/usr/bin/python3"  # mmdeb-import runs on it in every flavour, GNU 2.1's (Python 2) too
# mailmen-dkim's modules (standard library only), as IMPORTER_MODULES: copied to debian/mmdeb/,
# installed under LISTHOST_PATH.
LISTHOST_MODULES = ("__init__.py", "errors.py", "domains/__init__.py", "domains/layout.py", "listhost/__init__.py",
                    "listhost/dkim.py", "listhost/postfix.py", "listhost/mailmen.py")
LISTHOST_PATH = f"/usr/share/{layout.COMMON_PACKAGE}"
BASH_COMPLETIONS = "/usr/share/bash-completion/completions"
EXIM_DKIM_MACROS = "05_mailmen-dkim"
# mailmen-common's: raises the inotify limit that the domains' path units need.
SYSCTL_FILE = f"/usr/lib/sysctl.d/60-{layout.COMMON_PACKAGE}.conf"  # in /etc/exim4/conf.d/main/: after 00_localmacros, whose macros win


def layout_context() -> dict[str, object]:
    """What the templates know of a list host's layout besides a domain's own paths (spec.domain)."""
    return {"site_list": layout.SITE_LIST, "runner_queues": layout.RUNNER_QUEUES, "retry_queue": layout.RETRY_QUEUE,
            "etc_root": layout.ETC_ROOT, "log_root": layout.LOG_ROOT, "lock_root": layout.LOCK_ROOT,
            "installed_domains": layout.INSTALLED_DOMAINS, "always_on_unit": layout.ALWAYS_ON_UNIT,
            "queue_unit": layout.QUEUE_UNIT, "drain_unit": layout.DRAIN_UNIT, "sysv_script": layout.SYSV_SCRIPT,
            "public_suffix_list": layout.PUBLIC_SUFFIX_LIST, "postfix_maps_command": layout.POSTFIX_MAPS_COMMAND,
            "postfix_members": layout.POSTFIX_MEMBERS, "hookup_trigger": layout.HOOKUP_TRIGGER,
            "hookup_command": layout.HOOKUP_COMMAND, "hookup_command_name": Path(layout.HOOKUP_COMMAND).name,
            "package_prefix": layout.PACKAGE_PREFIX, "domain_postinst": layout.DOMAIN_POSTINST,
            "private_archives": layout.PRIVATE_ARCHIVES, "web_server_user": layout.WEB_SERVER_USER,
            "private_archives_mode": f"{layout.PRIVATE_ARCHIVES_MODE:o}"}


def common_context() -> dict[str, object]:
    """What mailmen-common's templates know of the list host."""
    return {**layout_context(), "dkim_command": layout.DKIM_COMMAND,
            "dkim_command_name": Path(layout.DKIM_COMMAND).name, "key_bits": layout.DKIM_KEY_BITS,
            "dkim_dir": layout.DKIM_DIR, "dkim_selector_file": layout.DKIM_SELECTOR_FILE,
            "dkim_state": layout.DKIM_STATE, "dkim_signer": layout.DKIM_SIGNER,
            "dkim_signer_conf": layout.DKIM_SIGNER_CONF, "postfix_queue": layout.POSTFIX_QUEUE,
            "dkim_socket_dir": layout.DKIM_SOCKET_DIR, "dkim_socket": layout.DKIM_SOCKET,
            "signed_headers": layout.SIGNED_HEADERS, "exim_dkim_macros": EXIM_DKIM_MACROS,
            "postfix_maps_command_name": Path(layout.POSTFIX_MAPS_COMMAND).name,
            "postfix_maps_dir": layout.POSTFIX_MAPS_DIR,
            "mailmen_command": layout.MAILMEN_COMMAND, "mailmen_command_name": Path(layout.MAILMEN_COMMAND).name,
            "mailmen_subcommands": layout.MAILMEN_SUBCOMMANDS, "bash_completions": BASH_COMPLETIONS,
            "backup_parts": layout.BACKUP_PARTS,
            "listhost_modules": LISTHOST_MODULES, "listhost_path": LISTHOST_PATH, "listhost_dir": IMPORTER_DIR,
            "common_depends": COMMON_DEPENDS,
            **units_context()}


def units_context() -> dict[str, object]:
    """What mailmen-common's unit templates know: a domain's paths as its instance's (%I)."""
    retry_timer = f"{layout.JOB_UNIT_PREFIX}{layout.RETRY_JOB}"
    return {"domain": layout.DomainPaths("%I"), "prefix_root": layout.PREFIX_ROOT,
            "queue_instance": layout.QUEUE_UNIT.replace("@", "@%i"),
            "drain_instance": layout.DRAIN_UNIT.replace("@", "@%i"),
            "retry_job": layout.RETRY_JOB, "retry_timer": f"{retry_timer}.timer",
            "retry_instance": layout.JOBS_UNIT.replace("@", f"@{layout.RETRY_JOB}"),
            "job_unit_prefix": layout.JOB_UNIT_PREFIX, "jobs_command": layout.JOBS_COMMAND,
            "sysctl_file": SYSCTL_FILE,
            "unit_names": (layout.DKIM_SIGNER, *(unit.split("@")[0] for unit in
                           (layout.ALWAYS_ON_UNIT, layout.DRAIN_UNIT, layout.QUEUE_UNIT, layout.JOBS_UNIT)),
                           retry_timer, *(f"{layout.JOB_UNIT_PREFIX}{job.name}" for job in JOBS)),
            # The units that run (not templates): the signer, the SysV script's stand-in, the timers.
            "started_units": (f"{layout.DKIM_SIGNER}.service", f"{layout.SYSV_SCRIPT}.service", f"{retry_timer}.timer",
                              *(f"{layout.JOB_UNIT_PREFIX}{job.name}.timer" for job in JOBS))}


def common_sources() -> dict[str, Path]:
    """Every file mailmen-common is made from, by a name that does not depend on where mmdeb is
    installed: its templates (and what they include) and the modules of mailmen-dkim."""
    templates = with_includes(templates_for("common", environment().list_templates()))
    return {**{f"debian-templates/{name}": TEMPLATES_DIR / name for name in templates},
            **{f"mmdeb/{name}": path for name, path in zip(LISTHOST_MODULES, module_files(LISTHOST_MODULES))}}


def with_includes(names) -> list[str]:
    """The templates names and every template they include, at any depth."""
    env, found, todo = environment(), set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            if name.endswith(".j2"):
                todo.extend(jinja2.meta.find_referenced_templates(env.parse(env.loader.get_source(env, name)[0])))
    return sorted(found)


def common_timestamp() -> int:
    """mailmen-common's changelog date: SOURCE_DATE_EPOCH if given, else its newest file's."""
    return int(os.environ.get("SOURCE_DATE_EPOCH") or max(path.stat().st_mtime for path in common_sources().values()))


def module_files(names: tuple[str, ...]) -> list[Path]:
    return [Path(mmdeb.__file__).parent / name for name in names]


def importer_files() -> list[Path]:
    return module_files(IMPORTER_MODULES)


def copy_modules(names: tuple[str, ...], target: Path) -> None:
    """The modules names (relative to the package mmdeb) into target/, in their packages."""
    for name, path in zip(names, module_files(names)):
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / name)


def environment(templates_dir: Path = TEMPLATES_DIR) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
    )
    # A word for the shell: an instance's unit name holds systemd's escapes (lists-1 is lists\x2d1).
    env.filters["shell"] = shlex.quote
    return env


def templates_for(kind: str, names: list[str]) -> dict[str, str]:
    """Template name -> path under debian/, for a domain package, the core package, mailmen-common
    ("common") or mmdeb itself ("self")."""
    if kind == "self":
        return {name: name.removeprefix(SELF_DIR) for name in names if name.startswith(SELF_DIR)}
    if kind == "common":
        return {name: name.removeprefix(COMMON_DIR) for name in names if name.startswith(COMMON_DIR)}
    if kind == "core":
        return {name: name.removeprefix(CORE_DIR) for name in names if name.startswith(CORE_DIR) or name in CORE_SHARED}
    return {name: name for name in names if not name.startswith((CORE_DIR, INCLUDE_DIR, SELF_DIR, COMMON_DIR))}


def python_addons(spec: PackageSpec | CoreSpec) -> tuple[str, ...]:
    """dh-python's addons a package is built with, Mailman's python's first, then (in a domain
    package, if another) mmdeb-import's: each byte-compiles its code on the host (py*compile in
    postinst, py*clean in prerm), as Debian's Python policy asks."""
    addons = [spec.flavour.python_addon, *([python_addon(IMPORTER_PYTHON)] if spec.kind == "domain" else [])]
    return tuple(dict.fromkeys(addons))


def render_debian(spec: PackageSpec | CoreSpec, debian_dir: Path, configured: list[tuple[str, str]] = ()) -> None:
    """Write debian/ for spec, with its changelog. configured: a thin package's (input, output)
    pairs for debian/mmdeb-configure (thin.configured_files)."""
    addons = python_addons(spec)
    thin = spec.kind == "domain" and spec.thin
    context = {"spec": spec, "mmdeb_version": __version__, "homepage": HOMEPAGE, "importer_path": IMPORTER_PATH,
               "importer_python": IMPORTER_PYTHON, "python_addons": addons,
               "python_sequences": [f"dh-sequence-{addon}" for addon in addons],
               "python_substvars": [PYTHON_SUBSTVARS[addon] for addon in addons],
               "configured_files": configured, "configure_sed": sed_expressions(spec) if thin else [],
               "thin_dirs": THIN_DIRS,
               "importer_dir": IMPORTER_DIR, "importer_packages": IMPORTER_PACKAGES,
               "common_package": layout.COMMON_PACKAGE, "dkim_command_name": Path(layout.DKIM_COMMAND).name,
               "domain": getattr(spec, "domain", None), **layout_context()}
    render_templates(spec, context, debian_dir)
    if spec.kind == "domain":
        copy_modules(IMPORTER_MODULES, debian_dir / IMPORTER_DIR)
    if not thin:  # a thin package's tree is patched when it is assembled (source.thin_tree)
        copy_patches(spec.patches_dir / spec.flavour.name, debian_dir / "patches")
    write_changelog(spec, debian_dir / "changelog")
    check_rendered(spec, debian_dir)


def render_common(spec: CommonSpec, debian_dir: Path) -> None:
    """Write mailmen-common's debian/, with the modules mailmen-dkim runs and the changelog."""
    render_templates(spec, {"spec": spec, "mmdeb_version": __version__, **common_context()}, debian_dir)
    copy_modules(LISTHOST_MODULES, debian_dir / IMPORTER_DIR)
    write_changelog(spec, debian_dir / "changelog")
    check_rendered(spec, debian_dir)


def render_templates(spec: PackageSpec | CoreSpec | CommonSpec, context: dict, debian_dir: Path) -> None:
    env = environment()
    for name, relative in templates_for(spec.kind, env.list_templates()).items():
        for job in spec.jobs if JOB in relative else [None]:
            target = debian_dir / relative.removesuffix(".j2").replace("PACKAGE", spec.package)
            if job:
                target = target.with_name(target.name.replace(JOB, spec.job_unit(job)))
            target.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith(".j2"):
                text = env.get_template(name).render(context, job=job)
                if not text.strip():  # a file this package does not have, e.g. an always-on domain's .path unit
                    continue
                target.write_text(text)
            else:
                shutil.copyfile(Path(env.loader.searchpath[0]) / name, target)
            target.chmod(0o755 if target.name in EXECUTABLE else 0o644)


def series_names(series_dir: Path) -> list[str]:
    """The patches quilt applies, in order, from series_dir/series (none if it does not exist)."""
    series = series_dir / "series"
    if not series.exists():
        return []
    return [line.split()[0] for line in series.read_text().splitlines() if line.strip() and not line.startswith("#")]


def series_patches(series_dir: Path) -> list[Path]:
    """The patches of series_dir/series, in order, each checked to exist."""
    series = series_dir / "series"
    names = series_names(series_dir)
    missing = [name for name in names if not (series_dir / name).is_file()]
    if missing:
        raise MmdebError(f"{series} lists {missing[0]}, which does not exist", f"add the patch or remove it from {series}")
    return [series_dir / name for name in names]


def copy_patches(series_dir: Path, target: Path) -> None:
    patches = series_patches(series_dir)
    if not patches:
        return
    target.mkdir(parents=True, exist_ok=True)
    for patch in patches:
        shutil.copyfile(patch, target / patch.name)
    shutil.copyfile(series_dir / "series", target / "series")


def write_changelog(spec: PackageSpec | CoreSpec, path: Path) -> None:
    changelog = Changelog()
    for entry in reversed(spec.changelog):  # new_block() prepends
        changelog.new_block(
            package=spec.package,
            version=Version(entry.version),
            distributions=entry.dist,
            urgency=entry.urgency,
            author=spec.maintainer,
            # RFC 5322 in UTC, written +0000 as Debian changelogs do (format_date writes -0000).
            date=time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(entry.timestamp)),
        )
        changelog.add_change("")
        for line in textwrap.wrap(entry.reason, width=78, initial_indent="  * ", subsequent_indent="    "):
            changelog.add_change(line)
        changelog.add_change("")
    path.write_text(str(changelog))


def check_rendered(spec: PackageSpec | CoreSpec, debian_dir: Path) -> None:
    """Re-parse what was rendered, so a template mistake fails here and not in a chroot."""
    with open(debian_dir / "control") as fh:
        paragraphs = list(Deb822.iter_paragraphs(fh))
    if len(paragraphs) != 2 or paragraphs[0].get("Source") != spec.package or paragraphs[1].get("Package") != spec.package:
        raise MmdebError("debian-templates/control.j2 rendered an invalid debian/control", "fix the template")
    with open(debian_dir / "copyright") as fh:
        if "Format" not in next(Deb822.iter_paragraphs(fh)):
            raise MmdebError("debian-templates/copyright.j2 rendered no DEP-5 header", "fix the template")
    rendered = Changelog((debian_dir / "changelog").read_text())
    if str(rendered.version) != spec.version or rendered.package != spec.package:
        raise MmdebError("debian/changelog does not parse back to the package's version", "report this as a bug in mmdeb")
