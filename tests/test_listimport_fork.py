"""mmdeb-import against the real fork: installed into a temporary prefix on this host (configure,
make install), it imports crafted old lists, and the fork's own code reads them back.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball); skipped otherwise. No package is built:
the importer's modules and launcher are placed under the prefix as the packages place them.
"""

import grp
import json
import os
import pwd
import pickle
import shutil
import subprocess
import tarfile
from types import SimpleNamespace
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from old_mailman import DOMAIN, GERMAN, POLISH, add_list, debian_tree, german_list, tree_digest
from py2pickle import dumps

from conftest import REAL_TARBALL, real_flavour
from mmdeb.render import environment, importer_files
from mmdeb.upstream import FLAVOURS

pytestmark = pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")
PYTHON = "/usr/bin/python3"


@pytest.fixture(scope="session")
def prefix(tmp_path_factory) -> Path:
    """The fork, configured for DOMAIN and installed into a prefix (about a minute)."""
    top = tmp_path_factory.mktemp("fork")
    with tarfile.open(REAL_TARBALL) as tar:
        tar.extractall(top / "src", filter="tar")
    (source,) = (top / "src").iterdir()
    prefix = top / "prefix"
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    subprocess.run(["./configure", f"--prefix={prefix}", f"--with-python={PYTHON}", f"--with-username={user}",
                    f"--with-groupname={group}", f"--with-mail-gid={group}", f"--with-cgi-gid={group}",
                    f"--with-mailhost={DOMAIN}", f"--with-urlhost={DOMAIN}", "--without-permcheck"],
                   cwd=source, check=True, capture_output=True)
    subprocess.run(["make", "install"], cwd=source, check=True, capture_output=True)
    package = prefix / "pythonlib/mmdeb"
    package.mkdir()
    for path in importer_files():
        shutil.copyfile(path, package / path.name)
    launcher = prefix / "bin/mmdeb-import"
    spec = SimpleNamespace(flavour=FLAVOURS["py3"], domain=SimpleNamespace(name=DOMAIN))
    launcher.write_text(environment().get_template("mmdeb-import.j2").render(spec=spec, mmdeb_version="test"))
    launcher.chmod(0o755)
    return prefix


def py2_form(value):
    """A value of a fork-written config as 2.1 would have pickled it (py2 str for str)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict):
        return {py2_form(key): py2_form(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(py2_form(item) for item in value)
    return value


@pytest.fixture(scope="session")
def skeleton(prefix) -> dict:
    """Every attribute of a list's config.pck (a new list's, made by the fork's newlist), in py2 form."""
    subprocess.run([PYTHON, str(prefix / "bin/newlist"), "-q", "skeleton", "owner@example.org", "pw"],
                   check=True, capture_output=True)
    config = pickle.loads((prefix / "lists/skeleton/config.pck").read_bytes())
    subprocess.run([PYTHON, str(prefix / "bin/rmlist"), "-a", "skeleton"], check=True, capture_output=True)
    return py2_form(config)


def fork(prefix: Path, code: str) -> str:
    """Run code with the fork's python3 and this prefix's Mailman, as its bin/ scripts do."""
    done = subprocess.run([PYTHON, "-c", f"import sys; sys.path.insert(0, '{prefix}/bin'); import paths\n{code}"],
                          capture_output=True, text=True, check=True)
    return done.stdout


@pytest.fixture(scope="session")
def imported(prefix, skeleton, tmp_path_factory):
    old = tmp_path_factory.mktemp("old") / "old"
    root = debian_tree(old)
    german_list(root, base=skeleton)
    polish = add_list(root, "polski", DOMAIN, "pl", members=0)
    member = b"jan@example.pl"
    (polish / "config.pck").write_bytes(dumps({
        **skeleton, b"real_name": b"polski", b"host_name": DOMAIN.encode(), b"preferred_language": b"pl",
        b"web_page_url": b"http://old.example.org/mailman/", b"description": POLISH.encode("iso-8859-2"),
        b"info": POLISH.encode("iso-8859-2"), b"members": {}, b"digest_members": {member: 0},
        b"usernames": {member: POLISH.encode("iso-8859-2")}, b"language": {member: b"pl"},
        b"passwords": {member: b"tajne"}, b"owner": [b"owner@example.pl"], b"data_version": 112}))
    add_list(root, "elsewhere", "lists.example.net")
    before = tree_digest(old)
    first = subprocess.run([str(prefix / "bin/mmdeb-import"), str(old)], capture_output=True, text=True)
    second = subprocess.run([str(prefix / "bin/mmdeb-import"), str(old)], capture_output=True, text=True)
    assert tree_digest(old) == before
    return first, second


def test_the_report(imported):
    first, _ = imported
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:3] == ["LIST\tMEMBERS\tARCHIVED\tHELD\tRESULT", "deutsch\t1\t2\t1\timported", "polski\t1\t0\t0\timported"]
    assert lines[-1].startswith("2 imported, 0 failed")


def test_a_second_run_does_nothing(imported):
    _, second = imported
    assert (second.returncode, second.stdout.splitlines()[1:3]) == (0, [
        "deutsch\t0\t0\t0\tskipped: imported before", "polski\t0\t0\t0\tskipped: imported before"])


def list_members(prefix: Path, *args: str) -> list[str]:
    """bin/list_members -f, its names (which it writes RFC 2047-encoded) decoded."""
    done = subprocess.run([PYTHON, str(prefix / "bin/list_members"), "-f", *args], capture_output=True, text=True, check=True)
    return [str(make_header(decode_header(line))) for line in done.stdout.splitlines()]


def test_the_fork_reads_members_and_umlauts(prefix, imported):
    assert list_members(prefix, "deutsch") == [f"{GERMAN} <hans@example.de>"]
    assert list_members(prefix, "-d", "polski") == [f"{POLISH} <jan@example.pl>"]
    config = subprocess.run([PYTHON, str(prefix / "bin/config_list"), "-o", "-", "polski"], capture_output=True, text=True)
    assert f'description = "{POLISH}"' in config.stdout and f"host_name = '{DOMAIN}'" in config.stdout


def test_the_fork_loads_every_part(prefix, imported):
    result = json.loads(fork(prefix, """
import json
from Mailman import MailList
from Mailman.ListAdmin import readMessage
from Mailman import mm_cfg
m = MailList.MailList('deutsch', lock=1)
try:
    (held,) = m.GetHeldMessageIds()
    message = readMessage(mm_cfg.DATA_DIR + '/' + m.GetRecord(held)[4])
    print(json.dumps({
        'url': m.web_page_url, 'description': m.description, 'password': m.getMemberPassword('hans@example.de'),
        'language': m.getMemberLanguage('hans@example.de'), 'score': m.getBounceInfo('hans@example.de').score,
        'held_subject': message['Subject'], 'pending': m.pend_confirm('c00kie', expunge=False)[1].fullname,
    }))
finally:
    m.Unlock()
"""))
    assert result == {"url": f"http://{DOMAIN}/mailman/", "description": GERMAN, "password": "geheim", "language": "de",
                      "score": 1.0, "held_subject": "held", "pending": GERMAN}


def test_the_archives_and_their_public_link(prefix, imported):
    assert (prefix / "archives/public/deutsch").resolve() == prefix / "archives/private/deutsch"
    mbox = (prefix / "archives/private/deutsch.mbox/deutsch.mbox").read_bytes()
    assert mbox.startswith(b"From ") and mbox.count(b"\nFrom ") == 1

