"""`mmdeb publish`: a signed reprepro repository that apt accepts, published atomically."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.private_keys import holds_private_key, private_key_files
from mmdeb.build.pipeline import built_files
from mmdeb.cli import main
from mmdeb.domains.layout import COMMON_PACKAGE
from mmdeb.errors import MmdebError
from mmdeb.publish.repo import KEYRING, Repository, distributions_conf, gpgconf_kill_agent_argv, repository_architectures
from mmdeb.run import Runner

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


def apt_update(tmp_path, repo, trusted: Path | None = None) -> subprocess.CompletedProcess:
    """apt-get update against the repository, in a private apt root, trusting only its keyring
    (or the keyring trusted: one a host got earlier)."""
    root = tmp_path / "aptroot"
    shutil.rmtree(root, ignore_errors=True)
    for sub in ("etc/apt/sources.list.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial",
                "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (root / sub).mkdir(parents=True)
    (root / "var/lib/dpkg/status").write_text("")
    keyring = tmp_path / KEYRING
    shutil.copy(trusted or repo / "current" / KEYRING, keyring)
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
    assert private_key_files(repo) == [], "the private key stays outside the repository directory"
    assert (tmp_path / "signing-key").stat().st_mode & 0o777 == 0o700
    result = apt_update(tmp_path, repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Candidate: 2.2.0-1+deb13" in result.stdout


def gpg_fingerprint(gnupghome: Path) -> str:
    listing = subprocess.run(["gpg", "--homedir", str(gnupghome), "--batch", "--with-colons", "--list-secret-keys"],
                             capture_output=True, text=True, check=True).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


def unpublish(state: Path) -> None:
    """Mark the built version unpublished, so the next publish adds it again."""
    state.write_text(state.read_text().replace('published = "2.2.0-1+deb13"', 'published = ""'))


@pytest.mark.slow
def test_a_key_kept_in_the_repository_is_moved_out_and_hosts_keep_trusting_it(built_project, capsys):
    tmp_path, state = built_project
    assert publish(built_project) == 0
    repo, key = tmp_path / "repo", tmp_path / "signing-key"
    trusted = tmp_path / "trusted.gpg"  # what a list host got from the first publish
    shutil.copy(repo / "current" / KEYRING, trusted)
    fingerprint = gpg_fingerprint(key)
    subprocess.run(gpgconf_kill_agent_argv(key), check=True)
    key.rename(repo / "gnupg")  # where earlier mmdeb kept it
    assert private_key_files(repo), "the scan finds the key where it was"
    unpublish(state)
    capsys.readouterr()
    assert publish(built_project) == 0
    moved = [line for line in capsys.readouterr().out.splitlines() if line.startswith("moved the signing key")]
    assert moved == [f"moved the signing key of {repo} from {repo / 'gnupg'} to {key}: the same key, "
                     "now outside the directory you publish"]
    assert not (repo / "gnupg").exists() and key.stat().st_mode & 0o777 == 0o700
    assert gpg_fingerprint(key) == fingerprint
    assert private_key_files(repo) == []
    result = apt_update(tmp_path, repo, trusted)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Candidate: 2.2.0-1+deb13" in result.stdout
    # The scan also finds a secret key exported as OpenPGP packets, as a careless backup would be.
    export = tmp_path / "secret.gpg"
    subprocess.run(["gpg", "--homedir", str(key), "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
                    "--output", str(export), "--export-secret-keys", fingerprint], check=True, capture_output=True)
    assert holds_private_key(export, key) and not holds_private_key(trusted, key)
    subprocess.run(gpgconf_kill_agent_argv(key), check=True)


def test_an_old_key_directory_is_moved_not_copied(tmp_path):
    repo, key = tmp_path / "repo", tmp_path / "signing-key"
    (repo / "gnupg/private-keys-v1.d").mkdir(parents=True, mode=0o700)
    (repo / "gnupg/private-keys-v1.d/A.key").write_text("Key: (private-key)\n")
    said = []
    Repository(repo, key, Runner()).move_old_key(said.append)
    assert not (repo / "gnupg").exists() and (key / "private-keys-v1.d/A.key").read_text() == "Key: (private-key)\n"
    assert key.stat().st_mode & 0o777 == 0o700 and len(said) == 1
    Repository(repo, key, Runner()).move_old_key(said.append)  # nothing left to move
    assert len(said) == 1


def test_a_key_both_in_and_beside_the_repository_is_refused(tmp_path):
    repo, key = tmp_path / "repo", tmp_path / "signing-key"
    for home in (repo / "gnupg", key):
        home.mkdir(parents=True, mode=0o700)
    with pytest.raises(MmdebError) as caught:
        Repository(repo, key, Runner()).move_old_key(print)
    assert f"{repo / 'gnupg'} and {key} both hold a signing key" in str(caught.value) and "\n" not in str(caught.value)
    assert (repo / "gnupg").is_dir() and key.is_dir()


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
    shutil.rmtree(tmp_path / "signing-key")
    unpublish(state)
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
    unpublish(state)
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
    unpublish(state)
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
