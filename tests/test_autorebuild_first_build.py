"""A fresh build host's first timer-driven build: in a booted trixie (systemd as PID 1) with
mmdeb's .deb installed, the admin records a domain and lets autorebuild build and publish;
mmdeb-autorebuild.service, started as its timer starts it, makes the trixie build chroot
(mmdebstrap), builds the domain's packages with sbuild --chroot-mode=unshare and publishes
them, with no manual step: the package's postinst gave root its subordinate ids.

The host shares this machine's network: every autorebuild that builds makes its chroot anew
from the Debian mirror. Long (a chroot made and packages built inside a booted host, several
minutes), so it runs only where the real tarball is given, never in CI; its domain is built
from the fixture upstream all the same, which builds fastest."""

import shutil

import pytest

from helpers.self_deb import depends_of, install
from helpers.systemd_host import SystemdHost
from helpers.upstreams import REAL_TARBALL
from mmdeb.build.builders.sbuild import SUBID_FILES, has_subid_range

DOMAIN = "lists.example.org"
SERVICE = "mmdeb-autorebuild.service"

pytestmark = [pytest.mark.systemd,
              pytest.mark.skipif(not REAL_TARBALL, reason="long (a chroot and a build in a booted host): not in CI")]


def root_has_range(machine: SystemdHost) -> list[bool]:
    return [has_subid_range(machine.root / path.relative_to("/"), "root", 0) for path in SUBID_FILES]


@pytest.fixture(scope="module")
def first_build(self_deb, fixture_py3, tmp_path_factory):
    """The host after the admin's first steps and one run of the service; with the ranges root had before the install."""
    machine = SystemdHost.create(tmp_path_factory.mktemp("first-build") / "host", "trixie", tuple(depends_of(self_deb)),
                                 private_network=False)
    before = root_has_range(machine)
    machine.boot()
    try:
        install(machine, self_deb)
        # Not in /tmp or /var/tmp: the service has its own (PrivateTmp=yes).
        shutil.copytree(fixture_py3.patches, machine.root / "srv/patches")
        shutil.copy(fixture_py3.tarball, machine.root / "srv")
        # The admin's steps: what autorebuild may do and, for the fixture, its patch series; then a domain.
        settings = machine.root / "etc/mmdeb/mmdeb.conf"
        settings.write_text(settings.read_text()
                            .replace('patches = ""', 'patches = "/srv/patches"')
                            .replace('policy = "report"', 'policy = "build+publish"'))
        machine.run("mmdeb", "domains", "add", DOMAIN, "--upstream", f"/srv/{fixture_py3.tarball.name}", "--dist", "trixie")
        machine.run("systemctl", "start", SERVICE, check=False)  # as the timer starts it; its Result tells
        yield machine, before
    finally:
        machine.stop()


def test_the_package_gave_root_its_subordinate_ids(first_build):
    machine, before = first_build
    assert (before, root_has_range(machine)) == ([False, False], [True, True])


def test_the_first_timer_build_succeeds(first_build):
    machine, _ = first_build
    journal = machine.run("journalctl", "--no-pager", "--output=cat", f"--unit={SERVICE}").stdout
    assert machine.run("systemctl", "show", "--property=Result", SERVICE).stdout.strip() == "Result=success", journal


def test_the_domain_package_is_built_and_published(first_build):
    machine, _ = first_build
    published = sorted(path.name for path in (machine.root / "var/lib/mmdeb/repo").rglob("*.deb"))
    assert any(name.startswith(f"mailman-{DOMAIN}_") for name in published), published


def test_the_report_is_in_the_journal(first_build):
    machine, _ = first_build
    journal = machine.run("journalctl", "--no-pager", "--output=cat", f"--unit={SERVICE}").stdout
    assert f"built mailman-{DOMAIN} " in journal and f"published mailman-{DOMAIN} " in journal, journal
