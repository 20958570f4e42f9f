"""mmdeb-import SOURCE [--dry-run] [--list NAME ...]: move the lists of an old Mailman 2 into this domain.

Runs on the list host, as root, with python3. For the py3 fork, this domain's Mailman is
imported (the launcher imports the domain's bin/paths.py first, as Mailman's own scripts do).
It takes the lists of SOURCE whose host_name is this domain, and per list moves: config.pck
(with the members, their options, passwords, real names and languages, and the bounce info),
request.pck and the held messages, pending.pck, digest.mbox, the per-list templates, and
the private archive (mbox byte for byte, pipermail's HTML copied, its databases and state
converted). Python 2 data is decoded per charset by py2data, and its stand-ins become the
fork's classes. Then web_page_url and host_name are this host's (as bin/fix_url.py does),
and genaliases and check_perms -f run. GNU Mailman 2.1 (Python 2) reads the old data as it
is: every file is copied byte for byte, and its own scripts (fix_url, arch, list_members)
run in its python2.

SOURCE is only read. A list that exists here is not touched; a list that fails is removed
again and the others go on; a second run finds every list imported and does nothing. A
request.pck or pending.pck that cannot be read (truncated, not a pickle) stops the import
before anything is written; --without-unreadable-requests moves such a list without what
that file held.
Standard library and Mailman only, like py2data and oldtree.
"""

import argparse
import email
import json
import marshal
import os
import pickle
import shutil
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from pathlib import Path

from mmdeb.domains.layout import DomainPaths
from mmdeb.importing import py2data
from mmdeb.importing.oldtree import (HELDMSG, IGN, REQUESTS_VERSION_KEY, WITHOUT_UNREADABLE, DirectoryTree, archived_messages, find_installations, held_count, held_files, join, member_count, mm_cfg_of, queued_mail, read_config, site_settings, unreadable_requests)

SUBSCRIPTION = 2
MARKER = "mmdeb-imported"  # in lists/<name>/, written last: the list was imported from SOURCE
DATABASE = "database"  # pipermail's marshal indexes, in archives/private/<name>/
ARCHIVE_STATE = "pipermail.pck"
NO_PACKAGE = "no package here"  # results that count as failures start with "failed" or one of these
NOT_IN_SOURCE = "not in SOURCE"
LIST_DATA = {"config.pck", "config.pck.last", "request.pck", "pending.pck", "digest.mbox", MARKER}


class ListError(Exception):
    """Why one list cannot be imported; the list is rolled back and the others go on."""


class UnreadableRequests(Exception):
    """Lists to be imported have request files that cannot be read: nothing is imported."""

    def __init__(self, files):
        super().__init__(files)
        self.files = files  # path in SOURCE -> why


@dataclass
class Target:
    """This domain, as its Mailman sees it (mailman_target), or as a test makes it."""

    domain: str  # mm_cfg.DEFAULT_EMAIL_HOST
    web_page_url: str  # as fix_url sets it: DEFAULT_URL_PATTERN % DEFAULT_URL_HOST
    lists: Path  # LIST_DATA_DIR
    archives: Path  # PRIVATE_ARCHIVE_FILE_DIR
    data: Path  # DATA_DIR, where held messages live
    mailmen: Path  # where each installed domain package has its prefix (layout.PREFIX_ROOT)
    classes: dict  # (py2 module, class name) -> the fork's class
    message_class: type  # Mailman.Message.Message
    requests_version: int  # mm_cfg.REQUESTS_FILE_SCHEMA_VERSION, which request.pck's version entry holds
    finish: object = None  # callable(name) -> members, after the files are in place (MailList load and save)
    rebuild_archive: object = None  # callable(name): pipermail's pages from the list's mbox (bin/arch)
    convert: bool = True  # False for GNU Mailman 2.1 (Python 2), which reads the old data as it is


@dataclass
class Result:
    name: str
    members: int = 0
    archived: int = 0
    held: int = 0
    result: str = ""
    warnings: list = field(default_factory=list)


# Converting loaded Python 2 data (pure).

def to_target(value, classes):
    """value with every py2data.StandIn made an instance of the fork's class for it: its state
    set as unpickling would (__setstate__, else the instance dict)."""
    if isinstance(value, (str, bytes, int, float)):  # most values: first
        return value
    if isinstance(value, dict):
        return {to_target(key, classes): to_target(item, classes) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(to_target(item, classes) for item in value)
    if not isinstance(value, py2data.StandIn):
        return value
    cls = classes.get((value.py2_module, value.py2_name))
    if cls is None:
        raise ListError("holds a %s.%s, which the import does not know" % (value.py2_module, value.py2_name))
    instance = cls.__new__(cls)
    state = to_target(value.state, classes)
    if hasattr(instance, "__setstate__"):
        instance.__setstate__(state)
    else:
        instance.__dict__.update(state)
    return instance


def state_of(message):
    """A py2 Message stand-in's attributes, by str name."""
    if not isinstance(message, py2data.StandIn) or not isinstance(message.state, dict):
        raise ListError("a held message is not an email message")
    return {py2data.attribute_name(key): value for key, value in message.state.items()}


def raw(value):
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):  # a py2 unicode header: what 2.1 would have sent
        return value.encode("utf-8")
    raise ListError("a held message has a header or body of type %s" % type(value).__name__)


def flatten_message(message):
    """The bytes Python 2.7's email Generator writes for a loaded py2 Message (no From_ line):
    the headers as stored, then the body; multiparts with their own boundary."""
    state = state_of(message)
    head = b"".join(raw(name) + b": " + raw(value) + b"\n" for name, value in state.get("_headers", []))
    payload = state.get("_payload")
    if payload is None:
        return head + b"\n"
    if not isinstance(payload, list):
        return head + b"\n" + raw(payload)
    boundary = BytesHeaderParser().parsebytes(head + b"\n").get_boundary()
    if boundary is None:  # message/rfc822: the payload is the one enclosed message
        return head + b"\n" + b"".join(flatten_message(part) for part in payload)
    out = head + b"\n"
    if state.get("preamble") is not None:
        out += raw(state["preamble"]) + b"\n"
    out += b"\n".join(b"--" + boundary.encode() + b"\n" + flatten_message(part) for part in payload)
    out += b"\n--" + boundary.encode() + b"--"
    if state.get("epilogue") is not None:
        out += b"\n" + raw(state["epilogue"])
    return out


def held_message(data, name, message_class):
    """The fork's Message for an old held file: heldmsg-*.pck (a py2 pickled Message) or .txt."""
    if name.endswith(".pck"):
        data = flatten_message(py2data.loads_pickle(data))
    return email.message_from_bytes(data, message_class)


def template_text(data, charset, where):
    """(UTF-8 bytes, warnings) of a per-list template written in its language's charset."""
    converter = py2data.Converter(where)
    return converter.text(data, charset, "text").encode("utf-8"), converter.warnings


# Moving one list (files only; Mailman's own code runs in target.finish).

class ListImport:
    """One list, its Python 2 data converted for the py3 fork."""

    CONVERTED_ARCHIVE_PARTS = (DATABASE, ARCHIVE_STATE)

    def __init__(self, tree, root, name, charsets, target):
        self.tree, self.root, self.name, self.charsets, self.target = tree, root, name, charsets, target
        self.list_dir = join(root, "lists", name)
        self.created = []  # what to remove on failure, in order of creation
        self.result = Result(name)
        self.unreadable = {}  # each request file that cannot be read: its path in SOURCE -> why
        try:
            self.loaded = self.config()  # (config, warnings)
            self.unreadable = unreadable_requests(tree, self.list_dir)
        except ListError as exc:
            self.loaded, self.result.result = None, "failed: %s" % exc

    def source(self, rel):
        path = self.tree.path(rel)
        return path if path is not None and path.exists() else None

    def load(self, rel):
        """A pickle of the list, loaded; None when absent, or unreadable (and so passed over)."""
        path = self.source(rel)
        return None if path is None or rel in self.unreadable else py2data.load_pickle(path)

    def config(self):
        config, self.config_file, problems = read_config(self.tree, self.list_dir)
        if config is None:
            raise ListError(" and ".join(problems))
        config, warnings = py2data.convert_config(config, join(self.list_dir, self.config_file), self.charsets)
        if problems:  # as Mailman does, the list comes from config.pck.last
            warnings.insert(0, "%s: imported from config.pck.last" % problems[0])
        return config, warnings

    def make(self, path, data=None, mode=0o660):
        if os.path.lexists(path):
            raise ListError("%s exists already" % path)
        self.created.append(path)
        if data is None:
            path.mkdir()
            path.chmod(0o2775)  # as Mailman makes its directories, whatever the umask
        else:
            path.write_bytes(data)
            path.chmod(mode)

    def copy_tree(self, rel, path, skip=()):
        source = self.source(rel)
        if source is None:
            return
        if os.path.lexists(path):  # never rolled back: not ours
            raise ListError("%s exists already" % path)
        self.created.append(path)
        try:
            shutil.copytree(source, path, symlinks=True, ignore=lambda directory, names: [n for n in names if n in skip])
        except shutil.Error as exc:  # raised after the whole tree: the first file that failed, as OSError said it
            raise ListError(exc.args[0][0][2]) from None

    def run(self, dry_run):
        if self.loaded is None:
            return
        config, warnings = self.loaded
        self.result.warnings += warnings
        self.language = config.get("preferred_language", py2data.DEFAULT_LANGUAGE)
        self.result.members = member_count(config)
        self.result.archived = archived_messages(self.tree, self.root, self.name)
        for path, why in self.unreadable.items():  # only when given WITHOUT_UNREADABLE (import_lists)
            self.result.warnings.append("%s unreadable (%s): moved without the requests it held (%s)"
                                        % (path, why, WITHOUT_UNREADABLE))
        requests, warnings = self.requests()
        self.result.warnings += warnings
        self.result.held = held_count(requests)
        if dry_run:
            self.result.result = "would be imported"
            return
        target = self.target
        list_path = target.lists / self.name
        self.make(list_path)
        self.list_data(list_path, config, requests)
        digest = self.source(join(self.list_dir, "digest.mbox"))
        if digest is not None:
            self.make(list_path / "digest.mbox", digest.read_bytes())
        self.templates(list_path)
        self.archives()
        self.own()
        if target.finish is not None:
            self.result.members = target.finish(self.name)
        if self.pages_missing and target.rebuild_archive is not None:
            self.created.append(target.archives / self.name)  # what bin/arch writes goes on a roll-back
            target.rebuild_archive(self.name)
            self.result.warnings.append("SOURCE has the mbox but no archive pages: rebuilt from the mbox")
        self.make(list_path / MARKER, ("imported from %s\n" % self.tree.location(self.list_dir)).encode(), 0o664)
        self.result.result = "imported"

    def list_data(self, list_path, config, requests):
        """config.pck (at this host's URL), request.pck with the held posts as the fork writes it
        (with its version entry: the fork takes a database without one for a broken one),
        pending.pck: converted."""
        target = self.target
        config["host_name"], config["web_page_url"] = target.domain, target.web_page_url
        self.make(list_path / "config.pck", pickle.dumps(to_target(config, target.classes), 1))
        self.make(list_path / "request.pck", pickle.dumps(self.held(requests), 1))
        pending = self.load(join(self.list_dir, "pending.pck"))
        if pending is not None:
            pending, warnings = py2data.convert_data(pending, self.language, join(self.list_dir, "pending.pck"), self.charsets)
            self.result.warnings += warnings
            self.make(list_path / "pending.pck", pickle.dumps(to_target(pending, target.classes)))

    def requests(self):
        requests = self.load(join(self.list_dir, "request.pck")) or {}
        return py2data.convert_requests(requests, self.language, join(self.list_dir, "request.pck"), self.charsets)

    def held(self, requests):
        """request.pck for the fork: each held message's file converted to the pickle it reads."""
        converted = {}
        for key, value in to_target(requests, self.target.classes).items():
            if isinstance(value, tuple) and value[:1] == (HELDMSG,):
                when, sender, subject, reason, filename, msgdata = value[1]
                old = self.source(join(self.root, "data", filename))
                if old is None:
                    self.result.warnings.append("held message %s: %s is missing, its request is dropped" % (key, filename))
                    continue
                # The fork reads held pickles only (ListAdmin.readMessage opens .txt in binary for a text parser).
                value = (HELDMSG, (when, sender, subject, reason, "heldmsg-%s-%s.pck" % (self.name, key), msgdata))
                message = held_message(old.read_bytes(), filename, self.target.message_class)
                self.make(self.target.data / value[1][4], pickle.dumps(message, 1))
            converted[key] = value
        converted[REQUESTS_VERSION_KEY] = (IGN, self.target.requests_version)
        return converted

    def templates(self, list_path):
        """lists/<name>/<language>/*: re-encoded to UTF-8, which the fork declares for every language."""
        for language in self.tree.listdir(self.list_dir):
            directory = join(self.list_dir, language)
            if language in LIST_DATA or not self.tree.is_dir(directory):
                continue
            charset = self.charsets.get(language, "utf-8")
            self.make(list_path / language)
            for name in self.tree.listdir(directory):
                data = self.tree.read(join(directory, name))
                if data is None:
                    continue
                text, warnings = self.template(data, charset, join(directory, name))
                self.result.warnings += warnings
                self.make(list_path / language / name, text, 0o664)

    def template(self, data, charset, where):
        return template_text(data, charset, where)

    def archives(self):
        """The mbox byte for byte; pipermail's HTML copied; its databases and state converted."""
        private = join(self.root, "archives/private")
        target = self.target.archives
        self.copy_tree(join(private, self.name + ".mbox"), target / (self.name + ".mbox"))
        self.copy_tree(join(private, self.name), target / self.name, skip=self.CONVERTED_ARCHIVE_PARTS)
        archive = join(private, self.name)
        has_pages = self.source(archive) is not None
        self.pages_missing = not has_pages and self.result.archived > 0
        if has_pages:
            self.archive_data(archive)

    def archive_data(self, archive):
        """pipermail.pck and the databases, converted."""
        target = self.target.archives
        state = self.load(join(archive, ARCHIVE_STATE))
        if state is not None:
            state, warnings = py2data.convert_data(state, self.language, join(archive, ARCHIVE_STATE), self.charsets)
            self.result.warnings += warnings
            self.make(target / self.name / ARCHIVE_STATE, pickle.dumps(to_target(state, self.target.classes)))
        database = join(archive, DATABASE)
        if not self.tree.is_dir(database):
            return
        self.make(target / self.name / DATABASE)
        for name in self.tree.listdir(database):
            self.make(target / self.name / DATABASE / name, self.database(join(database, name)))

    def database(self, rel):
        """One pipermail index: a marshal dict; the -article index's values are pickled Articles."""
        loaded = py2data.load_archive_database(self.tree.path(rel))
        loaded, warnings = py2data.convert_data(loaded, self.language, rel, self.charsets)
        self.result.warnings += warnings
        if rel.endswith("-article"):
            loaded = {key: pickle.dumps(to_target(article, self.target.classes)) for key, article in loaded.items()}
        return marshal.dumps(loaded)

    def own(self):
        """Everything created, copied trees included, as check_perms wants it: in the group of
        the list data (list), directories setgid and group-writable, files group-writable.
        Mailman's runners write there as list; the copies keep the old host's ids and modes."""
        group = self.target.lists.stat().st_gid
        created = set(self.created)
        tops = [path for path in self.created if not created.intersection(path.parents)]  # each path once
        for top in tops:
            for path in [top, *(top.rglob("*") if top.is_dir() and not top.is_symlink() else ())]:
                os.lchown(path, -1, group)
                if not path.is_symlink():
                    path.chmod(stat.S_IMODE(path.stat().st_mode) | (0o2770 if path.is_dir() else 0o660))

    def roll_back(self):
        for path in reversed(self.created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.lexists(path):
                path.unlink()


class VerbatimImport(ListImport):
    """One list for GNU Mailman 2.1, which reads the old Python 2 data as it is: every file is
    copied byte for byte; Target.finish sets the URL and host with Mailman's own fix_url."""

    CONVERTED_ARCHIVE_PARTS = ()

    def list_data(self, list_path, config, requests):
        self.make(list_path / "config.pck", self.tree.read(join(self.list_dir, self.config_file)))
        for name in ("request.pck", "pending.pck"):
            data = self.tree.read(join(self.list_dir, name))
            if data is not None and join(self.list_dir, name) not in self.unreadable:
                self.make(list_path / name, data)
        for filename in held_files(requests):
            data = self.tree.read(join(self.root, "data", filename))
            if data is None:
                self.result.warnings.append("held message %s is missing" % filename)
                continue
            self.make(self.target.data / filename, data)

    def template(self, data, charset, where):
        return data, []

    def archive_data(self, archive):
        pass


# The whole run.

def old_lists(source, target, names):
    """A ListImport for each list of SOURCE whose host_name is target's domain (and each that
    cannot be read, whatever its domain), the old site lists left out; a Result for each list
    of a domain whose package is not installed here; and the names asked for that SOURCE does
    not give this domain."""
    tree = DirectoryTree(source)
    mine, homeless = [], []
    for root in find_installations(tree):
        site_list, charsets = site_settings(mm_cfg_of(tree, root))
        for name in tree.listdir(join(root, "lists")):
            if name == site_list or (names and name not in names):
                continue
            job = (ListImport if target.convert else VerbatimImport)(tree, root, name, charsets, target)
            domain = "" if job.loaded is None else str(job.loaded[0].get("host_name", "")).lower()
            if job.loaded is None or domain == target.domain.lower():
                mine.append(job)
            elif not (target.mailmen / domain).is_dir():
                homeless.append(Result(name, result="%s: install %s, then run its bin/mmdeb-import"
                                       % (NO_PACKAGE, DomainPaths(domain).package)))
    found = {job.name for job in mine} | {result.name for result in homeless}
    return mine, homeless, sorted(set(names) - found)


def import_lists(source, target, dry_run=False, names=(), without_unreadable=False):
    """The result of each list; raises UnreadableRequests, before anything is written, when a list
    to be imported has a request file that cannot be read and without_unreadable is not given."""
    mine, homeless, missing = old_lists(source, target, list(names))
    todo = []
    for job in mine:
        existing = target.lists / job.name
        if existing.exists():
            job.result.result = ("skipped: imported before" if (existing / MARKER).exists() else
                                 "failed: a list of that name exists here: remove or rename one of them, run again")
        else:
            todo.append(job)
    unreadable = {path: why for job in todo for path, why in job.unreadable.items()}
    if unreadable and not without_unreadable:
        raise UnreadableRequests(unreadable)
    for job in todo:
        try:
            job.run(dry_run)
        except Exception as exc:  # any failure: this list is rolled back, the others go on
            job.roll_back()
            why = exc if isinstance(exc, ListError) else "%s: %s" % (type(exc).__name__, exc)
            job.result.result = "failed, rolled back: %s; fix that, run again" % why
    return ([job.result for job in mine] + homeless
            + [Result(name, result="%s for %s" % (NOT_IN_SOURCE, target.domain)) for name in missing])


def failed(result):
    return result.result.startswith(("failed", NO_PACKAGE, NOT_IN_SOURCE))


def report_lines(results):
    lines = ["LIST\tMEMBERS\tARCHIVED\tHELD\tRESULT"]
    for item in results:
        lines.append("%s\t%d\t%d\t%d\t%s" % (item.name, item.members, item.archived, item.held, item.result))
        lines += ["  ! %s" % warning for warning in item.warnings]
    return lines


def genaliases_argv(python, prefix):
    return [python, os.path.join(prefix, "bin", "genaliases"), "-q"]


def check_perms_argv(python, prefix):
    return [python, os.path.join(prefix, "bin", "check_perms"), "-f"]


def arch_argv(python, prefix, name):
    return [python, os.path.join(prefix, "bin", "arch"), "--quiet", name]


# On the list host: Mailman's side.

def run_script(argv, user=None, group=None):
    """Run one of Mailman's scripts; what fails says why in the list's result."""
    done = subprocess.run(argv, user=user, group=group, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["exit %d" % done.returncode])[-1]
        raise ListError("%s failed: %s" % (os.path.basename(argv[1]), last))
    return done.stdout


def mailman_target():
    """This domain's Mailman, the py3 fork, imported in this process."""
    from Mailman import MailList, mm_cfg
    from Mailman.Archiver import HyperArch
    from Mailman.Bouncer import _BounceInfo
    from Mailman.Message import Message
    from Mailman.UserDesc import UserDesc

    def finish(name):
        # Mailman's own load (schema update, CheckValues) and save (the public archive link).
        mlist = MailList.MailList(name, lock=True)
        try:
            mlist.Save()
            return len(mlist.getMembers())
        finally:
            mlist.Unlock()

    def rebuild_archive(name):
        # As list, as the archive runner writes.
        run_script(arch_argv(sys.executable, mm_cfg.PREFIX, name), mm_cfg.MAILMAN_USER, mm_cfg.MAILMAN_GROUP)

    classes = {
        ("Mailman.Bouncer", "_BounceInfo"): _BounceInfo,
        ("Mailman.UserDesc", "UserDesc"): UserDesc,
        ("Mailman.Archiver.HyperArch", "Article"): HyperArch.Article,
    }
    target = Target(mm_cfg.DEFAULT_EMAIL_HOST, mm_cfg.DEFAULT_URL_PATTERN % mm_cfg.DEFAULT_URL_HOST,
                    Path(mm_cfg.LIST_DATA_DIR), Path(mm_cfg.PRIVATE_ARCHIVE_FILE_DIR), Path(mm_cfg.DATA_DIR),
                    Path(mm_cfg.PREFIX).parent, classes, Message, mm_cfg.REQUESTS_FILE_SCHEMA_VERSION, finish,
                    rebuild_archive)
    return target, sys.executable, mm_cfg.PREFIX


SETTINGS_OF_PYTHON2 = """import json, paths
from Mailman import mm_cfg
print(json.dumps(dict(domain=mm_cfg.DEFAULT_EMAIL_HOST, url_host=mm_cfg.DEFAULT_URL_HOST,
    url=mm_cfg.DEFAULT_URL_PATTERN % mm_cfg.DEFAULT_URL_HOST, lists=mm_cfg.LIST_DATA_DIR,
    archives=mm_cfg.PRIVATE_ARCHIVE_FILE_DIR, data=mm_cfg.DATA_DIR, user=mm_cfg.MAILMAN_USER,
    group=mm_cfg.MAILMAN_GROUP, requests_version=mm_cfg.REQUESTS_FILE_SCHEMA_VERSION)))
"""


def fix_url_argv(python, prefix, name, url_host):
    return [python, os.path.join(prefix, "bin", "withlist"), "-q", "-l", "-r", "fix_url", name, "-u", url_host]


def list_members_argv(python, prefix, name):
    return [python, os.path.join(prefix, "bin", "list_members"), name]


def python2_target(python, prefix):
    """GNU Mailman 2.1 at prefix, on Python 2, which this process cannot import: its settings read
    by its own python, the data copied as it is, the list saved by its fix_url, pages by its arch."""
    done = subprocess.run([python, "-c", SETTINGS_OF_PYTHON2], cwd=os.path.join(prefix, "bin"), check=True,
                          capture_output=True, text=True)
    settings = json.loads(done.stdout)

    def finish(name):
        run_script(fix_url_argv(python, prefix, name, settings["url_host"]))
        return len(run_script(list_members_argv(python, prefix, name)).split())

    def rebuild_archive(name):
        run_script(arch_argv(python, prefix, name), settings["user"], settings["group"])

    target = Target(settings["domain"], settings["url"], Path(settings["lists"]), Path(settings["archives"]),
                    Path(settings["data"]), Path(prefix).parent, {}, None, settings["requests_version"], finish,
                    rebuild_archive, convert=False)
    return target, python, prefix


def main(argv=None, python2=None, prefix=None):
    """python2 and prefix: GNU Mailman 2.1's interpreter and prefix (else the fork's, imported)."""
    parser = argparse.ArgumentParser(prog="mmdeb-import", description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, metavar="SOURCE", help="a copy of the old Mailman's tree (a directory)")
    parser.add_argument("--dry-run", action="store_true", help="say what would be imported, write nothing")
    parser.add_argument("--list", action="append", default=[], metavar="NAME", help="only this list (repeatable)")
    parser.add_argument("--without-queued-mail", action="store_true",
                        help="import although mail waits in SOURCE's queues (it is not moved)")
    parser.add_argument(WITHOUT_UNREADABLE, dest="without_unreadable", action="store_true",
                        help="move a list whose request.pck or pending.pck cannot be read (truncated, not a pickle) "
                             "without the held posts, subscription requests or confirmations that file held")
    args = parser.parse_args(argv)
    if not args.source.is_dir():
        print("mmdeb-import: error: %s %s. Fix: give the directory copied from the old host (a copy of "
              "/var/lib/mailman or /usr/local/mailman, or of /; unpack a tarball first)"
              % (args.source, "is not a directory" if args.source.exists() else "does not exist"), file=sys.stderr)
        return 1
    tree = DirectoryTree(args.source)
    installations = find_installations(tree)
    if not installations:
        print("mmdeb-import: error: %s holds no Mailman 2 installation (lists/ beside archives/, qfiles/, data/ or "
              "Mailman/). Fix: give a directory copied from the old host, such as a copy of /var/lib/mailman"
              % args.source, file=sys.stderr)
        return 1
    queued = {root: queued_mail(tree, root) for root in installations}
    waiting = ["%s: %s" % (root or ".", ", ".join("%s %d" % item for item in counts.items()))
               for root, counts in queued.items() if counts]
    if waiting and not args.without_queued_mail:
        print("mmdeb-import: error: mail waits in SOURCE's queues, which the import does not move (%s). Fix: let the "
              "old Mailman drain qfiles/ and copy it again, or pass --without-queued-mail" % "; ".join(waiting),
              file=sys.stderr)
        return 1
    target, python, prefix = mailman_target() if python2 is None else python2_target(python2, prefix)
    started = time.time()
    try:
        results = import_lists(args.source, target, args.dry_run, args.list, args.without_unreadable)
    except UnreadableRequests as exc:
        print("mmdeb-import: error: nothing imported: these files of SOURCE cannot be read (%s). Fix: restore them "
              "from a backup and copy again, or pass %s to move their lists without the requests they held"
              % ("; ".join("%s: %s" % (tree.location(path), why) for path, why in exc.files.items()),
                 WITHOUT_UNREADABLE), file=sys.stderr)
        return 1
    print("\n".join(report_lines(results)))
    failures = sum(failed(item) for item in results)
    if not args.dry_run and any(item.result == "imported" for item in results):
        # The new lists receive mail at once; ownership and modes as check_perms wants them.
        for command in (genaliases_argv(python, prefix), check_perms_argv(python, prefix)):
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode:
                print("mmdeb-import: error: %s failed: %s Fix: run it again by hand once the cause is gone"
                      % (" ".join(command), done.stderr.strip().splitlines()[-1:] or ""), file=sys.stderr)
                failures += 1
    print("%d imported, %d failed in %.0f s" % (sum(item.result == "imported" for item in results), failures,
                                               time.time() - started))
    return 1 if failures else 0
