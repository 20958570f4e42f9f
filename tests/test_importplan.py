"""`mmdeb import plan` on old Mailman 2 trees that the tests build, with pickles written as Python 2 does."""

import json
import tarfile
from pathlib import Path

import pytest
from helpers.old_mailman import DEBIAN, add_list, debian_tree, tree_digest
from helpers.py2pickle import Py2Instance

from mmdeb.cli import main
from mmdeb.domains.settings import DomainSettings
from mmdeb.domains.state import DomainState, State

def plan(source: Path, tmp_path: Path, capsys, *extra: str) -> tuple[int, dict]:
    code = main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(source), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def only_list(result: dict) -> dict:
    (item,) = result["lists"]
    return item


def test_debian_layout_is_detected(tmp_path, capsys):
    debian_tree(tmp_path / "old")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert [(i["root"], i["layout"]) for i in result["installations"]] == [(DEBIAN, "debian")]


def test_prefix_layout_is_detected(tmp_path, capsys):
    root = tmp_path / "old/usr/local/mailman"
    (root / "Mailman").mkdir(parents=True)
    add_list(root, "users")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert [(i["root"], i["layout"]) for i in result["installations"]] == [("usr/local/mailman", "prefix")]


def test_mailmen_trees_are_one_installation_each(tmp_path, capsys):
    for domain in ("lists.example.org", "lists.example.net"):
        root = tmp_path / "mailmen" / domain
        (root / "Mailman").mkdir(parents=True)
        add_list(root, "users", domain)
    _, result = plan(tmp_path / "mailmen", tmp_path, capsys)
    assert [(i["root"], i["layout"]) for i in result["installations"]] == [
        ("lists.example.net", "mailmen"), ("lists.example.org", "mailmen")]


def test_list_row(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    add_list(root, "polski", "Lists.Example.PL", "pl", members=3, digest_members=2, archived=4, held=2,
             description="Zażółć gęślą jaźń".encode("iso-8859-2"))
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    item = only_list(result)
    assert {key: item[key] for key in ("name", "domain", "package", "language", "charset", "members", "archived", "held")} == {
        "name": "polski", "domain": "lists.example.pl", "package": "mailman-lists.example.pl", "language": "pl",
        "charset": "iso-8859-2", "members": 5, "archived": 4, "held": 2}


def test_text_plan(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    add_list(root, "users", members=1, archived=1)
    main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / "old")])
    assert "users\tlists.example.org\tmailman-lists.example.org\ten\tus-ascii\t1\t1\t0" in capsys.readouterr().out.splitlines()


def test_tarball_gives_the_same_plan_as_the_directory(tmp_path, capsys):
    root = debian_tree(tmp_path / "old", site_list="site")
    add_list(root, "users", members=3, archived=2, held=1)
    add_list(root, "site")
    (root / "qfiles/in/1.pck").write_bytes(b"")
    _, from_directory = plan(tmp_path / "old", tmp_path, capsys)
    _, from_tarball = plan(tarball_of(tmp_path / "old"), tmp_path, capsys)
    assert {**from_tarball, "source": ""} == {**from_directory, "source": ""}


def tarball_of(top: Path) -> Path:
    tarball = top.with_name(top.name + ".tar.gz")
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(top, arcname=".")
    return tarball


@pytest.mark.parametrize("as_tarball", [False, True])
def test_absolute_links_are_followed_inside_source(tmp_path, capsys, as_tarball):
    # A copy of /: qfiles links to /var/spool/mailman, which is SOURCE's var/spool/mailman, not the host's.
    root = debian_tree(tmp_path / "old")
    (root / "qfiles/in").rmdir()
    (root / "qfiles/shunt").rmdir()
    (root / "qfiles").rmdir()
    (tmp_path / "old/var/spool/mailman/in").mkdir(parents=True)
    (tmp_path / "old/var/spool/mailman/in/1.pck").write_bytes(b"")
    (root / "qfiles").symlink_to("/var/spool/mailman")
    source = tarball_of(tmp_path / "old") if as_tarball else tmp_path / "old"
    _, result = plan(source, tmp_path, capsys)
    assert result["installations"][0]["queued"] == {"in": 1}


def test_links_out_of_source_are_not_followed(tmp_path, capsys):
    outside = tmp_path / "outside"
    (outside / "in").mkdir(parents=True)
    (outside / "in/1.pck").write_bytes(b"")
    root = debian_tree(tmp_path / "old")
    (root / "qfiles/in").rmdir()
    (root / "qfiles/in").symlink_to("../../../../../outside/in")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert result["installations"][0]["queued"] == {}


def test_site_list_is_not_moved(tmp_path, capsys):
    root = debian_tree(tmp_path / "old", site_list="site")
    add_list(root, "site")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert (only_list(result)["moved"], only_list(result)["flags"]) == (
        False, ["the old site list: not moved, each domain package creates its own"])


def test_list_named_like_the_new_site_list(tmp_path, capsys):
    root = debian_tree(tmp_path / "old", site_list="site")
    add_list(root, "mailman")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert only_list(result)["flags"] == ["lists.example.org has a list named mailman: the site list its package creates"]


def test_queued_mail(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    for name in ("a.pck", "b.pck"):
        (root / "qfiles/shunt" / name).write_bytes(b"")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert (result["installations"][0]["queued"], result["notes"][-1].split(":")[0]) == (
        {"shunt": 2}, "2 messages wait in the old queues")


def test_without_state_every_domain_is_new(tmp_path, capsys):
    add_list(debian_tree(tmp_path / "old"), "users")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert result["notes"] == [f"no state file {tmp_path / 'mmdeb.toml'}: every domain is new "
                               "(add them with mmdeb domains add DOMAIN)"]


def test_domain_that_is_no_target(tmp_path, capsys):
    State(tmp_path / "mmdeb.toml", {"lists.example.org": DomainState(settings=DomainSettings("mailman2-python3", "py3", "trixie"))}).save()
    root = debian_tree(tmp_path / "old")
    add_list(root, "users")
    add_list(root, "other", "lists.example.net")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert {item["name"]: item["flags"] for item in result["lists"]} == {
        "users": [], "other": ["lists.example.net is not a target domain: add it with mmdeb domains add lists.example.net"]}


def test_two_installations_give_one_domain_the_same_list(tmp_path, capsys):
    for old in ("a", "b"):
        root = tmp_path / "old" / old / "mailman"
        (root / "qfiles").mkdir(parents=True)
        add_list(root, "users")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert [item["flags"] for item in result["lists"]] == [
        [], ["lists.example.org gets a list named users from a/mailman too"]]


def test_web_host_differs_from_mail_host(tmp_path, capsys):
    add_list(debian_tree(tmp_path / "old"), "users", "example.org", web_host="www.example.org")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert only_list(result)["flags"] == [
        "web_page_url is on www.example.org, host_name is example.org: the list's pages move to example.org"]


def test_strings_invalid_in_their_charset_are_flagged(tmp_path, capsys):
    add_list(debian_tree(tmp_path / "old"), "russian", language="ru", description=b"f\xfcr")
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert only_list(result)["flags"] == ["1 strings would be read as ISO-8859-1, one character a byte (first: "
                                          f"{DEBIAN}/lists/russian/config.pck: description: not valid utf-8: "
                                          "read as iso-8859-1, one character a byte)"]


def test_site_language_table_from_mm_cfg(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    (tmp_path / "old/etc/mailman/mm_cfg.py").write_text("add_language('ru', _('Russian'), 'koi8-r', 'ltr')\n")
    add_list(root, "russian", language="ru", description="Список".encode("koi8-r"))
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert (only_list(result)["charset"], only_list(result)["flags"]) == ("koi8-r", [])


def test_unreadable_config_falls_back_to_last(tmp_path, capsys):
    list_dir = add_list(debian_tree(tmp_path / "old"), "users", members=4)
    (list_dir / "config.pck.last").write_bytes((list_dir / "config.pck").read_bytes())
    (list_dir / "config.pck").write_bytes(b"\x00garbage")
    code, result = plan(tmp_path / "old", tmp_path, capsys)
    assert (code, only_list(result)["members"], only_list(result)["flags"][0].split(" (")[0]) == (
        0, 4, "config.pck unreadable")


def test_unreadable_config_without_last_fails_after_the_plan(tmp_path, capsys):
    list_dir = add_list(debian_tree(tmp_path / "old"), "users")
    (list_dir / "config.pck").write_bytes(b"\x00garbage")
    code = main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / "old")])
    out, err = capsys.readouterr()
    assert (code, err.splitlines()) == (1, [
        "mmdeb: error: 1 of the lists cannot be imported: users (the plan says why). Fix: restore their config.pck "
        "from a backup, or correct them on the old host, and plan again"])
    assert "  ! cannot be imported: config.pck unreadable" in out


@pytest.mark.parametrize("source", ["empty-dir", "missing", "not-a-tarball"])
def test_source_is_not_mailman(tmp_path, capsys, source):
    (tmp_path / "empty-dir").mkdir()
    (tmp_path / "not-a-tarball").write_text("hello")
    code = main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / source)])
    out, err = capsys.readouterr()
    assert (code, out, len(err.splitlines()), "Fix: " in err, "Traceback" in err) == (1, "", 1, True, False)


def test_source_is_never_written(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    add_list(root, "users", archived=3, held=1,
             bounce_info={b"m0@example.net": Py2Instance("Mailman.Bouncer", "_BounceInfo", {b"score": 1.0})})
    before = tree_digest(tmp_path / "old")
    plan(tmp_path / "old", tmp_path, capsys)
    assert tree_digest(tmp_path / "old") == before


def record(tmp_path: Path, fixture, *extra: str) -> int:
    return main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / "old"), "--record",
                 "--upstream", str(fixture.tarball), *extra])


def two_domains(tmp_path: Path) -> None:
    root = debian_tree(tmp_path / "old", site_list="site")
    add_list(root, "users")
    add_list(root, "andere", "lists.example.de")
    add_list(root, "site", "old-site.example.com")  # not moved, so its domain is not recorded


def test_record_adds_the_planned_domains_with_their_settings(tmp_path, capsys, fixture_py3):
    two_domains(tmp_path)
    assert record(tmp_path, fixture_py3, "--mode", "shared", "--runners", "always-on") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-2:] == ["added lists.example.de (py3 on trixie, shared mode, runners always-on)",
                        "added lists.example.org (py3 on trixie, shared mode, runners always-on)"]
    domains = State.load(tmp_path / "mmdeb.toml").domains
    assert {name: (d.settings.upstream, d.settings.flavour, d.settings.dist, d.settings.mode, d.settings.runners) for name, d in domains.items()} == {
        name: (str(fixture_py3.tarball), "py3", "trixie", "shared", "always-on")
        for name in ("lists.example.de", "lists.example.org")}


def test_record_keeps_recorded_domains_and_says_so(tmp_path, capsys, fixture_py3):
    State(tmp_path / "mmdeb.toml", {"lists.example.org": DomainState(settings=DomainSettings("mailman2-python3", "py3", "bookworm"))}).save()
    two_domains(tmp_path)
    assert record(tmp_path, fixture_py3) == 0
    assert (f"kept lists.example.org: already a domain of {tmp_path / 'mmdeb.toml'}, its settings unchanged"
            in capsys.readouterr().out.splitlines())
    domains = State.load(tmp_path / "mmdeb.toml").domains
    assert (domains["lists.example.org"].settings.dist, domains["lists.example.de"].settings.dist) == ("bookworm", "trixie")
    assert record(tmp_path, fixture_py3) == 0  # a second time: nothing new
    assert not [line for line in capsys.readouterr().out.splitlines() if line.startswith("added")]


def test_record_is_all_or_nothing(tmp_path, capsys, fixture_py3):
    two_domains(tmp_path)
    assert record(tmp_path, fixture_py3, "--mail-gid", "Not A Group") == 1
    err = capsys.readouterr().err
    assert (err.startswith("mmdeb: error: --mail-gid 'Not A Group' is not a valid group name"), len(err.splitlines())) == (True, 1)
    assert not (tmp_path / "mmdeb.toml").exists()


def test_record_writes_nothing_when_a_list_cannot_be_imported(tmp_path, capsys, fixture_py3):
    two_domains(tmp_path)
    (tmp_path / "old" / DEBIAN / "lists/users/config.pck").write_bytes(b"\x00garbage")
    assert record(tmp_path, fixture_py3) == 1
    assert not (tmp_path / "mmdeb.toml").exists()


def test_record_with_json_keeps_stdout_json(tmp_path, capsys, fixture_py3):
    two_domains(tmp_path)
    assert record(tmp_path, fixture_py3, "--json") == 0
    out, err = capsys.readouterr()
    assert (len(json.loads(out)["lists"]), err.count("added ")) == (3, 2)


def test_held_posts_missing_from_data_are_flagged(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    add_list(root, "users", held=2)
    (root / "data/heldmsg-users-1.pck").write_bytes(b"")  # the second was not copied
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert "1 of its 2 held posts are not in data/: copy the whole tree" in " ".join(only_list(result)["flags"])


@pytest.mark.parametrize("as_tarball", [False, True])
@pytest.mark.parametrize("file", ["request.pck", "pending.pck"])
def test_unreadable_requests_are_flagged_with_the_file(tmp_path, capsys, file, as_tarball):
    list_dir = add_list(debian_tree(tmp_path / "old"), "users")
    data = (list_dir / "request.pck").read_bytes()
    (list_dir / file).write_bytes(data[:len(data) // 2])
    source = tarball_of(tmp_path / "old") if as_tarball else tmp_path / "old"
    code, result = plan(source, tmp_path, capsys)
    (flag,) = only_list(result)["flags"]
    assert code == 0 and flag.startswith(f"{DEBIAN}/lists/users/{file} cannot be read (") and flag.endswith(
        "): mmdeb-import stops unless given --without-unreadable-requests, which moves the list without the requests "
        "this file holds")


@pytest.mark.parametrize("as_tarball", [False, True])
def test_archived_counts_the_archive_pages_when_the_mbox_is_empty(tmp_path, capsys, as_tarball):
    root = debian_tree(tmp_path / "old")
    add_list(root, "users")  # its mbox is empty
    for page in ("2024-January/000000.html", "2024-January/000001.html", "2024-January/index.html",
                 "2024-February/000002.html", "attachments/20240101/abc/000000.html"):
        (root / "archives/private/users" / page).parent.mkdir(parents=True, exist_ok=True)
        (root / "archives/private/users" / page).write_text("<html>")
    source = tarball_of(tmp_path / "old") if as_tarball else tmp_path / "old"
    assert only_list(plan(source, tmp_path, capsys)[1])["archived"] == 3


def test_strings_of_mixed_charsets_are_listed_for_checking(tmp_path, capsys):
    root = debian_tree(tmp_path / "old")
    add_list(root, "deutsch", language="de", description="Grüße".encode("iso-8859-1"),
             info="Für Freunde von ".encode("iso-8859-1") + "café".encode("utf-8"))
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert (only_list(result)["flags"], only_list(result)["mixed"]) == (
        [], [{"list": "deutsch", "field": "info", "preview": "Für Freunde von café"}])
    main(["--state", str(tmp_path / "mmdeb.toml"), "import", "plan", str(tmp_path / "old")])
    assert ("  ! mixed charsets in info: runs of UTF-8 read as UTF-8, the rest as iso-8859-1; check it after the "
            "import: 'Für Freunde von café'") in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(("settings", "flagged"), [
    ({"dmarc_moderation_action": 0, "from_is_list": 0}, True),
    ({"dmarc_moderation_action": 1, "from_is_list": 0}, False),  # Munge From
    ({"dmarc_moderation_action": 3, "from_is_list": 0}, False),  # Reject: not relayed
    ({"dmarc_moderation_action": 0, "from_is_list": 2}, False),  # every post wrapped
    ({"dmarc_moderation_action": 0, "from_is_list": 0, "anonymous_list": 1}, False),
    ({}, False),  # older than 2.1.16: Mailman gives it the new default on its first load
])
def test_list_relaying_dmarc_posters_unmunged_is_flagged(tmp_path, capsys, settings, flagged):
    add_list(debian_tree(tmp_path / "old"), "users", **settings)
    _, result = plan(tmp_path / "old", tmp_path, capsys)
    assert only_list(result)["flags"] == ([
        "relays p=reject posters with their own From (dmarc_moderation_action Accept, from_is_list No), so the "
        "members' providers reject their posts and count bounces: after the import set Munge From on its admin page "
        "(Privacy options > Sender filters) or run `runuser -u list -- sh -c 'echo dmarc_moderation_action = 1 | "
        "/var/lib/mailmen/lists.example.org/bin/config_list -i /dev/stdin users'`"] if flagged else [])
