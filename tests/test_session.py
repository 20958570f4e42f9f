"""Thin packages built in one session of the chroot (builders.session): which builds join a
session, and how the builds that wait for it get each its own result. The session itself runs in
test_shared.py, which builds a second thin domain in one."""

import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from mmdeb.build.builders.base import Builder
from mmdeb.build.builders.session import BUILD_LOG, STATUS, Session
from mmdeb.build.pipeline import batched
from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.upstream.fetch import sha256_of


def spec(kind: str, thin: bool, dist: str = "trixie") -> SimpleNamespace:
    return SimpleNamespace(kind=kind, thin=thin, dist=dist)


class Chroot(Builder):
    name = "chroot"
    sessions = True

    def check(self) -> None:
        pass

    def build(self, dsc, dist, arch, result_dir, runner) -> None:
        pass


def test_the_thin_packages_build_in_a_session():
    core, full, first, second = spec("core", False), spec("domain", False), spec("domain", True), spec("domain", True)
    other = spec("domain", True, "bookworm")
    specs = [core, full, first, other, second]
    assert batched(specs, Chroot()) == [first, other, second]
    assert batched(specs, None) == []
    assert batched(specs, type("Local", (Chroot,), {"sessions": False})()) == []


class FakeSession(Session):
    """Runs no chroot: each package's build succeeds but the one called failing."""

    def __init__(self, directory: Path, count: int, failing: str):
        super().__init__(Path("/cache/trixie.tar.zst"), count, 2, directory)
        self.failing = failing
        self.runs = 0

    def run(self, runner: Runner) -> None:
        self.runs += 1
        for name in self.waiting:
            here = self.directory / "build" / name
            here.mkdir(parents=True)
            (here / BUILD_LOG).write_text(f"built {name}\n")
            (here / STATUS).write_text("2\n" if name == self.failing else "0\n")
            if name != self.failing:
                deb = here / f"{name}_amd64.deb"
                deb.write_text("deb")
                (here / f"{name}_amd64.changes").write_text(
                    f"Checksums-Sha256:\n {sha256_of(deb)} {deb.stat().st_size} {deb.name}\n")


def test_each_build_waiting_for_the_session_gets_its_own_result_and_a_withdrawn_one_is_not_waited_for(tmp_path):
    session = FakeSession(tmp_path / "session", 4, failing="b_1")
    results: dict[str, object] = {}

    def build(name: str) -> None:
        result_dir, log = tmp_path / name, tmp_path / f"{name}.build"
        result_dir.mkdir()
        try:
            session.build(tmp_path / f"{name}.dsc", "trixie", "amd64", result_dir, Runner(log))
            results[name] = sorted(path.name for path in result_dir.iterdir())
        except MmdebError as exc:
            results[name] = str(exc)
        assert f"built {name}" in log.read_text()

    threads = [threading.Thread(target=build, args=(name,)) for name in ("a_1", "b_1", "c_1")]
    for thread in threads:
        thread.start()
    session.withdraw()  # the fourth's source package failed
    for thread in threads:
        thread.join(timeout=60)
    assert session.runs == 1
    assert results["a_1"] == ["a_1_amd64.changes", "a_1_amd64.deb"] and results["c_1"] == ["c_1_amd64.changes", "c_1_amd64.deb"]
    assert results["b_1"].startswith(f"building b 1 in the build session failed: see {tmp_path / 'b_1.build'}")


def test_a_session_that_fails_fails_each_build_in_it(tmp_path):
    class Broken(FakeSession):
        def run(self, runner: Runner) -> None:
            raise MmdebError("building 1 thin packages in one session failed: see log", "read it")

    session = Broken(tmp_path / "session", 1, failing="")
    (tmp_path / "a").mkdir()
    with pytest.raises(MmdebError, match="in one session failed"):
        session.build(tmp_path / "a_1.dsc", "trixie", "amd64", tmp_path / "a", Runner())
