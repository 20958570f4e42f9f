"""An old Mailman 2 tree: where its installations are, and what their mm_cfg.py says.

Standard library only (and py2data and domains.layout, which are too): `mmdeb import plan`
reads SOURCE with it on the build host, and the import command that the packages ship reads
SOURCE with it on the list host. Nothing here writes.
"""

from __future__ import annotations  # the annotations below on bullseye's Python 3.9

import os
import re
from pathlib import Path, PurePosixPath

from mmdeb.domains.layout import PREFIX_ROOT, SITE_LIST, WAITING_QUEUES, DomainPaths
from mmdeb.importing import py2data

# A directory with lists/ and one of these beside it is a Mailman installation.
MAILMAN_MARKERS = ("archives", "qfiles", "data", "Mailman")
# Debian's own mailman package: its prefix and its mm_cfg.py.
DEBIAN_PREFIX = "/var/lib/mailman"
DEBIAN_MM_CFG = "/etc/mailman/mm_cfg.py"
MAILMEN = PurePosixPath(PREFIX_ROOT).name  # the layout of a tree under PREFIX_ROOT (a copy of it)
MAX_LINKS = 40  # as the kernel's limit, against link loops
SEARCH_DEPTH = 4  # how deep under SOURCE an installation's lists/ is looked for
NOT_SEARCHED = {"lists", "archives", "qfiles", "data", "logs", "locks", "Mailman", "messages", "templates", "spam"}


# Mailman/ListAdmin.py: request types (IGN marks the database's version entry) and that entry's key.
IGN = 0
HELDMSG = 1
REQUESTS_VERSION_KEY = "version"
# A list's pending requests: held posts and (un)subscriptions; confirmations (Mailman/Pending.py).
REQUEST_FILES = ("request.pck", "pending.pck")
# The mmdeb-import option that moves a list whose REQUEST_FILES cannot be read, without what they held.
WITHOUT_UNREADABLE = "--without-unreadable-requests"
# pipermail's page of one message: archives/private/<list>/<period>/000042.html
MESSAGE_PAGE = re.compile(r"^[0-9]{6}\.html$")


def join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


def is_mbox(path: str) -> bool:
    """archives/private/<list>.mbox/<list>.mbox"""
    parts = PurePosixPath(path).parts
    return len(parts) >= 2 and parts[-1].endswith(".mbox") and parts[-2] == parts[-1]


def count_mbox(lines) -> int:
    # Mailman writes each message after a "From " line and escapes body lines as ">From ".
    return sum(1 for line in lines if line.startswith(b"From "))


def private_mbox(root: str, name: str) -> str:
    return join(root, "archives/private", f"{name}.mbox", f"{name}.mbox")


def member_count(config: dict) -> int:
    return len(config.get("members", {})) + len(config.get("digest_members", {}))


def queued_mail(tree, root: str) -> dict[str, int]:
    """queue → the files waiting in it, for the queues of the installation at root that hold any."""
    counts = {queue: len(tree.listdir(join(root, "qfiles", queue))) for queue in WAITING_QUEUES}
    return {queue: count for queue, count in counts.items() if count}


def archived_messages(tree, root: str, name: str) -> int:
    """The messages in the list's mbox; when it has none (emptied, or never kept), the message
    pages of its pipermail archive."""
    in_mbox = tree.mbox_messages(private_mbox(root, name))
    if in_mbox:
        return in_mbox
    archive = join(root, "archives/private", name)
    return sum(1 for period in tree.listdir(archive) if tree.is_dir(join(archive, period))
               for page in tree.listdir(join(archive, period)) if MESSAGE_PAGE.match(page))


def held_files(requests: dict) -> list[str]:
    """The data/ file of each held post in a loaded request.pck."""
    return [value[1][4].decode("ascii", "replace") if isinstance(value[1][4], bytes) else value[1][4]
            for value in requests.values() if isinstance(value, tuple) and value[:1] == (HELDMSG,)]


def held_count(requests: dict) -> int:
    return len(held_files(requests))


def load_dict(data: bytes) -> tuple[dict | None, str | None]:
    """(the dict a Python 2 pickle holds, None), or (None, why it cannot be read)."""
    try:
        value = py2data.loads_pickle(data)
        if not isinstance(value, dict):
            raise ValueError("not a dictionary")
    except Exception as exc:  # a corrupt pickle raises almost anything
        return None, f"{type(exc).__name__}: {exc}"
    return value, None


def read_config(tree, list_dir: str) -> tuple[dict | None, str | None, list[str]]:
    """The list's config from config.pck, or from config.pck.last when config.pck cannot be
    read (as Mailman falls back); the file it came from; why a file was passed over."""
    problems = []
    for name in ("config.pck", "config.pck.last"):
        data = tree.read(join(list_dir, name))
        if data is None:
            problems.append(f"no {name}")
            continue
        config, why = load_dict(data)
        if config is None:
            problems.append(f"{name} unreadable ({why})")
            continue
        return config, name, problems
    return None, None, problems


def unreadable_requests(tree, list_dir: str) -> dict[str, str]:
    """Each of the list's REQUEST_FILES that exists but is not a pickled dict (truncated, not a
    pickle): its path in SOURCE -> why."""
    found = {}
    for name in REQUEST_FILES:
        data = tree.read(join(list_dir, name))
        why = None if data is None else load_dict(data)[1]
        if why is not None:
            found[join(list_dir, name)] = why
    return found


class DirectoryTree:
    """SOURCE as a directory. Links are followed inside it: an absolute one from SOURCE's top
    (a copy of / keeps /etc beside /var), and a path that would leave SOURCE is absent."""

    def __init__(self, top: Path):
        self.top = top.resolve()

    def path(self, rel: str) -> Path | None:
        """Where rel is on this host, or None when it would leave SOURCE."""
        parts, done, hops = list(PurePosixPath(rel).parts), [], 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            path = os.path.join(self.top, *done, part)  # os.path: pathlib is slow for 60,000 files
            if not os.path.islink(path):
                done.append(part)
                continue
            hops += 1
            if hops > MAX_LINKS:
                return None
            target = PurePosixPath(os.readlink(path))
            parts = list(target.parts[1:] if target.is_absolute() else target.parts) + parts
            if target.is_absolute():
                done = []
        return self.top.joinpath(*done)

    def location(self, rel: str) -> PurePosixPath:
        return PurePosixPath(self.top, rel)

    def is_dir(self, rel: str) -> bool:
        path = self.path(rel)
        return path is not None and path.is_dir()

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self.path(rel))) if self.is_dir(rel) else []
        except OSError:  # unreadable: as good as absent for a plan
            return []

    def read(self, rel: str) -> bytes | None:
        path = self.path(rel)
        return path.read_bytes() if path is not None and path.is_file() else None

    def mbox_messages(self, rel: str) -> int | None:
        path = self.path(rel)
        if path is None or not path.is_file():
            return None
        with open(path, "rb") as mbox:
            return count_mbox(mbox)


def find_installations(tree) -> list[str]:
    """The directories under SOURCE that hold lists/ and another of Mailman's directories."""
    found, level = [], [""]
    for _ in range(SEARCH_DEPTH + 1):
        below = []
        for rel in level:
            names = set(tree.listdir(rel))
            if "lists" in names and names & set(MAILMAN_MARKERS) and tree.is_dir(join(rel, "lists")):
                found.append(rel)
                continue
            below += [join(rel, name) for name in sorted(names - NOT_SEARCHED) if tree.is_dir(join(rel, name))]
        level = below
    return found


def layout_of(tree, root: str) -> str:
    if not tree.is_dir(join(root, "Mailman")):
        return "debian"
    return MAILMEN if tree.location(root).parent.name == MAILMEN else "prefix"


def system_root(root: str) -> str | None:
    """SOURCE's copy of /, when the installation sits at its system path in SOURCE
    (Debian's DEBIAN_PREFIX, or a mailmen domain's prefix)."""
    for system_path in (DEBIAN_PREFIX, DomainPaths(PurePosixPath(root).name).prefix):
        system_path = system_path.lstrip("/")
        if root == system_path or root.endswith("/" + system_path):
            return root.removesuffix(system_path).rstrip("/")
    return None


def mm_cfg_of(tree, root: str) -> bytes | None:
    """mm_cfg.py's text: in the prefix (a mailmen domain's links to DomainPaths.mm_cfg), or Debian's DEBIAN_MM_CFG."""
    copy_of_root = system_root(root)
    candidates = [join(root, "Mailman/mm_cfg.py")]
    if copy_of_root is not None:
        candidates += [join(copy_of_root, path.lstrip("/")) for path in (DEBIAN_MM_CFG, DomainPaths(PurePosixPath(root).name).mm_cfg)]
    return next((text for text in map(tree.read, candidates) if text is not None), None)


SITE_LIST_SETTING = re.compile(rb"""^MAILMAN_SITE_LIST\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
ADD_LANGUAGE = re.compile(rb"""^\s*add_language\(\s*['"]([\w-]+)['"]\s*,[^,]*,\s*['"]([\w-]+)['"]""", re.MULTILINE)


def site_settings(mm_cfg: bytes | None) -> tuple[str, dict[str, str]]:
    """The site list's name and the language table, as far as mm_cfg.py's plain assignments say
    (it is read, never run)."""
    charsets = dict(py2data.LANGUAGE_CHARSETS)
    if mm_cfg is None:
        return SITE_LIST, charsets
    match = SITE_LIST_SETTING.search(mm_cfg)
    charsets.update({code.decode(): charset.decode() for code, charset in ADD_LANGUAGE.findall(mm_cfg)})
    return (match.group(1).decode() if match else SITE_LIST), charsets
