"""End to end through the signed repository: install with apt, then a new patch →
`mmdeb rebuild` → `mmdeb publish` → `apt upgrade`, with lists, members, archives and
queued posts kept. Needs the real upstream tarball."""

import shutil
import uuid
from pathlib import Path

import pytest

from helpers.upstreams import DOMAIN, OTHER_DOMAIN, REAL_TARBALL, runtime_packages
from helpers.repository import FIX_MARKER, add_fix, serve
from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, Host, prefix
from mmdeb.cli import main
from mmdeb.upstream.dists import FLAVOURS

pytestmark = [
    pytest.mark.chroot,
    pytest.mark.skipif(not REAL_TARBALL, reason="needs a real Mailman tarball (MMDEB_UPSTREAM_TARBALL)"),
]

def list_host(upstream, tmp_path: Path, repo: Path) -> Host:
    """A started host with Postfix, users alice and bob, and the repository in its sources."""
    runtime = runtime_packages(upstream.flavour, upstream.dist)
    host = Host.create(tmp_path / "host", upstream.dist, ["postfix", "procps", *runtime], MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    host.use_repository(repo, upstream.dist)
    host.start()
    host.run("postconf", "-e", f"myhostname = {HOSTNAME}")
    for user in ("alice", "bob"):
        host.run("useradd", "--create-home", user)
    host.run("postfix", "start")
    return host


def make_lists(host: Host) -> str:
    """A users list with alice and bob in each domain, and one archived post; return its token."""
    for domain in (DOMAIN, OTHER_DOMAIN):
        host.run(f"{prefix(domain)}/bin/newlist", "-q", "users", f"bob@{HOSTNAME}", "listpassword")
        host.run(f"{prefix(domain)}/bin/add_members", "-r", "-", "users", input=f"alice@{HOSTNAME}\nbob@{HOSTNAME}\n")
    archived = uuid.uuid4().hex
    host.send(f"alice@{HOSTNAME}", f"users@{DOMAIN}", f"archived {archived}", user="alice")
    host.wait_for_mail("bob", lambda m: archived in (m["Subject"] or ""))
    return archived


def queue_posts(host: Host) -> list[str]:
    """Stop DOMAIN's runners and send three posts, which wait in its queue."""
    host.run("/etc/init.d/mailmen", "stop", DOMAIN)
    queued = [uuid.uuid4().hex for _ in range(3)]
    for token in queued:
        host.send(f"alice@{HOSTNAME}", f"users@{DOMAIN}", f"queued {token}", user="alice")
    return queued


def check_nothing_lost(host: Host, archived: str, queued: list[str]) -> None:
    for domain in (DOMAIN, OTHER_DOMAIN):
        members = host.run(f"{prefix(domain)}/bin/list_members", "users").stdout.split()
        assert members == [f"alice@{HOSTNAME}", f"bob@{HOSTNAME}"]
    archive = host.root / prefix(DOMAIN).lstrip("/") / "archives/private/users.mbox/users.mbox"
    assert archived in archive.read_text(errors="replace")
    for token in queued:
        host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))


def post_reaches_bob(host: Host) -> None:
    for domain in (DOMAIN, OTHER_DOMAIN):
        token = uuid.uuid4().hex
        host.send(f"alice@{HOSTNAME}", f"users@{domain}", f"post {token}", user="alice")
        host.wait_for_mail("bob", lambda m: token in (m["Subject"] or ""))


def versions(host: Host, *packages: str) -> list[str]:
    return [host.run("dpkg-query", "-W", "-f=${Version}", package).stdout for package in packages]


def test_patch_rebuild_publish_upgrade(upstream, tmp_path):
    patches = tmp_path / "patches"
    shutil.copytree(upstream.patches, patches)
    state, out, repo = tmp_path / "mmdeb.toml", tmp_path / "build", tmp_path / "repo"
    mmdeb = ["--state", str(state)]
    assert main([*mmdeb, "domains", "add", DOMAIN, OTHER_DOMAIN, "--upstream", str(upstream.tarball)]) == 0
    assert main([*mmdeb, "rebuild", "--patches", str(patches), "--out", str(out)]) == 0
    assert main([*mmdeb, "publish", "--repo", str(repo), "--out", str(out)]) == 0

    host = list_host(upstream, tmp_path, repo)
    try:
        serve(repo, host)
        host.run("apt-get", "install", "--yes", f"mailman-{DOMAIN}", f"mailman-{OTHER_DOMAIN}")
        archived = make_lists(host)
        queued = queue_posts(host)

        add_fix(patches, upstream.flavour)
        assert main([*mmdeb, "rebuild", "--patches", str(patches), "--out", str(out)]) == 0
        assert main([*mmdeb, "publish", "--repo", str(repo), "--out", str(out)]) == 0
        serve(repo, host)
        host.run("apt-get", "upgrade", "--yes")

        for domain in (DOMAIN, OTHER_DOMAIN):
            (version,) = versions(host, f"mailman-{domain}")
            assert "-2+deb" in version, version
            assert FIX_MARKER in (host.root / prefix(domain).lstrip("/") / "Mailman/Version.py").read_text()
        check_nothing_lost(host, archived, queued)
    finally:
        host.stop()


def test_switch_to_shared_core_only_fix_and_back(upstream, tmp_path, capsys):
    """prefix → shared by an upgrade; a core-only fix rebuilds and upgrades the core alone;
    shared → prefix again. Lists, members, archives and queued posts survive each step."""
    patches = tmp_path / "patches"
    shutil.copytree(upstream.patches, patches)
    state, out, repo = tmp_path / "mmdeb.toml", tmp_path / "build", tmp_path / "repo"
    mmdeb = ["--state", str(state)]
    rebuild = [*mmdeb, "rebuild", "--patches", str(patches), "--out", str(out)]
    publish = [*mmdeb, "publish", "--repo", str(repo), "--out", str(out)]
    core = FLAVOURS[upstream.flavour].core_package
    domains = (f"mailman-{DOMAIN}", f"mailman-{OTHER_DOMAIN}")
    assert main([*mmdeb, "domains", "add", DOMAIN, OTHER_DOMAIN, "--upstream", str(upstream.tarball)]) == 0
    assert main(rebuild) == 0 and main(publish) == 0

    host = list_host(upstream, tmp_path, repo)
    try:
        serve(repo, host)
        host.run("apt-get", "install", "--yes", *domains)
        archived = make_lists(host)

        assert main([*rebuild, "--mode", "shared"]) == 0 and main(publish) == 0
        serve(repo, host)
        host.run("apt", "upgrade", "--yes")  # apt upgrade installs the new dependency, the core
        assert all("-2+deb" in version for version in versions(host, *domains))
        assert "-1+deb" in versions(host, core)[0]
        assert not (host.root / prefix(DOMAIN).lstrip("/") / "Mailman/Utils.py").exists(), "the code is the core's now"
        check_nothing_lost(host, archived, [])
        post_reaches_bob(host)

        queued = queue_posts(host)
        add_fix(patches, upstream.flavour)  # Mailman/Version.py: the core's code only
        capsys.readouterr()
        assert main(rebuild) == 0
        plan = capsys.readouterr().out
        assert f"rebuild {core} as" in plan and "rebuild mailman-" not in plan, plan
        assert main(publish) == 0
        serve(repo, host)
        host.run("apt", "upgrade", "--yes")
        assert "-2+deb" in versions(host, core)[0]
        assert FIX_MARKER in (host.root / FLAVOURS[upstream.flavour].core_prefix.lstrip("/") / "Mailman/Version.py").read_text()
        check_nothing_lost(host, archived, queued)  # the core's trigger restarted the stopped runners

        assert main([*rebuild, "--mode", "prefix"]) == 0 and main(publish) == 0
        serve(repo, host)
        host.run("apt", "upgrade", "--yes")
        for domain in (DOMAIN, OTHER_DOMAIN):
            assert FIX_MARKER in (host.root / prefix(domain).lstrip("/") / "Mailman/Version.py").read_text()
        check_nothing_lost(host, archived, [])
        post_reaches_bob(host)
    finally:
        host.stop()
