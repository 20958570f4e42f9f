"""Assemble the source tree and build the source package with dpkg-source: 3.0 (quilt) of the
upstream tarball, or for a thin package a native one of the few files it is built from."""

import os
import re
import shutil
import tempfile
import threading
import time
from pathlib import Path

from mmdeb.errors import MmdebError
from mmdeb.build.render import render_common, render_debian, series_patches
from mmdeb.build.thin import configured_files, kept, patch_argv, stub
from mmdeb.run import Runner
from mmdeb.build.spec import CommonSpec, CoreSpec, PackageSpec
from mmdeb.upstream.fetch import sha256_of


def unpack_argv(tarball: Path, dest: Path) -> list[str]:
    return ["tar", "--extract", f"--file={tarball}", f"--directory={dest}", "--strip-components=1"]


def dpkg_source_build_argv(tree: str) -> list[str]:
    # dpkg's xz switches between its single- and multi-threaded encoders (different
    # bytes) from run to run; gzip keeps the debian tarball of one version identical.
    return ["dpkg-source", "--compression=gzip", "--build", tree]


def dpkg_source_extract_argv(dsc: Path, dest: Path) -> list[str]:
    return ["dpkg-source", "--extract", str(dsc), str(dest)]


def debconf_updatepo_argv() -> list[str]:
    return ["debconf-updatepo"]


def write_templates_pot(tree: Path, runner: Runner, timestamp: int) -> None:
    """Generate debian/po/templates.pot, dated by the changelog rather than the clock."""
    runner.run(debconf_updatepo_argv(), cwd=tree, what=f"generating debian/po/templates.pot of {tree.name}")
    pot = tree / "debian/po/templates.pot"
    date = time.strftime("%Y-%m-%d %H:%M+0000", time.gmtime(timestamp))
    pot.write_text(re.sub(r'^"POT-Creation-Date: .*\\n"$', f'"POT-Creation-Date: {date}\\\\n"', pot.read_text(), flags=re.M))


def place_orig(source: Path, target: Path, published_dir: Path) -> None:
    """Copy an orig tarball into the work dir, refusing a second, different orig for one version."""
    published = published_dir / target.name
    if published.exists() and sha256_of(published) != sha256_of(source):
        raise MmdebError(
            f"{published} already exists with different content; one version never gets two origs",
            "build a new upstream version, or move the old artifacts away if they were never published",
        )
    shutil.copyfile(source, target)


def build_source(spec: PackageSpec | CoreSpec, workdir: Path, published_dir: Path, runner: Runner) -> Path:
    """Create the .dsc and its files in workdir; return the .dsc path."""
    tree = workdir / spec.tree_name
    tree.mkdir()
    if spec.kind == "domain" and spec.thin:
        names = thin_tree(spec, tree, runner)
        render_debian(spec, tree / "debian", configured=configured_files(names))
        write_templates_pot(tree, runner, spec.changelog[0].timestamp)
        return dpkg_source_build(spec, tree, runner)
    orig = workdir / spec.orig_name()
    place_orig(spec.upstream.tarball, orig, published_dir)
    runner.run(unpack_argv(orig, tree), what=f"unpacking {orig.name}")
    for component in spec.components:
        component_orig = workdir / spec.orig_name(component.name)
        place_orig(component.tarball, component_orig, published_dir)
        (tree / component.name).mkdir()
        runner.run(unpack_argv(component_orig, tree / component.name), what=f"unpacking {component_orig.name}")
    render_debian(spec, tree / "debian")
    if (tree / "debian/po").is_dir():  # the core package asks no debconf questions
        write_templates_pot(tree, runner, spec.changelog[0].timestamp)
    return dpkg_source_build(spec, tree, runner)


def thin_tree(spec: PackageSpec, tree: Path, runner: Runner) -> list[str]:
    """Write the upstream files a thin package keeps (thin.kept), patched by the flavour's
    series, its scripts as stubs (thin.stub), into tree; return their names."""
    files = kept_files(spec, tree.parent, runner)
    for name, (content, mode, mtime) in files.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
        os.utime(path, (mtime, mtime))
    return sorted(files)


# Every thin source of a build keeps the same files: the tarball is unpacked and patched once
# per (tarball, series, core), by the first build that needs them, while the others wait.
KEPT_FILES: dict[tuple, dict[str, tuple[bytes, int, float]]] = {}
KEPT_FILES_LOCK = threading.Lock()


def kept_files(spec: PackageSpec, scratch_dir: Path, runner: Runner) -> dict[str, tuple[bytes, int, float]]:
    """Name -> (content, mode, mtime) of the files thin_tree writes for spec."""
    patches = series_patches(spec.patches_dir / spec.flavour.name)
    key = (spec.upstream.sha256, tuple((patch.name, patch.read_bytes()) for patch in patches), spec.flavour.core_prefix)
    with KEPT_FILES_LOCK:
        if key not in KEPT_FILES:
            KEPT_FILES[key] = patched_kept_files(spec, patches, scratch_dir, runner)
        return KEPT_FILES[key]


def patched_kept_files(spec: PackageSpec, patches: list[Path], scratch_dir: Path,
                       runner: Runner) -> dict[str, tuple[bytes, int, float]]:
    """The whole tarball is unpacked and patched in a scratch directory, as one patch may touch
    kept and other files."""
    files = {}
    with tempfile.TemporaryDirectory(prefix=".upstream-", dir=scratch_dir) as scratch:
        upstream = Path(scratch)
        runner.run(unpack_argv(spec.upstream.tarball, upstream), what=f"unpacking {spec.upstream.tarball.name}")
        for patch in patches:
            runner.run(patch_argv(patch.resolve()), cwd=upstream, what=f"applying {patch.name} to {spec.upstream.tarball.name} for {spec.package} {spec.version}")
        for name in sorted(str(path.relative_to(upstream)) for path in upstream.rglob("*") if path.is_file() and not path.is_symlink()):
            if kept(name):
                path = upstream / name
                stubbed = stub(name, path.read_text(errors="surrogateescape"), spec.flavour.core_prefix)
                content = path.read_bytes() if stubbed is None else stubbed.encode(errors="surrogateescape")
                files[name] = (content, path.stat().st_mode & 0o7777, path.stat().st_mtime)
    return files


def build_common_source(spec: CommonSpec, workdir: Path, runner: Runner) -> Path:
    """mailmen-common's 3.0 (native) source package, all of it in debian/, in workdir; return its .dsc."""
    tree = workdir / spec.tree_name
    render_common(spec, tree / "debian")
    return dpkg_source_build(spec, tree, runner)


def dpkg_source_build(spec: PackageSpec | CoreSpec | CommonSpec, tree: Path, runner: Runner) -> Path:
    """Build the source package of the tree in its parent directory, remove the tree; return the .dsc."""
    runner.run(dpkg_source_build_argv(tree.name), cwd=tree.parent,
               what=f"building the source package of {spec.package} {spec.version} (dpkg-source)")
    shutil.rmtree(tree)
    return tree.parent / spec.dsc_name
