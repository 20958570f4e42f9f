"""systemd runs a domain's unit, in a booted trixie (systemd-nspawn), installed with apt from
mmdeb's signed repository. The package is the fixture's, whose bin/mailmanctl only forks a
sleeping master: this checks the harness and the unit template in CI; tests/test_systemd.py
does the same and more with real Mailman."""

import pytest

from conftest import DOMAIN
from e2e_host import prefix
from systemd_host import Project, SystemdHost, cgroup_of, processes_of, unit, unit_property
from test_e2e import wait_until
from test_e2e_repository import serve

pytestmark = pytest.mark.systemd

DIST = "trixie"


@pytest.fixture(scope="module")
def host(fixture_py3, tmp_path_factory):
    directory = tmp_path_factory.mktemp("systemd-fixture")
    project = Project(directory, fixture_py3)
    project.add(DOMAIN, dist=DIST)
    project.rebuild_and_publish("--builder", "local")
    machine = SystemdHost.create(directory / "host", DIST)
    try:
        machine.boot()
        machine.use_repository(project.repo, DIST)
        serve(project.repo, machine)
        machine.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
        yield machine
    finally:
        machine.stop()


def master(host) -> int:
    return int(unit_property(host, unit(DOMAIN), "MainPID"))


def test_apt_install_starts_the_service_as_list_in_its_cgroup(host):
    assert host.run("systemctl", "is-active", unit(DOMAIN)).stdout.strip() == "active"
    pid = master(host)
    assert (host.root / prefix(DOMAIN).lstrip("/") / "data/master-qrunner.pid").read_text().strip() == str(pid)
    assert [user for process, user, _ in processes_of(host, DOMAIN) if process == pid] == ["list"]
    assert f"/system.slice/{unit(DOMAIN)}" in cgroup_of(host, pid)


def test_restart_starts_a_new_master(host):
    before = master(host)
    host.run("systemctl", "restart", unit(DOMAIN))
    after = master(host)
    assert after not in (0, before)
    assert [pid for pid, _, _ in processes_of(host, DOMAIN)] == [after]


def test_stop_leaves_no_process(host):
    host.run("systemctl", "stop", unit(DOMAIN))
    assert host.run("systemctl", "is-active", unit(DOMAIN), check=False).stdout.strip() == "inactive"
    wait_until(lambda: not processes_of(host, DOMAIN), timeout=10, what=f"no process of {DOMAIN}")
