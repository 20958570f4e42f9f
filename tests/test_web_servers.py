"""Which web server serves a domain: nginx installed after the domain package (a dpkg
trigger hooks it up), and debconf's choice where Apache and nginx are both installed.
Needs the real upstream tarball (listinfo must run), root and the Debian mirror."""

import subprocess

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from helpers.e2e_host import MTA_DEBCONF, WEB_SERVERS, Host, prefix, start_web_server, web_host
from helpers.lists import address
from helpers.tls import HOST_TLS_DIR, curl_argv, preseed_certificates

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]
PACKAGE = f"mailman-{DOMAIN}"
NGINX_SITE = f"etc/nginx/sites-enabled/{PACKAGE}"


def listinfo(host: Host) -> str:
    return host.run(*curl_argv(DOMAIN, "mailman/listinfo"), "-sSf").stdout


def test_nginx_installed_after_the_domain_package_serves_it(upstream, built, tmp_path):
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = Host.create(tmp_path / "host", upstream.dist, ["postfix", "curl", *runtime], MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    host.start()
    try:
        preseed_certificates(host, DOMAIN)
        said = host.install_offline(domain_debs(built, DOMAIN))
        assert "neither apache2 nor nginx is installed" in said.stderr
        host.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
        # apt needs the network, so it runs outside the host's namespace, where nothing may start.
        policy = host.root / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\nexit 101\n")
        for apt in (["apt-get", "update"], ["apt-get", "install", "--yes", *WEB_SERVERS["nginx"][0]]):
            subprocess.run(["chroot", str(host.root), *apt], check=True, capture_output=True)
        host.allow_service_starts()
        start_web_server(host, "nginx")
        assert 'href="listinfo/users"' in listinfo(host)
    finally:
        host.stop()


def test_debconf_chooses_between_apache_and_nginx(upstream, built, tmp_path):
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = web_host(tmp_path / "host", upstream.dist, ["apache2", *runtime], [DOMAIN], server="nginx")
    try:
        host.run("debconf-set-selections", input=f"{PACKAGE} {PACKAGE}/web_server select nginx\n")
        host.install_offline(domain_debs(built, DOMAIN))
        host.run(f"{prefix(DOMAIN)}/bin/newlist", "-q", "users", address("bob"), "listpassword")
        served_by_nginx = (host.root / NGINX_SITE).is_symlink(), host.run("a2query", "-s", PACKAGE, check=False).returncode
        assert 'href="listinfo/users"' in listinfo(host)

        host.run("debconf-set-selections", input=f"{PACKAGE} {PACKAGE}/web_server select apache2\n")
        host.run("dpkg-reconfigure", "-fnoninteractive", PACKAGE)
        host.run("nginx", "-s", "stop")
        start_web_server(host, "apache2")
        served_by_apache = (host.root / NGINX_SITE).is_symlink(), host.run("a2query", "-s", PACKAGE, check=False).returncode
        assert 'href="listinfo/users"' in listinfo(host)
        assert (served_by_nginx, served_by_apache) == ((True, 1), (False, 0))
    finally:
        host.stop()


def test_another_nginx_server_block_for_the_domain_is_named(upstream, built, tmp_path):
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = web_host(tmp_path / "host", upstream.dist, runtime, [DOMAIN], server="nginx")
    try:
        (host.root / "etc/nginx/sites-enabled/aa-other").write_text(
            f"server {{\n\tlisten 443 ssl;\n\tserver_name {DOMAIN};\n"
            f"\tssl_certificate {HOST_TLS_DIR}/{DOMAIN}.pem;\n\tssl_certificate_key {HOST_TLS_DIR}/{DOMAIN}.key;\n}}\n")
        said = host.install_offline(domain_debs(built, DOMAIN)).stderr
        assert f"another nginx server block also serves https://{DOMAIN}" in said, said
    finally:
        host.stop()
