"""Our patches to the py3 fork (patches/py3), against the real fork: installed into a temporary
prefix with the whole series applied (tests/fork_prefix.py). A test of what a patch fixes
then takes that one patch out of the installed copy and checks that the same check fails, so a
test that no longer catches what its patch fixes fails too; the others check what a patch must
keep. Pages come from the prefix's setgid CGI wrappers, posts go in with bin/inject and through
the queue runners.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork's tarball); skipped otherwise.
"""

import itertools
import pickle
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers.upstreams import REAL_TARBALL, real_flavour
from helpers.fork_prefix import cgi_page, fork_python, fork_script, install_fork, without_patch
from mmdeb import PATCHES_DIR

pytestmark = [pytest.mark.slow,  # compiles and installs the fork
              pytest.mark.skipif(not REAL_TARBALL or real_flavour() != "py3", reason="needs the py3 fork's tarball")]

DOMAIN = "lists.example.org"
SERIES = PATCHES_DIR / "py3"
PASSWORD = "geheim"
NAMES = itertools.count()


@pytest.fixture(scope="module")
def prefix(tmp_path_factory) -> Path:
    return install_fork(Path(REAL_TARBALL), tmp_path_factory.mktemp("fork"), DOMAIN, SERIES)


def fails_without(prefix: Path, patch: str, check, reason: str) -> None:
    """check passes on the patched prefix, and fails for the reason (a regex) with this patch taken out."""
    check()
    with without_patch(prefix, SERIES / patch), pytest.raises(AssertionError, match=reason):
        check()


def new_list(prefix: Path, language: str = "en", **attributes) -> str:
    """A new list (a name not used before), its attributes set as given."""
    name = f"list{next(NAMES)}"
    fork_script(prefix, "newlist", "-q", "-l", language, name, f"owner@{DOMAIN}", PASSWORD)
    if attributes:
        fork_python(prefix, f"""
from Mailman import MailList
m = MailList.MailList({name!r})
for key, value in {attributes!r}.items():
    setattr(m, key, value)
m.Save()
m.Unlock()
""")
    return name


def inject(prefix: Path, name: str, subject: str, sender: str = "poster@example.net") -> None:
    """A post without an envelope From line, as bin/inject takes it, through the incoming runner."""
    fork_script(prefix, "inject", "-l", name, stdin=(
        f"From: {sender}\nTo: {name}@{DOMAIN}\nSubject: {subject}\nMessage-ID: <{subject.replace(' ', '.')}@example.net>\n"
        f"Date: Thu, 03 Dec 2026 05:00:00 +0000\n\nThe body of {subject}.\n"))
    fork_script(prefix, "qrunner", "-r", "Incoming", "-o")


def pending_requests(prefix: Path, name: str) -> int:
    return int(fork_python(prefix, f"""
from Mailman import MailList
m = MailList.MailList({name!r})
try:
    print(m.NumRequestsPending())
finally:
    m.Unlock()
"""))


def admindb(prefix: Path, name: str) -> str:
    page = cgi_page(prefix, DOMAIN, "admindb", f"/{name}", f"adminpw={PASSWORD}")
    assert "Bug in Mailman" not in page
    return page


# empty-requests-db-opens-new.patch

EMPTY_REQUEST_DBS = {"pickled {}": pickle.dumps({}), "pickled None": pickle.dumps(None), "no bytes": b""}


@pytest.mark.parametrize("form", EMPTY_REQUEST_DBS)
def test_an_empty_request_db_opens_as_new(prefix, form):
    def check():
        name = new_list(prefix, "de")
        (prefix / "lists" / name / "request.pck").write_bytes(EMPTY_REQUEST_DBS[form])
        admindb(prefix, name)
        fork_script(prefix, "cron/checkdbs")
        inject(prefix, name, f"held {name}")  # from a non-member: held for the moderator
        assert pending_requests(prefix, name) == 1
        assert f"held {name}" in admindb(prefix, name)
        if not EMPTY_REQUEST_DBS[form]:  # not written by Mailman: a sign of a truncated copy
            assert f"{name}/request.pck is empty (0 bytes)" in (prefix / "logs/error").read_text()

    fails_without(prefix, "empty-requests-db-opens-new.patch", check, "Bug in Mailman")


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps({"version": (0, 2), 1: (1, "held")})[:-9]],
                         ids=["garbage", "truncated"])
def test_an_unreadable_request_db_is_kept(prefix, content):
    name = new_list(prefix)
    path = prefix / "lists" / name / "request.pck"
    path.write_bytes(content)
    with pytest.raises(AssertionError, match="unreadable requests database"):
        pending_requests(prefix, name)
    inject(prefix, name, f"to shunt {name}")
    assert path.read_bytes() == content


# websafe-keeps-character-references.patch

# Each list's description as stored and as a reader must see it. 2.1 stored characters its
# list's charset could not hold as character references (so does mmdeb-import).
DESCRIPTIONS = {
    "de": ("Grüße", "Grüße"),
    "pl": ("Zażółć", "Zażółć"),
    "ja": ("テスト", "テスト"),
    "de-refs": ("Grüße &#12486;&#12473;&#12488;", "Grüße テスト"),
    "en": ('<script>alert("x")</script> & AT&T', '<script>alert("x")</script> & AT&T'),
}


class Elements(HTMLParser):
    """The text of each element of one tag, in document order, and each input's value by name."""

    def __init__(self, page: str, tag: str):
        super().__init__(convert_charrefs=True)
        self.tag, self.open, self.texts, self.values = tag, [], [], {}
        self.feed(page)
        self.texts = [" ".join(text.split()) for text in self.texts]

    def handle_starttag(self, tag, attrs):
        if tag == self.tag:
            self.open.append(len(self.texts))
            self.texts.append("")
        if tag == "input":
            self.values[dict(attrs).get("name")] = dict(attrs).get("value")

    def handle_endtag(self, tag):
        if tag == self.tag and self.open:
            self.open.pop()

    def handle_data(self, data):
        for index in self.open:
            self.texts[index] += data


def overview_descriptions(page: str, names: dict[str, str]) -> dict[str, str]:
    """The description cell after each list's name on an overview page (listinfo, admin)."""
    cells = Elements(page, "td").texts
    return {key: cells[cells.index(name.capitalize()) + 1] for key, name in names.items()}


@pytest.fixture(scope="module")
def described(prefix) -> dict[str, str]:
    return {key: new_list(prefix, key.split("-")[0], description=stored) for key, (stored, _) in DESCRIPTIONS.items()}


def test_descriptions_display_as_written_on_every_page(prefix, described):
    shown = {key: text for key, (_, text) in DESCRIPTIONS.items()}

    def check():
        pages = {"listinfo": cgi_page(prefix, DOMAIN, "listinfo"), "admin": cgi_page(prefix, DOMAIN, "admin")}
        assert overview_descriptions(pages["listinfo"], described) == shown
        assert overview_descriptions(pages["admin"], described) == shown
        for key, name in described.items():
            pages[name] = cgi_page(prefix, DOMAIN, "listinfo", f"/{name}")
            title = f"{name.capitalize()} -- "
            (heading,) = [text for text in Elements(pages[name], "b").texts if text.startswith(title)]
            assert heading == title + shown[key]
            pages[f"{name}/general"] = cgi_page(prefix, DOMAIN, "admin", f"/{name}/general", f"adminpw={PASSWORD}")
            assert Elements(pages[f"{name}/general"], "td").values["description"] == shown[key]
        for where, page in pages.items():
            assert "<script>alert" not in page, where

    fails_without(prefix, "websafe-keeps-character-references.patch", check, "'Gr&#252;&#223;e'")


# archive-messages-without-envelope.patch

def test_a_message_without_envelope_line_is_archived(prefix):
    name = new_list(prefix, generic_nonmember_action=0)  # accept the non-member's post

    def check():
        subject = f"no envelope {next(NAMES)}"
        inject(prefix, name, subject)
        fork_script(prefix, "qrunner", "-r", "Arch", "-o")
        assert f"The body of {subject}." in (prefix / f"archives/private/{name}.mbox/{name}.mbox").read_text()
        pages = [page.read_text() for page in (prefix / "archives/private" / name).glob("*/[0-9]*.html")]
        assert any(subject in page and f"The body of {subject}." in page for page in pages), "not in the HTML archive"

    fails_without(prefix, "archive-messages-without-envelope.patch", check, "not in the HTML archive")
