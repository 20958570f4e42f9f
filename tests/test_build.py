"""Real builds in clean chroots: sbuild (unshare) and pbuilder, on the fixture or the real tarball."""

import subprocess
from pathlib import Path

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN, build, common_deb_of, deb_of, domain_debs
from helpers.debs import byte_code_under, data_tar, prefix_of, uncompiled_modules
from helpers.dist_lintian import run_lintian
from mmdeb.build.render import IMPORTER_MODULES
from mmdeb.build.spec import JOBS
from mmdeb.domains.layout import PRIVATE_ARCHIVES, PRIVATE_ARCHIVES_MODE, WEB_SERVER_USER
from mmdeb.upstream.fetch import sha256_of

pytestmark = pytest.mark.chroot


def test_sbuild_gives_source_and_binary_packages(built, upstream):
    assert len(list(built.glob(f"mailman-{DOMAIN}_*.dsc"))) == 1
    assert deb_of(built, DOMAIN).is_file()
    assert list(built.glob(f"mailman-{DOMAIN}_*_amd64.build")), "build log kept beside the artifacts"
    if upstream.flavour == "gnu":
        assert list(built.glob(f"mailman-{DOMAIN}_*.orig-dnspython.tar.xz"))


def test_deb_holds_the_prefixed_mailman(built):
    with data_tar(deb_of(built, DOMAIN)) as tar:
        members = {member.name: member for member in tar}
        prefix = prefix_of(DOMAIN)
        for path in ("bin/newlist", "mail/mailman", "cgi-bin/listinfo", "Mailman/Defaults.py"):
            assert f"{prefix}/{path}" in members, path
        for wrapper in ("mail/mailman", "cgi-bin/listinfo"):
            member = members[f"{prefix}/{wrapper}"]
            assert (member.uname, member.gname, member.mode) == ("root", "list", 0o2755), wrapper
        private = members[f"{prefix}/{PRIVATE_ARCHIVES}"]
        assert (private.uname, private.gname, private.mode) == (WEB_SERVER_USER, "list", PRIVATE_ARCHIVES_MODE)
        assert f"/var/lib/mailmen/{DOMAIN}".encode() in tar.extractfile(f"{prefix}/mail/mailman").read()
        assert f"'/var/lib/mailmen/{DOMAIN}'" in tar.extractfile(f"{prefix}/Mailman/Defaults.py").read().decode()
        assert not [name for name in members if name.endswith((".pyc", ".pyo"))]


def test_deb_holds_the_importer(built):
    with data_tar(deb_of(built, DOMAIN)) as tar:
        members = {member.name: member for member in tar}
        prefix = prefix_of(DOMAIN)
        assert members[f"{prefix}/bin/mmdeb-import"].mode == 0o755
        assert f"{prefix}/pythonlib/mmdeb/importing/listimport.py" in members
        assert {f"{prefix}/pythonlib/mmdeb/{name}" for name in IMPORTER_MODULES} <= set(members)


def test_mailmen_common_starts_the_job_timers_never_the_jobs(built, tmp_path):
    # Starting mailpasswds at install would mail every member their password.
    deb = common_deb_of(built)
    subprocess.run(["dpkg-deb", "--control", str(deb), str(tmp_path)], check=True)
    postinst = (tmp_path / "postinst").read_text()
    with data_tar(deb) as tar:
        units = {Path(name).name for name in tar.getnames() if "/systemd/system/" in name}
    (started,) = [line for line in postinst.splitlines() if line.strip().startswith("deb-systemd-invoke start ")]
    for job in JOBS:
        assert {f"mailmen-{job.name}.timer", f"mailmen-{job.name}@.service"} <= units
        assert f"deb-systemd-helper enable 'mailmen-{job.name}.timer'" in postinst
        assert f" mailmen-{job.name}.timer" in started and f"mailmen-{job.name}@" not in postinst
    with data_tar(deb_of(built, DOMAIN)) as tar:
        assert not [name for name in tar.getnames() if "/systemd/" in name or "/init.d/" in name or "/cron.d/" in name]


def test_patch_series_applied(built, upstream):
    path, line = upstream.patched_file()
    with data_tar(deb_of(built, DOMAIN)) as tar:
        text = tar.extractfile(f"{prefix_of(DOMAIN)}/{path}").read().decode("utf-8", "replace")
    assert line in text


def test_gnu_flavour_carries_dnspython_in_the_prefix(built, upstream):
    if upstream.flavour != "gnu":
        pytest.skip("only the gnu flavour vendors dnspython")
    with data_tar(deb_of(built, DOMAIN)) as tar:
        assert f"{prefix_of(DOMAIN)}/pythonlib/dns/resolver.py" in tar.getnames()


def test_two_domains_share_no_file_path(built):
    def paths(domain):
        with data_tar(deb_of(built, domain)) as tar:
            return {member.name for member in tar if not member.isdir()}

    assert paths(DOMAIN).isdisjoint(paths(OTHER_DOMAIN))


def test_two_domains_install_side_by_side_compiled_and_removal_leaves_no_byte_code(built, upstream, tmp_path):
    debs = domain_debs(built, DOMAIN, OTHER_DOMAIN)
    root = tmp_path / "host"
    subprocess.run(
        [
            "mmdebstrap", "--variant=apt",
            f"--customize-hook=copy-in {' '.join(map(str, debs))} /tmp",
            '--customize-hook=chroot "$1" sh -c "apt-get install --yes /tmp/*.deb"',
            upstream.dist, str(root),
        ],
        check=True, capture_output=True,
    )
    for domain in (DOMAIN, OTHER_DOMAIN):
        assert (root / prefix_of(domain) / "mail/mailman").is_file()
        status = subprocess.run(["chroot", str(root), "dpkg-query", "-W", "-f=${Status}", f"mailman-{domain}"],
                                check=True, capture_output=True, text=True).stdout
        assert status == "install ok installed"
        assert uncompiled_modules(root, f"mailman-{domain}", prefix_of(domain)) == []  # py3compile's (pycompile's) in postinst
    subprocess.run(["chroot", str(root), "apt-get", "remove", "--yes", f"mailman-{OTHER_DOMAIN}"], check=True, capture_output=True)
    assert byte_code_under(root / prefix_of(OTHER_DOMAIN)) == []  # py3clean's (pyclean's) in prerm
    assert uncompiled_modules(root, f"mailman-{DOMAIN}", prefix_of(DOMAIN)) == []


def test_rebuild_is_byte_identical(built, upstream, tmp_path):
    again = build(upstream, tmp_path, DOMAIN, common=False)
    # Compare digests: pytest's diff of two multi-megabyte byte strings takes hours.
    assert sha256_of(deb_of(again, DOMAIN)) == sha256_of(deb_of(built, DOMAIN))
    for source_file in again.glob(f"mailman-{DOMAIN}_*.debian.tar.*"):
        assert sha256_of(source_file) == sha256_of(built / source_file.name)


def test_pbuilder_builds_the_same_source_package(built, upstream, tmp_path):
    with_pbuilder = build(upstream, tmp_path, DOMAIN, builder="pbuilder", common=False)
    (dsc,) = with_pbuilder.glob("*.dsc")
    assert dsc.read_bytes() == (built / dsc.name).read_bytes()
    with data_tar(deb_of(with_pbuilder, DOMAIN)) as ours, data_tar(deb_of(built, DOMAIN)) as theirs:
        assert [(m.name, m.mode, m.uname, m.gname) for m in ours] == [(m.name, m.mode, m.uname, m.gname) for m in theirs]


def test_lintian_reports_no_errors_or_warnings(built, upstream):
    artifacts = [*built.glob(f"mailman-{DOMAIN}_*.dsc"), deb_of(built, DOMAIN)]
    result = run_lintian(upstream.flavour, artifacts)
    assert result.returncode == 0, result.stdout + result.stderr
