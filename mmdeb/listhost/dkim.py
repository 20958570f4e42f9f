"""mailmen-dkim: each installed domain's DKIM key, the signer's tables, and the DNS records to publish.

Runs on list hosts, as root, with python3 (bullseye's 3.9 too): mailmen-common ships it with
errors.py and domains/layout.py, standard library only (dnspython for `check`). mmdeb never runs it.

Exim signs with its own DKIM (mailmen-common's macros read the key and selector named here);
for Postfix, mailmen-common's opendkim instance signs, from the tables `setup` writes. Either way
a domain is signed with the key its selector file names, by the signer only (the key is its own,
mode 0600), and a missing or unreadable key never loses mail: Exim sends it unsigned, opendkim
defers it until its next start, which runs `setup` first (keys back to the signer, domains
without one out of the tables).
"""

from __future__ import annotations

import argparse
import base64
import grp
import os
import pwd
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mmdeb.domains.layout import (DKIM_KEY_BITS, DKIM_SELECTOR_FILE, DKIM_SIGNER, DKIM_SOCKET, DKIM_SOCKET_DIR, DKIM_STATE,
                                  INSTALLED_DOMAINS, POSTFIX_QUEUE, DomainPaths)
from mmdeb.errors import MmdebError

KEY_TABLE = "KeyTable"
SIGNING_TABLE = "SigningTable"
# Who signs: Exim's remote transport runs as Debian-exim; the opendkim instance as opendkim.
EXIM_USER = "Debian-exim"
OPENDKIM_USER = "opendkim"
POSTFIX_GROUP = "postfix"
# Postfix passes mail on unsigned when the signer is down, rather than deferring it.
MILTER = f"{{ unix:{DKIM_SOCKET}, default_action=accept }}"
MILTER_SETTING = "smtpd_milters"
SELECTOR = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
TXT_STRING = 255  # the longest character string of a TXT record


# External commands: each argv from a pure function.

def genkey_argv(path: str) -> list[str]:
    return ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{DKIM_KEY_BITS}", "-out", path]


def public_key_argv(path: str) -> list[str]:
    """The public key, DER (SubjectPublicKeyInfo): what a DKIM record's p= holds, base64-encoded."""
    return ["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"]


def restart_signer_argv() -> list[str]:
    return ["invoke-rc.d", DKIM_SIGNER, "restart"]


def postconf_get_argv(name: str) -> list[str]:
    return ["postconf", "-h", name]


def postconf_set_argv(name: str, value: str) -> list[str]:
    return ["postconf", "-e", f"{name} = {value}"]


def run(argv: list[str], what: str) -> bytes:
    done = subprocess.run(argv, capture_output=True)
    if done.returncode:
        raise MmdebError(f"{what} failed: {' '.join(argv)}: {done.stderr.decode(errors='replace').strip()}",
                         "see the message above")
    return done.stdout


# The domains, their keys and the signer's tables.

@dataclass(frozen=True)
class Key:
    domain: str
    selector: str

    @property
    def directory(self) -> Path:
        return Path(DomainPaths(self.domain).dkim_dir)

    @property
    def path(self) -> Path:
        return self.directory / f"{self.selector}.private"


def installed_domains(installed: Path = Path(INSTALLED_DOMAINS)) -> list[str]:
    return sorted(path.name for path in installed.iterdir()) if installed.is_dir() else []


def current_key(domain: str) -> Key | None:
    """The key the domain signs with, from its selector file; None before the first setup."""
    selector_file = Path(DomainPaths(domain).dkim_dir) / DKIM_SELECTOR_FILE
    if not selector_file.is_file():
        return None
    return Key(domain, selector_file.read_text().strip())


def key_table(keys: list[Key]) -> str:
    """opendkim's KeyTable: signing domain, selector and key file, by an arbitrary name."""
    return "".join(f"{key.selector}._domainkey.{key.domain} {key.domain}:{key.selector}:{key.path}\n" for key in keys)


def signing_table(keys: list[Key]) -> str:
    """opendkim's SigningTable (refile): any sender address of the domain signs with its key."""
    return "".join(f"*@{key.domain} {key.selector}._domainkey.{key.domain}\n" for key in keys)


def new_selector(domain: str, today: time.struct_time) -> str:
    """mmYYYYMMDD, or with a letter when a key of that name exists already (a second rotation that day)."""
    base = time.strftime("mm%Y%m%d", today)
    for suffix in ("", *"bcdefghijklmnopqrstuvwxyz"):
        if not Key(domain, base + suffix).path.exists():
            return base + suffix
    raise MmdebError(f"{domain} has 26 keys made today", "remove the unused ones from " + DomainPaths(domain).dkim_dir)


def check_selector(selector: str) -> str:
    if not SELECTOR.match(selector):
        raise MmdebError(f"selector {selector!r} is not a DNS label", "use lower-case letters, digits and inner hyphens")
    return selector


def signer() -> tuple[str, int, int] | None:
    """The user that signs on this host (Exim's, or opendkim's for Postfix), with its uid and gid."""
    for name in (EXIM_USER, OPENDKIM_USER):
        if name == EXIM_USER and not Path("/usr/sbin/exim4").exists():
            continue
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return name, entry.pw_uid, entry.pw_gid
    return None


def own(path: Path, mode: int, owner: tuple[str, int, int] | None) -> None:
    if owner:
        os.chown(path, owner[1], owner[2])
    os.chmod(path, mode)


def make_key(key: Key, owner, source: Path | None = None) -> None:
    """Write key.path (generated, or copied from source), readable by the signer only; atomically."""
    key.directory.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".new-", dir=key.directory)
    os.close(fd)
    try:
        if source:
            Path(temporary).write_bytes(source.read_bytes())
            public_key(Path(temporary))  # refuses what is not a private key openssl reads
        else:
            run(genkey_argv(temporary), f"making a DKIM key for {key.domain}")
        own(Path(temporary), 0o600, owner)
        os.replace(temporary, key.path)
    finally:
        Path(temporary).unlink(missing_ok=True)


def select(key: Key) -> None:
    """Sign the domain's mail with key from now on (the signer's tables follow at the next setup)."""
    selector_file = key.directory / DKIM_SELECTOR_FILE
    temporary = selector_file.with_name(f".{DKIM_SELECTOR_FILE}.new")
    temporary.write_text(key.selector + "\n")
    os.chmod(temporary, 0o644)
    os.replace(temporary, selector_file)


def public_key(path: Path) -> str:
    try:
        return base64.b64encode(run(public_key_argv(str(path)), f"reading the DKIM key {path}")).decode()
    except MmdebError as error:
        raise MmdebError(f"{path} is not a private key that openssl reads ({error.message})",
                         "give a PEM RSA private key, e.g. from openssl genpkey") from None


def write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    temporary = path.with_name(f".{path.name}.new")
    temporary.write_text(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def setup(domains: list[str], say: Callable[[str], None]) -> list[Key]:
    """Give each domain a key if it has none, make every key the signer's own again (what an
    admin's chmod or an MTA switch may have changed), and write the signer's tables with the
    keys that exist: a domain without its key sends unsigned mail (opendkim would defer it)."""
    owner = signer()
    keys = []
    for domain in domains:
        key = current_key(domain)
        if key is None:
            key = Key(domain, new_selector(domain, time.gmtime()))
            make_key(key, owner)
            select(key)
            say(f"made a DKIM key for {domain} (selector {key.selector}): publish its DNS records, "
                f"shown by: mailmen-dkim records {domain}")
        own(key.directory, 0o700, owner)
        if not key.path.exists():
            say(f"warning: {key.path} is missing, so {domain}'s mail goes out unsigned; "
                f"make a new key with: mailmen-dkim rotate {domain}")
            continue
        status = key.path.stat()
        if owner and (status.st_uid, status.st_gid, status.st_mode & 0o777) != (owner[1], owner[2], 0o600):
            own(key.path, 0o600, owner)
            say(f"{key.path} was not the signer's own: made it {owner[0]}'s, mode 0600")
        keys.append(key)
    state = Path(DKIM_STATE)
    state.mkdir(parents=True, exist_ok=True)
    write_atomically(state / KEY_TABLE, key_table(keys))
    write_atomically(state / SIGNING_TABLE, signing_table(keys))
    return keys


def restart_signer(say: Callable[[str], None]) -> None:
    """The opendkim instance reads its tables when it starts; Exim reads the keys per message."""
    if postfix_is_here():
        run(restart_signer_argv(), f"restarting {DKIM_SIGNER}")
        say(f"restarted {DKIM_SIGNER}")


def postfix_is_here() -> bool:
    return Path("/etc/postfix/main.cf").exists()


# Postfix: the milter in main.cf.

def with_milter(current: str, on: bool) -> str | None:
    """smtpd_milters with the signer's entry added (on) or taken out; None if that changes nothing."""
    present = split_milters(current)
    ours = [entry for entry in present if compact(entry) == compact(MILTER)]
    if bool(ours) == on:
        return None
    return ", ".join([*present, MILTER] if on else [entry for entry in present if entry not in ours])


def compact(entry: str) -> str:
    return "".join(entry.split())


def split_milters(value: str) -> list[str]:
    """The entries of a milter list: names, or { name, option=value } groups."""
    return [entry.strip() for entry in re.findall(r"\{[^}]*\}|[^\s,{}]+", value)
            if entry.strip()] if value.strip() else []


def prepare_socket_dir() -> None:
    """The signer's socket directory, in Postfix's chroot: the signer's, group postfix."""
    socket_dir = Path(POSTFIX_QUEUE) / DKIM_SOCKET_DIR
    socket_dir.mkdir(exist_ok=True)
    owner = signer()
    uid = owner[1] if owner and owner[0] == OPENDKIM_USER else 0
    os.chown(socket_dir, uid, grp.getgrnam(POSTFIX_GROUP).gr_gid)
    os.chmod(socket_dir, 0o750)


def postfix_milter(on: bool, say: Callable[[str], None]) -> None:
    """Point Postfix's smtpd at the signer (on) or no longer; its other milters stay as they are."""
    if on:
        prepare_socket_dir()
    current = run(postconf_get_argv(MILTER_SETTING), "reading Postfix's smtpd_milters").decode().strip()
    changed = with_milter(current, on)
    if changed is not None:
        run(postconf_set_argv(MILTER_SETTING, changed), "setting Postfix's smtpd_milters")
        say(f"Postfix's smtpd_milters {'now include' if on else 'no longer include'} {DKIM_SIGNER}")


# The DNS records to publish, and what the DNS answers.

@dataclass(frozen=True)
class Record:
    name: str
    value: str
    what: str

    def zone_line(self) -> str:
        strings = " ".join(f'"{self.value[i:i + TXT_STRING]}"' for i in range(0, len(self.value), TXT_STRING))
        return f"{self.name}. IN TXT {strings}"


def dkim_value(public: str) -> str:
    return f"v=DKIM1; k=rsa; p={public}"


def records(key: Key, public: str, hostname: str) -> list[Record]:
    domain = key.domain
    return [
        Record(f"{key.selector}._domainkey.{domain}", dkim_value(public), "DKIM: the public half of the key that signs"),
        Record(domain, f"v=spf1 a:{hostname} ~all", "SPF: this host sends the domain's mail (its envelope sender)"),
        Record(f"_dmarc.{domain}", f"v=DMARC1; p=none; rua=mailto:postmaster@{domain}",
               "DMARC: a policy (receivers want one); raise p= once the reports show only aligned mail"),
    ]


def tag(value: str, name: str) -> str | None:
    """A tag's value in a DKIM or DMARC record ('v=DKIM1; p=...'), without white space."""
    for part in value.split(";"):
        key, _, found = part.partition("=")
        if key.strip() == name:
            return re.sub(r"\s", "", found)
    return None


def verdict(record: Record, answers: list[str]) -> str | None:
    """What is wrong with what the DNS answers for record (its TXT records, each joined); None if right."""
    kind = record.value.split(";")[0].split()[0]  # v=DKIM1, v=spf1, v=DMARC1
    mine = [answer for answer in answers if answer.replace(" ", "").lower().startswith(kind.lower().replace(" ", ""))]
    if not mine:
        return f"missing: publish {record.zone_line()}"
    if len(mine) > 1:
        return f"wrong: {len(mine)} {kind} records (receivers ignore them all); keep one: {record.zone_line()}"
    if kind == "v=DKIM1" and tag(mine[0], "p") != tag(record.value, "p"):
        return f"wrong: the DNS has another key ({mine[0][:60]}...); publish {record.zone_line()}"
    if kind == "v=DMARC1" and tag(mine[0], "p") not in ("none", "quarantine", "reject"):
        return f"wrong: the DNS record has no valid p= policy ({mine[0]}); publish {record.zone_line()}"
    return None


def check(wanted: list[Record], lookup: Callable[[str], list[str]]) -> tuple[list[str], bool]:
    """Report lines for each record, and whether all are right; lookup(name) is the TXT answers,
    MmdebError when the DNS does not answer."""
    lines, right = [], True
    for record in wanted:
        try:
            problem = verdict(record, lookup(record.name))
        except MmdebError as error:
            problem = f"unknown: {error.message}"
        right = right and problem is None
        lines.append(f"{record.what.split(':')[0]} {record.name}: {problem or 'ok'}")
    return lines, right


def dns_lookup(name: str) -> list[str]:
    """The TXT records at name from this host's resolver, each record's strings joined."""
    try:
        import dns.exception
        import dns.resolver
    except ImportError:
        raise MmdebError("python3-dnspython is not installed", "apt-get install python3-dnspython") from None
    try:
        answer = dns.resolver.resolve(name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as error:
        raise MmdebError(f"the DNS did not answer for {name} ({error.__class__.__name__})", "check /etc/resolv.conf")
    return [b"".join(rdata.strings).decode(errors="replace") for rdata in answer]


# The command.

def domain_key(domain: str) -> Key:
    if domain not in installed_domains():
        raise MmdebError(f"{domain} is not an installed domain (no {INSTALLED_DOMAINS}/{domain})",
                         "install its mailman-<domain> package first")
    key = current_key(domain)
    if key is None:
        raise MmdebError(f"{domain} has no DKIM key yet", "run: mailmen-dkim setup")
    return key


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailmen-dkim", description="DKIM keys and DNS records of mmdeb's list domains.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("setup", help="give each installed domain a key, and write the signer's tables")
    for name, description in (("records", "print the DNS records to publish for DOMAIN"),
                              ("check", "compare what the DNS answers with the records to publish")):
        commands.add_parser(name, help=description).add_argument("domain")
    rotate = commands.add_parser("rotate", help="make a new key for DOMAIN, to publish before `activate`")
    rotate.add_argument("domain")
    rotate.add_argument("--selector")
    activate = commands.add_parser("activate", help="sign DOMAIN with the key of SELECTOR (once the DNS has it)")
    activate.add_argument("domain")
    activate.add_argument("selector")
    activate.add_argument("--force", action="store_true", help="even if the DNS does not answer its record")
    use_key = commands.add_parser("use-key", help="sign DOMAIN with your own private key FILE, as SELECTOR")
    use_key.add_argument("domain")
    use_key.add_argument("selector")
    use_key.add_argument("file", type=Path)
    milter = commands.add_parser("postfix-milter", help="add the signer to Postfix's smtpd_milters, or take it out")
    milter.add_argument("state", choices=("on", "off"))
    args = parser.parse_args(argv)
    try:
        return execute(args)
    except MmdebError as error:
        print(f"mailmen-dkim: error: {error}", file=sys.stderr)
        return 1


def execute(args) -> int:
    say = print
    hostname = socket.getfqdn()
    if args.command == "setup":
        setup(installed_domains(), say)
    elif args.command == "postfix-milter":
        postfix_milter(args.state == "on", say)
    elif args.command in ("records", "check"):
        key = domain_key(args.domain)
        wanted = records(key, public_key(key.path), hostname)
        if args.command == "records":
            for record in wanted:
                say(f"; {record.what}\n{record.zone_line()}")
            return 0
        lines, right = check(wanted, dns_lookup)
        say("\n".join(lines))
        return 0 if right else 1
    elif args.command == "rotate":
        domain_key(args.domain)
        key = Key(args.domain, check_selector(args.selector) if args.selector else new_selector(args.domain, time.gmtime()))
        if key.path.exists():
            raise MmdebError(f"{key.path} exists", "choose another --selector")
        make_key(key, signer())
        say(f"; made {key.path}; publish this record, then run: mailmen-dkim activate {key.domain} {key.selector}")
        say(records(key, public_key(key.path), hostname)[0].zone_line())
    elif args.command in ("activate", "use-key"):
        domain_key(args.domain)
        key = Key(args.domain, check_selector(args.selector))
        if args.command == "use-key":
            if key.path.exists():
                raise MmdebError(f"{key.path} exists", "give your key another selector")
            make_key(key, signer(), source=args.file)
        elif not key.path.exists():
            raise MmdebError(f"{args.domain} has no key {key.selector} ({key.path})", f"make one: mailmen-dkim rotate {args.domain}")
        record = records(key, public_key(key.path), hostname)[0]
        problem = verdict(record, dns_lookup(record.name)) if args.command == "activate" and not args.force else None
        if problem:
            raise MmdebError(f"the DNS record of {record.name} is {problem.split(':')[0]}",
                             f"publish {record.zone_line()}, wait for it, and run activate again (or give --force)")
        select(key)
        setup(installed_domains(), say)
        restart_signer(say)
        if args.command == "use-key":
            say(f"; publish this record (the key is copied to {key.path}):\n{record.zone_line()}")
        say(f"{args.domain} is now signed with selector {key.selector}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
