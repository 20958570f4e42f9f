"""Bad input: one clear line with the remedy, a non-zero exit, no traceback, nothing in build/."""

import ast
import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import assert_refused, mmdeb
from helpers.fixture_upstream import make_fixture, write_tarball
from mmdeb.build.builders.sbuild import check_subids
import mmdeb as package
from mmdeb.app.autorebuild import Report
from mmdeb.errors import MmdebError


@pytest.fixture
def fixtures(tmp_path):
    return {flavour: make_fixture(tmp_path / flavour, flavour)[0] for flavour in ("py3", "gnu")}


@pytest.mark.parametrize("domain", ["../x", "exa mple.org", "", "a" * 250 + ".org"])
def test_bad_domain(tmp_path, fixtures, domain):
    result = mmdeb("build", domain, "--upstream", str(fixtures["py3"]), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", "domain")


def test_missing_tarball(tmp_path):
    result = mmdeb("build", "lists.example.org", "--upstream", str(tmp_path / "mailman-2.1.39.tgz"), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", "does not exist")


def test_truncated_tarball(tmp_path, fixtures):
    data = fixtures["py3"].read_bytes()
    truncated = tmp_path / "mailman-2.2.0.tar.gz"
    truncated.write_bytes(data[: len(data) // 2])
    result = mmdeb("build", "lists.example.org", "--upstream", str(truncated), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", "truncated")


def test_empty_tarball(tmp_path):
    empty = tmp_path / "mailman-2.2.0.tar.gz"
    empty.write_bytes(b"")
    result = mmdeb("build", "lists.example.org", "--upstream", str(empty), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", f"upstream tarball {empty} is empty (0 bytes)")


def test_not_a_tarball(tmp_path):
    other = tmp_path / "mailman-2.2.0.tar.gz"
    other.write_text("<html>404 Not Found</html>\n")
    result = mmdeb("build", "lists.example.org", "--upstream", str(other), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", f"{other} is truncated or not a valid tarball (not a gzip file)")


def test_non_mailman_tarball(tmp_path):
    other = write_tarball(tmp_path / "hello-1.0.tar.gz", "hello-1.0", {"README": ("hi\n", 0o644)})
    result = mmdeb("build", "lists.example.org", "--upstream", str(other), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", "not a Mailman 2 source tarball")


def test_catalogue_sha256_mismatch(tmp_path):
    cached = tmp_path / "cache" / "upstream" / "mailman2-python3-b0de82ecac10b77b38e57ea472d18c6345ffd8c2.tar.gz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"tampered")
    result = mmdeb(
        "build", "lists.example.org", "--upstream", "mailman2-python3-b0de82e",
        cwd=tmp_path, env={"MMDEB_CACHE": str(tmp_path / "cache")},
    )
    assert_refused(result, tmp_path / "build", "sha256 mismatch")


@pytest.mark.parametrize("flavour, dist", [("gnu", "trixie"), ("py3", "bullseye")])
def test_flavour_the_distribution_cannot_run(tmp_path, fixtures, flavour, dist):
    result = mmdeb("build", "lists.example.org", "--upstream", str(fixtures[flavour]), "--dist", dist, cwd=tmp_path)
    assert_refused(result, tmp_path / "build", f"cannot run on {dist}")


@pytest.mark.parametrize("present, missing, package", [([], "sbuild", "sbuild"), (["sbuild"], "mmdebstrap", "mmdebstrap"),
                                                      (["sbuild", "mmdebstrap", "newuidmap"], "ip", "iproute2")])
def test_builder_tools_missing(tmp_path, fixtures, present, missing, package):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in present:
        (bin_dir / tool).symlink_to("/bin/true")
    result = mmdeb("build", "lists.example.org", "--upstream", str(fixtures["py3"]), cwd=tmp_path, env={"PATH": str(bin_dir)})
    assert_refused(result, tmp_path / "build", f"{missing} is not installed", f"apt-get install {package}")


def test_normalised_domain_names_the_package(tmp_path, fixtures):
    patches = fixtures["py3"].parent / "patches"
    result = mmdeb("source", "Listen.Bücher.example", "--upstream", str(fixtures["py3"]), "--patches", str(patches), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "build/trixie/mailman-listen.xn--bcher-kva.example_2.2.0-1+deb13.dsc").is_file()
    assert not [p for p in (tmp_path / "build").iterdir() if p.name.startswith(".")], "work dir left behind"


@pytest.mark.parametrize(
    "content",
    ["", "someoneelse:100000:65536\n", "root:100000:1000\n"],
    ids=["empty", "other-user", "too-small"],
)
def test_subid_range_missing(tmp_path, content):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subuid.write_text(content)
    subgid.write_text("root:100000:65536\n")
    with pytest.raises(MmdebError) as caught:
        check_subids((subuid, subgid))
    # After every range of both files (subgid's root:100000:65536), so it overlaps none.
    assert caught.value.remedy == f"run: usermod --add-subuids 165536-231071 {getpass.getuser()}"
    assert str(caught.value).startswith(f"{subuid} gives")


def test_both_missing_subid_ranges_are_named_in_one_fix(tmp_path):
    subuid, subgid = tmp_path / "subuid", tmp_path / "subgid"
    subgid.write_text("alice:100000:65536\nbob:300000:65536\n")
    with pytest.raises(MmdebError) as caught:
        check_subids((subuid, subgid))
    assert caught.value.remedy == (f"run: touch {subuid} && usermod --add-subuids 365536-431071 "
                                   f"--add-subgids 365536-431071 {getpass.getuser()}")
    assert f"{subuid} and {subgid} give" in str(caught.value)


def test_subid_range_present(tmp_path):
    subuid = tmp_path / "subuid"
    subuid.write_text(f"{os.getuid()}:100000:65536\n")
    check_subids((subuid,))


def test_import_plan_of_a_missing_source(tmp_path):
    result = mmdeb("--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / "old-mailman"), cwd=tmp_path)
    assert_refused(result, tmp_path / "build", f"{tmp_path / 'old-mailman'} does not exist")


def test_mmdeb_import_of_a_missing_source(tmp_path):
    # The list host's command, as its launcher runs it.
    missing = tmp_path / "old-mailman"
    result = subprocess.run([sys.executable, "-c", f"import sys; from mmdeb.importing.listimport import main; sys.exit(main(['{missing}']))"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mmdeb-import: error: {missing} does not exist. Fix: ") and "Traceback" not in result.stderr


def test_a_failed_build_names_the_package_and_its_log(tmp_path, fixtures):
    patches = tmp_path / "patches"
    shutil.copytree(fixtures["py3"].parent / "patches", patches)
    (patches / "py3/stale.patch").write_text(
        "--- a/Mailman/Defaults.py\n+++ b/Mailman/Defaults.py\n@@ -1 +1 @@\n-NOT IN THE FILE\n+REPLACED\n")
    with open(patches / "py3/series", "a") as series:
        series.write("stale.patch\n")
    result = mmdeb("source", "lists.example.org", "--upstream", str(fixtures["py3"]), "--patches", str(patches), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    log = tmp_path / "build/trixie/mailman-lists.example.org_2.2.0-1+deb13_amd64.build"
    assert line == (f"mmdeb: error: building the source package of mailman-lists.example.org 2.2.0-1+deb13 (dpkg-source) "
                    f"failed: see {log}. Fix: correct what the end of that log reports, then run again")
    assert "stale.patch" in log.read_text() and "$ dpkg-source --compression=gzip --build" in log.read_text()


@pytest.mark.parametrize("text, named", [
    ('builder = "local"\n[autorebuild]\npolicy = "build"\n',
     "setting builder is above the first table, so it is in none. Fix: move it under [build]"),
    ('colour = "blue"\n', "setting colour is above the first table, so it is in none. Fix: remove it"),
    ('[build]\nbuilders = "local"\n', "unknown setting build.builders"),
], ids=["known-key-above-tables", "unknown-key-above-tables", "unknown-key-in-table"])
def test_a_setting_outside_its_table_is_refused_naming_it_and_the_file(tmp_path, system, text, named):
    conf = Path(system["MMDEB_ROOT"]) / "etc/mmdeb/mmdeb.conf"
    conf.write_text(text)
    result = mmdeb("domains", "list", cwd=tmp_path, env=system)
    assert_refused(result, tmp_path / "build", f"mmdeb: error: {conf}: {named}")


def error_calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("MmdebError", "CommandFailed"):
            yield node


def test_no_error_says_fix_itself():
    """MmdebError's str adds ". Fix: " before the remedy; a message or remedy saying it too would say it twice."""
    top = Path(package.__file__).parent
    sources = sorted(top.rglob("*.py"))
    saying = [f"{path.relative_to(top)}:{call.lineno}" for path in sources for call in error_calls(ast.parse(path.read_text()))
              for text in ast.walk(call) if isinstance(text, ast.Constant) and "Fix:" in str(text.value)]
    assert sum(1 for path in sources for _ in error_calls(ast.parse(path.read_text()))) > 50  # the walk sees them
    assert saying == []


def test_a_failed_autorebuild_says_fix_once():
    report = Report("build+publish")
    report.fail(MmdebError("cannot reach the release listing of fork", "check the network"))
    assert str(report.error("root")) == ("autorebuild failed: cannot reach the release listing of fork. "
                                         "Fix: check the network; the whole report is mailed to root")
    assert "FAILED: cannot reach the release listing of fork. Fix: check the network" in report.text()
