"""Import with real old data: a GNU Mailman 2.1.39 host on bullseye (mmdeb's gnu package, one site
serving two mail domains, pages on an old web host) gets lists in five languages and charsets,
made with Mailman's own tools and by mail. Its tree is planned and recorded with `mmdeb import
plan`, the py3 domain packages are rebuilt, published and installed with apt in a fresh booted
trixie (in prefix mode, then in shared mode), and each domain's bin/mmdeb-import moves its lists
in. Then the new Mailman must read what the old one had, string for string, and run the lists.

Needs MMDEB_UPSTREAM_TARBALL (the py3 fork) and MMDEB_GNU_TARBALL (GNU Mailman 2.1.39, for the
old host); skipped otherwise.
"""

import json
import os
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest

from helpers.upstreams import (DOMAIN, OTHER_DOMAIN, REAL_TARBALL, build, domain_debs, real_flavour,
                               runtime_packages)
from helpers.upstreams import TestUpstream as Upstream
from helpers.e2e_host import HOSTNAME, MTA_DEBCONF, Host, prefix
from mmdeb import PATCHES_DIR, PROJECT_ROOT
from mmdeb.upstream.catalogue import DEFAULTS, default_upstream, read
from mmdeb.app.places import current as current_places
from mmdeb.domains.layout import DomainPaths
from mmdeb.upstream.fetch import sha256_of
from helpers.systemd_host import Project, SystemdHost, boot_with_repository
from helpers.lists import address, wait_until
from helpers.web import csrf, held
from helpers.tls import curl_argv, preseed_certificates

GNU_TARBALL = os.environ.get("MMDEB_GNU_TARBALL")
pytestmark = [
    pytest.mark.systemd,
    pytest.mark.skipif(not (REAL_TARBALL and GNU_TARBALL) or real_flavour() != "py3",
                       reason="needs the py3 fork (MMDEB_UPSTREAM_TARBALL) and GNU 2.1.39 (MMDEB_GNU_TARBALL)"),
]

OLD_WEB = "www.old.example"  # the old site's web host: after the import, no page or setting names it
PASSWORD = "listpassword"
USERS = ("alice", "bob", "carol", "dave", "erik")
LIST_DUMP = Path(__file__).parent / "helpers/list_dump.py"


class OldList:
    def __init__(self, name, domain, language, charset, description, real_name, months, info=None):
        self.name, self.domain, self.language, self.charset = name, domain, language, charset
        self.description, self.real_name, self.months = description, real_name, months
        self.info = info or description  # info: bytes in another charset, for the mixed list

    def encoded(self, text: str) -> bytes:
        return text.encode(self.charset)


MIXED_INFO = "Привет – ein UTF-8-Text in einer Latin-1-Liste"
LISTS = [
    OldList("deutsch", DOMAIN, "de", "iso-8859-1", "Grüße aus Köln, Ärger über Öl", "Jürgen Müller",
            {"2024-January": 2, "2024-February": 3, "2024-March": 1}),
    OldList("polski", DOMAIN, "pl", "iso-8859-2", "Zażółć gęślą jaźń", "Łukasz Żółw", {"2024-April": 1, "2024-May": 2}),
    OldList("gemischt", DOMAIN, "de", "iso-8859-1", "Straßenbahn für Übermütige", "Björn Öhrström",
            {"2024-June": 1}, info=MIXED_INFO.encode("utf-8")),
    OldList("nihongo", OTHER_DOMAIN, "ja", "euc-jp", "日本語のメーリングリスト", "山田太郎", {"2023-December": 1, "2024-January": 1}),
    OldList("russkij", OTHER_DOMAIN, "ru", "utf-8", "Русский список рассылки", "Иван Петров", {"2024-February": 2}),
]
BY_NAME = {old.name: old for old in LISTS}


def py_literal(data: bytes) -> bytes:
    """A Python 2 byte-string literal of data, for config_list -i (its file declares latin-1, so
    every byte stands for itself)."""
    return b"'" + data.replace(b"\\", b"\\\\").replace(b"'", b"\\'") + b"'"


def dump(host, python: str, names) -> dict:
    shutil.copy(LIST_DUMP, host.root / "srv/list_dump.py")  # a booted host has its own /tmp
    found = {}
    for domain in (DOMAIN, OTHER_DOMAIN):
        mine = [name for name in names if BY_NAME[name].domain == domain]
        out = host.run(python, "/srv/list_dump.py", prefix(domain if python == "python3" else DOMAIN), *mine, user="list").stdout
        found.update(json.loads(out))
    return found


# -- the old host ----------------------------------------------------------------

def inject(host: Host, old: OldList, subject: str, date: str, sender: str, body: str) -> None:
    message = (f"From: {sender}\nTo: {old.name}@{old.domain}\nSubject: {subject}\nDate: {date}\n"
               f"Message-ID: <{uuid.uuid4()}@{HOSTNAME}>\nMIME-Version: 1.0\n"
               f"Content-Type: text/plain; charset={old.charset}\nContent-Transfer-Encoding: 8bit\n\n").encode()
    host.run(f"{prefix(DOMAIN)}/bin/inject", "-l", old.name, input=message + old.encoded(body) + b"\n")


def make_old_lists(host: Host) -> dict:
    """The lists, members, posts, a held post and a pending subscription; returns what the
    tests need to find again: the confirmation request sent to erik."""
    bin_ = f"{prefix(DOMAIN)}/bin"
    for old in LISTS:
        host.run(f"{bin_}/newlist", "-q", "-l", old.language, "-u", OLD_WEB, "-e", old.domain, old.name,
                 address("bob"), PASSWORD)
        settings = (b"# -*- coding: iso-8859-1 -*-\n"
                    b"description = " + py_literal(old.encoded(old.description)) + b"\n"
                    b"info = " + py_literal(old.info if isinstance(old.info, bytes) else old.encoded(old.info)) + b"\n"
                    b"archive_private = %d\nsubscribe_policy = 1\ndigestable = 1\n" % (old.name != "deutsch"))
        if old.name == "gemischt":  # alice reads it in Polish
            settings += b"available_languages = ['de', 'pl']\n"
        (host.root / "tmp/settings.py").write_bytes(settings)
        host.run(f"{bin_}/config_list", "-i", "/tmp/settings.py", old.name)
        regular = old.encoded(f"{old.real_name} <{address('alice')}>\n") + f"{address('carol')}\n{address('dave')}\n".encode()
        host.run(f"{bin_}/add_members", "-w", "n", "-a", "n", "-r", "-", old.name, input=regular)
        host.run(f"{bin_}/add_members", "-w", "n", "-a", "n", "-d", "-", old.name, input=f"{address('bob')}\n".encode())
        # Mailman's own member API, as the admin pages use it: carol gets no mail, dave is moderated,
        # alice has a password and, in the German list, Polish as her language with a Polish name.
        code = [f"m.setDeliveryStatus({address('carol')!r}, MemberAdaptor.BYADMIN)",
                f"m.setMemberOption({address('dave')!r}, mm_cfg.Moderate, 1)",
                f"m.setMemberPassword({address('alice')!r}, 'alicepw')"]
        if old.name == "gemischt":
            polish_name = "Łukasz Żółw".encode("iso-8859-2")
            code += [f"m.setMemberLanguage({address('alice')!r}, 'pl')", f"m.setMemberName({address('alice')!r}, {polish_name!r})"]
        host.run(f"{bin_}/withlist", "-q", "-l", old.name,
                 input="from Mailman import mm_cfg, MemberAdaptor\n" + "\n".join(code) + "\nm.Save()\n")
        for month, count in old.months.items():
            year, name = month.split("-")
            for index in range(count):
                day = index + 1
                inject(host, old, f"{old.name} {month} {day}", f"Mon, {day:02d} {name[:3]} {year} 10:00:00 +0000",
                       address("alice"), f"{old.description}\nPost {day} of {month}.")
    # By mail, on the German list: a post of moderated dave, held; erik asks to join.
    deutsch = BY_NAME["deutsch"]
    host.send(address("dave"), f"deutsch@{DOMAIN}", "Eine Frage von Dave", user="dave")
    host.send(address("erik"), f"deutsch-request@{DOMAIN}", "subscribe", user="erik")
    confirm = host.wait_for_mail("erik", lambda m: (m["Subject"] or "").startswith("confirm "), timeout=180)
    wait_until(lambda: held(host, "deutsch") and drained(host), timeout=180, what="the old host's queues to drain")
    (host.root / prefix(DOMAIN).lstrip("/") / "lists/deutsch/de").mkdir(exist_ok=True)
    # A list-specific template, as the admin's edithtml page writes it: in the list's charset.
    (host.root / prefix(DOMAIN).lstrip("/") / "lists/deutsch/de/listinfo.html").write_bytes(
        (host.root / prefix(DOMAIN).lstrip("/") / "templates/de/listinfo.html").read_bytes()
        .replace(b"<MM-List-Info>", deutsch.encoded("<p>Eigene Vorlage: Schöne Grüße</p>\n<MM-List-Info>")))
    return {"confirm": (confirm["Reply-To"], confirm["Subject"])}


def drained(host: Host) -> bool:
    queues = host.root / prefix(DOMAIN).lstrip("/") / "qfiles"
    return not [path for name in ("in", "out", "virgin", "archive", "bounces", "commands") if (queues / name).is_dir()
                for path in (queues / name).iterdir()]


def bullseye_host(root: Path) -> Host:
    """A started bullseye chroot with Postfix delivering locally, the USERS and the gnu packages' dependencies."""
    runtime = runtime_packages("gnu", "bullseye")
    host = Host.create(root, "bullseye", ["postfix", "procps", "iptables", *runtime], MTA_DEBCONF["postfix"])
    host.allow_service_starts()
    host.start()
    try:
        host.run("postconf", "-e", f"myhostname = {HOSTNAME}")
        for user in USERS:
            host.run("useradd", "--create-home", user)
        host.run("postfix", "start")
    except BaseException:
        host.stop()
        raise
    return host


@pytest.fixture(scope="module")
def old_site(tmp_path_factory):
    """The old GNU host's tree as a tarball, what its Mailman read from it, erik's request, and
    the old host itself (running, its Mailman stopped)."""
    directory = tmp_path_factory.mktemp("import-old")
    gnu = Upstream(Path(GNU_TARBALL).resolve(), "gnu", PATCHES_DIR, True)
    built = build(gnu, directory / "build", DOMAIN)
    host = bullseye_host(directory / "host")
    try:
        host.install_offline(domain_debs(built, DOMAIN))
        # Archive posts under their own dates, months ago (by default pipermail dates them now).
        conffile = host.root / f"etc/mailmen/{DOMAIN}/mm_cfg.py"
        conffile.write_text(conffile.read_text() + "ARCHIVER_CLOBBER_DATE_POLICY = 0\n")
        host.run("/etc/init.d/mailmen", "restart", DOMAIN)
        found = make_old_lists(host)
        found["dump"] = dump(host, "python2.7", list(BY_NAME))
        host.run("/etc/init.d/mailmen", "stop", DOMAIN)
        source = directory / "old-site.tar.gz"
        with tarfile.open(source, "w:gz") as tar:
            for part in (prefix(DOMAIN), f"/etc/mailmen/{DOMAIN}"):
                tar.add(host.root / part.lstrip("/"), part.lstrip("/"))
        found["source"] = source
        found["gnu_debs"] = domain_debs(built, DOMAIN)
        found["host"] = host
        yield found
    finally:
        host.stop()


def extract(source: Path, host) -> None:
    with tarfile.open(source) as tar:
        tar.extractall(host.root / "srv/old", filter="fully_trusted")  # as root's tar xf: modes kept


# -- plan, record, build, install, import ---------------------------------------------

@pytest.fixture(scope="module", params=["prefix", "shared"])
def plan(request, old_site, upstream, tmp_path_factory):
    """The plan of the old tree, and a project that recorded its domains in prefix mode, then in
    shared mode (a core package and thin domain packages): the same old site moves into both."""
    project = Project(tmp_path_factory.mktemp(f"import-project-{request.param}"), upstream)
    done = subprocess.run([sys.executable, "-m", "mmdeb", "--state", str(project.state), "import", "plan", str(old_site["source"]), "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    project.mmdeb("import", "plan", str(old_site["source"]), "--record", "--upstream", str(upstream.tarball), "--dist", "trixie",
                  "--mode", request.param)
    project.mode = request.param
    return project, json.loads(done.stdout)


@pytest.fixture(scope="module")
def new_host(plan, old_site, tmp_path_factory):
    project, _ = plan
    project.rebuild_and_publish()
    host = boot_with_repository(project, tmp_path_factory.mktemp("import-new") / "host", "trixie", [DOMAIN, OTHER_DOMAIN], {})
    host.mode = project.mode
    try:
        for user in USERS:
            if user not in ("alice", "bob", "carol"):
                host.run("useradd", "--create-home", user)
        extract(old_site["source"], host)
        host.reports = {domain: host.run(f"{prefix(domain)}/bin/mmdeb-import", "/srv/old", check=False)
                        for domain in (DOMAIN, OTHER_DOMAIN)}
        host.dump = dump(host, "python3", list(BY_NAME))
        yield host
    finally:
        host.stop()


def test_the_plan_shows_every_list_with_its_domain_and_charset(plan):
    _, shown = plan
    rows = {row["name"]: row for row in shown["lists"]}
    for old in LISTS:
        assert (rows[old.name]["package"], rows[old.name]["language"], rows[old.name]["charset"]) == (
            f"mailman-{old.domain}", old.language, old.charset), rows[old.name]
    assert rows["deutsch"]["held"] == 1 and rows["deutsch"]["archived"] == 6
    assert not rows["mailman"]["moved"]  # the old site list: each domain has its own


def test_the_domains_are_installed_in_the_recorded_mode(new_host):
    core = new_host.run("dpkg-query", "-W", "-f", "${db:Status-Status}", "mailmen-core-py3", check=False).stdout
    assert (core == "installed") == (new_host.mode == "shared"), core


def test_the_import_reports_each_list(new_host):
    for domain, done in new_host.reports.items():
        assert done.returncode == 0, done.stdout + done.stderr
        lines = done.stdout.splitlines()
        for old in LISTS:
            if old.domain == domain:
                row = next(line for line in lines if line.startswith(old.name + "\t"))
                archived = sum(old.months.values())
                assert row == f"{old.name}\t4\t{archived}\t{int(old.name == 'deutsch')}\timported", done.stdout
        assert not [line for line in lines if line.startswith("  !")], done.stdout  # every string valid in its charset


def test_a_second_import_changes_nothing(new_host):
    done = new_host.run(f"{prefix(DOMAIN)}/bin/mmdeb-import", "/srv/old")
    assert "0 imported, 0 failed" in done.stdout
    assert dump(new_host, "python3", list(BY_NAME)) == new_host.dump


# Attributes the import sets for the new host, as fix_url does; the rest must be equal.
MOVED = {"host_name", "web_page_url"}


def test_every_config_attribute_is_equal_after_decoding(old_site, new_host):
    for name, old in old_site["dump"].items():
        new = new_host.dump[name]["config"]
        for attribute, value in old["config"].items():
            if attribute in MOVED or (name == "gemischt" and attribute == "info"):
                continue
            assert new.get(attribute) == value, f"{name}.{attribute}: {new.get(attribute)!r} != {value!r}"
        assert new["host_name"] == BY_NAME[name].domain
    assert new_host.dump["gemischt"]["config"]["info"] == MIXED_INFO  # the UTF-8 string in the Latin-1 list


def test_members_are_equal(old_site, new_host):
    for name, old in old_site["dump"].items():
        assert new_host.dump[name]["members"] == old["members"], name
    assert new_host.dump["deutsch"]["members"][address("alice")]["name"] == "Jürgen Müller"
    assert new_host.dump["gemischt"]["members"][address("alice")]["name"] == "Łukasz Żółw"


def test_the_held_post_and_the_pending_subscription_are_moved(old_site, new_host):
    old = old_site["dump"]["deutsch"]
    assert (old["held"], old["pending"]) == (["Eine Frage von Dave"], [address("erik")])
    assert (new_host.dump["deutsch"]["held"], new_host.dump["deutsch"]["pending"]) == (old["held"], old["pending"])


def test_archives_show_the_same_months_and_message_counts_and_stay_closed_to_local_users(old_site, new_host):
    for name, old in old_site["dump"].items():
        assert new_host.dump[name]["archive"] == old["archive"] == BY_NAME[name].months, name
        mbox = f"{DomainPaths(BY_NAME[name].domain).private_archives}/{name}.mbox/{name}.mbox"
        assert "Permission denied" in new_host.run("cat", mbox, user="nobody", check=False).stderr, name


def test_umlauts_are_right_on_the_pages_and_in_config_list(new_host):
    for old in LISTS:
        listinfo = curl(new_host, old.domain, f"listinfo/{old.name}")
        assert old.description in listinfo and OLD_WEB not in listinfo, old.name
        config = new_host.run(f"{prefix(old.domain)}/bin/config_list", "-o", "-", old.name).stdout
        assert old.description in config and OLD_WEB not in config, old.name
    assert "Eigene Vorlage: Schöne Grüße" in curl(new_host, DOMAIN, "listinfo/deutsch")
    admin = curl(new_host, DOMAIN, "admin/deutsch", {"adminpw": PASSWORD}, jar="admin")
    assert BY_NAME["deutsch"].description in admin


def curl(host, domain: str, path: str, data: dict | None = None, jar: str = "pages") -> str:
    argv = [*curl_argv(domain, f"mailman/{path}"), "-sSf", "-b", f"/tmp/{jar}.jar", "-c", f"/tmp/{jar}.jar"]
    for key, value in (data or {}).items():
        argv += ["--data-urlencode", f"{key}={value}"]
    return host.run(*argv).stdout


def approve(host, old: OldList, held_file: Path) -> str:
    """Approves the held post in admindb, as its admin does; returns the page that showed it."""
    msgid, jar = held_file.stem.rsplit("-", 1)[1], f"admindb-{old.name}"
    curl(host, old.domain, f"admin/{old.name}", {"adminpw": PASSWORD}, jar=jar)
    body = curl(host, old.domain, f"admindb/{old.name}", jar=jar)
    curl(host, old.domain, f"admindb/{old.name}", {"csrf_token": csrf(body), msgid: "1", "submit": "Submit All Data"}, jar=jar)
    return body


def test_the_held_post_is_approved_and_delivered(new_host):
    (held_file,) = held(new_host, "deutsch")
    assert "Eine Frage von Dave" in approve(new_host, BY_NAME["deutsch"], held_file)
    new_host.wait_for_mail("alice", lambda m: "Eine Frage von Dave" in (m["Subject"] or ""), timeout=180)
    # Held by 2.1, the post lost its envelope From line in the import: the fork's archiver left
    # such a message out of the pages (archive-messages-without-envelope.patch).
    wait_until(lambda: archived_pages(new_host, BY_NAME["deutsch"], "Eine Frage von Dave"), timeout=180,
               what="dave's post in the archive")


# 2.1 leaves no request.pck for a list that never held anything: the fork must moderate it all the same.
WITHOUT_HELD_POSTS = ("gemischt", "polski", "nihongo")


def held_files(host, old: OldList) -> list:
    return sorted((host.root / prefix(old.domain).lstrip("/") / "data").glob(f"heldmsg-{old.name}-*.pck"))


def archived_pages(host, old: OldList, token: str) -> list:
    archive = host.root / prefix(old.domain).lstrip("/") / "archives/private" / old.name  # public/ links here
    return [page for page in archive.glob("*/0*.html") if token in page.read_text(errors="replace")]


def test_lists_without_held_posts_moderate_non_members(new_host):
    for name in WITHOUT_HELD_POSTS:
        old = BY_NAME[name]
        assert not held_files(new_host, old), name
        curl(new_host, old.domain, f"admin/{name}", {"adminpw": PASSWORD}, jar=f"admindb-{name}")
        page = curl(new_host, old.domain, f"admindb/{name}", jar=f"admindb-{name}")
        # The empty database's page, in the list's language: "no pending requests".
        assert "Bug in Mailman" not in page and f"admindb/{name}/logout" in page, name
    for domain in (DOMAIN, OTHER_DOMAIN):
        done = new_host.run(f"{prefix(domain)}/cron/checkdbs", user="list", check=False)
        assert (done.returncode, done.stderr) == (0, ""), domain
    tokens = {name: uuid.uuid4().hex for name in WITHOUT_HELD_POSTS}
    for name, token in tokens.items():  # erik is a member of none of them
        old = BY_NAME[name]
        new_host.send(address("erik"), f"{name}@{old.domain}", f"not a member {token}", user="erik")
        wait_until(lambda: held_files(new_host, old), timeout=180, what=f"erik's post held on {name}")
        assert not list((new_host.root / prefix(old.domain).lstrip("/")).glob("qfiles/shunt/*")), name
    for domain in (DOMAIN, OTHER_DOMAIN):  # with requests pending: the reminder to the owners
        done = new_host.run(f"{prefix(domain)}/cron/checkdbs", user="list", check=False)
        assert (done.returncode, done.stderr) == (0, ""), domain
    for name, token in tokens.items():
        old = BY_NAME[name]
        (held_file,) = held_files(new_host, old)
        assert token in approve(new_host, old, held_file), name
        for user in ("alice", "dave"):  # the regular members who get mail
            new_host.wait_for_mail(user, lambda m: token in (m["Subject"] or ""), timeout=180)
        wait_until(lambda: archived_pages(new_host, old, token), timeout=180, what=f"erik's post in {name}'s archive")
        assert not held_files(new_host, old), name


def test_the_pending_subscription_is_confirmed(old_site, new_host):
    reply_to, subject = old_site["confirm"]
    new_host.send(address("erik"), reply_to, f"Re: {subject}", user="erik")
    wait_until(lambda: address("erik") in new_host.run(f"{prefix(DOMAIN)}/bin/list_members", "deutsch").stdout,
               timeout=180, what="erik's subscription")


def test_members_post_and_every_mailbox_is_checked(new_host):
    for old in LISTS:
        token = uuid.uuid4().hex
        new_host.send(address("alice"), f"{old.name}@{old.domain}", f"{old.name} after the move {token}", user="alice")
        for user in ("alice", "dave"):  # regular members (alice gets her own posts by default)
            new_host.wait_for_mail(user, lambda m: token in (m["Subject"] or ""), timeout=180)
        new_host.run("postqueue", "-f")
        for user in ("bob", "carol"):  # bob takes digests, carol no mail
            assert not [m for m in new_host.mailbox(user) if token in (m["Subject"] or "")], user


def test_a_new_post_is_archived_beside_the_old_months(new_host):
    token = uuid.uuid4().hex
    new_host.send(address("alice"), f"polski@{DOMAIN}", f"archived {token}", user="alice")
    wait_until(lambda: archived_pages(new_host, BY_NAME["polski"], token), timeout=180, what="the post's page in the archive")
    months = dump(new_host, "python3", ["polski"])["polski"]["archive"]
    assert {month: months[month] for month in BY_NAME["polski"].months} == BY_NAME["polski"].months


# -- GNU 2.1 to GNU 2.1, on bullseye ------------------------------------------------------

GNU_LISTS = [old.name for old in LISTS if old.domain == DOMAIN]


@pytest.fixture(scope="module")
def gnu_host(old_site, tmp_path_factory):
    """A fresh bullseye host with the gnu package of DOMAIN, after its mmdeb-import of SOURCE."""
    host = bullseye_host(tmp_path_factory.mktemp("import-gnu") / "host")
    try:
        host.install_offline(old_site["gnu_debs"])
        extract(old_site["source"], host)
        lists = [argument for name in GNU_LISTS for argument in ("--list", name)]
        host.report = host.run(f"{prefix(DOMAIN)}/bin/mmdeb-import", *lists, "/srv/old", check=False)
        host.dump = dump(host, "python2.7", GNU_LISTS)
        yield host
    finally:
        host.stop()


def test_gnu_to_gnu_moves_every_list_as_it_was(old_site, gnu_host):
    assert gnu_host.report.returncode == 0, gnu_host.report.stdout + gnu_host.report.stderr
    for name in GNU_LISTS:
        old, new = old_site["dump"][name], gnu_host.dump[name]
        assert {key: value for key, value in new["config"].items() if key not in MOVED} == {
            key: value for key, value in old["config"].items() if key not in MOVED}, name
        assert (new["members"], new["archive"], new["held"], new["pending"]) == (
            old["members"], old["archive"], old["held"], old["pending"]), name
        assert new["config"]["host_name"] == DOMAIN and OLD_WEB not in new["config"]["web_page_url"], name


def test_gnu_to_gnu_lists_take_posts(gnu_host):
    token = uuid.uuid4().hex
    gnu_host.send(address("alice"), f"deutsch@{DOMAIN}", f"after the move {token}", user="alice")
    gnu_host.wait_for_mail("dave", lambda m: token in (m["Subject"] or ""), timeout=180)


# -- README.md's moving steps, as written -------------------------------------------------

def readme_steps() -> dict[str, list[str]]:
    """The shell lines of README.md's "Moving a site, step by step" by host (comments dropped;
    of step 1's variants, the one for mmdeb's gnu package, which the old host has)."""
    text = (PROJECT_ROOT / "README.md").read_text()
    block = text.split("Moving a site, step by step", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    steps: dict[str, list[str]] = {"old host": [], "build host": [], "list host": []}
    where, variant = "", ""
    for line in block.splitlines():
        if line.startswith("# ") and line[2].isdigit():  # "# 4. build host: ..."
            where = next((name for name in steps if line[5:].startswith(name)), line)  # step 6: no command
        if line.startswith("#"):
            variant = line if line.startswith(("# 1.", "#    or")) else variant
        elif line and (where != "old host" or not line.startswith("OLD=") or "gnu package" in variant):
            steps[where].append(line)  # a line of an unknown host fails here
    return steps


def copy_as_scp(line: str, source_dir: Path, target_dir: Path) -> None:
    """`scp HOST:PATH DEST` between the test's hosts, whose trees are source_dir and target_dir
    (a relative path is in the build host's working directory)."""
    _, source, dest = line.split()
    path = source.split(":", 1)[1]
    shutil.copy(source_dir / path.lstrip("/"), target_dir / dest.lstrip("/") / Path(path).name)


def run_script(where: str, lines: list[str], run) -> str:
    script = "set -ex\n" + "\n".join(lines) + "\n"
    done = run(script)
    assert done.returncode == 0, f"on the {where}:\n{script}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def catalogued_upstream(upstream):
    """The README's build step names no --upstream: the catalogue's default, from the cache
    (where a host without network places it), must be the tarball under test."""
    catalogue = read(DEFAULTS)
    entry = catalogue["upstream"][default_upstream(catalogue, "py3")]
    cached = current_places().cache / "upstream" / entry["filename"]
    if not cached.exists():
        if sha256_of(upstream.tarball) != entry["sha256"]:
            pytest.skip("the tarball under test is not the catalogue's default py3 upstream")
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(upstream.tarball, cached)
    return cached


def test_the_readme_moving_steps_give_a_working_site(old_site, catalogued_upstream, tmp_path_factory):
    steps = readme_steps()
    old = old_site["host"]
    old.run("/etc/init.d/mailmen", "start", DOMAIN)  # the old site runs until step 3 stops it
    run_script("old host", steps["old host"], lambda script: old.run("bash", "-c", script, check=False))

    build_host = tmp_path_factory.mktemp("readme-build")
    lines = steps["build host"]
    for line in [line for line in lines if line.startswith("scp ")]:
        copy_as_scp(line, old.root, build_host)
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ["HOME"], "LANG": "C.UTF-8"}
    run_script("build host", [line for line in lines if not line.startswith("scp ")],
               lambda script: subprocess.run(["bash", "-c", script], cwd=build_host, env=env, capture_output=True, text=True))

    host = SystemdHost.create(tmp_path_factory.mktemp("readme-list") / "host", "trixie")
    try:
        host.boot()
        for user in USERS:
            host.run("useradd", "--create-home", user)
        # The repository in its apt sources, as mmdeb publish says, and the admin's debconf answers.
        host.use_repository(build_host / "repo", "trixie")
        shutil.copytree((build_host / "repo/current").resolve(), host.root / "srv/repo")
        preseed_certificates(host, DOMAIN, OTHER_DOMAIN)
        lines = steps["list host"]
        for line in [line for line in lines if line.startswith("scp ")]:
            copy_as_scp(line, build_host, host.root)
        report = run_script("list host", [line for line in lines if not line.startswith("scp ")],
                            lambda script: host.run("bash", "-c", script, input="Y\n", check=False))  # apt's question
        assert "3 imported, 0 failed" in report and "2 imported, 0 failed" in report, report
        for name, list_ in BY_NAME.items():
            assert list_.description in curl(host, list_.domain, f"listinfo/{name}"), name
            token = uuid.uuid4().hex
            host.send(address("alice"), f"{name}@{list_.domain}", f"after the README's move {token}", user="alice")
            host.wait_for_mail("dave", lambda m: token in (m["Subject"] or ""), timeout=180)
    finally:
        host.stop()
