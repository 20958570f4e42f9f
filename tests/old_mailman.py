"""Old Mailman 2.1 trees as tests need them: lists/<name>/ with pickles written as Python 2 does."""

import hashlib
from pathlib import Path

from py2pickle import dumps

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
    requests = {b"next_request_id": held + 1}
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
