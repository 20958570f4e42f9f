"""A shared-mode domain's thin package: the upstream files it keeps, and debian/mmdeb-configure,
which writes from them what Mailman's configure writes, without running it."""

import os
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from mmdeb.build.render import render_debian
from mmdeb.build.source import build_source, thin_tree, unpack_argv
from mmdeb.build.spec import PackageSpec
from mmdeb.build.thin import WRAPPER_DEFS, configured_files, kept, patch_argv, stub
from mmdeb.domains.domain import Domain
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import ChangelogEntry
from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.catalogue import DEFAULTS, read
from mmdeb.upstream.tarball import describe

from helpers.upstreams import DOMAIN, TestUpstream
from helpers.fixture_upstream import make_fixture

BUILD_ENV = {"CFLAGS": "-g -O2 -fstack-protector-strong", "CPPFLAGS": "-D_FORTIFY_SOURCE=2",
             "LDFLAGS": "-Wl,-z,relro", "SOURCE_DATE_EPOCH": "1700000000"}


def thin_spec(upstream) -> PackageSpec:
    described = describe(str(upstream.tarball), None, read(DEFAULTS), upstream.tarball.parent)
    settings = DomainSettings(str(upstream.tarball), upstream.flavour, upstream.dist, mode="shared")
    spec = PackageSpec(Domain.parse(DOMAIN), described, settings, upstream.patches)
    return replace(spec, changelog=(ChangelogEntry(spec.version, spec.dist, "medium", 1_700_000_000, "Test build."),))


def test_a_thin_package_keeps_the_domain_part_of_mailman():
    names = ["Makefile.in", "configure", "mkinstalldirs", "src/common.c", "src/Makefile.in", "bin/newlist",
             "cron/crontab.in.in", "scripts/post", "misc/paths.py.in", "misc/mailman.in", "misc/sitelist.cfg",
             "misc/Makefile.in", "misc/email-2.5.8.tar.gz", "misc/mailman.jpg", "Mailman/Defaults.py.in",
             "Mailman/__init__.py", "Mailman/__init__.py.in", "Mailman/Utils.py", "Mailman/Cgi/Makefile.in",
             "templates/en/listinfo.html", "messages/de/LC_MESSAGES/mailman.po", "tests/test_smtp.py", "binary"]
    assert [name for name in names if kept(name)] == [
        "Makefile.in", "mkinstalldirs", "src/common.c", "src/Makefile.in", "bin/newlist", "cron/crontab.in.in",
        "scripts/post", "misc/paths.py.in", "misc/mailman.in", "misc/sitelist.cfg", "misc/Makefile.in",
        "Mailman/Defaults.py.in", "Mailman/__init__.py", "Mailman/__init__.py.in"]


def test_configured_files_are_configures_outputs():
    assert configured_files(["src/Makefile.in", "src/common.c", "bin/newlist", "bin/Makefile.in", "cron/checkdbs",
                             "cron/crontab.in.in", "scripts/post", "Mailman/Defaults.py.in"]) == [
        ("Mailman/Defaults.py.in", "Mailman/Defaults.py"), ("bin/Makefile.in", "bin/Makefile"),
        ("bin/newlist", "build/bin/newlist"), ("cron/checkdbs", "build/cron/checkdbs"),
        ("cron/crontab.in.in", "cron/crontab.in"), ("src/Makefile.in", "src/Makefile")]


def test_the_patch_argv_applies_as_dpkg_source_does():
    assert patch_argv(Path("/p/fix.patch")) == ["patch", "--batch", "--forward", "--fuzz=0", "--no-backup-if-mismatch",
                                                "--remove-empty-files", "--strip=1", "--input=/p/fix.patch"]


def test_python_scripts_become_stubs_of_the_cores_copies():
    core = "/usr/lib/mailmen/py3"
    def run(name):
        return f"import paths\n__file__ = '{core}/{name}'\nexec(compile(open(__file__, 'rb').read(), __file__, 'exec'))\n"
    assert stub("bin/newlist", "#! @PYTHON@\nimport sys\n", core) == \
        f"#! @PYTHON@\n# mmdeb shared core: run the core's bin/newlist with this domain's paths.py.\n{run('bin/newlist')}"
    assert stub("bin/newlist.in", "#! @PYTHON@\n", core).endswith(run("bin/newlist"))
    # The wrappers run scripts/' modules, which have no #! line.
    assert stub("scripts/post", "# -*- python -*-\n", core) == \
        f"# mmdeb shared core: run the core's scripts/post with this domain's paths.py.\n{run('scripts/post')}"
    for name, text in [("bin/mailman-config", "#! @PYTHON@\n"), ("bin/Makefile.in", "# Copyright\n"),
                       ("scripts/Makefile.in", "# Copyright\n"), ("cron/crontab.in.in", "# At\n"),
                       ("bin/check_perms_grsecurity.sh", "#! /bin/sh\n"), ("src/common.c", "/* C */\n"),
                       ("Mailman/Defaults.py.in", "# -*- python -*-\n"), ("misc/paths.py.in", "# -*- python -*-\n")]:
        assert stub(name, text, core) is None, name


def configure_as_upstream(spec: PackageSpec, tree: Path, runner: Runner) -> None:
    """The whole upstream tree, patched, configured by its own configure as rules.j2 runs it."""
    tree.mkdir()
    runner.run(unpack_argv(spec.upstream.tarball, tree), what="unpacking")
    series = spec.patches_dir / spec.flavour.name / "series"
    for name in series.read_text().split() if series.exists() else []:
        runner.run(patch_argv((series.parent / name).resolve()), cwd=tree, what=f"applying {name}")
    env = {**os.environ, **BUILD_ENV, "CFLAGS": f"{BUILD_ENV['CFLAGS']} {BUILD_ENV['CPPFLAGS']}"}
    subprocess.run(["./configure", *spec.configure_options], cwd=tree, env=env, check=True, capture_output=True)


def test_mmdeb_configure_writes_what_configure_writes(upstream, tmp_path):
    spec = thin_spec(upstream)
    if not shutil.which(spec.flavour.python):
        pytest.skip(f"configure needs {spec.flavour.python}, which this host lacks")
    thin = tmp_path / "thin"
    thin.mkdir()
    names = thin_tree(spec, thin, Runner())
    assert not [name for name in names if not kept(name)] and "Makefile.in" in names
    pairs = configured_files(names)
    render_debian(spec, thin / "debian", configured=pairs)
    subprocess.run(["debian/mmdeb-configure"], cwd=thin, env={**os.environ, **BUILD_ENV}, check=True)
    full = tmp_path / "full"
    configure_as_upstream(spec, full, Runner())
    for name, output in pairs:
        mine, theirs = ((tree / output).read_text(errors="replace").splitlines() for tree in (thin, full))
        if stub(name, (full / name).read_text(errors="replace"), spec.flavour.core_prefix) is not None:
            mine, theirs = mine[:1], theirs[:1]  # a stub keeps the script's #! line, which configure substitutes
        # The wrappers' DEFS are the macros their sources read, with configure's values.
        defs = [line for line in theirs if line.startswith("DEFS=")]
        assert [line for line in mine if not line.startswith("DEFS=")] == [line for line in theirs if not line.startswith("DEFS=")], output
        for line in defs:
            assert set(WRAPPER_DEFS.split()) <= set(line.split()), output


def test_a_patch_that_does_not_apply_names_itself_the_package_and_the_log(tmp_path):
    tarball, patches = make_fixture(tmp_path / "fixture", "py3")
    (patches / "py3/stale.patch").write_text(
        "--- a/Mailman/Defaults.py.in\n+++ b/Mailman/Defaults.py.in\n@@ -1 +1 @@\n-NOT IN THE FILE\n+REPLACED\n")
    with open(patches / "py3/series", "a") as series:
        series.write("stale.patch\n")
    spec = thin_spec(TestUpstream(tarball, "py3", patches, False))
    work, log = tmp_path / "work", tmp_path / "build.log"
    work.mkdir()
    with pytest.raises(MmdebError) as raised:
        build_source(spec, work, tmp_path, Runner(log))
    assert str(raised.value).startswith(f"applying stale.patch to {tarball.name} for {spec.package} {spec.version} failed: see {log}")
    assert "$ patch --batch" in log.read_text()
    assert list(work.iterdir()) == [work / spec.tree_name] and not list((work / spec.tree_name).iterdir()), "no scratch left"
