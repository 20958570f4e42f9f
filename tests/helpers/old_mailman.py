"""Old Mailman 2.1 trees as tests need them: lists/<name>/ with pickles written as Python 2 does."""

import hashlib
from pathlib import Path

from helpers.py2pickle import Py2Instance, dumps, marshal_dumps

DOMAIN = "lists.example.org"
GERMAN = "Grüße aus Köln"
POLISH = "Zażółć gęślą jaźń"

DEBIAN = "var/lib/mailman"


def add_list(root: Path, name: str, host: str = "lists.example.org", language: str = "en", *, members: int = 2,
             digest_members: int = 0, archived: int = 0, held: int = 0, web_host: str = "", **attributes) -> Path:
    """lists/<name>/ as Mailman 2.1 leaves it: config.pck (cPickle protocol 1), request.pck, the mbox."""
    list_dir = root / "lists" / name
    list_dir.mkdir(parents=True)
    config = {
        b"real_name": name.encode(), b"host_name": host.encode(), b"preferred_language": language.encode(),
        b"web_page_url": f"http://{web_host or host}/mailman/".encode(),
        b"members": {f"m{i}@example.net".encode(): 0 for i in range(members)},
        b"digest_members": {f"d{i}@example.net".encode(): 0 for i in range(digest_members)},
        **{key.encode(): value for key, value in attributes.items()},
    }
    (list_dir / "config.pck").write_bytes(dumps(config))
    requests = {b"version": (0, 1)}  # (IGN, REQUESTS_FILE_SCHEMA_VERSION)
    for request_id in range(1, held + 1):
        requests[request_id] = (1, (1700000000.0, b"x@example.net", b"subject", b"reason", f"heldmsg-{name}-{request_id}.pck".encode(), {}))
    (list_dir / "request.pck").write_bytes(dumps(requests))
    mbox = root / "archives" / "private" / f"{name}.mbox" / f"{name}.mbox"
    mbox.parent.mkdir(parents=True)
    mbox.write_bytes(b"".join(b"From x@example.net Mon Jan  1 00:00:00 2024\nSubject: %d\n\n>From the body\n\n" % i
                              for i in range(archived)))
    return list_dir


def debian_tree(top: Path, site_list: str | None = None) -> Path:
    """A copy of / with Debian's layout: var/lib/mailman and etc/mailman/mm_cfg.py."""
    root = top / DEBIAN
    for directory in ("lists", "archives/private", "data", "qfiles/in", "qfiles/shunt"):
        (root / directory).mkdir(parents=True)
    (top / "etc/mailman").mkdir(parents=True)
    setting = f"MAILMAN_SITE_LIST = '{site_list}'\n" if site_list else ""
    (top / "etc/mailman/mm_cfg.py").write_text(f"from Defaults import *\n{setting}")
    return root


def tree_digest(top: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(top.rglob("*")):
        stat = path.lstat()
        digest.update(f"{path}:{stat.st_mode}:{stat.st_mtime_ns}".encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def py2_message(headers: list[tuple[bytes, bytes]], payload, **extra) -> Py2Instance:
    return Py2Instance("Mailman.Message", "Message", {
        b"_headers": headers, b"_payload": payload, b"_charset": None, b"preamble": extra.get("preamble"),
        b"epilogue": extra.get("epilogue"), b"defects": [], b"_unixfrom": None, b"_default_type": b"text/plain"})


def german_list(root: Path, name: str = "deutsch", base: dict | None = None, **attributes) -> None:
    """A German (iso-8859-1) list with a member, bounce info, a held post, a pending subscription, a digest
    in progress, a template and an archive. base: every other attribute of the config."""
    latin = GERMAN.encode("iso-8859-1")
    member = b"hans@example.de"
    list_dir = add_list(root, name, DOMAIN, "de", members=0, archived=2, held=1)
    (list_dir / "config.pck").write_bytes(dumps({
        **(base or {}), b"real_name": name.encode(), b"host_name": DOMAIN.encode(), b"preferred_language": b"de",
        b"web_page_url": b"http://old.example.org/mailman/", b"description": latin, b"data_version": 112,
        b"members": {member: 0}, b"digest_members": {}, b"usernames": {member: latin},
        b"passwords": {member: b"geheim"}, b"language": {member: b"de"}, b"user_options": {member: 8},
        b"bounce_info": {member: Py2Instance("Mailman.Bouncer", "_BounceInfo", {  # as 2.1's _BounceInfo.__init__ sets
            b"member": member, b"score": 1.0, b"date": (2024, 5, 17), b"noticesleft": 3, b"lastnotice": (1970, 1, 1),
            b"cookie": None})}, **attributes}))
    (root / "data" / f"heldmsg-{name}-1.pck").write_bytes(dumps(py2_message(
        [(b"From", b"x@example.net"), (b"Subject", b"held")], b"Gr\xfc\xdfe\n")))
    (list_dir / "pending.pck").write_bytes(dumps({b"evictions": {b"c00kie": 1.0}, b"c00kie": (b"S", Py2Instance(
        "Mailman.UserDesc", "UserDesc", {b"address": b"neu@example.de", b"fullname": latin, b"language": b"de"}))}))
    (list_dir / "digest.mbox").write_bytes(b"From x Mon Jan  1 00:00:00 2024\n\n" + latin + b"\n")
    (list_dir / "de").mkdir()
    (list_dir / "de/listinfo.html").write_bytes(b"<p>" + latin + b"</p>\n")
    archive = root / "archives/private" / name
    (archive / "database").mkdir(parents=True)
    (archive / "index.html").write_bytes(b"<meta charset=iso-8859-1>" + latin)
    (archive / "pipermail.pck").write_bytes(dumps({b"archives": [b"2024-January"], b"type": latin}))
    (archive / "database/2024-January-article").write_bytes(marshal_dumps({b"<1@x>": dumps(
        Py2Instance("Mailman.Archiver.HyperArch", "Article", {b"subject": latin, b"_lang": b"de"}))}))
    (archive / "database/2024-January-date").write_bytes(marshal_dumps({b"1704067200.0\x00<1@x>": b"<1@x>"}))
