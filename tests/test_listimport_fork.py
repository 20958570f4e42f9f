"""mmdeb-import against the real fork: installed into a temporary prefix on this host (configure,
make install), it imports crafted old lists, and the fork's own code reads them back.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball); skipped otherwise. No package is built:
the importer's modules and launcher are placed under the prefix as the packages place them.
"""

import json
import subprocess
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from helpers.old_mailman import DOMAIN, GERMAN, POLISH, add_list, debian_tree, german_list, tree_digest
from helpers.py2pickle import dumps

from helpers.upstreams import REAL_TARBALL, real_flavour
from helpers.fork_prefix import PYTHON, fork_python, install_fork, skeleton_config

pytestmark = [pytest.mark.slow,  # compiles and installs the fork
              pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")]


@pytest.fixture(scope="session")
def prefix(tmp_path_factory) -> Path:
    return install_fork(Path(REAL_TARBALL), tmp_path_factory.mktemp("fork"), DOMAIN)


@pytest.fixture(scope="session")
def skeleton(prefix) -> dict:
    return skeleton_config(prefix)


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
    (polish / "request.pck").unlink()  # as 2.1 leaves a list whose requests database it never opened
    (add_list(root, "nurmbox", DOMAIN, archived=2) / "config.pck").write_bytes(dumps({
        **skeleton, b"real_name": b"nurmbox", b"host_name": DOMAIN.encode(), b"data_version": 112}))
    add_list(root, "elsewhere", "lists.example.net")
    (prefix.parent / "lists.example.net").mkdir(exist_ok=True)  # its package is installed: its own import's list
    before = tree_digest(old)
    first = subprocess.run([str(prefix / "bin/mmdeb-import"), str(old)], capture_output=True, text=True)
    second = subprocess.run([str(prefix / "bin/mmdeb-import"), str(old)], capture_output=True, text=True)
    assert tree_digest(old) == before
    return first, second


def test_the_report(imported):
    first, _ = imported
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[:5] == ["LIST\tMEMBERS\tARCHIVED\tHELD\tRESULT", "deutsch\t1\t2\t1\timported", "nurmbox\t0\t2\t0\timported",
                         "  ! SOURCE has the mbox but no archive pages: rebuilt from the mbox", "polski\t1\t0\t0\timported"]
    assert lines[-1].startswith("3 imported, 0 failed")


def test_a_second_run_does_nothing(imported):
    _, second = imported
    assert (second.returncode, second.stdout.splitlines()[1:4]) == (0, [
        "deutsch\t0\t0\t0\tskipped: imported before", "nurmbox\t0\t0\t0\tskipped: imported before",
        "polski\t0\t0\t0\tskipped: imported before"])


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
    result = json.loads(fork_python(prefix, """
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



def test_archive_pages_missing_from_source_are_rebuilt_from_the_mbox(prefix, imported):
    months = json.loads(fork_python(prefix, """
import json
from Mailman import MailList
from Mailman.Archiver.HyperArch import HyperArchive
archive = HyperArchive(MailList.MailList('nurmbox', lock=0))
print(json.dumps({month: archive.database.numArticles(month) for month in archive.archives}))
"""))
    assert sum(months.values()) == 2  # in the month they are archived: the crafted posts have no Date
    assert len(list((prefix / "archives/private/nurmbox").glob("*/00000[01].html"))) == 2


def test_lists_without_held_posts_open_their_requests(prefix, imported):
    # The fork raises for a request.pck without its version entry: admindb, checkdbs and holding fail.
    counts = json.loads(fork_python(prefix, """
import json
from Mailman import MailList
counts = {}
for name in ('polski', 'nurmbox'):
    m = MailList.MailList(name, lock=1)
    try:
        counts[name] = [m.NumRequestsPending(), m.GetHeldMessageIds()]
    finally:
        m.Unlock()
print(json.dumps(counts))
"""))
    assert counts == {"polski": [0, []], "nurmbox": [0, []]}


def test_checkdbs_runs_clean(prefix, imported):
    done = subprocess.run([PYTHON, str(prefix / "cron/checkdbs")], capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (0, "")


def test_a_non_member_post_is_held(prefix, imported):
    post = f"From: fremder@example.com\nTo: polski@{DOMAIN}\nSubject: nie jestem\nMessage-ID: <held@x>\n\nhej\n"
    subprocess.run([PYTHON, str(prefix / "bin/inject"), "-l", "polski"], input=post, text=True, check=True)
    subprocess.run([PYTHON, str(prefix / "bin/qrunner"), "-r", "Incoming", "-o"], check=True, capture_output=True)
    held = json.loads(fork_python(prefix, """
import json
from Mailman import MailList
m = MailList.MailList('polski', lock=1)
try:
    print(json.dumps([m.GetRecord(i)[1] for i in m.GetHeldMessageIds()]))
finally:
    m.Unlock()
"""))
    assert held == ["fremder@example.com"]
    assert list((prefix / "qfiles/shunt").iterdir()) == []


def test_unreadable_requests_stop_the_import_or_are_left_behind(prefix, skeleton, imported, tmp_path):
    old = tmp_path / "old"
    list_dir = add_list(debian_tree(old), "kaputt", DOMAIN)
    (list_dir / "config.pck").write_bytes(dumps({
        **skeleton, b"real_name": b"kaputt", b"host_name": DOMAIN.encode(), b"data_version": 112}))
    (list_dir / "pending.pck").write_bytes(b"\x80\x02}q")  # truncated
    refused = subprocess.run([str(prefix / "bin/mmdeb-import"), str(old)], capture_output=True, text=True)
    assert refused.returncode == 1 and "pending.pck: " in refused.stderr and not (prefix / "lists/kaputt").exists()
    done = subprocess.run([str(prefix / "bin/mmdeb-import"), "--without-unreadable-requests", str(old)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kaputt\t0\t0\t0\timported" in done.stdout.splitlines()
    assert fork_python(prefix, """
from Mailman import MailList
m = MailList.MailList('kaputt', lock=1)
try:
    print(m.NumRequestsPending(), m.pend_confirm('c00kie', expunge=False))
finally:
    m.Unlock()
""") == "0 None\n"
