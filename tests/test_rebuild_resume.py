"""A rebuild records each package as it lands: one that stops part way (a failed build, a bug, a
failed publish) keeps what it recorded, and the next run builds only the rest. The builds are
the fake builder's, source packages included: this is about recording, not building."""

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from helpers.fake_builder import Bug, FakeBuilder, fake_source, wait_for
from mmdeb.build import pipeline
from mmdeb import __version__
from mmdeb.app import places
from mmdeb.app.conf import Settings
from mmdeb.app.host import Host
from mmdeb.cli import main
from mmdeb.domains.settings import DomainSettings
from mmdeb.run import Runner

COM, NET, ORG = "lists.example.com", "lists.example.net", "lists.example.org"  # built in this order
V = "2.2.0-1+deb13"
COMMON = f"mailmen-common {__version__}+1+deb13"


@pytest.fixture(autouse=True)
def fake_sources(monkeypatch):
    monkeypatch.setattr(pipeline, "build_source", fake_source)
    monkeypatch.setattr(pipeline, "build_common_source", fake_source)


@pytest.fixture
def project(tmp_path, fixture_py3):
    """A working directory with a state file naming three domains."""
    patches = tmp_path / "patches"
    shutil.copytree(fixture_py3.patches, patches)
    state = tmp_path / "mmdeb.toml"
    assert main(["--state", str(state), "domains", "add", COM, NET, ORG, "--upstream", str(fixture_py3.tarball)]) == 0
    return tmp_path, state, patches


def rebuild(project, builder: FakeBuilder, monkeypatch, *args: str) -> int:
    tmp_path, state, patches = project
    monkeypatch.setattr(Host, "builder", lambda self: builder)
    return main(["--state", str(state), "rebuild", *args, "--builder", "local", "--jobs", "1", "--patches", str(patches),
                 "--out", str(tmp_path / "build")])


def recorded(state: Path, key: str = "built") -> dict[str, str]:
    return {name: table.get(key, "") for name, table in tomllib.loads(state.read_text())["domains"].items()}


def test_a_failed_build_keeps_the_other_records_and_the_next_run_builds_it_alone(project, monkeypatch, capsys):
    _, state, _ = project
    assert rebuild(project, FakeBuilder(failing={f"mailman-{NET}"}), monkeypatch) == 1
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert line.startswith(f"mmdeb: error: 1 of 4 builds failed, the first mailman-{NET} {V} for trixie "
                           f"(building mailman-{NET} {V} failed); recorded in {state}: {COMMON}, mailman-{COM} {V}, "
                           f"mailman-{ORG} {V}; not recorded: mailman-{NET} {V}. Fix: correct the fake builder; "
                           "then run it again: it builds only what is not recorded"), line
    assert f"recorded mailman-{COM} {V} in {state}" in out
    assert recorded(state) == {COM: V, NET: "", ORG: V}

    again = FakeBuilder()
    assert rebuild(project, again, monkeypatch) == 0
    assert again.asked == [f"mailman-{NET}"]
    assert recorded(state) == {COM: V, NET: V, ORG: V}


def test_a_rebuild_stopped_by_a_bug_keeps_what_landed_before_it(project, monkeypatch, capsys):
    _, state, _ = project
    with pytest.raises(Bug):
        rebuild(project, FakeBuilder(raising={f"mailman-{NET}"}), monkeypatch)
    assert (f"recorded in {state}: {COMMON}, mailman-{COM} {V}; not recorded: mailman-{NET} {V}, mailman-{ORG} {V}"
            in capsys.readouterr().out)
    assert recorded(state) == {COM: V, NET: "", ORG: ""}

    again = FakeBuilder()
    assert rebuild(project, again, monkeypatch) == 0
    assert again.asked == [f"mailman-{NET}", f"mailman-{ORG}"]
    assert recorded(state) == {COM: V, NET: V, ORG: V}


def test_a_domain_s_settings_change_only_with_its_build(project, monkeypatch, capsys):
    """A domain whose build did not land keeps its settings: its record never says always-on
    runners while its built version has on-demand ones. The same command again finishes the job."""
    _, state, _ = project
    assert rebuild(project, FakeBuilder(), monkeypatch) == 0
    assert rebuild(project, FakeBuilder(failing={f"mailman-{NET}"}), monkeypatch, "--runners", "always-on") == 1
    assert recorded(state, "runners") == {COM: "always-on", NET: "on-demand", ORG: "always-on"}
    assert recorded(state) == {COM: "2.2.0-2+deb13", NET: V, ORG: "2.2.0-2+deb13"}
    capsys.readouterr()
    assert main(["--state", str(state), "status", "--patches", str(project[2])]) == 0
    assert f"mailman-{NET}\ttrixie\t{V}\t-\t2.2.0\tup to date" in capsys.readouterr().out

    again = FakeBuilder()
    assert rebuild(project, again, monkeypatch, "--runners", "always-on") == 0
    assert again.asked == [f"mailman-{NET}"]
    assert recorded(state, "runners") == dict.fromkeys((COM, NET, ORG), "always-on")


@pytest.fixture
def publishing_host(system, fixture_py3):
    """An installed mmdeb's Host (places under system's root) that builds and publishes, with three domains."""
    root = Path(system["MMDEB_ROOT"])
    conf = Settings(builder="local", jobs=1, patches=str(fixture_py3.patches), policy="build+publish")
    host = Host(places.system(root), conf, Runner())
    host.add_domains([COM, NET, ORG], DomainSettings(str(fixture_py3.tarball), "", ""))
    yield host
    subprocess.run(["gpgconf", "--homedir", str(host.places.signing_key), "--kill", "gpg-agent"], check=False)


def published_names(host: Host) -> set[str]:
    packages = host.places.repo / "current/dists/trixie/main/binary-amd64/Packages"
    return {line.split(": ")[1] for line in packages.read_text().splitlines() if line.startswith("Package: ")}


def test_autorebuild_records_each_build_once_it_is_published(publishing_host, monkeypatch):
    """mailman-NET's .deb is refused by reprepro: what was published before it stays published and
    recorded, nothing after it is recorded, and the next run builds and publishes only the rest."""
    host, state = publishing_host, publishing_host.places.state

    def com_published_first(package: str) -> None:  # so mailman-NET lands in a publish of its own
        if package == f"mailman-{NET}":
            wait_for(lambda: recorded(state, "published")[COM] == V, f"mailman-{COM} to be recorded as published")

    monkeypatch.setattr(Host, "builder", lambda self: FakeBuilder(broken={f"mailman-{NET}"}, before=com_published_first))
    report = host.autorebuild()
    assert [failure.message.split(" with reprepro")[0] for failure in report.failures] == [
        f"adding mailman-{NET}_{V}_amd64.deb to trixie"]
    assert recorded(state, "published") == {COM: V, NET: "", ORG: ""}
    assert recorded(state) == {COM: V, NET: "", ORG: ""}
    assert published_names(host) == {"mailmen-common", f"mailman-{COM}"}
    assert (f"recorded in {state}: {COMMON}, mailman-{COM} {V}; not recorded: mailman-{NET} {V}, mailman-{ORG} {V}"
            in report.lines)

    again = FakeBuilder()
    monkeypatch.setattr(Host, "builder", lambda self: again)
    assert host.autorebuild().failures == []
    assert again.asked == [f"mailman-{NET}", f"mailman-{ORG}"]
    assert recorded(state, "published") == dict.fromkeys((COM, NET, ORG), V)
    assert published_names(host) == {"mailmen-common", *(f"mailman-{name}" for name in (COM, NET, ORG))}
