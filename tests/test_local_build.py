"""The local backend: dpkg-buildpackage on the host, with the host's build dependencies."""

import subprocess

import pytest

from mmdeb.cli import main

pytestmark = pytest.mark.slow


def test_local_build_of_the_fixture(fixture_py3, tmp_path):
    args = ["build", "lists.example.org", "--upstream", str(fixture_py3.tarball), "--patches", str(fixture_py3.patches)]
    assert main([*args, "--builder", "local", "--out", str(tmp_path)]) == 0
    (deb,) = (tmp_path / "trixie").glob("mailman-lists.example.org_*_amd64.deb")
    listing = subprocess.run(["dpkg-deb", "--contents", str(deb)], check=True, capture_output=True, text=True).stdout
    assert "-rwxr-sr-x root/list" in listing and "/var/lib/mailmen/lists.example.org/mail/mailman" in listing
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "work dir left behind"
