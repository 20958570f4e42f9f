"""A domain's settings: what the admin chooses for each domain (`mmdeb domains add`, `mmdeb build`).
This is the one declaration of their shape: the state file stores it, the command line fills it
and the package spec reads it."""

import re
from dataclasses import dataclass, fields

from mmdeb.domains.layout import WEB_SERVER_USER
from mmdeb.errors import MmdebError

# prefix: a whole Mailman per domain; shared: the code comes from the flavour's core package.
MODES = ("prefix", "shared")
# on-demand: on systemd hosts, a path unit starts `qrunner --drain` when a queue gets mail, and
# nothing runs while the queues are empty. always-on: mailmanctl and its runners, all the time
# (what hosts without systemd run in either case).
RUNNERS = ("on-demand", "always-on")
GROUP_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class DomainSettings:
    upstream: str  # a catalogue name or a tarball's absolute path
    flavour: str
    dist: str
    mail_gid: str = "daemon"  # the group the MTA runs the mail wrapper as, as Debian's own mailman package did
    cgi_gid: str = WEB_SERVER_USER  # the group the web server runs CGI scripts as (Debian: the same name)
    site_list_owner: str = ""  # debconf's default; empty means postmaster@<domain>
    mode: str = "prefix"
    runners: str = "on-demand"

    def __post_init__(self):
        if self.mode not in MODES:
            raise MmdebError(f"unknown mode {self.mode!r}", f"use --mode {' or --mode '.join(MODES)}")
        if self.runners not in RUNNERS:
            raise MmdebError(f"unknown runners setting {self.runners!r}", f"use --runners {' or --runners '.join(RUNNERS)}")
        for option, group in (("--mail-gid", self.mail_gid), ("--cgi-gid", self.cgi_gid)):
            if not GROUP_NAME.match(group):
                raise MmdebError(f"{option} {group!r} is not a valid group name", "give a system group such as daemon or www-data")
        if self.site_list_owner and not EMAIL.match(self.site_list_owner):
            raise MmdebError(f"site list owner {self.site_list_owner!r} is not a mail address",
                             "give an address such as postmaster@lists.example.org")

    @property
    def package_settings(self) -> dict[str, str]:
        """What shapes the package besides its upstream: a change rebuilds the domain."""
        return {field.name: getattr(self, field.name) for field in fields(self) if field.name not in ("upstream", "flavour")}


NAMES = tuple(field.name for field in fields(DomainSettings))
DEFAULTS = {field.name: field.default for field in fields(DomainSettings) if isinstance(field.default, str)}
