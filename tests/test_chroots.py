"""`mmdeb chroot list|update|prune` and the age of a build chroot (issue 13).

Every test has its own cache ($MMDEB_CACHE) and working directory; the chroot-marked ones run
mmdebstrap for real, once each.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers.upstreams import DOMAIN
from mmdeb.app.conf import load
from mmdeb.build.builders.chroot import (ARCHIVE, DAY, ChrootCache, Mirror, missing_suite_error, mirror_setting_line,
                                         release_found, sources_lines)
from mmdeb.errors import MmdebError

HOST_ARCH = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
STALE_DIGEST = "000000000000"


def mmdeb(*args: str, cwd: Path, **more: str) -> subprocess.CompletedProcess:
    # MMDEB_ROOT: no installed mmdeb, so the working directory's mmdeb.toml and mmdeb.conf count.
    env = {**os.environ, "MMDEB_CACHE": str(cwd / "cache"), "MMDEB_ROOT": str(cwd / "no-root"), **more}
    return subprocess.run([sys.executable, "-m", "mmdeb", *args], capture_output=True, text=True, cwd=cwd, env=env)


def chroots(work: Path) -> ChrootCache:
    return ChrootCache(work / "cache" / "chroots", 7, "update")


def record_domain(work: Path, dist: str) -> None:
    (work / "mmdeb.toml").write_text(f'[domains."{DOMAIN}"]\nupstream = "x"\nflavour = "py3"\ndist = "{dist}"\n')


def small_tarball(path: Path, days_old: float) -> Path:
    """A valid but tiny chroot tarball, days_old days old."""
    content = path.parent / "content"
    content.mkdir(parents=True, exist_ok=True)
    (content / "old").write_text("the old chroot\n")
    subprocess.run(["tar", "--zstd", "-cf", str(path), "-C", str(content), "."], check=True)
    (content / "old").unlink()
    content.rmdir()
    past = time.time() - days_old * DAY
    os.utime(path, (past, past))
    return path


def fake_tarball(path: Path, days_old: float, mib: int = 3) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\0" * (mib << 20))
    past = time.time() - days_old * DAY
    os.utime(path, (past, past))
    return path


@pytest.fixture
def cache_with_leftovers(tmp_path):
    """trixie used by a domain, trixie with an old package set, bookworm unused, an unfinished update."""
    record_domain(tmp_path, "trixie")
    cache = chroots(tmp_path)
    used = fake_tarball(cache.path("trixie", HOST_ARCH), 3)
    stale = fake_tarball(cache.root / f"trixie-{HOST_ARCH}-{STALE_DIGEST}.tar.zst", 10)
    other = fake_tarball(cache.path("bookworm", HOST_ARCH), 1)
    partial = fake_tarball(cache.root / f".partial-{cache.path('bookworm', HOST_ARCH).name}", 0)
    return cache, used, stale, other, partial


def test_list_shows_each_tarball_and_whether_a_domain_uses_it(tmp_path, cache_with_leftovers):
    _, used, stale, other, _ = cache_with_leftovers
    result = mmdeb("chroot", "list", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted([
        f"bookworm\t{HOST_ARCH}\t1.0 days\t3 MiB\tunused\t{other}",
        f"trixie\t{HOST_ARCH}\t10.0 days\t3 MiB\tunused\t{stale}",
        f"trixie\t{HOST_ARCH}\t3.0 days\t3 MiB\tused\t{used}",
    ])


def test_prune_removes_what_no_domain_uses(tmp_path, cache_with_leftovers):
    cache, used, stale, other, partial = cache_with_leftovers
    result = mmdeb("chroot", "prune", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(f"removed {path}" for path in (stale, other, partial))
    assert sorted(path.name for path in cache.root.glob("*.tar.zst")) == [used.name]


def test_prune_leaves_the_partial_file_of_a_running_update(tmp_path, cache_with_leftovers):
    cache, _, _, _, partial = cache_with_leftovers
    with cache.lock("bookworm", HOST_ARCH):  # as an update of bookworm holds it
        result = mmdeb("chroot", "prune", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert partial.exists()


def test_an_old_chroot_is_refused_when_so_configured(tmp_path, fixture_py3):
    (tmp_path / "mmdeb.conf").write_text('[chroot]\nmax_age_days = 5\nwhen_old = "refuse"\n')
    old = small_tarball(chroots(tmp_path).path("trixie", HOST_ARCH), 6)
    before = old.read_bytes()
    result = mmdeb("build", DOMAIN, "--upstream", str(fixture_py3.tarball), "--patches", str(fixture_py3.patches),
                   "--out", str(tmp_path / "build"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("mmdeb: error: the trixie build chroot") and line.endswith("Fix: run: mmdeb chroot update trixie")
    assert not (tmp_path / "build").exists() and old.read_bytes() == before


def complete(path: Path) -> tuple[int, bool]:
    """The inode at path, and whether the file it names is a complete zstd stream."""
    with open(path, "rb") as opened:
        return os.fstat(opened.fileno()).st_ino, subprocess.run(["zstd", "-tq"], stdin=opened).returncode == 0


@pytest.fixture(scope="module")
def build_with_an_old_chroot(tmp_path_factory, fixture_py3):
    """`mmdeb build` whose trixie chroot is 8 days old (the default limit is 7), the tarball's path
    read and checked all through it. Returns the build's result, the tarball, what each read saw."""
    work = tmp_path_factory.mktemp("old-chroot")
    tarball = small_tarball(chroots(work).path("trixie", HOST_ARCH), 8)
    env = {**os.environ, "MMDEB_CACHE": str(work / "cache"), "MMDEB_ROOT": str(work / "no-root")}
    argv = [sys.executable, "-m", "mmdeb", "build", DOMAIN, "--upstream", str(fixture_py3.tarball),
            "--patches", str(fixture_py3.patches), "--out", str(work / "build"), "--no-common"]
    output = work / "output"
    with open(output, "w") as sink:
        build = subprocess.Popen(argv, cwd=work, env=env, stdout=sink, stderr=subprocess.STDOUT)
        seen = []
        while build.poll() is None:
            seen.append(complete(tarball))
            time.sleep(0.05)  # only to spare the CPU while mmdebstrap runs
    return build.returncode, output.read_text(), work, tarball, seen


@pytest.mark.chroot
def test_an_old_chroot_is_updated_with_security_updates_before_the_build(build_with_an_old_chroot):
    returncode, output, work, tarball, _ = build_with_an_old_chroot
    assert returncode == 0, output
    assert "==> updating the trixie build chroot" in output
    assert list((work / "build/trixie").glob(f"mailman-{DOMAIN}_*.deb"))
    sources = subprocess.run(["tar", "--zstd", "-xOf", str(tarball), "./etc/apt/sources.list"],
                             capture_output=True, text=True, check=True).stdout
    assert [line for line in sources.splitlines() if line] == [
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://security.debian.org/debian-security trixie-security main",
    ]


@pytest.mark.chroot
def test_a_build_never_sees_a_half_updated_chroot(build_with_an_old_chroot):
    _, _, _, _, seen = build_with_an_old_chroot
    assert all(ok for _, ok in seen), f"{sum(not ok for _, ok in seen)} of {len(seen)} reads saw an incomplete tarball"
    assert len({inode for inode, _ in seen}) == 2, "the reads saw the old tarball, then the new one"


@pytest.fixture
def full_cache(tmp_path):
    """A 16 MiB tmpfs as the cache, holding a small trixie chroot."""
    cache = tmp_path / "cache"
    cache.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(cache)], check=True)
    try:
        yield small_tarball(chroots(tmp_path).path("trixie", HOST_ARCH), 1)
    finally:
        subprocess.run(["umount", str(cache)], check=True)


@pytest.mark.chroot
def test_a_full_disk_keeps_the_old_chroot(tmp_path, full_cache):
    before = full_cache.read_bytes()
    result = mmdeb("chroot", "update", "trixie", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert f"the disk of {full_cache.parent} is full" in line and "the old one is kept" in line
    assert full_cache.read_bytes() == before
    assert not list(full_cache.parent.glob(".partial-*"))


ARCHIVE_LINE = ('mirrors.bullseye = { debian = "http://archive.debian.org/debian", '
                'security = "http://archive.debian.org/debian-security" }')


def local_mirror(root: Path, suites: list[str]) -> str:
    """A file:// mirror holding only the Release files of suites."""
    for suite in suites:
        (root / "dists" / suite).mkdir(parents=True)
        (root / "dists" / suite / "Release").write_text(f"Suite: {suite}\n")
    return f"file://{root}"


def test_the_archive_line_is_the_setting_mmdeb_conf_reads(tmp_path):
    assert mirror_setting_line("bullseye", ARCHIVE) == ARCHIVE_LINE
    (tmp_path / "mmdeb.conf").write_text(f"[chroot]\n{ARCHIVE_LINE}\n")
    cache = ChrootCache(tmp_path, 7, "update", load(tmp_path / "mmdeb.conf").mirrors)
    assert cache.mirror("bullseye") == ARCHIVE
    assert cache.mirror("trixie") == Mirror(os.environ.get("MMDEB_MIRROR", "http://deb.debian.org/debian"),
                                            os.environ.get("MMDEB_SECURITY_MIRROR", "http://security.debian.org/debian-security"))
    assert sources_lines("bullseye", cache.mirror("bullseye"))[0] == "deb http://archive.debian.org/debian bullseye main"
    assert cache.path("bullseye", "amd64") != ChrootCache(tmp_path, 7, "update").path("bullseye", "amd64")


def test_one_setting_key_is_enough_and_the_other_keeps_its_default(tmp_path):
    cache = ChrootCache(tmp_path, 7, "update", {"bookworm": {"debian": "http://mirror.example/debian"}})
    assert cache.mirror("bookworm").debian == "http://mirror.example/debian"
    assert cache.mirror("bookworm").security == cache.mirror("trixie").security


def test_a_release_file_is_found_or_missing_on_a_local_mirror(tmp_path):
    mirror = local_mirror(tmp_path / "mirror", ["trixie"])
    assert release_found(f"{mirror}/dists/trixie/Release") is True
    assert release_found(f"{mirror}/dists/bullseye/Release") is False
    assert release_found("http://127.0.0.1:1/debian/dists/bullseye/Release") is None  # unreachable: cannot tell


def test_a_dist_gone_from_its_mirror_has_moved_to_the_archive():
    error = missing_suite_error("bullseye", "bullseye", Mirror("http://deb.debian.org/debian", "http://s/debian-security"),
                                Path("/etc/mmdeb/mmdeb.conf"))
    assert str(error).startswith("the bullseye build chroot cannot be made: http://deb.debian.org/debian no longer has "
                                 "bullseye (http://deb.debian.org/debian/dists/bullseye/Release is missing)")
    assert error.remedy == f"add this line under [chroot] in /etc/mmdeb/mmdeb.conf: {ARCHIVE_LINE}"


def test_a_suite_missing_from_the_archive_itself_names_the_suite():
    error = missing_suite_error("bullseye", "bullseye-security", ARCHIVE, Path("mmdeb.conf"))
    assert "http://archive.debian.org/debian-security has no bullseye-security" in str(error)
    assert error.remedy.startswith("correct mirrors.bullseye under [chroot] in mmdeb.conf")


def test_making_a_chroot_of_a_dist_the_mirror_lost_is_one_line_naming_the_setting(tmp_path):
    mirror = local_mirror(tmp_path / "mirror", ["trixie", "trixie-updates"])
    result = mmdeb("chroot", "update", "bullseye", cwd=tmp_path, MMDEB_MIRROR=mirror)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"mmdeb: error: the bullseye build chroot cannot be made: {mirror} no longer has bullseye")
    assert line.endswith(f"Fix: add this line under [chroot] in {tmp_path / 'mmdeb.conf'}: {ARCHIVE_LINE}")
    assert not list((tmp_path / "cache").rglob("*.tar.zst"))


def test_making_a_chroot_checks_the_security_mirror_too(tmp_path):
    mirror = local_mirror(tmp_path / "mirror", ["bullseye", "bullseye-updates"])
    security = local_mirror(tmp_path / "security", [])
    result = mmdeb("chroot", "update", "bullseye", cwd=tmp_path, MMDEB_MIRROR=mirror, MMDEB_SECURITY_MIRROR=security)
    assert result.returncode == 1 and len(result.stderr.splitlines()) == 1
    assert f"{security} has no bullseye-security" in result.stderr


@pytest.mark.parametrize("line, named", [
    ('mirrors = "http://archive.debian.org/debian"', "chroot.mirrors = "),
    ('mirrors.buster = { debian = "http://archive.debian.org/debian" }', "chroot.mirrors.buster"),
    ('mirrors.bullseye = { main = "http://archive.debian.org/debian" }', "chroot.mirrors.bullseye"),
    ('mirrors.bullseye = { debian = "archive.debian.org" }', "chroot.mirrors.bullseye"),
], ids=["not-a-table", "unknown-dist", "unknown-key", "not-a-url"])
def test_a_bad_mirror_setting_is_refused_with_the_line_to_write(tmp_path, line, named):
    (tmp_path / "mmdeb.conf").write_text(f"[chroot]\n{line}\n")
    with pytest.raises(MmdebError) as caught:
        load(tmp_path / "mmdeb.conf")
    assert named in str(caught.value) and ARCHIVE_LINE in caught.value.remedy
