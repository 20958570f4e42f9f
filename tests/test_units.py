"""The systemd units as rendered: mailmen-common's templates, checked offline by systemd-analyze
(sandboxed and valid, as a domain's instances); the periodic jobs' timers, which run on systemd
hosts what the cron file runs elsewhere; and a domain package, which ships no unit of its own."""

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers.rendering import postinst_with_library, rendered, rendered_common

from mmdeb.build.spec import Job, job_template
from mmdeb.domains.layout import (ALWAYS_ON_UNIT, DRAIN_UNIT, PREFIX_ROOT, QUEUE_UNIT, UNIT_NAME_MAX, instance_unit,
                                  unit_instance)
from mmdeb.domains.settings import RUNNERS
from mmdeb.errors import MmdebError

MAX_EXPOSURE = 4.0  # issue 9: "aim for an exposure of 4.0 or lower"
HOST_UNITS = Path("/usr/lib/systemd/system")
DOMAIN = "lists.example-one.org"


def installed_units(spec, debian: Path, target: Path) -> list[Path]:
    """Copy the units to target under the names dh_installsystemd installs them with:
    debian/<package>.<name>.<type> as <name>.<type>, debian/<package>@.<name>.<type> as <name>@.<type>."""
    target.mkdir(parents=True, exist_ok=True)
    units = []
    for path in sorted(debian.glob(f"{spec.package}*.*")):
        if path.suffix not in (".service", ".timer", ".path"):
            continue
        template = path.name.startswith(f"{spec.package}@.")
        name = path.name.removeprefix(f"{spec.package}@." if template else f"{spec.package}.")
        units.append(target / (name.replace(".", "@.", 1) if template else name))
        shutil.copyfile(path, units[-1])
    return units


def instances(units: list[Path]) -> list[Path]:
    """Each template as an instance for DOMAIN, beside it."""
    made = []
    for unit in units:
        if "@." in unit.name:
            made.append(unit.with_name(instance_unit(unit.name, DOMAIN)))
            shutil.copyfile(unit, made[-1])
    return made


def exposure(unit: Path) -> float:
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)], capture_output=True, text=True, check=True)
    return float(re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout).group(1))


@pytest.fixture
def units(tmp_path):
    spec, debian = rendered_common(tmp_path)
    return spec, installed_units(spec, debian, tmp_path / "root/etc/systemd/system")


def test_every_service_that_runs_mailman_is_sandboxed(units):
    spec, installed = units
    services = [unit for unit in instances(installed) if unit.suffix == ".service" and "mailmen-jobs@" not in unit.name]
    assert len(services) == 2 + len(spec.jobs)  # always-on, drain, one per job
    exposures = {unit.name: exposure(unit) for unit in services}
    assert max(exposures.values()) <= MAX_EXPOSURE, exposures


def test_units_and_instances_verify(tmp_path, units):
    _spec, installed = units
    # A root with the units, stubs of the programs they run, and the host's targets they name.
    root = tmp_path / "root"
    for target in HOST_UNITS.glob("*.target"):
        shutil.copyfile(target, root / "etc/systemd/system" / target.name)
    checked = [unit for unit in installed if "@." not in unit.name] + instances(installed)
    for unit in checked:
        for program in re.findall(r"^Exec\w+=(\S+)", unit.read_text(), re.M):
            stub = root / program.replace("%I", DOMAIN).lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", f"--root={root}", *[unit.name for unit in checked]],
                            capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_job_schedules_in_cron_and_systemd_notation():
    assert (Job("mailpasswds", 5, 0, day=1).cron, Job("mailpasswds", 5, 0, day=1).on_calendar) == ("0 5 1 * *", "*-*-01 05:00:00")
    assert (Job("nightly_gzip", 3, 27).cron, Job("nightly_gzip", 3, 27).on_calendar) == ("27 3 * * *", "*-*-* 03:27:00")


def unit_settings(text: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", text, re.M)


def test_each_job_has_one_timer_for_every_domain_and_a_cron_line_that_does_nothing_under_systemd(tmp_path):
    spec, debian = rendered_common(tmp_path)
    lines = [line.split("\t") for line in (debian / f"{spec.package}.cron.d").read_text().splitlines() if "\tlist\t" in line]
    assert [schedule for schedule, _user, _command in lines] == [job.cron for job in spec.jobs]
    for job, (_schedule, _user, command) in zip(spec.jobs, lines):
        guard, *_checks, job_command = command.split(" && ")
        assert guard == "[ ! -d /run/systemd/system ]"
        timer = (debian / f"{spec.package}.{spec.job_unit(job)}.timer").read_text()
        dispatcher = (debian / f"{spec.package}@.mailmen-jobs.service").read_text()
        service = (debian / f"{spec.package}@.{spec.job_unit(job)}.service").read_text()
        assert unit_settings(timer, "OnCalendar") == [job.on_calendar]
        (started,) = unit_settings(timer, "Unit")
        assert started == spec.jobs_instance(job) == f"mailmen-jobs@{job.name}.service"
        assert unit_settings(dispatcher, "ExecStart") == [job_command.replace(job.name, "%i")]
        assert unit_settings(service, "ExecStart") == [f"{PREFIX_ROOT}/%I/cron/{job.name}"]
        assert "\nUser=list\n" in service and "\n[Install]\n" not in service


def test_path_unit_watches_every_queue_a_runner_serves_but_retry(tmp_path):
    spec, debian = rendered_common(tmp_path)
    path = (debian / f"{spec.package}@.mailmen-queue.path").read_text()
    queues = [watched.removeprefix(f"{PREFIX_ROOT}/%I/qfiles/") for watched in unit_settings(path, "DirectoryNotEmpty")]
    assert sorted(queues) == ["archive", "bounces", "commands", "in", "news", "out", "virgin"]
    assert unit_settings(path, "Unit") == [DRAIN_UNIT.replace("@", "@%i")]


def test_drain_service_runs_once_and_only_when_a_queue_holds_mail(tmp_path):
    spec, debian = rendered_common(tmp_path)
    service = (debian / f"{spec.package}@.mailmen-drain.service").read_text()
    assert unit_settings(service, "Type") == ["oneshot"]
    assert unit_settings(service, "ExecStart") == [f"{PREFIX_ROOT}/%I/bin/qrunner --drain=10 --runner=All"]
    triggers = [condition.removeprefix(f"|{PREFIX_ROOT}/%I/qfiles/") for condition in unit_settings(service, "ConditionDirectoryNotEmpty")]
    assert sorted(triggers) == ["archive", "bounces", "commands", "in", "news", "out", "retry", "virgin"]
    assert "[Install]" not in service


def test_always_on_service_runs_mailmanctl(tmp_path):
    spec, debian = rendered_common(tmp_path)
    service = (debian / f"{spec.package}@.mailmen.service").read_text()
    assert unit_settings(service, "ExecStart") == [f"{PREFIX_ROOT}/%I/bin/mailmanctl -s -q start"]
    assert unit_settings(service, "WantedBy") == ["multi-user.target"]


def test_one_sysctl_file_raises_the_inotify_limit_for_every_path_unit(tmp_path):
    spec, debian = rendered_common(tmp_path)
    watches = len(unit_settings((debian / f"{spec.package}@.mailmen-queue.path").read_text(), "DirectoryNotEmpty"))
    (limit,) = re.findall(r"^fs\.inotify\.max_user_instances = (\d+)$", (debian / "sysctl").read_text(), re.M)
    assert int(limit) >= 1000 * watches  # systemd holds one instance per watched directory


@pytest.mark.parametrize("runners", RUNNERS)
def test_a_domain_package_ships_no_unit_cron_file_or_init_script_and_enables_one_instance(tmp_path, upstream, runners):
    spec, debian = rendered(tmp_path, upstream, runners=runners)
    assert not [path.name for path in debian.iterdir() if path.suffix in (".service", ".path", ".timer", ".init", ".sysctl")
                or path.name in ("crontab", "sysctl", "cron.d") or path.name.endswith(".cron.d")]
    template = QUEUE_UNIT if runners == "on-demand" else ALWAYS_ON_UNIT
    assert spec.runner_unit == instance_unit(template, spec.domain.name)
    postinst = postinst_with_library(tmp_path, debian)
    assert f"RUNNER_UNIT={shlex.quote(spec.runner_unit)}\n" in postinst
    assert 'systemctl --quiet --no-reload enable "$RUNNER_UNIT"\n' in postinst
    assert "systemctl daemon-reload" not in postinst  # the built package: tests/test_systemd_fixture.py
    # Upgrades from packages with units of their own stop those first (tests/test_systemd_fixture.py).
    preinst = (debian / "preinst").read_text()
    assert f"systemctl list-units --all --plain --no-legend {' '.join(spec.legacy_units)} |" in preinst
    assert {f"{spec.package}.path", f"{spec.package}.timer", f"{spec.package}-checkdbs.timer"} <= set(spec.legacy_units)


@pytest.mark.parametrize("name", ["lists.example.org", "a-b.c-d.example", "x1.example", "0-9.example"])
def test_instance_names_are_systemd_escape_s(name):
    escaped = subprocess.run(["systemd-escape", name], capture_output=True, text=True, check=True).stdout.strip()
    assert unit_instance(name) == escaped
    unescaped = subprocess.run(["systemd-escape", "--unescape", escaped], capture_output=True, text=True, check=True)
    assert unescaped.stdout.strip() == name


@pytest.mark.parametrize("runners", RUNNERS)
def test_the_maintainer_scripts_keep_an_escaped_instance_name_whole(tmp_path, upstream, runners):
    # Unquoted, sh would drop the backslash of \x2d: mailmen@lists.foox2dbar.org.service.
    spec, debian = rendered(tmp_path, upstream, domain="lists.foo-bar.org", runners=runners)
    assert "\\x2d" in spec.runner_unit
    variables = (debian / "postinst").read_text().split(". /usr/share/debconf/confmodule")[0]
    assert shown(variables + 'show "$RUNNER_UNIT" "$RETIRED_RUNNER_UNIT" "$DRAIN_UNIT"') == \
        [spec.runner_unit, spec.retired_runner_unit, spec.instance_of(DRAIN_UNIT) if runners == "on-demand" else ""]
    assert shown(line_of((debian / "prerm").read_text(), "deb-systemd-invoke")) == \
        ["stop", *spec.stopped_units]
    assert shown(line_of((debian / "postrm").read_text(), "systemctl")) == \
        ["--quiet", "--no-reload", "disable", spec.runner_unit]


def shown(script: str) -> list[str]:
    """The words that script, run by sh, passes to show."""
    done = subprocess.run(["sh", "-ec", f'show() {{ printf "%s\\n" "$@"; }}\n{script}'],
                          capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


def line_of(script: str, command: str) -> str:
    """script's line that runs command, which runs show instead."""
    (line,) = [line for line in script.splitlines() if line.strip().startswith(f"{command} ")]
    return line.replace(command, "show", 1)


def test_a_domain_too_long_for_systemd_unit_names_is_refused(tmp_path, upstream):
    labels = ["a-b" * 20] * 3 + ["example"]  # 190 characters, each hyphen escaped to four
    with pytest.raises(MmdebError, match=rf"over systemd's limit of {UNIT_NAME_MAX}"):
        rendered(tmp_path, upstream, domain=".".join(labels))
    assert len(instance_unit(job_template(Job("cull_bad_shunt", 4, 30)), DOMAIN)) < UNIT_NAME_MAX
