"""`mmdeb import plan SOURCE`: what an old Mailman 2 tree holds, list by list, and what needs a decision.

SOURCE is a directory or a tarball of one: Debian's layout (var/lib/mailman with lists/,
archives/, qfiles/, data/, and etc/mailman/mm_cfg.py), a prefix install (usr/local/mailman,
with Mailman/ beside lists/) or mailmen's per-domain trees (domains.layout's prefixes).
Nothing in SOURCE is written; a tarball is read in one pass, never extracted.
"""

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from mmdeb.importing import py2data
from mmdeb.domains.domain import Domain
from mmdeb.domains.layout import SITE_LIST
from mmdeb.errors import MmdebError
from mmdeb.importing.oldtree import (REQUEST_FILES, WITHOUT_UNREADABLE, DirectoryTree, archived_messages, count_mbox, find_installations, held_files, is_mbox, join, layout_of, member_count, mm_cfg_of, queued_mail, read_config, site_settings, unreadable_requests)
from mmdeb.domains.state import State

# Files the plan reads whole; every other file is only listed (and mboxes counted).
READ_WHOLE = {"config.pck", "config.pck.last", *REQUEST_FILES, "mm_cfg.py"}


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


@dataclass
class MixedText:
    """A string of mixed charsets: runs of UTF-8 read as UTF-8, the rest in the list's charset."""

    list: str
    field: str  # the config.pck attribute, as py2data names it: info, usernames['a@example.org']
    preview: str  # the decoded text around its first UTF-8 run


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
    mixed: list[MixedText] = field(default_factory=list)  # strings to check after the import
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


def plan_config(tree, list_dir: str, plan: ListPlan) -> dict | None:
    """The list's config, flagged when it comes from config.pck.last."""
    config, _, problems = read_config(tree, list_dir)
    if config is None:
        plan.error = " and ".join(problems)
    elif problems:
        plan.flags.append(f"{problems[0]}: planned from config.pck.last, which the import would use")
    return config


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


def munge_from_command(prefix: str, name: str) -> str:
    """The shell line, for root on the list host, that sets list name to Munge From for the
    posters whose domain publishes DMARC p=reject or p=quarantine (as list, Mailman's user)."""
    return f"runuser -u list -- sh -c 'echo dmarc_moderation_action = 1 | {prefix}/bin/config_list -i /dev/stdin {name}'"


def flag_dmarc(config: dict, plan: ListPlan) -> None:
    """A list that would send p=reject posters' posts with their own From, which their domains'
    DMARC policy has the members' providers reject (2.1.39's values: dmarc_moderation_action 0
    is Accept, from_is_list 0 keeps From; an anonymous list's From is the list's)."""
    if config.get("dmarc_moderation_action") != 0 or config.get("from_is_list", 0) or config.get("anonymous_list"):
        return
    plan.flags.append("relays p=reject posters with their own From (dmarc_moderation_action Accept, from_is_list "
                      "No), so the members' providers reject their posts and count bounces: after the import set "
                      "Munge From on its admin page (Privacy options > Sender filters) or run "
                      f"`{munge_from_command(Domain(plan.domain).prefix, plan.name)}`")


def held_messages(tree, root: str, list_dir: str, name: str) -> tuple[int, int]:
    """How many posts the list holds, and how many of their files data/ lacks."""
    in_data = set(tree.listdir(join(root, "data")))
    data = tree.read(join(list_dir, "request.pck"))
    if data is not None:
        try:
            files = held_files(py2data.loads_pickle(data))
            return len(files), len(set(files) - in_data)
        except Exception:
            pass  # count the held files instead
    return sum(1 for file in in_data if file.startswith(f"heldmsg-{name}-")), 0


def plan_list(tree, root: str, name: str, charsets: dict[str, str]) -> ListPlan:
    list_dir = join(root, "lists", name)
    plan = ListPlan(name, root)
    config = plan_config(tree, list_dir, plan)
    if config is not None:
        config, warnings = py2data.convert_config(config, join(list_dir, "config.pck"), charsets)
        list_domain(config, plan)
        if plan.domain:
            flag_dmarc(config, plan)
        plan.language = config.get("preferred_language", py2data.DEFAULT_LANGUAGE)
        plan.charset = charsets.get(plan.language, "us-ascii")
        plan.members = member_count(config)
        invalid = [warning for warning in warnings if not isinstance(warning, py2data.MixedString)]
        if invalid:
            plan.flags.append(f"{len(invalid)} strings would be read as ISO-8859-1, one character a byte "
                              f"(first: {invalid[0]})")
        plan.mixed = [MixedText(name, warning.field, warning.preview) for warning in warnings
                      if isinstance(warning, py2data.MixedString)]
    plan.archived = archived_messages(tree, root, name)
    plan.held, missing = held_messages(tree, root, list_dir, name)
    for path, why in unreadable_requests(tree, list_dir).items():
        plan.flags.append(f"{path} cannot be read ({why}): mmdeb-import stops unless given {WITHOUT_UNREADABLE}, "
                          "which moves the list without the requests this file holds")
    if missing:
        plan.flags.append(f"{missing} of its {plan.held} held posts are not in data/: copy the whole tree "
                          "(the import drops the requests whose post is missing)")
    return plan


def flag_targets(lists: list[ListPlan], targets: set[str] | None, installations: list[Installation]) -> None:
    site_lists = {installation.root: installation.site_list for installation in installations}
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
        if plan.name == SITE_LIST:
            plan.flags.append(f"{plan.domain} has a list named {SITE_LIST}: the site list its package creates")
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
    installations, lists = [], []
    for root in roots:
        layout = layout_of(tree, root)
        site_list, charsets = site_settings(mm_cfg_of(tree, root))
        installations.append(Installation(root, layout, site_list, queued_mail(tree, root)))
        lists += [plan_list(tree, root, name, charsets) for name in tree.listdir(join(root, "lists"))
                  if tree.is_dir(join(root, "lists", name))]
    notes = []
    targets = None
    if state_path.exists():
        targets = set(State.load(state_path).domains)
    else:
        notes.append(f"no state file {state_path}: every domain is new (add them with mmdeb domains add DOMAIN)")
    flag_targets(lists, targets, installations)
    waiting = sum(sum(installation.queued.values()) for installation in installations)
    if waiting:
        notes.append(f"{waiting} messages wait in the old queues: stop the old Mailman's incoming mail and let its "
                     "runners drain qfiles/ before the import (mmdeb-import refuses queued mail unless given "
                     "--without-queued-mail)")
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
        lines += [f"  ! mixed charsets in {mixed.field}: runs of UTF-8 read as UTF-8, the rest as {item.charset}; check "
                  f"it after the import: {mixed.preview!r}" for mixed in item.mixed]
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
