"""Installing a domain package where the optional parts (MTA, web server) are missing."""

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from helpers.e2e_host import Host

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]


@pytest.fixture(scope="module")
def bare_host(upstream, tmp_path_factory):
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    machine = Host.create(tmp_path_factory.mktemp("e2e-bare") / "host", upstream.dist, ["procps", *runtime])
    machine.allow_service_starts()
    machine.start()
    yield machine
    machine.stop()


def test_configures_without_mta_and_web_server_and_says_what_to_do(bare_host, built):
    result = bare_host.install_offline(domain_debs(built, DOMAIN))
    said = result.stdout + result.stderr
    assert "neither apache2 nor nginx is installed" in said and "dpkg-reconfigure mailman-lists.example.org" in said
    status = bare_host.run("dpkg-query", "-W", "-f=${Status}", f"mailman-{DOMAIN}").stdout
    assert status == "install ok installed"


def test_site_list_failure_is_reported_without_failing_configure(bare_host, built):
    package = f"mailman-{DOMAIN}"
    bare_host.run("rm", "-rf", f"/var/lib/mailmen/{DOMAIN}/lists/mailman")
    bare_host.run("debconf-set-selections", input=f"{package} {package}/site_list_owner string not an address\n")
    result = bare_host.run("dpkg-reconfigure", "--frontend=noninteractive", package, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'could not create the site list "mailman"' in result.stdout + result.stderr
    assert "newlist mailman" in result.stdout + result.stderr
    assert "not started: its site list is missing" in result.stdout + result.stderr
