"""mmdeb as a Debian package of its own (`mmdeb self-build`).

The project's files are copied into a fresh source tree, debian/ is rendered from
debian-templates/self/ (with render.py's changelog), dpkg-source builds the 3.0 (native)
source package and a Builder (as in pipeline.py) the binary mmdeb_VERSION_all.deb; the
files appear in <out>/<dist>/ only once everything has built.

The sources come from where this mmdeb runs: in a checkout, the checkout; installed, the
Python package in dist-packages and the rest from /usr/share/mmdeb (mmdeb.DATA_DIR), where
the package puts exactly SOURCE_FILES, so an installed mmdeb can rebuild itself.
"""

import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

import mmdeb
from mmdeb import DATA_DIR
from mmdeb.build.builders import Builder
from mmdeb.build.builders.sbuild import SUBID_FIRST, SUBID_RANGE
from mmdeb.errors import MmdebError
from mmdeb.build.pipeline import build_in, host_arch
from mmdeb.build.render import EXECUTABLE, check_rendered, environment, templates_for, write_changelog
from mmdeb.run import Runner, require
from mmdeb.build.source import dpkg_source_build_argv
from mmdeb.build.spec import NativeNames
from mmdeb.domains.state import ChangelogEntry
from mmdeb.upstream.dists import SELF_BUILD_DEPENDS, SELF_DISTS

PACKAGE = "mmdeb"
# What the source package holds besides the Python package mmdeb/ (copied without byte-code).
# Left out: tests/ and bench/ (they need the checkout's tools, root and build chroots),
# docs/, setup-host (sets up a checkout), build/, repo/, .venv/, *.egg-info, caches.
SOURCE_FILES = ("debian-templates", "patches", "etc", "pyproject.toml", "README.md", "DESIGN.md")
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")

VERSIONED = {"python3-sh": "python3-sh (>= 2.0)"}  # pyproject.toml: sh>=2.0
# What mmdeb imports and runs: the builders (sbuild's unshare mode needs newuidmap, and ip to
# bring up the build's loopback, both only sbuild's Recommends; the chroot tarballs are zstd),
# dpkg-source and debconf-updatepo for source packages, reprepro and gpg for the repository,
# gpgv for the upstream signatures; passwd's usermod gives root the subordinate ids sbuild
# needs (postinst).
DEPENDS = (
    "python3-debian", "python3-jinja2", VERSIONED["python3-sh"], "python3-tomli-w",
    "sbuild", "mmdebstrap", "uidmap", "iproute2", "zstd", "dpkg-dev", "po-debconf", "reprepro", "gnupg", "gpgv", "passwd",
)


@dataclass(frozen=True)
class SelfSpec(NativeNames):
    """What render.py's write_changelog and check_rendered need, for mmdeb itself."""

    version: str
    dist: str
    changelog: tuple[ChangelogEntry, ...]
    package: str = PACKAGE
    kind: str = "self"

    @property
    def build_depends(self) -> list[str]:
        return ["debhelper-compat (= 13)", *(VERSIONED.get(name, name) for name in SELF_BUILD_DEPENDS)]

    @property
    def depends(self) -> list[str]:
        return list(DEPENDS)

    @property
    def subid_range(self) -> int:
        return SUBID_RANGE

    @property
    def subid_first(self) -> int:
        return SUBID_FIRST


def package_dir() -> Path:
    """The Python package mmdeb, wherever it is imported from."""
    return Path(mmdeb.__file__).resolve().parent


def source_paths(data_dir: Path) -> list[Path]:
    """Every file the source package is made from; MmdebError if one of SOURCE_FILES is missing."""
    for name in SOURCE_FILES:
        if not (data_dir / name).exists():
            raise MmdebError(f"{data_dir / name} does not exist, so mmdeb cannot package itself",
                             "run mmdeb from its checkout, or reinstall the mmdeb package")
    roots = [package_dir(), *(data_dir / name for name in SOURCE_FILES)]
    files = []
    for root in roots:
        files.extend(p for p in ([root] if root.is_file() else root.rglob("*"))
                     if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return files


def project_version(data_dir: Path) -> str:
    with open(data_dir / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["project"]["version"]


def self_spec(data_dir: Path, dist: str) -> SelfSpec:
    """The package's spec; its changelog is dated SOURCE_DATE_EPOCH, else by the newest source file."""
    if dist not in SELF_DISTS:
        raise MmdebError(f"mmdeb packages itself for {' and '.join(SELF_DISTS)} only, not {dist}", f"give --dist {SELF_DISTS[0]}")
    timestamp = int(os.environ.get("SOURCE_DATE_EPOCH") or max(p.stat().st_mtime for p in source_paths(data_dir)))
    version = project_version(data_dir)
    entry = ChangelogEntry(version, dist, "medium", timestamp, f"mmdeb {version}, packaged by mmdeb self-build.")
    return SelfSpec(version, dist, (entry,))


def copy_source(data_dir: Path, tree: Path) -> None:
    tree.mkdir()
    shutil.copytree(package_dir(), tree / PACKAGE, ignore=IGNORED)
    for name in SOURCE_FILES:
        if (data_dir / name).is_dir():
            shutil.copytree(data_dir / name, tree / name, ignore=IGNORED)
        else:
            shutil.copy2(data_dir / name, tree / name)


def render_self(spec: SelfSpec, templates_dir: Path, debian_dir: Path) -> None:
    """debian/ from templates_dir/self/, and its changelog."""
    env = environment(templates_dir)
    for name, relative in templates_for("self", env.list_templates()).items():
        target = debian_dir / relative.removesuffix(".j2")
        target.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".j2"):
            target.write_text(env.get_template(name).render(spec=spec))
        else:
            shutil.copyfile(templates_dir / name, target)
        target.chmod(0o755 if target.name in EXECUTABLE else 0o644)
    write_changelog(spec, debian_dir / "changelog")
    check_rendered(spec, debian_dir)


def build_source(spec: SelfSpec, data_dir: Path, workdir: Path, runner: Runner) -> Path:
    """The 3.0 (native) source package in workdir; return its .dsc."""
    tree = workdir / spec.tree_name
    copy_source(data_dir, tree)
    render_self(spec, tree / "debian-templates", tree / "debian")
    runner.run(dpkg_source_build_argv(tree.name), cwd=workdir,
               what=f"building the source package of {spec.package} {spec.version} (dpkg-source)")
    shutil.rmtree(tree)
    return workdir / spec.dsc_name


def build_self(dist: str, builder: Builder | None, out: Path, runner: Runner, data_dir: Path = DATA_DIR) -> list[Path]:
    """mmdeb's source package and, with a builder, its .deb, into out/dist/."""
    spec = self_spec(data_dir, dist)
    if builder:
        builder.check()
    require("dpkg-source", "dpkg-dev")
    arch = host_arch(runner)
    if builder:
        builder.prepare(dist, arch, runner)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    return build_in(out, dist, spec.package, spec.version, spec.log_name(arch), builder, arch, runner,
                    lambda workdir, log_runner: build_source(spec, data_dir, workdir, log_runner))
