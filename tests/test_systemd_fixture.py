"""systemd runs a domain's units, in a booted trixie (systemd-nspawn), installed with apt from
mmdeb's signed repository. The package is the fixture's, whose bin/mailmanctl only forks a
sleeping master and whose bin/qrunner --drain only moves queue files away: this checks the
harness and the unit templates in CI; tests/test_systemd.py does the same and more with real
Mailman."""

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN
from helpers.e2e_host import prefix
from helpers.systemd_host import (Project, SystemdHost, cgroup_of, daemon_reloads, instance_links, path_unit,
                                  processes_of, unit, unit_property)
from helpers.lists import wait_until
from helpers.repository import serve
from mmdeb import PROJECT_ROOT

pytestmark = pytest.mark.systemd

DIST = "trixie"


@contextmanager
def booted(project: Project, directory) -> Iterator[SystemdHost]:
    """A booted trixie that has project's repository, nothing of it installed yet."""
    machine = SystemdHost.create(directory / "host", DIST)
    try:
        machine.boot()
        machine.use_repository(project.repo, DIST)
        serve(project.repo, machine)
        yield machine
    finally:
        machine.stop()


def installed(fixture_py3, directory, runners: str):
    project = Project(directory, fixture_py3)
    project.add(DOMAIN, dist=DIST, runners=runners)
    project.rebuild_and_publish("--builder", "local")
    with booted(project, directory) as machine:
        reloads = daemon_reloads(machine)
        machine.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
        machine.install_reloads = daemon_reloads(machine) - reloads
        yield machine


@pytest.fixture(scope="module")
def host(fixture_py3, tmp_path_factory):
    yield from installed(fixture_py3, tmp_path_factory.mktemp("systemd-fixture"), "always-on")


@pytest.fixture(scope="module")
def on_demand(fixture_py3, tmp_path_factory):
    yield from installed(fixture_py3, tmp_path_factory.mktemp("systemd-fixture-on-demand"), "on-demand")


def queue(host, name: str, domain: str = DOMAIN) -> None:
    queues = f"{prefix(domain)}/qfiles"
    host.run("sh", "-c", f"mkdir -p {queues}/{name.split('/')[0]} && echo mail > {queues}/{name}", user="list")


def drained(host, domain: str = DOMAIN) -> list[str]:
    """What the fixture's qrunner --drain has taken from the queues."""
    return host.run("sh", "-c", f"cat {prefix(domain)}/data/drained.log 2>/dev/null || true").stdout.split()


def master(host) -> int:
    return int(unit_property(host, unit(DOMAIN), "MainPID"))


def test_apt_install_starts_the_service_as_list_in_its_cgroup(host):
    assert host.run("systemctl", "is-active", unit(DOMAIN)).stdout.strip() == "active"
    pid = master(host)
    assert (host.root / prefix(DOMAIN).lstrip("/") / "data/master-qrunner.pid").read_text().strip() == str(pid)
    assert [user for process, user, _ in processes_of(host, DOMAIN) if process == pid] == ["list"]
    assert cgroup_of(host, pid).endswith(f".slice/{unit(DOMAIN)}\n")


def test_restart_starts_a_new_master(host):
    before = master(host)
    host.run("systemctl", "restart", unit(DOMAIN))
    after = master(host)
    assert after not in (0, before)
    assert [pid for pid, _, _ in processes_of(host, DOMAIN)] == [after]


def test_stop_leaves_no_process(host):
    host.run("systemctl", "stop", unit(DOMAIN))
    try:
        assert host.run("systemctl", "is-active", unit(DOMAIN), check=False).stdout.strip() == "inactive"
        wait_until(lambda: not processes_of(host, DOMAIN), timeout=10, what=f"no process of {DOMAIN}")
    finally:  # the other tests of this host, in whatever order, find the service as apt left it
        host.run("systemctl", "start", unit(DOMAIN))


def test_on_demand_install_runs_no_process_until_mail_arrives(on_demand):
    active = {name: unit_property(on_demand, name, "ActiveState")
              for name in (path_unit(DOMAIN), "mailmen-retry.timer", unit(DOMAIN, on_demand=True))}
    assert active == {path_unit(DOMAIN): "active", "mailmen-retry.timer": "active", unit(DOMAIN, on_demand=True): "inactive"}
    assert processes_of(on_demand, DOMAIN) == []


@pytest.mark.parametrize("runners", ["always-on", "on-demand"])
def test_a_domain_is_one_enabled_instance_installed_without_a_daemon_reload(request, runners):
    machine = request.getfixturevalue("host" if runners == "always-on" else "on_demand")
    # mailmen-common's, installed with it: one for its units, one for each SysV script (update-rc.d's).
    assert machine.install_reloads <= 3
    assert instance_links(machine, DOMAIN) == [path_unit(DOMAIN) if runners == "on-demand" else unit(DOMAIN)]
    reloads = daemon_reloads(machine)
    machine.run("apt-get", "install", "--yes", "--reinstall", f"mailman-{DOMAIN}")
    assert daemon_reloads(machine) == reloads
    assert unit_property(machine, path_unit(DOMAIN) if runners == "on-demand" else unit(DOMAIN), "ActiveState") == "active"


def test_on_demand_queue_file_is_drained_by_a_run_the_path_unit_starts(on_demand):
    queue(on_demand, "in/first.pck")
    wait_until(lambda: "in/first.pck" in drained(on_demand), timeout=30, what="in/first.pck drained")


def test_on_demand_file_queued_as_a_run_ends_is_drained_by_the_next_run(on_demand):
    # A drop-in writes a queue file once, after the run's last look at the queues.
    late = f"{prefix(DOMAIN)}/data/late-written"
    dropin = on_demand.root / f"etc/systemd/system/{unit(DOMAIN, on_demand=True)}.d/late.conf"
    dropin.parent.mkdir(parents=True, exist_ok=True)
    queues = f"{prefix(DOMAIN)}/qfiles"
    dropin.write_text(f"[Service]\nExecStartPost=/bin/sh -c 'test -e {late} || {{ touch {late}; mkdir -p {queues}/out; echo mail > {queues}/out/late.pck; }}'\n")
    on_demand.run("systemctl", "daemon-reload")
    try:
        queue(on_demand, "in/second.pck")
        wait_until(lambda: "out/late.pck" in drained(on_demand), timeout=30, what="out/late.pck drained")
    finally:
        dropin.unlink()
        on_demand.run("systemctl", "daemon-reload")


# The last commit of mmdeb whose domain packages ship units of their own (before mailmen-common's templates).
OWN_UNITS = "1699671"


def test_upgrade_from_packages_with_units_of_their_own_delivers_what_was_queued(fixture_py3, tmp_path):
    old_code = tmp_path / "mmdeb-with-own-units"
    old_code.mkdir()
    archive = subprocess.run(["git", "-C", str(PROJECT_ROOT), "archive", OWN_UNITS, "mmdeb", "debian-templates"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old_code)], input=archive, check=True)
    init = old_code / "mmdeb/__init__.py"  # as released: its version, not this checkout's
    init.write_text(init.read_text().replace('__version__ = version("mmdeb")', '__version__ = "0.2.0"'))
    project = Project(tmp_path, fixture_py3)
    project.add(DOMAIN, dist=DIST)
    project.rebuild_and_publish("--builder", "local", code=old_code)
    with booted(project, tmp_path) as machine:
        machine.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
        assert unit_property(machine, f"mailman-{DOMAIN}.path", "ActiveState") == "active"
        # Mail that waits through the upgrade: queued while the old runners are stopped.
        machine.run("systemctl", "stop", f"mailman-{DOMAIN}.path", f"mailman-{DOMAIN}.service")
        for name in ("in/one.pck", "in/two.pck", "out/three.pck"):
            queue(machine, name)
        project.rebuild_and_publish("--builder", "local")
        serve(project.repo, machine)
        reloads = daemon_reloads(machine)
        machine.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
        wait_until(lambda: {"in/one.pck", "in/two.pck", "out/three.pck"} <= set(drained(machine)), timeout=60,
                   what="the queued files drained")
        # mailmen-common's upgrade (3, as on its first install), the domain's SysV links (once), the trigger's.
        assert daemon_reloads(machine) - reloads <= 5
        assert instance_links(machine, DOMAIN) == [path_unit(DOMAIN)]
        left = machine.run("sh", "-c", "find /etc/systemd/system /etc/init.d /etc/cron.d -name 'mailman-*'").stdout
        assert left == ""
        loaded = machine.run("systemctl", "list-units", "--all", "--plain", "--no-legend", "mailman-*").stdout
        assert loaded.strip() == "", loaded


# A dash, which systemd escapes in the instance name (lists\x2d3.example.com).
THIRD_DOMAIN = "lists-3.example.com"


@pytest.fixture(scope="module")
def interrupted(fixture_py3, tmp_path_factory):
    """Three on-demand domains, whose one apt-get install was killed (dpkg, -9) while a domain's
    postinst ran after another's had finished, then finished with dpkg --configure -a."""
    directory = tmp_path_factory.mktemp("systemd-fixture-interrupted")
    project = Project(directory, fixture_py3)
    project.add(DOMAIN, OTHER_DOMAIN, THIRD_DOMAIN, dist=DIST)
    project.rebuild_and_publish("--builder", "local")
    with booted(project, directory) as machine:
        packages = " ".join(f"mailman-{domain}" for domain in (DOMAIN, OTHER_DOMAIN, THIRD_DOMAIN))
        # apt-get, dpkg and what it runs (maintainer scripts, debconf), as a crash would end them.
        # The [/] keeps pkill -f from matching this shell's own command line.
        machine.killed = machine.run("sh", "-c", f"""
            apt-get install --yes {packages} >/tmp/apt.log 2>&1 &
            # A postinst takes seconds (bin/update, the site list), so this never misses its window.
            until case " $(dpkg-query -W -f '${{db:Status-Status}} ' {packages} 2>/dev/null)" in
                    *" installed "*" half-configured "*|*" half-configured "*" installed "*) true ;;
                    *) false ;;
                  esac; do sleep 0.05; done
            pkill -KILL -x apt-get
            pkill -KILL -x dpkg && echo killed
            pkill -KILL -f '[/]var/lib/dpkg/info/|[/]usr/share/debconf/frontend'
            wait""", check=False).stdout
        machine.run("dpkg", "--configure", "-a")
        yield machine


def test_an_install_killed_midway_ends_with_every_domain_enabled_and_draining(interrupted):
    assert "killed" in interrupted.killed
    for domain in (DOMAIN, OTHER_DOMAIN, THIRD_DOMAIN):
        assert interrupted.run("dpkg-query", "-W", "-f", "${db:Status-Status}", f"mailman-{domain}").stdout == "installed"
        assert instance_links(interrupted, domain) == [path_unit(domain)]
        assert unit_property(interrupted, path_unit(domain), "ActiveState") == "active"
    for domain in (OTHER_DOMAIN, THIRD_DOMAIN):
        queue(interrupted, "in/after-the-kill.pck", domain)
        wait_until(lambda: "in/after-the-kill.pck" in drained(interrupted, domain), timeout=30, what=f"a drain of {domain}")


def test_removing_one_domain_leaves_the_others_instances_alone(interrupted):
    others = (OTHER_DOMAIN, THIRD_DOMAIN)
    started = {domain: unit_property(interrupted, path_unit(domain), "ActiveEnterTimestampMonotonic") for domain in others}
    interrupted.run("apt-get", "remove", "--yes", f"mailman-{DOMAIN}")
    try:
        assert instance_links(interrupted, DOMAIN) == []
        assert unit_property(interrupted, path_unit(DOMAIN), "ActiveState") == "inactive"
        for domain in others:
            assert instance_links(interrupted, domain) == [path_unit(domain)]
            assert unit_property(interrupted, path_unit(domain), "ActiveEnterTimestampMonotonic") == started[domain]
    finally:
        interrupted.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}")
