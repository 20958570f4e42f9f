"""mailmen-postfix: Postfix's maps of every member domain, and mailmen-common's entries in main.cf.

Runs on list hosts with python3 (bullseye's 3.9 too): mailmen-common ships it with errors.py and
domains/layout.py, standard library only. mmdeb never runs it.

A member domain is one whose postinst left a file in POSTFIX_MEMBERS (debconf's configure_postfix),
holding its mail group. `update` writes the combined maps from the member domains' own
data/aliases and data/virtual-mailman, under a lock, and runs postalias and postmap on them: Mailman's
MTA hook runs it (as list, or root) after each change of a domain's lists, so Postfix, which notices
changed tables by itself, delivers to a new list at once. `setup` (mailmen-common's hookup, as root)
does the same, gives the alias databases their owners, and writes main.cf once, only if it lacks our
entries (the DKIM signer's milter among them; every other entry is kept), taking out the per-domain entries that earlier packages added for
today's member domains. main.cf names three maps whatever the number of domains (one alias map more
per further mail group).
"""

from __future__ import annotations

import argparse
import fcntl
import grp
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mmdeb.domains.layout import POSTFIX_MAPS_DIR, POSTFIX_MEMBERS, DomainPaths
from mmdeb.errors import MmdebError
from mmdeb.listhost import dkim

LIST_GROUP = "list"  # Mailman's group: it rewrites the maps as list
VIRTUAL = "virtual"
DOMAINS = "domains"
LOCK = ".lock"
LIST_SETTINGS = ("alias_maps", "virtual_alias_maps", "virtual_alias_domains")
DELIMITER = "recipient_delimiter"
MAIN_CF = Path("/etc/postfix/main.cf")


@dataclass(frozen=True)
class Member:
    domain: str
    group: str  # the mail gid its wrapper accepts


def alias_map(group: str, directory: str = POSTFIX_MAPS_DIR) -> str:
    return f"{directory}/aliases-{group}"


def members(directory: Path = Path(POSTFIX_MEMBERS)) -> list[Member]:
    if not directory.is_dir():
        return []
    return [Member(path.name, path.read_text().strip()) for path in sorted(directory.iterdir())
            if not path.name.startswith(".")]


def domain_maps(domain: str) -> tuple[Path, Path]:
    """A domain's own aliases and virtual-mailman, which its Mailman writes (MmdebPostfix)."""
    data = Path(DomainPaths(domain).prefix) / "data"
    return data / "aliases", data / "virtual-mailman"


def combined(found: list[Member], maps=domain_maps) -> dict[str, str]:
    """Map file name (in POSTFIX_MAPS_DIR) -> its text: each mail group's aliases, every member's
    virtual entries, and the member domains (what virtual_alias_domains looks up)."""
    texts = {Path(alias_map(member.group)).name: "" for member in found}
    texts[VIRTUAL] = ""
    texts[DOMAINS] = "".join(f"{member.domain}\tmailmen\n" for member in found)
    for member in found:
        aliases, virtual = maps(member.domain)
        for name, source in ((Path(alias_map(member.group)).name, aliases), (VIRTUAL, virtual)):
            if source.exists():
                text = source.read_text()
                texts[name] += f"# {member.domain}\n{text}" + ("" if text.endswith("\n") or not text else "\n")
    return texts


def postalias_argv(path: str) -> list[str]:
    return ["postalias", path]


def postmap_argv(path: str) -> list[str]:
    return ["postmap", path]


def postconf_read_argv(names: tuple[str, ...]) -> list[str]:
    """postconf -h prints the values of several parameters, one a line, in their order."""
    return ["postconf", "-h", *names]


def postconf_write_argv(settings: dict[str, str]) -> list[str]:
    return ["postconf", "-e", *(f"{name} = {value}" for name, value in settings.items())]


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode:
        raise MmdebError(f"{' '.join(argv)} failed: {done.stderr.strip()}", "fix the error it names, then run: "
                         "mailmen-postfix setup")
    return done.stdout


def split_list(value: str) -> list[str]:
    """A main.cf list's entries (separated by commas or white space)."""
    return value.replace(",", " ").split()


def wanted_entries(groups: list[str], directory: str = POSTFIX_MAPS_DIR) -> dict[str, list[str]]:
    return {"alias_maps": [f"hash:{alias_map(group, directory)}" for group in groups],
            "virtual_alias_maps": [f"hash:{directory}/{VIRTUAL}"],
            "virtual_alias_domains": [f"hash:{directory}/{DOMAINS}"]}


def earlier_entries(domain: str) -> dict[str, list[str]]:
    """What a domain package before mailmen-common's maps added to main.cf for its domain."""
    aliases, virtual = domain_maps(domain)
    return {"alias_maps": [f"hash:{aliases}"], "virtual_alias_maps": [f"hash:{virtual}"],
            "virtual_alias_domains": [domain]}


def changed_settings(current: dict[str, str], wanted: dict[str, list[str]],
                     unwanted: dict[str, list[str]]) -> dict[str, str]:
    """The main.cf settings to write (none if main.cf has what it needs): wanted entries added
    after the admin's own, unwanted ones taken out, the rest kept in their order."""
    changes = {}
    for name in LIST_SETTINGS:
        entries = split_list(current.get(name, ""))
        kept = [entry for entry in entries if entry not in unwanted.get(name, [])]
        new = kept + [entry for entry in wanted.get(name, []) if entry not in kept]
        if new != entries:
            changes[name] = ", ".join(new)
    if not current.get(DELIMITER):
        changes[DELIMITER] = "+"
    return changes


def alias_owner(group: str) -> pwd.struct_passwd | None:
    """A user whose primary group is group: Postfix runs a pipe of an alias database with its
    owner's uid and primary gid, and the wrapper accepts only its mail gid."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return None
    return next((user for user in pwd.getpwall() if user.pw_gid == gid and user.pw_uid != 0), None)


def write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text)
    os.chmod(temporary, 0o664)
    os.replace(temporary, path)


def update(directory: Path = Path(POSTFIX_MAPS_DIR), found: list[Member] | None = None, maps=domain_maps,
           as_root: bool | None = None) -> list[str]:
    """Write the combined maps and their databases; what went wrong, as lines to show."""
    found = members(directory / Path(POSTFIX_MEMBERS).name) if found is None else found
    as_root = os.geteuid() == 0 if as_root is None else as_root
    problems: list[str] = []
    if not postfix_here() or not (directory / LOCK).exists():
        return problems  # mailmen-common's setup writes them once Postfix is here
    with open(directory / LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        texts = combined(found, maps)
        for name, text in texts.items():
            write_atomically(directory / name, text)
        for stale in directory.glob("aliases-*"):
            if stale.suffix != ".db" and stale.name not in texts:
                stale.unlink()
                Path(f"{stale}.db").unlink(missing_ok=True)
        for name in texts:
            run((postalias_argv if name.startswith("aliases-") else postmap_argv)(str(directory / name)))
        if as_root:
            list_gid = grp.getgrnam(LIST_GROUP).gr_gid
            for member in {member.group: member for member in found}.values():
                owner = alias_owner(member.group)
                if owner is None:
                    problems.append(f"no user has the group {member.group} as primary group: Postfix cannot run "
                                    f"the mail wrapper of {member.domain} (group mismatch)")
                    continue
                os.chown(f"{alias_map(member.group, str(directory))}.db", owner.pw_uid, list_gid)
            for name in (VIRTUAL, DOMAINS):
                os.chown(directory / f"{name}.db", 0, list_gid)
            for database in directory.glob("*.db"):
                os.chmod(database, 0o664)
    return problems


def postfix_here() -> bool:
    return Path("/usr/sbin/postalias").exists()


def prepare(directory: Path) -> None:
    """The maps' directory, where Mailman (group list) writes; the members', root's only."""
    list_gid = grp.getgrnam(LIST_GROUP).gr_gid
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, 0, list_gid)
    os.chmod(directory, 0o2775)
    (directory / Path(POSTFIX_MEMBERS).name).mkdir(mode=0o755, exist_ok=True)
    lock = directory / LOCK
    lock.touch()
    os.chown(lock, 0, list_gid)
    os.chmod(lock, 0o664)


def setup(say, directory: Path = Path(POSTFIX_MAPS_DIR), maps=domain_maps) -> None:
    prepare(directory)
    found = members(directory / Path(POSTFIX_MEMBERS).name)
    for problem in update(directory, found):
        say(f"warning: {problem}")
    if not MAIN_CF.exists():
        return
    # The DKIM signer's milter too, so that main.cf is written at most once.
    dkim.prepare_socket_dir()
    names = (*LIST_SETTINGS, DELIMITER, dkim.MILTER_SETTING)
    current = dict(zip(names, run(postconf_read_argv(names)).split("\n")))
    changes = {}
    if found:
        unwanted: dict[str, list[str]] = {}
        for member in found:
            for name, entries in earlier_entries(member.domain).items():
                unwanted.setdefault(name, []).extend(entries)
        groups = sorted({member.group for member in found})
        changes = changed_settings(current, wanted_entries(groups, str(directory)), unwanted)
    milters = dkim.with_milter(current[dkim.MILTER_SETTING], True)
    if milters is not None:
        changes[dkim.MILTER_SETTING] = milters
    if changes:
        run(postconf_write_argv(changes))
        say(f"Postfix's main.cf: set {', '.join(changes)}")
    # main.cf no longer names a member's own databases (an earlier package's, or the admin's
    # while debconf said no); Mailman's hook would keep them up to date.
    for member in found:
        for own in maps(member.domain):
            Path(f"{own}.db").unlink(missing_ok=True)
    if found:
        say(f"Postfix delivers mail for {', '.join(member.domain for member in found)} to their Mailman.")


def unsetup(say, directory: Path = Path(POSTFIX_MAPS_DIR)) -> None:
    """Take our entries out of main.cf (mailmen-common is removed: no domain is left)."""
    if not MAIN_CF.exists():
        return
    groups = [path.name.removeprefix("aliases-") for path in directory.glob("aliases-*") if path.suffix != ".db"]
    current = dict(zip(LIST_SETTINGS, run(postconf_read_argv(LIST_SETTINGS)).split("\n")))
    changes = changed_settings({**current, DELIMITER: "kept"}, {}, wanted_entries(groups, str(directory)))
    if changes:
        run(postconf_write_argv(changes))
        say(f"Postfix's main.cf no longer names mailmen-common's maps ({', '.join(changes)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailmen-postfix", description="Postfix's maps of mmdeb's list domains.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update", help="rewrite the combined maps from the member domains' own (Mailman's hook)")
    commands.add_parser("setup", help="update, and give main.cf the maps if it lacks them (root)")
    commands.add_parser("unsetup", help="take the maps out of main.cf (root)")
    args = parser.parse_args(argv)
    say = print
    try:
        if args.command == "update":
            for problem in update():
                say(f"warning: {problem}", file=sys.stderr)
        elif args.command == "setup":
            setup(say)
        else:
            unsetup(say)
    except MmdebError as error:
        print(f"mailmen-postfix: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
