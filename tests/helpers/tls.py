"""A test CA and certificates from it, so that HTTPS is checked with no certificate error ignored."""

import subprocess
from pathlib import Path

HOST_TLS_DIR = "/etc/ssl/mmdeb-test"  # inside a host
CA = f"{HOST_TLS_DIR}/ca.pem"


def openssl(*argv: str) -> None:
    subprocess.run(["openssl", *argv], check=True, capture_output=True)


def make_ca(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj", "/CN=mmdeb test CA",
            "-keyout", str(directory / "ca.key"), "-out", str(directory / "ca.pem"))


def issue(directory: Path, domain: str) -> None:
    """directory/DOMAIN.pem and DOMAIN.key, signed by the CA in directory."""
    key, request, certificate = (directory / f"{domain}.{suffix}" for suffix in ("key", "csr", "pem"))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={domain}", "-keyout", str(key), "-out", str(request))
    (directory / "san.ext").write_text(f"subjectAltName = DNS:{domain}\n")
    openssl("x509", "-req", "-in", str(request), "-CA", str(directory / "ca.pem"), "-CAkey", str(directory / "ca.key"),
            "-CAcreateserial", "-days", "30", "-extfile", str(directory / "san.ext"), "-out", str(certificate))


def preseed_certificates(host, *domains: str) -> None:
    """Certificates for the domains in HOST_TLS_DIR, named in each domain package's debconf before it is installed."""
    directory = host.root / HOST_TLS_DIR.lstrip("/")
    make_ca(directory)
    for domain in domains:
        issue(directory, domain)
    name_certificates(host, *domains)


def name_certificates(host, *domains: str) -> None:
    """The domains' certificates from preseed_certificates in their packages' debconf (again, after a purge)."""
    host.run("debconf-set-selections", input="".join(
        f"mailman-{domain} mailman-{domain}/tls_certificate string {HOST_TLS_DIR}/{domain}.pem\n"
        f"mailman-{domain} mailman-{domain}/tls_key string {HOST_TLS_DIR}/{domain}.key\n" for domain in domains))


def curl_argv(domain: str, path: str, scheme: str = "https") -> list[str]:
    """curl, in the host, of SCHEME://DOMAIN/PATH on the host itself, trusting only the test CA."""
    return ["curl", "--cacert", CA, "--resolve", f"{domain}:443:127.0.0.1", "--resolve", f"{domain}:80:127.0.0.1",
            f"{scheme}://{domain}/{path}"]


def trust_ca_for_chromium(ca: Path, home: Path) -> None:
    """Chromium on Linux trusts the certificates in $HOME/.pki/nssdb."""
    nssdb = home / ".pki/nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-t", "C,,", "-n", "mmdeb test CA", "-i", str(ca)],
                   check=True, capture_output=True)


def served_fingerprint(host, domain: str) -> str:
    """The SHA-256 fingerprint of the certificate the host serves for domain on port 443."""
    return host.run("sh", "-c", f"openssl s_client -connect 127.0.0.1:443 -servername {domain} </dev/null 2>/dev/null"
                    " | openssl x509 -noout -fingerprint -sha256").stdout.strip()


def fingerprint(host, certificate: str) -> str:
    """The SHA-256 fingerprint of the certificate file, a path in the host."""
    return host.run("openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", certificate).stdout.strip()
