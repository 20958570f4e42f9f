"""End to end through the signed repository: install with apt, then a new patch →
`mmdeb rebuild` → `mmdeb publish` → `apt upgrade`, with lists, members, archives and
queued posts kept. Needs the real upstream tarball."""

import shutil
import uuid

import pytest

from conftest import DOMAIN, OTHER_DOMAIN, REAL_TARBALL
from e2e_host import HOSTNAME, MTA_DEBCONF, Host, prefix
from mmdeb.cli import main
from mmdeb.repo import KEYRING
from mmdeb.upstream import FLAVOURS

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

FIX_MARKER = "MMDEB_E2E_SECURITY_FIX = True"


def security_fix() -> str:
    """A stand-in fix: one line added after Mailman/Version.py's copyright line (both flavours)."""
    return (
        "Description: Stand-in for a security fix, to check that an upgrade brings it\n"
        "--- a/Mailman/Version.py\n"
        "+++ b/Mailman/Version.py\n"
        "@@ -1,2 +1,3 @@\n"
        " # Copyright (C) 1998-2018 by the Free Software Foundation, Inc.\n"
        f"+{FIX_MARKER}\n"
        " #\n"
    )


def test_patch_rebuild_publish_upgrade(upstream, tmp_path):
    patches = tmp_path / "patches"
    shutil.copytree(upstream.patches, patches)
    state, out, repo = tmp_path / "mmdeb.toml", tmp_path / "build", tmp_path / "repo"
    mmdeb = ["--state", str(state)]
    assert main([*mmdeb, "domains", "add", DOMAIN, OTHER_DOMAIN, "--upstream", str(upstream.tarball)]) == 0
    assert main([*mmdeb, "rebuild", "--patches", str(patches), "--out", str(out)]) == 0
    assert main([*mmdeb, "publish", "--repo", str(repo), "--out", str(out)]) == 0

    runtime = FLAVOURS[upstream.flavour].depends_for(upstream.dist)
    host = Host.create(tmp_path / "host", upstream.dist, ["postfix", "procps", *runtime], MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    # The host sees only the published tree, as a web server would serve it.
    shutil.copytree((repo / "current").resolve(), host.root / "srv/repo")
    shutil.copy(repo / "current" / KEYRING, host.root / "usr/share/keyrings" / KEYRING)
    (host.root / "etc/apt/sources.list.d/mmdeb.sources").write_text(
        f"Types: deb\nURIs: file:/srv/repo\nSuites: {upstream.dist}\nComponents: main\n"
        f"Signed-By: /usr/share/keyrings/{KEYRING}\n")
    host.start()
    try:
        host.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        for user in ("alice", "bob"):
            host.run("useradd", "--create-home", user)
        host.run("postfix", "start")
        # Only our repository is reachable in the namespace; dependencies are already in the host.
        host.run("apt-get", "-o", "APT::Sandbox::User=root", "update")
        host.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}", f"mailman-{OTHER_DOMAIN}")
        for domain in (DOMAIN, OTHER_DOMAIN):
            host.run(f"{prefix(domain)}/bin/newlist", "-q", "users", f"bob@{HOSTNAME}", "listpassword")
            host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=f"alice@{HOSTNAME}\nbob@{HOSTNAME}\n")
        archived = uuid.uuid4().hex
        host.send(f"alice@{HOSTNAME}", f"users@{DOMAIN}", f"archived {archived}", user="alice")
        host.wait_for_mail("bob", lambda m: archived in (m["Subject"] or ""))

        host.run(f"/etc/init.d/mailman-{DOMAIN}", "stop")
        queued = [uuid.uuid4().hex for _ in range(3)]
        for token in queued:
            host.send(f"alice@{HOSTNAME}", f"users@{DOMAIN}", f"queued {token}", user="alice")

        (patches / upstream.flavour / "e2e-security-fix.patch").write_text(security_fix())
        with open(patches / upstream.flavour / "series", "a") as series:
            series.write("e2e-security-fix.patch\n")
        assert main([*mmdeb, "rebuild", "--patches", str(patches), "--out", str(out)]) == 0
        assert main([*mmdeb, "publish", "--repo", str(repo), "--out", str(out)]) == 0
        shutil.rmtree(host.root / "srv/repo")
        shutil.copytree((repo / "current").resolve(), host.root / "srv/repo")

        host.run("apt-get", "-o", "APT::Sandbox::User=root", "update")
        host.run("apt-get", "upgrade", "--yes")

        for domain in (DOMAIN, OTHER_DOMAIN):
            version = host.run("dpkg-query", "-W", "-f=${Version}", f"mailman-{domain}").stdout
            assert "-2+deb" in version, version
            assert FIX_MARKER in (host.root / prefix(domain).lstrip("/") / "Mailman/Version.py").read_text()
            members = host.run(f"{prefix(domain)}/bin/list_members", "users").stdout.split()
            assert members == [f"alice@{HOSTNAME}", f"bob@{HOSTNAME}"]
        archive = host.root / prefix(DOMAIN).lstrip("/") / "archives/private/users.mbox/users.mbox"
        assert archived in archive.read_text(errors="replace")
        for token in queued:
            host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))
    finally:
        host.stop()
