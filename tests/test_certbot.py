"""The README's certbot steps, for real: certbot certonly --webroot against the domain's
webroot, with pebble (Let's Encrypt's test ACME server) validating over http on port 80,
then dpkg-reconfigure with the certificate's paths. Apache serves the new certificate.
Needs the real upstream tarball (the package's postinst), root and the Debian mirror."""

import json

import pytest

from helpers.upstreams import DOMAIN, REAL_TARBALL, domain_debs, runtime_packages
from helpers.e2e_host import prefix, web_host
from helpers.tls import CA, HOST_TLS_DIR, fingerprint, issue, served_fingerprint

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]
PACKAGE = f"mailman-{DOMAIN}"
LIVE = f"/etc/letsencrypt/live/{DOMAIN}"


def test_certbot_webroot_then_dpkg_reconfigure(upstream, built, tmp_path):
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = web_host(tmp_path / "host", upstream.dist, ["certbot", "pebble", *runtime], [], server="apache2")
    try:
        host.install_offline(domain_debs(built, DOMAIN))  # with the snakeoil pair
        # pebble's API over HTTPS with a certificate of the test CA, which certbot is told to trust.
        issue(host.root / HOST_TLS_DIR.lstrip("/"), "localhost")
        (host.root / "etc/pebble.json").write_text(json.dumps({"pebble": {
            "listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000",
            "certificate": f"{HOST_TLS_DIR}/localhost.pem", "privateKey": f"{HOST_TLS_DIR}/localhost.key",
            "httpPort": 80, "tlsPort": 443, "ocspResponderURL": "", "externalAccountBindingRequired": False}}))
        with (host.root / "etc/hosts").open("a") as hosts:
            hosts.write(f"127.0.0.1 {DOMAIN}\n")  # where pebble validates the challenge
        host.run("sh", "-c", "PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 pebble -config /etc/pebble.json "
                 ">/var/log/pebble.log 2>&1 &")
        host.run("sh", "-c", "for i in $(seq 50); do curl -s --cacert %s https://localhost:14000/dir >/dev/null && exit 0;"
                 " sleep 0.2; done; exit 1" % CA)
        host.run("env", f"REQUESTS_CA_BUNDLE={CA}", "certbot", "certonly", "--non-interactive", "--agree-tos",
                 "--register-unsafely-without-email", "--server", "https://localhost:14000/dir",
                 "--webroot", "-w", f"{prefix(DOMAIN)}/webroot", "-d", DOMAIN)
        host.run("debconf-set-selections", input=f"{PACKAGE} {PACKAGE}/tls_certificate string {LIVE}/fullchain.pem\n"
                                                 f"{PACKAGE} {PACKAGE}/tls_key string {LIVE}/privkey.pem\n")
        host.run("dpkg-reconfigure", "-fnoninteractive", PACKAGE)
        served = served_fingerprint(host, DOMAIN)
        issued = fingerprint(host, f"{LIVE}/cert.pem")
        assert served == issued and issued.strip()
    finally:
        host.stop()
