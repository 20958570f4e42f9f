"""`mmdeb publish`: a signed reprepro repository that apt accepts, published atomically."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmdeb.build.pipeline import built_files
from mmdeb.cli import main
from mmdeb.domains.layout import COMMON_PACKAGE
from mmdeb.errors import MmdebError
from mmdeb.publish.repo import KEYRING, distributions_conf, repository_architectures

ORG, NET = "lists.example.org", "lists.example.net"


@pytest.fixture
def built_project(tmp_path, fixture_py3):
    state = tmp_path / "mmdeb.toml"
    common = ["--state", str(state)]
    assert main([*common, "domains", "add", ORG, NET, "--upstream", str(fixture_py3.tarball)]) == 0
    assert main([*common, "rebuild", "--builder", "local", "--patches", str(fixture_py3.patches),
                 "--out", str(tmp_path / "build")]) == 0
    return tmp_path, state


def publish(project, *extra: str) -> int:
    tmp_path, state = project
    return main(["--state", str(state), "publish", "--repo", str(tmp_path / "repo"), "--out", str(tmp_path / "build"), *extra])


def apt_update(tmp_path, repo) -> subprocess.CompletedProcess:
    """apt-get update against the repository, in a private apt root, trusting only its keyring."""
    root = tmp_path / "aptroot"
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    keyring = tmp_path / KEYRING
    shutil.copy(repo / "current" / KEYRING, keyring)
    (root / "etc/apt/sources.list.d/mmdeb.sources").write_text(
        f"Types: deb\nURIs: file:{repo}/current\nSuites: trixie\nComponents: main\nSigned-By: {keyring}\n")
    options = ["-o", f"Dir={root}", "-o", f"Dir::State::status={root}/var/lib/dpkg/status",
               "-o", "APT::Sandbox::User=root", "-o", "Debug::NoLocking=1"]
    update = subprocess.run(["apt-get", *options, "update"], capture_output=True, text=True)
    if update.returncode == 0:
        policy = subprocess.run(["apt-cache", *options, "policy", f"mailman-{ORG}"], capture_output=True, text=True)
        update.stdout += policy.stdout
    return update


@pytest.mark.slow
def test_publish_signs_a_repository_apt_accepts(built_project, capsys):
    tmp_path, _ = built_project
    assert publish(built_project) == 0
    out = capsys.readouterr().out
    assert "Signed-By: /usr/share/keyrings/mmdeb-archive-keyring.gpg" in out and "Suites: trixie" in out
    repo = tmp_path / "repo"
    current = (repo / "current").resolve()
    assert (current / "dists/trixie/InRelease").is_file()
    assert not list(current.rglob("private-keys-v1.d")), "the private key stays outside the published tree"
    result = apt_update(tmp_path, repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Candidate: 2.2.0-1+deb13" in result.stdout


@pytest.mark.slow
def test_tampered_or_unsigned_repository_refused(built_project):
    tmp_path, _ = built_project
    assert publish(built_project) == 0
    repo = tmp_path / "repo"
    release = (repo / "current").resolve() / "dists/trixie/InRelease"
    release.write_text(release.read_text().replace("Origin: mmdeb", "Origin: evil"))
    tampered = apt_update(tmp_path, repo)
    assert tampered.returncode != 0 or "W:" in tampered.stderr or "Err" in tampered.stdout
    assert "Candidate: 2.2.0-1+deb13" not in tampered.stdout
    release.unlink()
    ((repo / "current").resolve() / "dists/trixie/Release.gpg").unlink()
    unsigned = apt_update(tmp_path, repo)
    assert "is not signed" in unsigned.stdout + unsigned.stderr
    assert "Candidate: 2.2.0-1+deb13" not in unsigned.stdout


@pytest.mark.slow
def test_publishing_again_has_nothing_to_do(built_project, capsys):
    assert publish(built_project) == 0
    assert publish(built_project) == 0
    assert "nothing to publish" in capsys.readouterr().out


@pytest.mark.slow
def test_missing_signing_key_is_refused_and_nothing_changes(built_project, capsys):
    tmp_path, state = built_project
    assert publish(built_project) == 0
    repo = tmp_path / "repo"
    before = os.readlink(repo / "current")
    shutil.rmtree(repo / "gnupg")
    state.write_text(state.read_text().replace('published = "2.2.0-1+deb13"', 'published = ""'))
    capsys.readouterr()
    assert publish(built_project) == 1
    assert "signing key" in capsys.readouterr().err
    assert os.readlink(repo / "current") == before


@pytest.mark.slow
def test_unwritable_repository_leaves_the_published_state(built_project, capsys):
    tmp_path, state = built_project
    assert publish(built_project) == 0
    repo = tmp_path / "repo"
    before = os.readlink(repo / "current")
    state.write_text(state.read_text().replace('published = "2.2.0-1+deb13"', 'published = ""'))
    snapshots = repo / "snapshots"
    subprocess.run(["mount", "--bind", str(snapshots), str(snapshots)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(snapshots)], check=True)
        assert publish(built_project) == 1
    finally:
        subprocess.run(["umount", str(snapshots)], check=True)
    err = capsys.readouterr().err
    assert "the published repository is unchanged" in err and len(err.splitlines()) == 1
    assert os.readlink(repo / "current") == before
    result = apt_update(tmp_path, repo)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_concurrent_publishes_wait_for_each_other(tmp_path, fixture_py3):
    repo = tmp_path / "repo"
    commands = []
    for domain in (ORG, NET):
        state = tmp_path / f"{domain}.toml"
        out = tmp_path / f"build-{domain}"
        assert main(["--state", str(state), "domains", "add", domain, "--upstream", str(fixture_py3.tarball)]) == 0
        assert main(["--state", str(state), "rebuild", "--builder", "local", "--patches", str(fixture_py3.patches),
                     "--out", str(out)]) == 0
        commands.append([sys.executable, "-m", "mmdeb", "--state", str(state), "publish", "--repo", str(repo), "--out", str(out)])
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, out + err
    listing = subprocess.run(["reprepro", "--basedir", str((repo / "current").resolve()), "list", "trixie"],
                             capture_output=True, text=True, check=True).stdout
    assert f"mailman-{ORG}" in listing and f"mailman-{NET}" in listing


def test_distributions_config_for_arm64():
    conf = distributions_conf("FPR", ["arm64"])
    assert conf.split("\n\n")[0] == (
        "Origin: mmdeb\nLabel: mmdeb\nCodename: bullseye\nArchitectures: arm64 source\nComponents: main\n"
        "Description: Mailman per domain, built by mmdeb\nSignWith: FPR")
    assert [line for line in conf.splitlines() if line.startswith("Architectures:")] == ["Architectures: arm64 source"] * 4


def test_distributions_config_for_amd64_and_arm64():
    conf = distributions_conf("FPR", ["amd64", "arm64"])
    assert [line for line in conf.splitlines() if line.startswith("Architectures:")] == ["Architectures: amd64 arm64 source"] * 4


@pytest.mark.parametrize("debs, previous, host, expected", [
    (["mailman-a_2.2.0-1+deb13_arm64.deb", "mailmen-core-py3_2.2.0-1+deb13_all.deb"], set(), "arm64", ["arm64"]),
    (["mailmen-core-py3_2.2.0-1+deb13_all.deb"], set(), "arm64", ["arm64"]),
    (["mailman-a_2.2.0-1+deb13_arm64.deb"], {"amd64"}, "arm64", ["amd64", "arm64"]),
    ([], {"amd64", "arm64"}, "amd64", ["amd64", "arm64"]),
], ids=["arm64-and-all", "all-alone-is-the-host", "amd64-published-before", "nothing-new"])
def test_repository_architectures_come_from_what_is_published(debs, previous, host, expected):
    assert repository_architectures([Path(deb) for deb in debs], previous, host) == expected


@pytest.mark.slow
def test_a_publish_keeps_the_architectures_of_earlier_publishes(built_project):
    tmp_path, state = built_project
    assert publish(built_project) == 0
    conf = (tmp_path / "repo/current").resolve() / "conf/distributions"
    conf.write_text(conf.read_text().replace("Architectures: amd64 source", "Architectures: amd64 arm64 source"))
    state.write_text(state.read_text().replace('published = "2.2.0-1+deb13"', 'published = ""'))
    assert publish(built_project) == 0
    current = (tmp_path / "repo/current").resolve()
    assert "Architectures: amd64 arm64 source" in (current / "conf/distributions").read_text()
    assert (current / "dists/trixie/main/binary-arm64/Packages").is_file()


VERSION = "2.2.0-1+deb13"


def write_listing(path: Path, files: list[Path]) -> None:
    """A .dsc or .changes listing files (written first) with their sizes and sha256."""
    lines = [f"Format: 1.8\nVersion: {VERSION}\nChecksums-Sha256:"]
    for file in files:
        file.write_bytes(file.name.encode())
        lines.append(f" {hashlib.sha256(file.read_bytes()).hexdigest()} {file.stat().st_size} {file.name}")
    path.write_text("\n".join(lines) + "\n")


def fake_build(directory: Path, package: str) -> list[Path]:
    """package's source and binary build in directory, as a builder leaves them; its .dsc and .debs."""
    directory.mkdir(parents=True, exist_ok=True)
    dsc = directory / f"{package}_{VERSION}.dsc"
    write_listing(dsc, [directory / f"{package}_2.2.0.orig.tar.gz", directory / f"{package}_{VERSION}.debian.tar.gz"])
    debs = [directory / f"{package}_{VERSION}_amd64.deb", directory / f"{package}-dbgsym_{VERSION}_amd64.deb"]
    write_listing(directory / f"{package}_{VERSION}_amd64.changes", [*debs, directory / f"{package}_{VERSION}_amd64.buildinfo"])
    return [dsc, *debs]


def test_built_files_are_the_build_s_own_not_a_longer_name_s(tmp_path):
    org = fake_build(tmp_path / "trixie", f"mailman-{ORG}")
    uk = fake_build(tmp_path / "trixie", f"mailman-{ORG}.uk")
    assert sorted(built_files(tmp_path, f"mailman-{ORG}", "trixie", VERSION, "amd64")) == sorted(org)
    assert sorted(built_files(tmp_path, f"mailman-{ORG}.uk", "trixie", VERSION, "amd64")) == sorted(uk)


@pytest.mark.parametrize("damage, named", [
    (lambda d: (d / f"mailman-{ORG}_{VERSION}_amd64.changes").unlink(), f"mailman-{ORG}_{VERSION}_amd64.changes is missing"),
    (lambda d: (d / f"mailman-{ORG}_{VERSION}.dsc").unlink(), f"mailman-{ORG}_{VERSION}.dsc is missing"),
    (lambda d: (d / f"mailman-{ORG}-dbgsym_{VERSION}_amd64.deb").unlink(),
     f"mailman-{ORG}-dbgsym_{VERSION}_amd64.deb, listed in mailman-{ORG}_{VERSION}_amd64.changes, is missing"),
    (lambda d: (d / f"mailman-{ORG}_{VERSION}_amd64.deb").write_bytes(b"other"),
     f"mailman-{ORG}_{VERSION}_amd64.deb, listed in mailman-{ORG}_{VERSION}_amd64.changes, differs from its checksum"),
    (lambda d: (d / f"mailman-{ORG}_2.2.0.orig.tar.gz").unlink(),
     f"mailman-{ORG}_2.2.0.orig.tar.gz, listed in mailman-{ORG}_{VERSION}.dsc, is missing"),
], ids=["no-changes", "no-dsc", "deb-missing", "deb-changed", "orig-missing"])
def test_an_incomplete_build_is_refused_naming_it(tmp_path, damage, named):
    fake_build(tmp_path / "trixie", f"mailman-{ORG}")
    damage(tmp_path / "trixie")
    with pytest.raises(MmdebError) as caught:
        built_files(tmp_path, f"mailman-{ORG}", "trixie", VERSION, "amd64")
    assert f"the build of mailman-{ORG} {VERSION} in {tmp_path / 'trixie'} is incomplete: {named}" in str(caught.value)
    assert "--out" in caught.value.remedy and "\n" not in str(caught.value)


@pytest.mark.chroot
def test_publish_leaves_out_a_longer_domain_built_beside_it(tmp_path, fixture_py3):
    """lists.example.org.uk built by hand into build/, then lists.example.org added, rebuilt and
    published: the repository holds lists.example.org's packages only."""
    state, out, repo = tmp_path / "mmdeb.toml", tmp_path / "build", tmp_path / "repo"
    upstream = ["--upstream", str(fixture_py3.tarball)]
    assert main(["build", f"{ORG}.uk", *upstream, "--patches", str(fixture_py3.patches), "--out", str(out), "--no-common"]) == 0
    assert (out / f"trixie/mailman-{ORG}.uk_{VERSION}_amd64.deb").is_file()
    assert main(["--state", str(state), "domains", "add", ORG, *upstream]) == 0
    assert main(["--state", str(state), "rebuild", "--patches", str(fixture_py3.patches), "--out", str(out)]) == 0
    assert main(["--state", str(state), "publish", "--repo", str(repo), "--out", str(out)]) == 0
    listing = subprocess.run(["reprepro", "--basedir", str((repo / "current").resolve()), "list", "trixie"],
                             capture_output=True, text=True, check=True).stdout
    names = {line.split(": ")[1].split()[0] for line in listing.splitlines()}
    assert f"mailman-{ORG}" in names and names <= {f"mailman-{ORG}", f"mailman-{ORG}-dbgsym", COMMON_PACKAGE}, listing
    packages = (repo / "current/dists/trixie/main/binary-amd64/Packages").read_text()
    assert f"mailman-{ORG}.uk" not in packages
