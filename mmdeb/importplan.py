"""`mmdeb import plan SOURCE`: what an old Mailman 2 tree holds, list by list, and what needs a decision.

SOURCE is a directory or a tarball of one: Debian's layout (var/lib/mailman with lists/,
archives/, qfiles/, data/, and etc/mailman/mm_cfg.py), a prefix install (usr/local/mailman,
with Mailman/ beside lists/) or mailmen's per-domain trees (var/lib/mailmen/<domain>).
Nothing in SOURCE is written; a tarball is read in one pass, never extracted.
"""

import os
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from mmdeb import py2data
from mmdeb.domain import Domain
from mmdeb.errors import MmdebError
from mmdeb.state import State

# The queues whose files are mail not yet handled (Mailman/Defaults.py's *QUEUE_DIR).
QUEUES = ("in", "out", "virgin", "bounces", "commands", "archive", "news", "retry", "shunt")
# A directory with lists/ and one of these beside it is a Mailman installation.
MAILMAN_MARKERS = ("archives", "qfiles", "data", "Mailman")
# The site list every domain package creates (debian-templates/postinst.j2).
TARGET_SITE_LIST = "mailman"
DEFAULT_SITE_LIST = "mailman"  # Mailman's MAILMAN_SITE_LIST
REQUEST_HELDMSG = 1  # Mailman/ListAdmin.py
# Files the plan reads whole; every other file is only listed (and mboxes counted).
READ_WHOLE = {"config.pck", "config.pck.last", "request.pck", "mm_cfg.py"}
MAX_LINKS = 40  # as the kernel's limit, against link loops
SEARCH_DEPTH = 4  # how deep under SOURCE an installation's lists/ is looked for
NOT_SEARCHED = {"lists", "archives", "qfiles", "data", "logs", "locks", "Mailman", "messages", "templates", "spam"}


def is_mbox(path: str) -> bool:
    """archives/private/<list>.mbox/<list>.mbox"""
    parts = PurePosixPath(path).parts
    return len(parts) >= 2 and parts[-1].endswith(".mbox") and parts[-2] == parts[-1]


def count_mbox(lines) -> int:
    # Mailman writes each message after a "From " line and escapes body lines as ">From ".
    return sum(1 for line in lines if line.startswith(b"From "))


class DirectoryTree:
    """SOURCE as a directory. Links are followed inside it: an absolute one from SOURCE's top
    (a copy of / keeps /etc beside /var), and a path that would leave SOURCE is absent."""

    def __init__(self, top: Path):
        self.top = top.resolve()

    def _path(self, rel: str) -> Path | None:
        parts, done, hops = list(PurePosixPath(rel).parts), [], 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if not done:
                    return None
                done.pop()
                continue
            path = self.top.joinpath(*done, part)
            if not path.is_symlink():
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
        path = self._path(rel)
        return path is not None and path.is_dir()

    def listdir(self, rel: str) -> list[str]:
        try:
            return sorted(os.listdir(self._path(rel))) if self.is_dir(rel) else []
        except OSError:  # unreadable: as good as absent for a plan
            return []

    def read(self, rel: str) -> bytes | None:
        path = self._path(rel)
        return path.read_bytes() if path is not None and path.is_file() else None

    def mbox_messages(self, rel: str) -> int | None:
        path = self._path(rel)
        if path is None or not path.is_file():
            return None
        with open(path, "rb") as mbox:
            return count_mbox(mbox)


class TarTree:
    """SOURCE as a tarball, read once: the names, the small files the plan reads, the mbox counts."""

    def __init__(self, tarball: Path):
        self.dirs: set[str] = {""}
        self.files: dict[str, bytes | None] = {}
        self.mboxes: dict[str, int] = {}
        links: dict[str, str] = {}  # link → its target, relative to the tarball's top
        try:
            with tarfile.open(tarball, "r|*") as tar:
                for member in tar:
                    name = os.path.normpath(member.name.lstrip("/")).removeprefix("./")
                    if name in (".", "") or name.startswith(".."):
                        continue
                    self.dirs.update(str(parent) for parent in PurePosixPath(name).parents)
                    if member.isdir():
                        self.dirs.add(name)
                    elif member.issym():
                        # An absolute target is taken inside the tarball (a copy of / keeps /etc beside /var).
                        target = member.linkname
                        links[name] = target.lstrip("/") if target.startswith("/") else str(PurePosixPath(name).parent / target)
                    elif member.islnk():
                        links[name] = member.linkname
                    elif member.isfile():
                        self.files[name] = self._take(tar, member, name)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise MmdebError(f"cannot read the tarball {tarball} ({exc})", "give a readable tar archive or a directory")
        self.dirs = {"" if name == "." else name for name in self.dirs}
        for name, target in links.items():
            self._link(name, target)

    def _take(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str) -> bytes | None:
        if PurePosixPath(name).name in READ_WHOLE:
            return tar.extractfile(member).read()
        if is_mbox(name):
            self.mboxes[name] = count_mbox(tar.extractfile(member))
        return None

    def _link(self, name: str, target: str) -> None:
        """name shows what target holds: a file, or a directory and everything below it."""
        target = os.path.normpath(target)
        for index in (self.files, self.mboxes):
            if target in index:
                index[name] = index[target]
            for path in [path for path in index if path.startswith(target + "/")]:
                index[name + path[len(target):]] = index[path]
        if target in self.dirs:
            self.dirs.update(name + path[len(target):] for path in list(self.dirs)
                             if path == target or path.startswith(target + "/"))

    def location(self, rel: str) -> PurePosixPath:
        return PurePosixPath("/", rel)

    def is_dir(self, rel: str) -> bool:
        return rel in self.dirs

    def listdir(self, rel: str) -> list[str]:
        prefix = rel + "/" if rel else ""
        names = {path[len(prefix):].split("/")[0] for path in [*self.dirs, *self.files] if path.startswith(prefix) and path != rel}
        return sorted(name for name in names if name)

    def read(self, rel: str) -> bytes | None:
        return self.files.get(rel)

    def mbox_messages(self, rel: str) -> int | None:
        return self.mboxes.get(rel)


def open_source(source: Path):
    if source.is_dir():
        return DirectoryTree(source)
    if source.is_file():
        return TarTree(source)
    raise MmdebError(f"{source} does not exist", "give the old Mailman's directory (such as /var/lib/mailman) or a tarball of it")


def join(*parts: str) -> str:
    return "/".join(part for part in parts if part)


@dataclass
class ListPlan:
    name: str
    installation: str  # the Mailman root in SOURCE that holds the list
    domain: str = ""
    package: str = ""
    language: str = ""
    charset: str = ""
    members: int = 0
    archived: int = 0
    held: int = 0
    flags: list[str] = field(default_factory=list)  # what needs a decision
    moved: bool = True  # False for the old site list
    error: str = ""  # why the list cannot be imported at all


@dataclass
class Installation:
    root: str  # relative to SOURCE; "" is SOURCE itself
    layout: str  # debian, prefix or mailmen
    site_list: str
    queued: dict[str, int]  # queue → files waiting in it


@dataclass
class ImportPlan:
    source: str
    installations: list[Installation]
    lists: list[ListPlan]
    notes: list[str]


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
    return "mailmen" if tree.location(root).parent.name == "mailmen" else "prefix"


def etc_of(root: str) -> str | None:
    """SOURCE's copy of /etc, when the installation sits at its system path in SOURCE
    (var/lib/mailman or var/lib/mailmen/<domain>, as in a copy of /)."""
    for system_path in ("var/lib/mailman", f"var/lib/mailmen/{PurePosixPath(root).name}"):
        if root == system_path or root.endswith("/" + system_path):
            return join(root.removesuffix(system_path).rstrip("/"), "etc")
    return None


def mm_cfg_of(tree, root: str) -> bytes | None:
    """mm_cfg.py's text: in the prefix (mailmen links it to /etc/mailmen/<domain>), or Debian's /etc/mailman."""
    etc = etc_of(root)
    candidates = [join(root, "Mailman/mm_cfg.py")]
    if etc is not None:
        candidates += [join(etc, "mailman/mm_cfg.py"), join(etc, "mailmen", PurePosixPath(root).name, "mm_cfg.py")]
    return next((text for text in map(tree.read, candidates) if text is not None), None)


SITE_LIST_SETTING = re.compile(rb"""^MAILMAN_SITE_LIST\s*=\s*['"]([^'"]+)['"]""", re.MULTILINE)
ADD_LANGUAGE = re.compile(rb"""^\s*add_language\(\s*['"]([\w-]+)['"]\s*,[^,]*,\s*['"]([\w-]+)['"]""", re.MULTILINE)


def site_settings(mm_cfg: bytes | None) -> tuple[str, dict[str, str]]:
    """The site list's name and the language table, as far as mm_cfg.py's plain assignments say
    (it is read, never run)."""
    charsets = dict(py2data.LANGUAGE_CHARSETS)
    if mm_cfg is None:
        return DEFAULT_SITE_LIST, charsets
    match = SITE_LIST_SETTING.search(mm_cfg)
    charsets.update({code.decode(): charset.decode() for code, charset in ADD_LANGUAGE.findall(mm_cfg)})
    return (match.group(1).decode() if match else DEFAULT_SITE_LIST), charsets


def read_config(tree, list_dir: str, plan: ListPlan) -> dict | None:
    """The list's config.pck, or config.pck.last (flagged) when config.pck cannot be read."""
    problems = []
    for name in ("config.pck", "config.pck.last"):
        data = tree.read(join(list_dir, name))
        if data is None:
            problems.append(f"no {name}")
            continue
        try:
            config = py2data.loads_pickle(data)
            if not isinstance(config, dict):
                raise ValueError("not a dictionary")
        except Exception as exc:  # a corrupt pickle raises almost anything
            problems.append(f"{name} unreadable ({type(exc).__name__}: {exc})")
            continue
        if problems:
            plan.flags.append(f"{problems[0]}: planned from config.pck.last, which the import would use")
        return config
    plan.error = " and ".join(problems)
    return None


def list_domain(config: dict, plan: ListPlan) -> None:
    host = config.get("host_name", "")
    web = urlsplit(config.get("web_page_url", "")).hostname or ""
    try:
        domain = Domain.parse(host or web)
    except MmdebError as exc:
        plan.error = f"host_name {host!r} is not a domain ({exc.message})"
        return
    plan.domain, plan.package = domain.name, domain.package
    if web and web.lower() != domain.name:
        plan.flags.append(f"web_page_url is on {web}, host_name is {host}: the list's pages move to {domain.name}")


def held_messages(tree, root: str, list_dir: str, name: str) -> int:
    data = tree.read(join(list_dir, "request.pck"))
    if data is not None:
        try:
            requests = py2data.loads_pickle(data)
            return sum(1 for value in requests.values() if isinstance(value, tuple) and value[:1] == (REQUEST_HELDMSG,))
        except Exception:
            pass  # count the held files instead
    return sum(1 for file in tree.listdir(join(root, "data")) if file.startswith(f"heldmsg-{name}-"))


def plan_list(tree, root: str, name: str, charsets: dict[str, str]) -> ListPlan:
    list_dir = join(root, "lists", name)
    plan = ListPlan(name, root)
    config = read_config(tree, list_dir, plan)
    if config is not None:
        config, warnings = py2data.convert_config(config, join(list_dir, "config.pck"), charsets)
        list_domain(config, plan)
        plan.language = config.get("preferred_language", py2data.DEFAULT_LANGUAGE)
        plan.charset = charsets.get(plan.language, "us-ascii")
        plan.members = len(config.get("members", {})) + len(config.get("digest_members", {}))
        if warnings:
            plan.flags.append(f"{len(warnings)} strings would be read as ISO-8859-1, one character a byte "
                              f"(first: {warnings[0]})")
    plan.archived = tree.mbox_messages(join(root, "archives/private", f"{name}.mbox", f"{name}.mbox")) or 0
    plan.held = held_messages(tree, root, list_dir, name)
    return plan


def flag_targets(lists: list[ListPlan], targets: set[str] | None, site_lists: dict[str, str]) -> None:
    seen: dict[tuple[str, str], ListPlan] = {}
    for plan in lists:
        if plan.name == site_lists[plan.installation]:
            plan.flags.append("the old site list: not moved, each domain package creates its own")
            plan.moved = False
            continue
        if not plan.domain:
            continue
        if targets is not None and plan.domain not in targets:
            plan.flags.append(f"{plan.domain} is not a target domain: add it with mmdeb domains add {plan.domain}")
        if plan.name == TARGET_SITE_LIST:
            plan.flags.append(f"{plan.domain} has a list named {TARGET_SITE_LIST}: the site list its package creates")
        other = seen.setdefault((plan.domain, plan.name), plan)
        if other is not plan:
            plan.flags.append(f"{plan.domain} gets a list named {plan.name} from {other.installation or 'SOURCE'} too")


def plan_import(source: Path, state_path: Path) -> ImportPlan:
    tree = open_source(source)
    roots = find_installations(tree)
    if not roots:
        raise MmdebError(f"{source} is not a Mailman 2 installation (no lists/ beside archives/, qfiles/, data/ or Mailman/)",
                         "give the directory that holds Mailman's lists/ (such as /var/lib/mailman or "
                         "/usr/local/mailman), a parent of it, or a tarball of one")
    installations, lists, site_lists = [], [], {}
    for root in roots:
        layout = layout_of(tree, root)
        site_list, charsets = site_settings(mm_cfg_of(tree, root))
        queued = {queue: len(tree.listdir(join(root, "qfiles", queue))) for queue in QUEUES}
        installations.append(Installation(root, layout, site_list, {queue: n for queue, n in queued.items() if n}))
        site_lists[root] = site_list
        lists += [plan_list(tree, root, name, charsets) for name in tree.listdir(join(root, "lists"))
                  if tree.is_dir(join(root, "lists", name))]
    notes = []
    targets = None
    if state_path.exists():
        targets = set(State.load(state_path).domains)
    else:
        notes.append(f"no state file {state_path}: every domain is new (add them with mmdeb domains add DOMAIN)")
    flag_targets(lists, targets, site_lists)
    waiting = sum(sum(installation.queued.values()) for installation in installations)
    if waiting:
        notes.append(f"{waiting} messages wait in the old queues: stop the old Mailman's incoming mail and let its "
                     "runners drain qfiles/ before the import")
    return ImportPlan(str(source), installations, lists, notes)


def plan_lines(plan: ImportPlan) -> list[str]:
    lines = []
    for installation in plan.installations:
        where = join(plan.source, installation.root) if installation.root else plan.source
        queued = ", ".join(f"{queue} {count}" for queue, count in installation.queued.items()) or "none"
        lines.append(f"{where}: {installation.layout} layout, site list {installation.site_list}, queued: {queued}")
    lines.append("LIST\tDOMAIN\tPACKAGE\tLANGUAGE\tCHARSET\tMEMBERS\tARCHIVED\tHELD")
    for item in plan.lists:
        lines.append(f"{item.name}\t{item.domain or '-'}\t{item.package or '-'}\t{item.language or '-'}\t"
                     f"{item.charset or '-'}\t{item.members}\t{item.archived}\t{item.held}")
        lines += [f"  ! {flag}" for flag in item.flags]
        if item.error:
            lines.append(f"  ! cannot be imported: {item.error}")
    lines += [f"note: {note}" for note in plan.notes]
    return lines


def planned_domains(plan: ImportPlan) -> list[str]:
    """The domains the plan moves lists to, in order (the old site lists are not moved)."""
    return sorted({item.domain for item in plan.lists if item.moved and item.domain})


def unimportable(plan: ImportPlan) -> MmdebError | None:
    """The error to end with, once the plan is shown, when some list cannot be imported at all."""
    broken = [item.name for item in plan.lists if item.error]
    if not broken:
        return None
    return MmdebError(f"{len(broken)} of the lists cannot be imported: {', '.join(broken)} (the plan says why)",
                      "restore their config.pck from a backup, or correct them on the old host, and plan again")
