"""Every external command line is built by a pure function; these check the argv itself."""

from pathlib import Path

import pytest

from mmdeb.app.autorebuild import sendmail_argv
from mmdeb.build.builders.chroot import Mirror, mmdebstrap_argv, sources_lines, suites
from mmdeb.build.builders.local import dpkg_buildpackage_argv, dpkg_checkbuilddeps_argv
from mmdeb.build.builders.pbuilder import pbuilder_argv
from mmdeb.build.builders.sbuild import sbuild_argv
from mmdeb.build.builders.session import BUILD_SCRIPT, SESSION_SCRIPT, session_argv
from mmdeb.upstream.dists import SELF_BUILD_DEPENDS as BUILD_DEPENDS, chroot_packages as preinstalled_packages
from mmdeb.build.source import dpkg_source_build_argv, dpkg_source_extract_argv, unpack_argv
from mmdeb.upstream.fetch import gpgv_argv
from mmdeb.publish.repo import gpgconf_kill_agent_argv

DSC = Path("/b/mailman-lists.example.org_2.2.0-1+deb12.dsc")
CHROOT = Path("/cache/bookworm-amd64-x.tar.zst")


def test_sbuild_runs_unshare_mode_on_the_cached_tarball():
    argv = sbuild_argv(DSC, "bookworm", "amd64", CHROOT, Path("/b/work"))
    assert argv[0] == "sbuild"
    assert "--chroot-mode=unshare" in argv
    assert f"--chroot={CHROOT}" in argv
    assert "--dist=bookworm" in argv
    assert "--arch=amd64" in argv
    assert "--build-dir=/b/work" in argv
    assert "--no-run-lintian" in argv
    assert argv[-1] == str(DSC)


def test_pbuilder_builds_on_the_same_tarball():
    argv = pbuilder_argv(DSC, "bullseye", "amd64", CHROOT, Path("/b/work"), Path("/cache/pbuilderrc"))
    assert argv == [
        "pbuilder", "build", "--configfile", "/cache/pbuilderrc", "--basetgz", str(CHROOT), "--distribution", "bullseye",
        "--architecture", "amd64", "--buildresult", "/b/work", "--debbuildopts", "--build=binary", str(DSC),
    ]


def test_a_session_unshares_everything_sbuild_does_and_builds_each_package_in_its_directory():
    argv = session_argv(CHROOT, Path("/b/.session"), 2, ["pkg-a_1", "pkg-b_1"])
    assert argv == ["unshare", "--user", "--map-root-user", "--map-auto", "--mount", "--pid", "--fork", "--kill-child",
                    "--net", "--ipc", "--uts", "sh", "-c", SESSION_SCRIPT, "session", str(CHROOT), "/b/.session", "2",
                    BUILD_SCRIPT, "pkg-a_1", "pkg-b_1"]
    assert "xargs -P \"$jobs\" -n 1" in SESSION_SCRIPT
    assert "dpkg-buildpackage --sanitize-env --build=binary --no-sign --root-command=fakeroot" in BUILD_SCRIPT


SOURCES = ["deb http://mirror/debian bookworm main", "deb http://security/debian-security bookworm-security main"]


def test_mmdebstrap_makes_a_buildd_tarball_with_build_dependencies():
    argv = mmdebstrap_argv("bookworm", "amd64", CHROOT, ["debhelper", "python3-dev"], SOURCES)
    assert argv == [
        "mmdebstrap", "--variant=buildd", "--architectures=amd64", "--include=debhelper,python3-dev",
        "--skip=cleanup/apt/lists", "bookworm", str(CHROOT), *SOURCES,
    ]


@pytest.mark.parametrize("dist", ["bullseye", "bookworm", "trixie", "forky"])
def test_chroot_suites_are_the_release_its_updates_and_security(dist):
    assert suites(dist) == [dist, f"{dist}-updates", f"{dist}-security"]


def test_chroot_sources_take_security_updates_from_the_security_mirror():
    assert sources_lines("trixie", Mirror("http://mirror/debian", "http://security/debian-security")) == [
        "deb http://mirror/debian trixie main",
        "deb http://mirror/debian trixie-updates main",
        "deb http://security/debian-security trixie-security main",
    ]


def test_arm64_build_commands():
    chroot = Path("/cache/trixie-arm64-x.tar.zst")
    assert sbuild_argv(DSC, "trixie", "arm64", chroot, Path("/b/work")) == [
        "sbuild", "--chroot-mode=unshare", f"--chroot={chroot}", "--dist=trixie", "--arch=arm64", "--arch-any",
        "--arch-all", "--no-source", "--build-dir=/b/work", "--nolog", "--no-run-lintian", "--no-run-piuparts",
        "--no-run-autopkgtest", "--no-apt-update", "--no-apt-upgrade", "--no-apt-distupgrade", str(DSC),
    ]
    assert pbuilder_argv(DSC, "trixie", "arm64", chroot, Path("/b/work"), Path("/cache/pbuilderrc")) == [
        "pbuilder", "build", "--configfile", "/cache/pbuilderrc", "--basetgz", str(chroot), "--distribution", "trixie",
        "--architecture", "arm64", "--buildresult", "/b/work", "--debbuildopts", "--build=binary", str(DSC),
    ]
    assert mmdebstrap_argv("trixie", "arm64", chroot, ["debhelper"], SOURCES) == [
        "mmdebstrap", "--variant=buildd", "--architectures=arm64", "--include=debhelper",
        "--skip=cleanup/apt/lists", "trixie", str(chroot), *SOURCES,
    ]


def test_chroot_holds_the_build_dependencies_of_the_flavours_for_its_dist():
    assert {"debhelper", "fakeroot", "python3-dev", "python3-dnspython"} <= set(preinstalled_packages("bookworm"))
    assert "python2.7-dev" in preinstalled_packages("bullseye")
    assert "python2.7-dev" not in preinstalled_packages("trixie")


def test_local_and_source_commands():
    assert dpkg_buildpackage_argv() == ["dpkg-buildpackage", "--build=binary", "--no-sign"]
    assert dpkg_checkbuilddeps_argv() == ["dpkg-checkbuilddeps"]
    assert dpkg_source_build_argv("tree") == ["dpkg-source", "--compression=gzip", "--build", "tree"]
    assert dpkg_source_extract_argv(DSC, Path("/t")) == ["dpkg-source", "--extract", str(DSC), "/t"]
    assert unpack_argv(Path("/o.tar.gz"), Path("/t")) == [
        "tar", "--extract", "--file=/o.tar.gz", "--directory=/t", "--strip-components=1",
    ]


def test_gpgv_checks_against_the_catalogue_keyring_only():
    argv = gpgv_argv(Path("/k/mailman.gpg"), Path("/c/mailman-2.1.39.tgz.sig"), Path("/c/mailman-2.1.39.tgz"))
    assert argv == ["gpgv", "--keyring", "/k/mailman.gpg", "/c/mailman-2.1.39.tgz.sig", "/c/mailman-2.1.39.tgz"]


def test_gpgv_keyring_is_never_looked_up_in_the_gnupg_home():
    # gpgv reads a keyring name without a slash from ~/.gnupg.
    assert "/" in gpgv_argv(Path("mailman.gpg"), Path("s.sig"), Path("f"))[2]


def test_the_agent_of_a_signing_key_directory_is_stopped_before_it_moves():
    assert gpgconf_kill_agent_argv(Path("/r/gnupg")) == ["gpgconf", "--homedir", "/r/gnupg", "--kill", "gpg-agent"]


def test_sendmail_argv_takes_the_recipients_from_the_message():
    assert sendmail_argv() == ["/usr/sbin/sendmail", "-t", "-oi"]


def test_self_build_dependencies_are_in_the_build_chroots_of_its_dists():
    for dist in ("trixie", "forky"):
        assert set(BUILD_DEPENDS) <= set(preinstalled_packages(dist))
    assert "python3-argparse-manpage" not in preinstalled_packages("bookworm")


def test_self_build_source_is_built_by_the_same_dpkg_source_argv():
    # 3.0 (native): one tarball, gzip as for the domain packages' debian tarballs.
    assert dpkg_source_build_argv("mmdeb-0.2.0") == ["dpkg-source", "--compression=gzip", "--build", "mmdeb-0.2.0"]
