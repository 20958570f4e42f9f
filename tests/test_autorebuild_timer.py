"""mmdeb-autorebuild.timer in a booted trixie (systemd as PID 1): installing mmdeb's .deb
enables and starts the timer, and the service it starts runs `mmdeb autorebuild`."""

import pytest

from helpers.self_deb import depends_of, install
from helpers.systemd_host import SystemdHost

pytestmark = pytest.mark.systemd


@pytest.fixture(scope="module")
def booted(self_deb, tmp_path_factory):
    machine = SystemdHost.create(tmp_path_factory.mktemp("timer-host") / "host", "trixie", tuple(depends_of(self_deb)))
    machine.boot()
    try:
        install(machine, self_deb)
        yield machine
    finally:
        machine.stop()


def test_installing_mmdeb_enables_and_starts_the_timer(booted):
    states = [booted.run("systemctl", verb, "mmdeb-autorebuild.timer", check=False).stdout.strip()
              for verb in ("is-enabled", "is-active")]
    assert states == ["enabled", "active"]


def test_the_timer_schedules_the_service(booted):
    listing = booted.run("systemctl", "list-timers", "--all", "--no-pager", "mmdeb-autorebuild.timer").stdout
    assert "mmdeb-autorebuild.service" in listing


def test_the_service_runs_autorebuild_on_the_system_places(booted):
    booted.run("systemctl", "start", "mmdeb-autorebuild.service")
    assert booted.run("systemctl", "show", "--property=Result", "mmdeb-autorebuild.service").stdout.strip() == "Result=success"
    journal = booted.run("journalctl", "--no-pager", "--unit=mmdeb-autorebuild.service").stdout
    assert "nothing to do: /var/lib/mmdeb/mmdeb.toml records no domain" in journal
