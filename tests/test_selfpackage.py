"""mmdeb as a Debian package of its own: `mmdeb self-build`, and the installed mmdeb."""

import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import mmdeb
from helpers.upstreams import DOMAIN
from helpers.dist_lintian import run_dist_lintian
from helpers.e2e_host import Host
from helpers.fixture_upstream import make_fixture
from helpers.self_deb import VERSION, deb, depends_of, install
from mmdeb import PROJECT_ROOT, SYSTEM_DATA_DIR, data_dir
from mmdeb.cli import main
from mmdeb.errors import MmdebError
from mmdeb.run import Runner
from mmdeb.build.builders.sbuild import check_subids
from mmdeb.build.selfpackage import SOURCE_FILES, build_self, render_self, self_spec


def source_names(dist_dir: Path) -> list[str]:
    (tarball,) = dist_dir.glob(f"mmdeb_{VERSION}.tar.*")
    with tarfile.open(tarball) as tar:
        return [name.split("/", 1)[1] for name in tar.getnames() if "/" in name]


def files_in(out: Path) -> list[str]:
    return sorted(str(path.relative_to(out)) for path in out.rglob("*") if path.is_file())


# -- without a chroot -------------------------------------------------------------

def test_the_version_is_pyprojects_installed_or_not():
    assert mmdeb.__version__ == VERSION
    assert (PROJECT_ROOT / "mmdeb/__init__.py").read_text().count(f'__version__ = "{VERSION}"') == 1


def test_data_is_the_checkout_in_a_checkout_and_usr_share_mmdeb_installed(tmp_path):
    assert data_dir(PROJECT_ROOT) == PROJECT_ROOT == mmdeb.DATA_DIR
    assert mmdeb.TEMPLATES_DIR == PROJECT_ROOT / "debian-templates"
    assert data_dir(tmp_path / "usr/lib/python3/dist-packages/..") == SYSTEM_DATA_DIR == Path("/usr/share/mmdeb")


def test_source_package_holds_the_project_but_no_tests_or_byte_code(tmp_path):
    artifacts = build_self("trixie", None, tmp_path / "out", Runner())
    dist_dir = tmp_path / "out/trixie"
    assert sorted(path.name for path in artifacts) == [f"mmdeb_{VERSION}.dsc", f"mmdeb_{VERSION}.tar.gz"]
    names = source_names(dist_dir)
    for expected in ("mmdeb/cli.py", "mmdeb/build/selfpackage.py", "mmdeb/upstream/catalogue.toml", "debian/rules", "debian/control",
                     "debian/changelog", "debian/source/format", "debian-templates/self/rules.j2",
                     "debian-templates/control.j2", "etc/mmdeb.conf", "pyproject.toml", "README.md", "DESIGN.md"):
        assert expected in names
    assert not [name for name in names if name.startswith(("tests/", "build/", ".venv", "bench/"))
                or "__pycache__" in name or name.endswith(".pyc") or ".egg-info" in name]
    # Nothing but the results and the log; the work directory is gone.
    assert files_in(tmp_path / "out") == sorted(f"trixie/{path.name}" for path in artifacts) + [f"trixie/mmdeb_{VERSION}_{_arch()}.build"]


def _arch() -> str:
    return subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()


def installed_like(data: Path) -> Path:
    """SOURCE_FILES copied as the package installs them into /usr/share/mmdeb."""
    for name in SOURCE_FILES:
        copy = shutil.copytree if (PROJECT_ROOT / name).is_dir() else shutil.copy2
        copy(PROJECT_ROOT / name, data / name)
    return data


def test_builds_from_an_installed_data_directory(tmp_path):
    data = installed_like(tmp_path / "usr/share/mmdeb")
    build_self("trixie", None, tmp_path / "out", Runner(), data_dir=data)
    assert "debian/mmdeb.mmdeb-autorebuild.timer" in source_names(tmp_path / "out/trixie")


def test_a_missing_data_file_is_one_error_before_anything_is_written(tmp_path):
    data = installed_like(tmp_path / "data")
    (data / "pyproject.toml").unlink()
    with pytest.raises(MmdebError, match="pyproject.toml does not exist") as raised:
        build_self("trixie", None, tmp_path / "out", Runner(), data_dir=data)
    assert "reinstall the mmdeb package" in raised.value.remedy
    assert not (tmp_path / "out").exists()


def test_an_unsupported_dist_is_refused_by_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["self-build", "--dist", "bookworm", "--out", str(tmp_path / "out")])
    with pytest.raises(MmdebError, match="trixie and forky only"):
        build_self("bookworm", None, tmp_path / "out", Runner())
    assert not (tmp_path / "out").exists()


def test_a_failed_build_leaves_no_package_files_in_out(tmp_path):
    data = installed_like(tmp_path / "data")
    (data / "debian-templates/self/source/format").write_text("3.0 (no such format)\n")
    with pytest.raises(MmdebError, match="dpkg-source"):
        build_self("trixie", None, tmp_path / "out", Runner(), data_dir=data)
    assert files_in(tmp_path / "out") == [f"trixie/mmdeb_{VERSION}_{_arch()}.build"]  # only the log, kept to read


def postinst_configure(tmp_path: Path, subuid: str | None, subgid: str | None) -> tuple[str, str]:
    """/etc/subuid and /etc/subgid after the rendered postinst's configure, run with the real
    usermod on a copy of this host's /etc (bind-mounted in a mount namespace of its own)."""
    etc = tmp_path / "etc"
    etc.mkdir()
    for name in ("passwd", "group", "shadow", "gshadow", "login.defs"):
        if Path("/etc", name).exists():
            shutil.copy2(Path("/etc", name), etc / name)
    shutil.copytree("/etc/alternatives", etc / "alternatives", symlinks=True)  # awk is one
    for name, text in (("subuid", subuid), ("subgid", subgid)):
        if text is not None:
            (etc / name).write_text(text)
    render_self(self_spec(PROJECT_ROOT, "trixie"), PROJECT_ROOT / "debian-templates", tmp_path / "debian")
    postinst = tmp_path / "debian/mmdeb.postinst"
    subprocess.run(["unshare", "--mount", "sh", "-c", f'mount --bind "$1" /etc && exec sh "$2" configure', "sh",
                    str(etc), str(postinst)], check=True, capture_output=True, text=True)
    return (etc / "subuid").read_text(), (etc / "subgid").read_text()


def test_postinst_gives_root_subordinate_ids_on_a_fresh_host(tmp_path):
    subuid, subgid = postinst_configure(tmp_path, None, None)
    assert subuid == subgid == "root:100000:65536\n"
    check_subids((tmp_path / "etc/subuid", tmp_path / "etc/subgid"))  # what the first sbuild build checks


def test_postinst_adds_a_range_after_every_existing_one_and_changes_none(tmp_path):
    subuid, subgid = postinst_configure(tmp_path, "alice:100000:65536\n", "alice:100000:65536\nbob:300000:65536\n")
    assert subuid == "alice:100000:65536\nroot:365536:65536\n"
    assert subgid == "alice:100000:65536\nbob:300000:65536\nroot:365536:65536\n"


def test_postinst_keeps_roots_ranges_and_adds_only_a_missing_one(tmp_path):
    subuid, subgid = postinst_configure(tmp_path, "root:200000:65536\n", "")
    assert subuid == "root:200000:65536\n"  # as it was: root has a range
    assert subgid == "root:265536:65536\n"


# -- built with sbuild, checked by lintian, installed into a fresh trixie host ------

@pytest.fixture(scope="module")
def self_built(self_deb) -> Path:
    return self_deb.parent


@pytest.fixture(scope="module")
def host(self_built, tmp_path_factory):
    """A fresh trixie with mmdeb's dependencies and man-db (the host runs offline), then
    `apt-get install ./mmdeb_*.deb`."""
    machine = Host.create(tmp_path_factory.mktemp("self-host") / "host", "trixie", [*depends_of(deb(self_built)), "man-db"])
    machine.start()
    try:
        install(machine, deb(self_built))
        yield machine
    finally:
        machine.stop()


@pytest.mark.chroot
def test_build_results_and_lintian(self_built):
    names = sorted(path.name for path in self_built.iterdir())
    arch = _arch()
    assert names == sorted([f"mmdeb_{VERSION}.dsc", f"mmdeb_{VERSION}.tar.gz", f"mmdeb_{VERSION}_all.deb",
                            f"mmdeb_{VERSION}_{arch}.changes", f"mmdeb_{VERSION}_{arch}.buildinfo",
                            f"mmdeb_{VERSION}_{arch}.build"])
    result = run_dist_lintian("trixie", "error,warning", [self_built / f"mmdeb_{VERSION}.dsc", deb(self_built)])
    assert result.returncode == 0 and not re.search(r"^[EW]: ", result.stdout, re.M), result.stdout


@pytest.mark.chroot
def test_installed_command_man_page_and_completion(host):
    assert host.run("mmdeb", "--version").stdout.strip() == f"mmdeb {VERSION}"
    assert host.run("man", "-w", "mmdeb").stdout.strip() == "/usr/share/man/man1/mmdeb.1.gz"
    page = host.run("sh", "-c", "zcat /usr/share/man/man1/mmdeb.1.gz").stdout.replace("\\-", "-")  # roff's \- is "-"
    for command in ("mmdeb build", "mmdeb rebuild", "mmdeb publish", "mmdeb domains add", "mmdeb self-build"):
        assert command in page
    complete = (
        "source /usr/share/bash-completion/completions/mmdeb; "
        "function=$(complete -p mmdeb | sed 's/.* -F \\([^ ]*\\) .*/\\1/'); "
        'COMP_WORDS=(mmdeb "$1"); COMP_CWORD=1; COMP_LINE="mmdeb $1"; COMP_POINT=${#COMP_LINE}; '
        '"$function"; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    assert "publish" in host.run("bash", "-c", complete, "complete", "").stdout.split()
    assert host.run("bash", "-c", complete, "complete", "pu").stdout.split() == ["publish"]


@pytest.mark.chroot
def test_installed_files_conffile_timer_and_cron(host):
    conffiles = host.run("dpkg-query", "--showformat=${Conffiles}", "--show", "mmdeb").stdout
    assert "/etc/mmdeb/mmdeb.conf" in conffiles
    assert (host.root / "etc/mmdeb/mmdeb.conf").read_text() == (PROJECT_ROOT / "etc/mmdeb.conf").read_text()
    assert (host.root / "usr/lib/systemd/system/mmdeb-autorebuild.service").is_file()
    assert (host.root / "usr/lib/systemd/system/mmdeb-autorebuild.timer").is_file()
    enabled = host.root / "etc/systemd/system/timers.target.wants/mmdeb-autorebuild.timer"
    assert enabled.is_symlink() and str(enabled.readlink()).endswith("/mmdeb-autorebuild.timer")
    assert "[ -d /run/systemd/system ] ||" in (host.root / "etc/cron.d/mmdeb").read_text()
    for name in ("debian-templates/control.j2", "debian-templates/self/rules.j2", "patches", "pyproject.toml"):
        assert (host.root / "usr/share/mmdeb" / name).exists()
    assert not list((host.root / "usr/share/mmdeb").rglob("__pycache__"))  # the templates stay as they are
    assert (host.root / "var/lib/mmdeb").is_dir() and (host.root / "var/cache/mmdeb").is_dir()


@pytest.mark.chroot
def test_installing_gives_root_the_subordinate_ids_sbuild_needs(host):
    for name in ("subuid", "subgid"):
        assert "root:" in (host.root / "etc" / name).read_text()
    host.run("python3", "-c", "from mmdeb.build.builders.sbuild import check_subids; check_subids()")  # as root builds


@pytest.mark.chroot
def test_installed_mmdeb_uses_the_system_places_and_rebuilds_itself(host, tmp_path):
    tarball, _ = make_fixture(tmp_path, "py3")
    shutil.copy(tarball, host.root / "root")
    host.run("rm", "-f", "/var/lib/mmdeb/mmdeb.toml", "/tmp/mmdeb.toml")
    host.run("sh", "-c", f"cd /tmp && mmdeb domains add {DOMAIN} --upstream /root/{tarball.name}")
    assert DOMAIN in (host.root / "var/lib/mmdeb/mmdeb.toml").read_text()
    assert not (host.root / "tmp/mmdeb.toml").exists()
    # Its source package, from /usr/share/mmdeb and dist-packages (byte-code and all).
    host.run("rm", "-rf", "/tmp/self")
    host.run("python3", "-c", "from pathlib import Path; from mmdeb.run import Runner; from mmdeb.build.selfpackage import build_self; "
             "build_self('trixie', None, Path('/tmp/self'), Runner())")
    with tarfile.open(host.root / f"tmp/self/trixie/mmdeb_{VERSION}.tar.gz") as tar:
        names = tar.getnames()
    assert f"mmdeb-{VERSION}/mmdeb/cli.py" in names and f"mmdeb-{VERSION}/debian/rules" in names
    assert not [name for name in names if "__pycache__" in name]


@pytest.mark.chroot
def test_purge_removes_the_cache_but_never_the_state(host):
    host.run("sh", "-c", "echo x > /var/cache/mmdeb/chroot.tar.zst && echo '# state' > /var/lib/mmdeb/keep")
    host.run("apt-get", "purge", "--yes", "mmdeb")
    assert not (host.root / "var/cache/mmdeb").exists()
    assert (host.root / "var/lib/mmdeb/keep").read_text() == "# state\n"
    assert not (host.root / "etc/mmdeb/mmdeb.conf").exists()
    host.run("rm", "/var/lib/mmdeb/keep")
    install(host, next((host.root / "var/tmp").glob("mmdeb_*_all.deb")))  # as the other tests found it
