"""The state file, `mmdeb domains`, `mmdeb status` and `mmdeb rebuild` (local builder, fixture)."""

import shutil
import subprocess
import tomllib
from dataclasses import replace

import pytest
from debian.changelog import Changelog
from debian.deb822 import Dsc

from helpers.fixture_upstream import PATCH_MARKER, make_fixture
from mmdeb import __version__
from mmdeb.cli import main
from mmdeb.plan.rebuild import CORE_ONLY, patched_paths, reaches_domains, template_inputs
from mmdeb.domains.state import State

ORG, NET = "lists.example.org", "lists.example.net"
SECURITY_FIX = f"""\
Description: A new fix on top of the fixture's series
--- a/Mailman/Defaults.py.in
+++ b/Mailman/Defaults.py.in
@@ -7,3 +7,4 @@
 MAILMAN_GROUP = '@MAILMAN_GROUP@'
 CONFIGURE_OPTS = '@CONFIGURE_OPTS@'
 {PATCH_MARKER}
+SECURITY_FIX = True
"""


@pytest.fixture
def project(tmp_path, fixture_py3):
    """A working directory with a state file naming two domains and its own patches/."""
    patches = tmp_path / "patches"
    shutil.copytree(fixture_py3.patches, patches)
    state = tmp_path / "mmdeb.toml"
    assert main(["--state", str(state), "domains", "add", ORG, NET, "--upstream", str(fixture_py3.tarball)]) == 0
    return tmp_path, state, patches


def rebuild(project, *args: str) -> int:
    tmp_path, state, patches = project
    return main(["--state", str(state), "rebuild", *args, "--builder", "local", "--patches", str(patches),
                 "--out", str(tmp_path / "build")])


def built_versions(state) -> dict[str, str]:
    return {name: table.get("built", "") for name, table in tomllib.loads(state.read_text())["domains"].items()}


def changelog_of(project, domain: str, version: str) -> Changelog:
    tmp_path, _, _ = project
    dsc = tmp_path / "build/trixie" / f"mailman-{domain}_{version}.dsc"
    assert dsc.is_file()
    with open(dsc) as fh:
        assert Dsc(fh)["Version"] == version
    tree = tmp_path / "unpacked"
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["dpkg-source", "--extract", str(dsc), str(tree)], check=True, capture_output=True)
    return Changelog((tree / "debian/changelog").read_text())


def test_domains_add_list_remove(project, capsys):
    _, state, _ = project
    assert set(built_versions(state)) == {ORG, NET}
    assert main(["--state", str(state), "domains", "list"]) == 0
    assert ORG in capsys.readouterr().out
    assert main(["--state", str(state), "domains", "remove", NET]) == 0
    assert set(built_versions(state)) == {ORG}
    assert (state.parent / "mmdeb.toml.bak").exists()


def test_a_tarball_is_recorded_by_absolute_path(tmp_path, fixture_py3, monkeypatch):
    monkeypatch.chdir(fixture_py3.tarball.parent)
    state = tmp_path / "mmdeb.toml"
    assert main(["--state", str(state), "domains", "add", ORG, "--upstream", fixture_py3.tarball.name]) == 0
    assert State.load(state).domains[ORG].settings.upstream == str(fixture_py3.tarball)


def test_adding_a_domain_twice_is_refused(project, fixture_py3, capsys):
    _, state, _ = project
    assert main(["--state", str(state), "domains", "add", ORG, "--upstream", str(fixture_py3.tarball)]) == 1
    assert "already a domain" in capsys.readouterr().err


def test_two_domains_that_exim_would_name_alike_are_refused_together(tmp_path, fixture_py3, capsys):
    state = tmp_path / "mmdeb.toml"
    assert main(["--state", str(state), "domains", "add", "lists.a-b.example", "lists.a.b.example",
                 "--upstream", str(fixture_py3.tarball)]) == 1
    err = capsys.readouterr().err
    assert "lists.a.b.example and lists.a-b.example would both be lists_a_b_example" in err
    assert len(err.strip().splitlines()) == 1 and not state.exists()


def test_corrupted_state_file_is_reported(tmp_path, capsys):
    state = tmp_path / "mmdeb.toml"
    state.write_text("[domains\nbroken = ")
    assert main(["--state", str(state), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mmdeb: error: the state file") and "corrupted" in err and len(err.splitlines()) == 1


def test_dry_run_prints_the_plan_and_builds_nothing(project, capsys):
    tmp_path, state, _ = project
    assert rebuild(project, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"rebuild mailman-{ORG} as 2.2.0-1+deb13: first build" in out
    assert not (tmp_path / "build").exists()
    assert built_versions(state) == {ORG: "", NET: ""}


@pytest.mark.slow
def test_rebuild_then_nothing_to_do_then_a_new_patch(project, capsys):
    tmp_path, state, patches = project
    assert rebuild(project) == 0
    assert built_versions(state) == {ORG: "2.2.0-1+deb13", NET: "2.2.0-1+deb13"}
    assert State.load(state).commons["trixie"].built == f"{__version__}+1+deb13", "mailmen-common, once for both"

    assert rebuild(project) == 0
    assert "nothing to rebuild" in capsys.readouterr().out

    assert main(["--state", str(state), "status", "--patches", str(patches)]) == 0
    assert f"mailmen-common\ttrixie\t{__version__}+1+deb13\t-\t-\tup to date" in capsys.readouterr().out
    (patches / "py3/security-fix.patch").write_text(SECURITY_FIX)
    with open(patches / "py3/series", "a") as series:
        series.write("security-fix.patch\n")
    assert main(["--state", str(state), "status", "--patches", str(patches)]) == 0
    assert "pending: changed patches in patches/py3" in capsys.readouterr().out

    assert rebuild(project) == 0
    assert built_versions(state) == {ORG: "2.2.0-2+deb13", NET: "2.2.0-2+deb13"}
    changelog = changelog_of(project, ORG, "2.2.0-2+deb13")
    assert [str(block.version) for block in changelog] == ["2.2.0-2+deb13", "2.2.0-1+deb13"]
    assert "changed patches in patches/py3" in " ".join(str(changelog).split())


def edit_state(path, domain: str, **settings) -> None:
    state = State.load(path)
    state.domains[domain].settings = replace(state.domains[domain].settings, **settings)
    state.save()


@pytest.mark.slow
def test_settings_change_rebuilds_only_that_domain(project):
    _, state, _ = project
    assert rebuild(project) == 0
    edit_state(state, NET, mail_gid="mail")
    assert rebuild(project) == 0
    assert built_versions(state) == {ORG: "2.2.0-1+deb13", NET: "2.2.0-2+deb13"}


@pytest.mark.slow
def test_new_upstream_starts_again_at_revision_one(project, tmp_path):
    _, state, _ = project
    assert rebuild(project, ORG) == 0
    newer = make_fixture(tmp_path / "newer", "py3", version="2.2.1")[0]
    edit_state(state, ORG, upstream=str(newer))
    assert rebuild(project, ORG) == 0
    assert built_versions(state)[ORG] == "2.2.1-1+deb13"
    changelog = changelog_of(project, ORG, "2.2.1-1+deb13")
    assert "new upstream release 2.2.1" in " ".join(str(changelog).split())


def test_missing_upstream_tarball_is_reported(project, tmp_path, capsys):
    _, state, _ = project
    edit_state(state, ORG, upstream=str(tmp_path / "gone/mailman-2.2.0.tar.gz"))
    assert rebuild(project) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and len(err.splitlines()) == 1
    assert built_versions(state) == {ORG: "", NET: ""}


CORE_FIX = """\
Description: A fix to the code only, which shared-mode domain packages do not carry
--- a/Mailman/Utils.py
+++ b/Mailman/Utils.py
@@ -4,3 +4,4 @@
 
 def whoami():
     return Defaults.DEFAULT_EMAIL_HOST
+CORE_FIX = True
"""


def add_patch(patches, name: str, text: str) -> None:
    (patches / "py3" / name).write_text(text)
    with open(patches / "py3/series", "a") as series:
        series.write(f"{name}\n")


def core_version(state) -> str:
    return tomllib.loads(state.read_text())["cores"]["py3-trixie"]["built"]


@pytest.mark.slow
def test_mode_switches_and_core_only_patches(project, capsys):
    _, state, patches = project
    assert rebuild(project) == 0
    capsys.readouterr()

    assert rebuild(project, "--mode", "shared") == 0
    out = capsys.readouterr().out
    assert "rebuild mailmen-core-py3 as 2.2.0-1+deb13: first build" in out
    assert f"rebuild mailman-{ORG} as 2.2.0-2+deb13: changed domain settings (mode shared)" in out
    assert built_versions(state) == {ORG: "2.2.0-2+deb13", NET: "2.2.0-2+deb13"}

    add_patch(patches, "core-fix.patch", CORE_FIX)
    assert rebuild(project) == 0
    assert core_version(state) == "2.2.0-2+deb13"
    assert built_versions(state) == {ORG: "2.2.0-2+deb13", NET: "2.2.0-2+deb13"}, "domains untouched"

    add_patch(patches, "security-fix.patch", SECURITY_FIX)  # Defaults.py.in: in every domain package
    assert rebuild(project) == 0
    assert core_version(state) == "2.2.0-3+deb13"
    assert built_versions(state) == {ORG: "2.2.0-3+deb13", NET: "2.2.0-3+deb13"}

    assert rebuild(project, NET, "--mode", "prefix") == 0
    assert built_versions(state) == {ORG: "2.2.0-3+deb13", NET: "2.2.0-4+deb13"}
    assert core_version(state) == "2.2.0-3+deb13"
    capsys.readouterr()
    assert main(["--state", str(state), "status", "--patches", str(patches)]) == 0
    assert "mailmen-core-py3\ttrixie\t2.2.0-3+deb13\t-\t2.2.0\tup to date" in capsys.readouterr().out


def test_patches_are_sorted_into_core_only_and_domain_reaching():
    assert not reaches_domains(CORE_FIX)
    assert reaches_domains(SECURITY_FIX)
    assert patched_paths("--- mailman-2.2.0.orig/src/common.c\n+++ mailman-2.2.0/src/common.c\n") == {"src/common.c"}
    for path in ("Mailman/Cgi/admin.py", "bin/newlist", "scripts/driver", "templates/en/x.html", "messages/de/x.po"):
        assert CORE_ONLY.match(path), path
    for path in ("src/common.c", "configure", "Mailman/Defaults.py.in", "Mailman/__init__.py.in",
                 "misc/paths.py.in", "bin/Makefile.in", "cron/crontab.in"):
        assert not CORE_ONLY.match(path), path


@pytest.mark.slow
def test_a_changed_importer_rebuilds_the_py3_domains(project, capsys):
    # Old lists reach a host through the packages' mmdeb-import: a fix to it must reach the packages.
    tmp_path, state, patches = project
    assert rebuild(project) == 0
    recorded = State.load(state)
    for domain in recorded.domains.values():
        domain.inputs["importer"] = "an older mmdeb-import"
    recorded.save()
    assert main(["--state", str(state), "status", "--patches", str(patches)]) == 0
    assert capsys.readouterr().out.count("pending: changed mmdeb-import") == 2


def test_a_domain_is_rebuilt_when_a_template_it_includes_changes():
    # mm_cfg.py.j2 includes include/dmarc.j2: an edit there changes the package.
    assert "include/dmarc.j2" in template_inputs("domain")
