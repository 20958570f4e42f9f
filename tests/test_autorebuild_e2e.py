"""The scheduled rebuild as an admin runs it: mmdeb installed from its own .deb on a trixie
build host, a local HTTP server standing in for the upstream site, the cron line's command
(the host has no systemd), Postfix delivering the report to root's mailbox. With the real
tarball, the same host is also a list host that apt-upgrades to the new release.

The host reaches no mirror, so it builds with the local backend, its build dependencies
preinstalled."""

import email.message
import hashlib
import shutil
from pathlib import Path

import pytest

from conftest import DOMAIN, REAL_TARBALL
from e2e_host import HOSTNAME, MTA_DEBCONF, Host
from self_deb import build_self_deb, depends_of, install
from upstream_site import LISTING_REGEX, as_version
from mmdeb.builders.chroot import preinstalled_packages
from mmdeb.repo import KEYRING
from mmdeb.spec import domain_depends
from mmdeb.upstream import FLAVOURS

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


def wait_for_report(host: Host, count: int) -> email.message.Message:
    return host.wait_for_mail("root", lambda message: len(reports(host)) >= count and message is reports(host)[count - 1])


def packages_index(host: Host) -> str:
    return (host.root / f"var/lib/mmdeb/repo/current/dists/{DIST}/main/binary-amd64/Packages").read_text()


@pytest.fixture(scope="module")
def build_host(upstream, tmp_path_factory):
    """A started trixie host with Postfix, the local build dependencies, mmdeb installed from
    its own .deb, and the upstream site serving upstream's tarball as it is."""
    if upstream.flavour != "py3":
        pytest.skip("the build host runs trixie, where only the py3 flavour builds")
    package = build_self_deb(tmp_path_factory.mktemp("mmdeb-deb"))
    packages = [*depends_of(package), "postfix", *preinstalled_packages(DIST), *domain_depends(FLAVOURS["py3"], DIST)]
    host = Host.create(tmp_path_factory.mktemp("build-host") / "host", DIST, packages, MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    host.start()
    try:
        host.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        host.run("postfix", "start")
        install(host, package)
        site = host.root / "srv/upstream"
        site.mkdir(parents=True)
        shutil.copy(upstream.tarball, site / f"mailman-{upstream_version(upstream)}.tar.gz")
        publish_release(host, upstream.tarball, upstream_version(upstream))
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


def upstream_version(upstream) -> str:
    from mmdeb.upstream import inspect_tarball
    return inspect_tarball(upstream.tarball)[0]
