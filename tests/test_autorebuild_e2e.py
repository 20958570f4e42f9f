"""The scheduled rebuild as an admin runs it: mmdeb installed from its own .deb on a trixie
build host, a local HTTP server standing in for the upstream site, the cron line's command
(the host has no systemd), Postfix delivering the report to root's mailbox. With the real
tarball, the same host is also a list host that apt-upgrades to the new release.

The host reaches no mirror, so it builds with the local backend, its build dependencies
preinstalled."""

import email.message
import shutil
import time
from pathlib import Path

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, runtime_packages
from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, Host
from helpers.self_deb import depends_of, install
from helpers.upstream_site import LISTING_REGEX, as_version
from mmdeb.upstream.dists import chroot_packages as preinstalled_packages
from mmdeb.publish.repo import KEYRING
from mmdeb.upstream.tarball import inspect_tarball
from mmdeb.upstream.fetch import sha256_of

pytestmark = pytest.mark.chroot

DIST = "trixie"
SITE = "http://127.0.0.1:8000"
NEXT = "2.2.9"  # the simulated new upstream release
BROKEN = "2.2.10"


def cron_command(host: Host) -> str:
    """The command of /etc/cron.d/mmdeb's one job, as cron would run it."""
    (line,) = [line for line in (host.root / "etc/cron.d/mmdeb").read_text().splitlines() if line[:1].isdigit()]
    return line.split(None, 6)[6]


def run_cron_job(host: Host, check: bool = True):
    return host.run("sh", "-c", cron_command(host), check=check)


def publish_release(host: Host, tarball: Path, version: str, broken: bool = False) -> Path:
    site = host.root / "srv/upstream"
    target = as_version(tarball, version, site / f"mailman-{version}.tar.gz", broken)
    links = sorted(path.name for path in site.glob("*.tar.gz"))
    (site / "index.html").write_text("".join(f'<a href="{name}">{name}</a>\n' for name in links))
    return target


def reports(host: Host) -> list[email.message.Message]:
    return [message for message in host.mailbox("root") if str(message["Subject"]).startswith("mmdeb autorebuild")]


def wait_for_report(host: Host, count: int) -> tuple[str, str]:
    """The subject and text of the count-th report in root's mailbox, once Postfix delivered it."""
    deadline = time.monotonic() + 90
    while len(reports(host)) < count:
        assert time.monotonic() < deadline, f"root has {len(reports(host))} reports, not {count}"
        time.sleep(1)
    report = reports(host)[count - 1]
    return str(report["Subject"]), report.get_payload(decode=True).decode()


def packages_index(host: Host) -> str:
    return (host.root / f"var/lib/mmdeb/repo/current/dists/{DIST}/main/binary-amd64/Packages").read_text()


@pytest.fixture(scope="module")
def build_host(upstream, self_deb, tmp_path_factory):
    """A started trixie host with Postfix, the local build dependencies, mmdeb installed from
    its own .deb, and the upstream site serving upstream's tarball as it is."""
    if upstream.flavour != "py3":
        pytest.skip("the build host runs trixie, where only the py3 flavour builds")
    packages = [*depends_of(self_deb), "postfix", "build-essential", *preinstalled_packages(DIST),
                *runtime_packages("py3", DIST)]
    host = Host.create(tmp_path_factory.mktemp("build-host") / "host", DIST, packages, MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    host.start()
    try:
        host.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        host.run("postfix", "start")
        install(host, self_deb)
        (host.root / "srv/upstream").mkdir(parents=True)
        publish_release(host, upstream.tarball, inspect_tarball(upstream.tarball)[0])
        host.run("sh", "-c", "setsid python3 -m http.server 8000 --bind 127.0.0.1 --directory /srv/upstream "
                 ">/var/log/upstream-site.log 2>&1 < /dev/null &")
        patches = ""
        if not upstream.real:
            shutil.copytree(upstream.patches, host.root / "etc/mmdeb/patches")
            patches = "/etc/mmdeb/patches"
        (host.root / "etc/mmdeb/mmdeb.conf").write_text(
            f'[build]\nbuilder = "local"\npatches = "{patches}"\n[autorebuild]\npolicy = "build+publish"\n')
        yield host
    finally:
        host.stop()


@pytest.fixture(scope="module")
def first_run(build_host, upstream):
    """The upstream recorded, the domain added, and the cron job's first run: the first build."""
    version = inspect_tarball(upstream.tarball)[0]
    tarball = f"mailman-{version}.tar.gz"
    build_host.run("mmdeb", "upstream", "add", "fork", f"{SITE}/{tarball}",
                   "--sha256", sha256_of(build_host.root / "srv/upstream" / tarball),
                   "--watch-url", f"{SITE}/", "--watch-regex", LISTING_REGEX)
    build_host.run("sh", "-c", f"cd /tmp && mmdeb domains add {DOMAIN} --upstream fork")
    return version, run_cron_job(build_host, check=False)


@pytest.fixture(scope="module")
def list_host(build_host, first_run):
    """With the real tarball, the build host is also a list host: the domain installed by apt
    from the repository the first run published."""
    if REAL_TARBALL:
        shutil.copy(build_host.root / "var/lib/mmdeb/repo/current" / KEYRING, build_host.root / "usr/share/keyrings")
        (build_host.root / "etc/apt/sources.list.d/mmdeb.sources").write_text(
            f"Types: deb\nURIs: file:/var/lib/mmdeb/repo/current\nSuites: {DIST}\nComponents: main\n"
            f"Signed-By: /usr/share/keyrings/{KEYRING}\n")
        build_host.run("apt-get", "update")
        build_host.run("apt-get", "install", "--yes", "--no-install-recommends", f"mailman-{DOMAIN}")
    return build_host


@pytest.fixture(scope="module")
def new_release_run(build_host, list_host, upstream):
    publish_release(build_host, upstream.tarball, NEXT)
    return run_cron_job(build_host, check=False)


@pytest.fixture(scope="module")
def broken_release_run(build_host, new_release_run, upstream):
    publish_release(build_host, upstream.tarball, BROKEN, broken=True)
    return run_cron_job(build_host, check=False)


def test_the_cron_job_builds_publishes_and_mails_the_first_build(build_host, first_run):
    version, result = first_run
    assert result.returncode == 0, result.stdout + result.stderr
    subject, body = wait_for_report(build_host, 1)
    assert subject.endswith(": done")
    assert f"published mailman-{DOMAIN} {version}-1+deb13 to {DIST}" in body


def test_a_new_release_is_published_and_mailed_with_versions_and_log(build_host, new_release_run):
    assert new_release_run.returncode == 0, new_release_run.stdout + new_release_run.stderr
    _, body = wait_for_report(build_host, 2)
    log = f"/var/lib/mmdeb/build/{DIST}/mailman-{DOMAIN}_{NEXT}-1+deb13_amd64.build"
    assert "new upstream release: fork " in body and f" -> {NEXT} ({SITE}/mailman-{NEXT}.tar.gz)" in body
    assert f"built mailman-{DOMAIN} {NEXT}-1+deb13 for {DIST}; log: {log}" in body
    assert f"published mailman-{DOMAIN} {NEXT}-1+deb13 to {DIST}" in body
    assert f"Version: {NEXT}-1+deb13" in packages_index(build_host)


@pytest.mark.skipif(not REAL_TARBALL, reason="installs the domain package: needs a real Mailman tarball")
def test_apt_upgrade_moves_the_list_host_to_the_new_release(build_host, new_release_run):
    build_host.run("apt-get", "update")
    build_host.run("apt-get", "upgrade", "--yes")
    installed = build_host.run("dpkg-query", "--showformat=${Version}", "--show", f"mailman-{DOMAIN}").stdout
    assert installed == f"{NEXT}-1+deb13"


def test_a_broken_release_publishes_nothing_and_mails_the_failure(build_host, broken_release_run):
    assert broken_release_run.returncode == 1
    (line,) = broken_release_run.stderr.splitlines()
    assert line.startswith("mmdeb: error: autorebuild failed: ") and line.count("Fix: ") == 1, line
    subject, body = wait_for_report(build_host, 3)
    assert subject.endswith(": FAILED")
    assert f"FAILED: mailman-{DOMAIN} {BROKEN}-1+deb13 for {DIST} did not build" in body
    assert f"{BROKEN}" not in packages_index(build_host)
    assert f'version = "{NEXT}"' in (build_host.root / "etc/mmdeb/catalogue.toml").read_text()


def test_a_missing_mail_transport_is_one_line_and_the_report_is_kept(build_host, broken_release_run):
    build_host.run("apt-get", "remove", "--yes", "postfix")
    result = run_cron_job(build_host, check=False)
    (line,) = result.stderr.splitlines()
    assert line.startswith("mmdeb: error: cannot mail the autorebuild report to root: /usr/sbin/sendmail is missing")
    kept = sorted((build_host.root / "var/lib/mmdeb/reports").iterdir())[-1]
    assert f"{BROKEN}-1+deb13 for {DIST} did not build" in kept.read_text()
