"""piuparts: install, upgrade from the previous revision, and purge of a domain package."""

import subprocess

import pytest

from helpers.upstreams import DOMAIN, build, common_deb_of, deb_of
from mmdeb.build.builders.chroot import mirror

pytestmark = pytest.mark.chroot

# trixie's systemd, which cron (one of our Recommends) pulls in, makes these with its
# tmpfiles at install and leaves them at purge; bookworm's piuparts does not know them yet.
SYSTEMD_LEFTOVERS = ("/etc/default/locale", "/etc/vconsole.conf", "/root/.ssh/", "/var/cache/private/",
                     "/var/lib/private/", "/var/log/private/", "/var/cache/debconf/tmp.ci/")


def test_piuparts_install_upgrade_purge(built, upstream, tmp_path):
    base = tmp_path / "base.tar.gz"
    # Only the release itself (no -security/-updates), as piuparts' own sources.list has.
    subprocess.run(["mmdebstrap", "--variant=minbase", upstream.dist, str(base), mirror()], check=True, capture_output=True)
    # The previous revision, and mailmen-common, which it depends on, come from a local
    # repository, so piuparts can install them with apt.
    repo = tmp_path / "repo"
    repo.mkdir()
    for deb in (deb_of(built, DOMAIN), common_deb_of(built)):
        (repo / deb.name).write_bytes(deb.read_bytes())
    packages = subprocess.run(["dpkg-scanpackages", "."], cwd=repo, check=True, capture_output=True).stdout
    (repo / "Packages").write_bytes(packages)
    newer = deb_of(build(upstream, tmp_path / "newer", DOMAIN, revision=2, common=False), DOMAIN, revision=2)
    prefix = f"/var/lib/mailmen/{DOMAIN}".replace(".", r"\.")
    result = subprocess.run(
        [
            "piuparts", f"--basetgz={base}", f"--distribution={upstream.dist}", f"--mirror={mirror()}",
            f"--bindmount={repo}", f"--extra-repo=deb [trusted=yes] file://{repo} ./",
            # Purge keeps list data on purpose (lists, archives, data, queues).
            f"--ignore-regex=^{prefix}/(lists|archives|data|qfiles)(/.*)?$",
            f"--ignore-regex=^{prefix}/$", "--ignore-regex=^/var/lib/mailmen/$",
            *(f"--ignore={path}" for path in SYSTEMD_LEFTOVERS),
            str(newer),
        ],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "PASS: Installation, upgrade and purging tests." in result.stdout
