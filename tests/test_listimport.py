"""mmdeb-import's pure parts and its file work, with tiny stand-ins for the fork's classes."""

import email
import email.message
import marshal
import os
import pickle
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from helpers.old_mailman import DEBIAN, DOMAIN, GERMAN, POLISH, add_list, debian_tree, german_list, py2_message, tree_digest
from helpers.py2pickle import Py2Instance, dumps

from mmdeb.importing import listimport, py2data
from mmdeb.importing.listimport import (MARKER, ListError, Target, UnreadableRequests, arch_argv, check_perms_argv, failed, fix_url_argv, flatten_message, genaliases_argv, import_lists, list_members_argv, main, report_lines, template_text, to_target)

OTHER_DOMAIN = "lists.example.net"
REQUESTS_FILE_SCHEMA_VERSION = 1  # Mailman/Version.py, 2.1.39 and the fork



class BounceInfo:  # as Mailman.Bouncer._BounceInfo: its state is its instance dict
    pass


class Article:  # as pipermail's Article: it sets its own state
    def __setstate__(self, state):
        self.__dict__.update(state, via_setstate=True)


CLASSES = {("Mailman.Bouncer", "_BounceInfo"): BounceInfo, ("Mailman.UserDesc", "UserDesc"): BounceInfo,
           ("Mailman.Archiver.HyperArch", "Article"): Article}


def stand_in(module: str, name: str, state: dict):
    return py2data.loads_pickle(dumps(Py2Instance(module, name, state)))


def test_stand_ins_become_the_target_classes():
    loaded = {"m@example.net": stand_in("Mailman.Bouncer", "_BounceInfo", {b"score": 1.5})}
    converted, _ = py2data.convert_data(loaded, "en", "config.pck")
    info = to_target(converted, CLASSES)["m@example.net"]
    assert (type(info), info.__dict__) == (BounceInfo, {"score": 1.5})
    article = to_target(py2data.convert_data(stand_in("Mailman.Archiver.HyperArch", "Article", {b"subject": b"x"}),
                                             "en", "db")[0], CLASSES)
    assert article.__dict__ == {"subject": "x", "via_setstate": True}


def test_an_unknown_class_fails_the_list():
    with pytest.raises(ListError, match="holds a Mailman.Foo.Bar"):
        to_target([stand_in("Mailman.Foo", "Bar", {})], CLASSES)


def test_a_py2_multipart_message_is_flattened_as_python_2_wrote_it():
    text = py2_message([(b"Content-Type", b'text/plain; charset="iso-8859-1"'),
                        (b"Content-Transfer-Encoding", b"8bit")], GERMAN.encode("iso-8859-1"))
    outer = py2_message([(b"From", b"hans@example.de"), (b"Subject", b"=?iso-8859-1?q?Gr=FC=DFe?="),
                         (b"Content-Type", b'multipart/mixed;\n\tboundary="XYZ"')], [text], preamble=b"pre", epilogue=b"")
    flat = flatten_message(py2data.loads_pickle(dumps(outer)))
    assert flat == (b'From: hans@example.de\nSubject: =?iso-8859-1?q?Gr=FC=DFe?=\nContent-Type: multipart/mixed;\n'
                    b'\tboundary="XYZ"\n\npre\n--XYZ\nContent-Type: text/plain; charset="iso-8859-1"\n'
                    b'Content-Transfer-Encoding: 8bit\n\n' + GERMAN.encode("iso-8859-1") + b'\n--XYZ--\n')
    (part,) = email.message_from_bytes(flat).get_payload()
    assert part.get_payload(decode=True).decode(part.get_content_charset()) == GERMAN


def test_templates_are_re_encoded_to_utf8():
    assert template_text(POLISH.encode("iso-8859-2"), "iso-8859-2", "t") == (POLISH.encode(), [])
    assert template_text(b"f\xfcr", "utf-8", "t")[1] == ["t: text: not valid utf-8: read as iso-8859-1, one character a byte"]


def test_argv():
    assert genaliases_argv("/usr/bin/python3", "/var/lib/mailmen/d") == ["/usr/bin/python3", "/var/lib/mailmen/d/bin/genaliases", "-q"]
    assert check_perms_argv("/usr/bin/python3", "/var/lib/mailmen/d") == ["/usr/bin/python3", "/var/lib/mailmen/d/bin/check_perms", "-f"]


def target(tmp_path: Path) -> Target:
    """This domain's Mailman at tmp_path/new; mailmen/ holds both domains' (installed) prefixes."""
    new = tmp_path / "new"
    for directory in ("lists", "archives/private", "data"):
        (new / directory).mkdir(parents=True, exist_ok=True)
    for domain in (DOMAIN, OTHER_DOMAIN):
        (tmp_path / "mailmen" / domain).mkdir(parents=True, exist_ok=True)
    return Target(DOMAIN, f"https://{DOMAIN}/mailman/", new / "lists", new / "archives/private", new / "data",
                  tmp_path / "mailmen", CLASSES, email.message.Message, REQUESTS_FILE_SCHEMA_VERSION)


@pytest.fixture
def old(tmp_path) -> Path:
    root = debian_tree(tmp_path / "old")
    german_list(root)
    add_list(root, "elsewhere", OTHER_DOMAIN)
    return tmp_path / "old"


def test_a_list_is_moved_with_every_character(tmp_path, old):
    new = target(tmp_path)
    before = tree_digest(old)
    (result,) = import_lists(old, new)
    assert (result.name, result.members, result.archived, result.held, result.result, result.warnings) == (
        "deutsch", 1, 2, 1, "imported", [])
    assert tree_digest(old) == before
    config = pickle.loads((new.lists / "deutsch/config.pck").read_bytes())
    assert (config["description"], config["usernames"], config["passwords"], config["host_name"]) == (
        GERMAN, {"hans@example.de": GERMAN}, {"hans@example.de": "geheim"}, DOMAIN)
    assert config["bounce_info"]["hans@example.de"].__dict__ == {
        "member": "hans@example.de", "score": 1.0, "date": (2024, 5, 17), "noticesleft": 3, "lastnotice": (1970, 1, 1),
        "cookie": None}
    requests = pickle.loads((new.lists / "deutsch/request.pck").read_bytes())
    assert (requests[1][1][4], requests["version"]) == ("heldmsg-deutsch-1.pck", (0, REQUESTS_FILE_SCHEMA_VERSION))
    held = pickle.loads((new.data / "heldmsg-deutsch-1.pck").read_bytes())
    assert (held["Subject"], held.get_payload(decode=True)) == ("held", b"Gr\xfc\xdfe\n")
    pending = pickle.loads((new.lists / "deutsch/pending.pck").read_bytes())
    assert pending["c00kie"][1].__dict__["fullname"] == GERMAN
    assert (new.lists / "deutsch/de/listinfo.html").read_text() == f"<p>{GERMAN}</p>\n"
    assert (new.lists / "deutsch/digest.mbox").read_bytes() == (old / DEBIAN / "lists/deutsch/digest.mbox").read_bytes()
    for name in ("deutsch.mbox/deutsch.mbox", "deutsch/index.html"):
        assert (new.archives / name).read_bytes() == (old / DEBIAN / "archives/private" / name).read_bytes()
    articles = marshal.loads((new.archives / "deutsch/database/2024-January-article").read_bytes())
    assert pickle.loads(articles["<1@x>"]).__dict__ == {"subject": GERMAN, "_lang": "de", "via_setstate": True}
    assert marshal.loads((new.archives / "deutsch/database/2024-January-date").read_bytes()) == {
        "1704067200.0\x00<1@x>": "<1@x>"}
    assert pickle.loads((new.archives / "deutsch/pipermail.pck").read_bytes())["type"] == GERMAN


def test_a_second_run_does_nothing(tmp_path, old):
    new = target(tmp_path)
    import_lists(old, new)
    before = tree_digest(tmp_path / "new")
    assert [(r.name, r.result) for r in import_lists(old, new)] == [("deutsch", "skipped: imported before")]
    assert tree_digest(tmp_path / "new") == before
    assert (new.lists / "deutsch" / MARKER).exists()


def test_an_existing_list_is_not_overwritten(tmp_path, old):
    new = target(tmp_path)
    (new.lists / "deutsch").mkdir()
    (result,) = import_lists(old, new)
    assert result.result == "failed: a list of that name exists here: remove or rename one of them, run again"
    assert failed(result)
    assert list((new.lists / "deutsch").iterdir()) == []


def test_dry_run_writes_nothing(tmp_path, old):
    new = target(tmp_path)
    before = tree_digest(tmp_path / "new")
    assert [(r.members, r.held, r.result) for r in import_lists(old, new, dry_run=True)] == [(1, 1, "would be imported")]
    assert tree_digest(tmp_path / "new") == before


def test_a_failing_list_is_rolled_back_and_the_others_go_on(tmp_path, old):
    german_list(old / DEBIAN, "kaputt", topics={b"x": Py2Instance("Mailman.Foo", "Bar", {})})
    new = target(tmp_path)
    results = {r.name: r.result for r in import_lists(old, new)}
    assert results == {"deutsch": "imported",
                       "kaputt": "failed, rolled back: holds a Mailman.Foo.Bar, which the import does not know; fix that, "
                                 "run again"}
    assert sorted(p.name for p in new.lists.iterdir()) == ["deutsch"]
    assert sorted(p.name for p in new.archives.iterdir()) == ["deutsch", "deutsch.mbox"]
    assert [p.name for p in new.data.iterdir()] == ["heldmsg-deutsch-1.pck"]


def test_an_existing_archive_is_never_removed(tmp_path, old):
    new = target(tmp_path)
    (new.archives / "deutsch").mkdir()
    (new.archives / "deutsch/keep.html").write_text("mine")
    (result,) = import_lists(old, new)
    assert result.result.startswith("failed, rolled back:") and (new.archives / "deutsch/keep.html").exists()
    assert not (new.lists / "deutsch").exists()


def test_lists_named_and_the_report(tmp_path, old):
    results = import_lists(old, target(tmp_path), names=["deutsch", "nope"])
    assert report_lines(results) == ["LIST\tMEMBERS\tARCHIVED\tHELD\tRESULT", "deutsch\t1\t2\t1\timported",
                                     f"nope\t0\t0\t0\tnot in SOURCE for {DOMAIN}"]


def test_a_list_whose_domain_has_no_package_here_fails_with_the_fix(tmp_path, old):
    new = target(tmp_path)
    (tmp_path / "mailmen" / OTHER_DOMAIN).rmdir()
    results = {r.name: r for r in import_lists(old, new)}
    assert results["elsewhere"].result == (f"no package here: install mailman-{OTHER_DOMAIN}, then run its bin/mmdeb-import")
    assert failed(results["elsewhere"]) and not failed(results["deutsch"])
    assert sorted(p.name for p in new.lists.iterdir()) == ["deutsch"]


def test_source_that_is_not_mailman_is_refused_with_the_fix(tmp_path, capsys):
    (tmp_path / "home/someone").mkdir(parents=True)
    assert main([str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"mmdeb-import: error: {tmp_path} holds no Mailman 2 installation") and "Fix: " in error
    assert len(error.splitlines()) == 1


@pytest.fixture
def small_disk(tmp_path):
    """tmp_path/new/archives/private on a 256 KiB tmpfs."""
    archives = tmp_path / "new/archives/private"
    archives.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "mmdeb-test", str(archives)], check=True)
    yield archives
    subprocess.run(["umount", str(archives)], check=True)


def test_no_space_while_copying_archives_rolls_the_list_back(tmp_path, old, small_disk):
    add_list(old / DEBIAN, "gross", DOMAIN, archived=20_000)  # a 0.9 MB mbox
    new = target(tmp_path)
    results = {r.name: r.result for r in import_lists(old, new)}
    mbox = "archives/private/gross.mbox/gross.mbox"
    assert results["gross"] == (f"failed, rolled back: [Errno 28] No space left on device: '{old / DEBIAN / mbox}' "
                                f"-> '{tmp_path / 'new' / mbox}'; fix that, run again")
    assert results["deutsch"] == "imported"
    assert sorted(p.name for p in new.lists.iterdir()) == ["deutsch"]
    assert sorted(p.name for p in small_disk.iterdir()) == ["deutsch", "deutsch.mbox"]


def test_what_is_imported_belongs_to_the_list_data_group_and_is_group_writable(tmp_path, old):
    # The old host's copy keeps its ids and modes (here: no group write, no setgid); the new
    # Mailman's runners write to the archive as list, its group.
    for path in [old, *old.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    new = target(tmp_path)
    group = 1  # any group but root's, standing for list
    for directory in (new.lists, new.archives, new.data):
        os.chown(directory, -1, group)
    assert [r.result for r in import_lists(old, new)] == ["imported"]
    imported = [path for top in (new.lists, new.archives, new.data) for path in top.rglob("*")]
    assert {path.stat().st_gid for path in imported} == {group}
    assert all(path.stat().st_mode & 0o2770 == 0o2770 for path in imported if path.is_dir())
    assert all(path.stat().st_mode & 0o660 == 0o660 for path in imported if path.is_file())


def test_archive_pages_missing_from_source_are_rebuilt_from_the_mbox(tmp_path, old):
    add_list(old / DEBIAN, "nurmbox", DOMAIN, archived=3)  # an mbox, no pipermail directory
    rebuilt = []
    new = replace(target(tmp_path), rebuild_archive=rebuilt.append)
    results = {r.name: r for r in import_lists(old, new)}
    assert rebuilt == ["nurmbox"]  # not deutsch, whose pages are copied
    assert results["nurmbox"].warnings == ["SOURCE has the mbox but no archive pages: rebuilt from the mbox"]


def test_argv_of_bin_arch():
    assert arch_argv("/usr/bin/python3", "/var/lib/mailmen/d", "users") == [
        "/usr/bin/python3", "/var/lib/mailmen/d/bin/arch", "--quiet", "users"]


def test_gnu_target_gets_every_file_byte_for_byte(tmp_path, old):
    finished = []
    new = replace(target(tmp_path), convert=False, finish=lambda name: finished.append(name) or 1)
    (result,) = import_lists(old, new)
    assert (result.result, result.members, finished) == ("imported", 1, ["deutsch"])
    source = old / DEBIAN
    for name in ("lists/deutsch/config.pck", "lists/deutsch/request.pck", "lists/deutsch/pending.pck",
                 "lists/deutsch/de/listinfo.html", "data/heldmsg-deutsch-1.pck",
                 "archives/private/deutsch/pipermail.pck", "archives/private/deutsch/database/2024-January-article"):
        copied = {"lists": new.lists, "data": new.data, "archives": new.archives.parent}[name.split("/")[0]]
        assert (copied / name.split("/", 1)[1]).read_bytes() == (source / name).read_bytes(), name


def test_argv_of_the_gnu_scripts():
    prefix = "/var/lib/mailmen/d"
    assert fix_url_argv("/usr/bin/python2.7", prefix, "users", "d") == [
        "/usr/bin/python2.7", f"{prefix}/bin/withlist", "-q", "-l", "-r", "fix_url", "users", "-u", "d"]
    assert list_members_argv("/usr/bin/python2.7", prefix, "users") == ["/usr/bin/python2.7", f"{prefix}/bin/list_members", "users"]


def test_an_unreadable_config_is_taken_from_config_pck_last_and_said(tmp_path, old):
    lists = old / DEBIAN / "lists/deutsch"
    (lists / "config.pck.last").write_bytes((lists / "config.pck").read_bytes())
    (lists / "config.pck").write_bytes(b"\x80garbage")
    (result,) = import_lists(old, target(tmp_path))
    assert result.result == "imported"
    assert result.warnings[0].startswith("config.pck unreadable (") and result.warnings[0].endswith(
        "): imported from config.pck.last")


def test_an_unreadable_config_without_config_pck_last_fails_the_list(tmp_path, old):
    (old / DEBIAN / "lists/deutsch/config.pck").write_bytes(b"\x80garbage")
    new = target(tmp_path)
    (result,) = import_lists(old, new)
    assert result.result.startswith("failed: config.pck unreadable (") and result.result.endswith("and no config.pck.last")
    assert list(new.lists.iterdir()) == []


def test_mail_waiting_in_the_old_queues_is_refused_with_the_fix(tmp_path, old, capsys):
    (old / DEBIAN / "qfiles/in/1700000000.1+abc.pck").write_bytes(b"")
    assert main([str(old)]) == 1
    error = capsys.readouterr().err
    assert error == (f"mmdeb-import: error: mail waits in SOURCE's queues, which the import does not move ({DEBIAN}: "
                     "in 1). Fix: let the old Mailman drain qfiles/ and copy it again, or pass --without-queued-mail\n")


@pytest.mark.parametrize("old_requests", [None, {}], ids=["never-opened", "empty"])
def test_request_pck_without_held_posts_is_what_the_fork_writes(tmp_path, old, old_requests):
    # 2.1 writes no request.pck for a list it never opened the database of; the fork takes a
    # database without its version entry for a broken one (admindb, checkdbs and holding fail).
    request_pck = add_list(old / DEBIAN, "ruhig", DOMAIN) / "request.pck"
    if old_requests is None:
        request_pck.unlink()
    else:
        request_pck.write_bytes(dumps(old_requests))
    new = target(tmp_path)
    assert {r.name: r.result for r in import_lists(old, new)}["ruhig"] == "imported"
    assert pickle.loads((new.lists / "ruhig/request.pck").read_bytes()) == {"version": (0, REQUESTS_FILE_SCHEMA_VERSION)}


def test_archived_counts_the_archive_pages_when_the_mbox_is_empty(tmp_path, old):
    mbox = old / DEBIAN / "archives/private/deutsch.mbox/deutsch.mbox"
    mbox.write_bytes(b"")
    pages = old / DEBIAN / "archives/private/deutsch"
    for page in ("2024-January/000000.html", "2024-January/000001.html", "2024-February/000002.html"):
        (pages / page).parent.mkdir(exist_ok=True)
        (pages / page).write_text("<html>")
    (pages / "2024-January/index.html").write_text("<html>")
    (result,) = import_lists(old, target(tmp_path), dry_run=True)
    assert result.archived == 3


def break_requests(root: Path, name: str, file: str, data: bytes) -> None:
    (root / "lists" / name / file).write_bytes(data)


UNREADABLE = {"truncated": lambda data: data[:len(data) // 2], "not-a-pickle": lambda data: b"<html>oops</html>\n"}


@pytest.mark.parametrize("file", ["request.pck", "pending.pck"])
@pytest.mark.parametrize("damage", UNREADABLE.values(), ids=UNREADABLE.keys())
def test_unreadable_requests_stop_the_import_before_anything_is_written(tmp_path, old, file, damage):
    add_list(old / DEBIAN, "heil", DOMAIN)  # a sound list: it is not imported either
    path = old / DEBIAN / "lists/deutsch" / file
    path.write_bytes(damage(path.read_bytes()))
    new = target(tmp_path)
    before = tree_digest(tmp_path / "new")
    with pytest.raises(UnreadableRequests) as caught:
        import_lists(old, new)
    assert list(caught.value.files) == [f"{DEBIAN}/lists/deutsch/{file}"]
    assert tree_digest(tmp_path / "new") == before


def test_unreadable_requests_are_refused_with_the_file_and_the_fix(tmp_path, old, capsys, monkeypatch):
    monkeypatch.setattr(listimport, "mailman_target", lambda: (target(tmp_path), "python3", str(tmp_path / "new")))
    (old / DEBIAN / "lists/deutsch/pending.pck").write_bytes(b"")
    assert main([str(old)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"mmdeb-import: error: nothing imported: these files of SOURCE cannot be read ({old / DEBIAN}"
                            "/lists/deutsch/pending.pck: EOFError: ") and error.endswith(
        "Fix: restore them from a backup and copy again, or pass --without-unreadable-requests to move their lists "
        "without the requests they held\n")
    assert len(error.splitlines()) == 1


def test_a_list_imported_before_does_not_stop_the_import(tmp_path, old):
    new = target(tmp_path)
    import_lists(old, new)
    (old / DEBIAN / "lists/deutsch/request.pck").write_bytes(b"junk")
    assert [r.result for r in import_lists(old, new)] == ["skipped: imported before"]


@pytest.mark.parametrize("convert", [True, False], ids=["py3", "gnu"])
def test_without_unreadable_requests_the_list_moves_without_them(tmp_path, old, convert):
    lists = old / DEBIAN / "lists/deutsch"
    (lists / "request.pck").write_bytes((lists / "request.pck").read_bytes()[:-5])
    (lists / "pending.pck").write_bytes(b"not a pickle")
    new = replace(target(tmp_path), convert=convert)
    (result,) = import_lists(old, new, without_unreadable=True)
    assert (result.result, result.held) == ("imported", 0)
    assert [warning.split(" (")[0] for warning in result.warnings] == [
        f"{DEBIAN}/lists/deutsch/request.pck unreadable", f"{DEBIAN}/lists/deutsch/pending.pck unreadable"]
    assert result.warnings[0].endswith("): moved without the requests it held (--without-unreadable-requests)")
    assert not (new.lists / "deutsch/pending.pck").exists() and list(new.data.iterdir()) == []
    if convert:
        assert pickle.loads((new.lists / "deutsch/request.pck").read_bytes()) == {
            "version": (0, REQUESTS_FILE_SCHEMA_VERSION)}
    else:  # GNU 2.1 starts a new database where there is none
        assert not (new.lists / "deutsch/request.pck").exists()


@pytest.mark.parametrize("source, why", [("missing", "does not exist"), ("file", "is not a directory")])
def test_source_that_is_no_directory_says_so(tmp_path, capsys, source, why):
    (tmp_path / "file").write_text("hello")
    assert main([str(tmp_path / source)]) == 1
    error = capsys.readouterr().err
    assert error.startswith(f"mmdeb-import: error: {tmp_path / source} {why}. Fix: ") and len(error.splitlines()) == 1


def test_a_string_of_mixed_charsets_is_imported_readable_and_reported(tmp_path, old):
    german_list(old / DEBIAN, "gemischt", info="Für Freunde von ".encode("iso-8859-1") + "café".encode("utf-8"))
    new = target(tmp_path)
    results = {r.name: r for r in import_lists(old, new)}
    assert pickle.loads((new.lists / "gemischt/config.pck").read_bytes())["info"] == "Für Freunde von café"
    assert results["gemischt"].warnings == [
        f"{DEBIAN}/lists/gemischt/config.pck: info: mixed charsets: runs of UTF-8 read as UTF-8, the rest as iso-8859-1: "
        "'Für Freunde von café'"]
