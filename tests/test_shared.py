"""Shared-core mode, built with sbuild: one core package, thin domain packages that run its code."""

import difflib
import subprocess

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN, core_deb_of, deb_of, domain_debs
from mmdeb.app.places import current as current_places
from mmdeb.build.builders import ChrootCache, SbuildBuilder
from mmdeb.build.builders.base import listed
from mmdeb.build.pipeline import built_files
from mmdeb.domains.layout import PRIVATE_ARCHIVES, PRIVATE_ARCHIVES_MODE, WEB_SERVER_USER
from mmdeb.run import Runner
from helpers.dist_lintian import run_lintian
from mmdeb.upstream.dists import FLAVOURS
from helpers.debs import byte_code_under, data_tar, prefix_of, uncompiled_modules

pytestmark = pytest.mark.chroot

MAX_DOMAIN_KB = 1024  # the target: each extra domain installs at most 1 MB
MAX_POOL_KB = 200  # issue 24's target: a thin domain version adds at most 200 KB to the repository


def field(deb, name: str) -> str:
    return subprocess.run(["dpkg-deb", "--field", str(deb), name], check=True, capture_output=True, text=True).stdout.strip()


def test_core_is_architecture_all_and_holds_the_code(built_shared, upstream):
    flavour = FLAVOURS[upstream.flavour]
    core = core_deb_of(built_shared)
    assert field(core, "Package") == flavour.core_package
    assert field(core, "Architecture") == "all"
    with data_tar(core) as tar:
        names = {member.name for member in tar}
    assert f".{flavour.core_prefix}/Mailman/Utils.py" in names
    assert f".{flavour.core_prefix}/Mailman/MTA/MmdebPostfix.py" in names
    assert not [name for name in names if name.endswith(("Defaults.py", "paths.py")) or "/mail/" in name or "/cgi-bin/" in name]


def test_domain_package_is_thin_and_depends_on_its_core(built_shared, upstream):
    flavour = FLAVOURS[upstream.flavour]
    deb = deb_of(built_shared, DOMAIN)
    assert int(field(deb, "Installed-Size")) <= MAX_DOMAIN_KB
    upstream_version = field(deb, "Version").split("-")[0]
    assert f"{flavour.core_package} (>= {upstream_version}), {flavour.core_package} (<< {upstream_version}.~)" in field(deb, "Depends")
    with data_tar(deb) as tar:
        members = {member.name: member for member in tar}
    prefix = prefix_of(DOMAIN)
    for wrapper in ("mail/mailman", "cgi-bin/listinfo"):
        assert members[f"{prefix}/{wrapper}"].mode == 0o2755
    private = members[f"{prefix}/{PRIVATE_ARCHIVES}"]
    assert (private.uname, private.gname, private.mode) == (WEB_SERVER_USER, "list", PRIVATE_ARCHIVES_MODE)
    assert f"{prefix}/Mailman/Defaults.py" in members and f"{prefix}/bin/paths.py" in members
    assert f"{prefix}/Mailman/Utils.py" not in members, "the code is the core's"


def test_a_thin_domain_package_comes_without_dbgsym(built_shared):
    """What publish takes of the domain's build (its .changes): the .dsc and the one .deb."""
    deb = deb_of(built_shared, DOMAIN)
    package, version, arch = deb.stem.split("_")
    files = built_files(built_shared.parent, package, built_shared.name, version, arch)
    assert sorted(path.name for path in files) == sorted([f"{package}_{version}.dsc", deb.name])
    assert not list(built_shared.glob(f"{package}-dbgsym_*"))


def prefix_members(deb) -> dict[str, tuple]:
    """What deb installs under the domain's prefix: relative name -> (member, content of a file)."""
    prefix = prefix_of(DOMAIN)
    with data_tar(deb) as tar:
        return {member.name.removeprefix(prefix).lstrip("/"): (member, tar.extractfile(member).read() if member.isfile() else None)
                for member in tar if member.name.startswith(f"{prefix}/")}


def test_thin_package_holds_what_configure_gives_a_prefix_package(built, built_shared, upstream):
    # The thin package runs no configure (debian/mmdeb-configure): its part of the prefix is a
    # prefix-mode package's (made by configure), but for the stubs, the lines
    # mmdeb-shared-domain adds and the importer's pythonlib/, which the core's pythonlib replaces.
    flavour = FLAVOURS[upstream.flavour]
    thin, full = prefix_members(deb_of(built_shared, DOMAIN)), prefix_members(deb_of(built, DOMAIN))
    assert set(thin) <= set(full)
    for directory in ("bin", "cron", "scripts", "mail", "cgi-bin", "data"):
        assert {name for name in thin if name.startswith(f"{directory}/")} == {name for name in full if name.startswith(f"{directory}/")}
    embedded = (prefix_of(DOMAIN).lstrip("."), flavour.python, "daemon", "www-data")
    for name, (member, data) in thin.items():
        theirs, their_data = full[name]
        if name != "pythonlib":
            assert (member.type, member.mode, member.uname, member.gname, member.linkname) == \
                (theirs.type, theirs.mode, theirs.uname, theirs.gname, theirs.linkname), name
        if data is None or data == their_data:
            continue
        if name.startswith(("mail/", "cgi-bin/")):  # the wrappers: the prefix, interpreter and group compiled in
            assert [value in str(data) for value in embedded] == [value in str(their_data) for value in embedded], name
            assert embedded[0] in str(data), name
        elif b"exec(compile(open(__file__" not in data:  # a stub replaces the script; anything else is only added to
            changes = difflib.SequenceMatcher(None, their_data.splitlines(), data.splitlines(), autojunk=False).get_opcodes()
            assert {tag for tag, *_ in changes} == {"equal", "insert"}, name


def test_core_and_two_domains_install_compiled_each_runs_with_its_own_settings_and_removal_leaves_no_byte_code(built_shared, upstream, tmp_path):
    flavour = FLAVOURS[upstream.flavour]
    debs = domain_debs(built_shared, DOMAIN, OTHER_DOMAIN)
    root = tmp_path / "host"
    subprocess.run(
        ["mmdebstrap", "--variant=apt", f"--customize-hook=copy-in {' '.join(map(str, debs))} /tmp",
         '--customize-hook=chroot "$1" sh -c "apt-get install --yes /tmp/*.deb"', upstream.dist, str(root)],
        check=True, capture_output=True,
    )
    probe = "import paths; from Mailman import Defaults, Utils; print('%s %s' % (Defaults.DEFAULT_EMAIL_HOST, Utils.__file__))"
    for domain in (DOMAIN, OTHER_DOMAIN):
        result = subprocess.run(["chroot", str(root), "sh", "-c", f"cd /var/lib/mailmen/{domain}/bin && {flavour.python} -c \"{probe}\""],
                                check=True, capture_output=True, text=True)
        host, utils = result.stdout.split()
        assert host == domain
        assert utils.startswith(f"{flavour.core_prefix}/Mailman/Utils.py")
        if not upstream.real:  # the fixture's newlist, a stub in shared mode, reports its domain
            newlist = subprocess.run(["chroot", str(root), f"/var/lib/mailmen/{domain}/bin/newlist"],
                                     check=True, capture_output=True, text=True)
            assert newlist.stdout.strip() == f"newlist for {domain}"
    for package, prefix in ((flavour.core_package, flavour.core_prefix), (f"mailman-{DOMAIN}", prefix_of(DOMAIN)),
                            (f"mailman-{OTHER_DOMAIN}", prefix_of(OTHER_DOMAIN))):
        assert uncompiled_modules(root, package, prefix) == []  # py3compile's (pycompile's) in postinst
    subprocess.run(["chroot", str(root), "apt-get", "remove", "--yes", flavour.core_package], check=True, capture_output=True)
    for directory in (flavour.core_prefix, prefix_of(DOMAIN), prefix_of(OTHER_DOMAIN)):
        assert byte_code_under(root / directory.lstrip("./")) == []  # py3clean's (pyclean's) in prerm


def test_lintian_reports_no_errors_or_warnings_on_core_and_domain(built_shared, upstream):
    artifacts = [*built_shared.glob("mailmen-core-*.dsc"), core_deb_of(built_shared),
                 *built_shared.glob(f"mailman-{DOMAIN}_*.dsc"), deb_of(built_shared, DOMAIN)]
    result = run_lintian(upstream.flavour, artifacts)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_thin_domain_version_takes_at_most_200_kb_of_the_repository(built_shared):
    """What publish puts into the pool: the .dsc, the files it lists and the .deb."""
    deb = deb_of(built_shared, DOMAIN)
    package, version, arch = deb.stem.split("_")
    dsc, *debs = built_files(built_shared.parent, package, built_shared.name, version, arch)
    sources = listed(dsc, package, version, "build it again")
    assert sum(path.stat().st_size for path in [dsc, *sources, *debs]) <= MAX_POOL_KB * 1024


def test_a_thin_package_built_in_a_session_holds_what_sbuild_builds(built_shared, tmp_path):
    """Thin domains build in a session of the chroot (builders.session); sbuild, given the same
    source package and chroot, builds the same files with the same modes and owners."""
    deb = deb_of(built_shared, DOMAIN)
    package, version, arch = deb.stem.split("_")
    dsc = built_files(built_shared.parent, package, built_shared.name, version, arch)[0]
    chroots = ChrootCache(current_places().cache / "chroots", 7, "update")
    SbuildBuilder(chroots).build(dsc, built_shared.name, arch, tmp_path, Runner())
    listings = []
    for built in (deb, tmp_path / deb.name):
        with data_tar(built) as tar:
            listings.append(sorted((member.name, member.type, member.mode, member.uname, member.gname) for member in tar))
    assert listings[0] == listings[1]
