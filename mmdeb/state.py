"""mmdeb.toml: the domains this host builds, their settings, and what was built and published.

The file is rewritten atomically (the previous version is kept as mmdeb.toml.bak), and a
lock beside it makes concurrent mmdeb runs wait for each other.
"""

import fcntl
import os
import shutil
import tomllib
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tomli_w

from mmdeb.errors import MmdebError
from mmdeb.spec import DEFAULT_CGI_GID, DEFAULT_MAIL_GID, ChangelogEntry

DEFAULT_STATE = Path("mmdeb.toml")


@dataclass
class DomainState:
    upstream: str  # a catalogue name or a tarball path
    flavour: str
    dist: str
    mail_gid: str = DEFAULT_MAIL_GID
    cgi_gid: str = DEFAULT_CGI_GID
    site_list_owner: str = ""
    built: str = ""  # the version last built
    published: str = ""  # the version last published
    inputs: dict[str, str] = field(default_factory=dict)  # what the last build was made from
    changelog: list[ChangelogEntry] = field(default_factory=list)  # newest first

    @classmethod
    def from_toml(cls, table: dict) -> "DomainState":
        entries = [ChangelogEntry(**entry) for entry in table.get("changelog", [])]
        return cls(**{**table, "changelog": entries})

    def to_toml(self) -> dict:
        table = asdict(self)
        return {key: value for key, value in table.items() if value not in ("", {}, [])}


@dataclass
class State:
    path: Path
    domains: dict[str, DomainState] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path = DEFAULT_STATE) -> "State":
        if not path.exists():
            return cls(path)
        try:
            data = tomllib.loads(path.read_text())
            domains = {name: DomainState.from_toml(table) for name, table in data.get("domains", {}).items()}
        except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
            backup = path.with_name(path.name + ".bak")
            raise MmdebError(
                f"the state file {path} is corrupted ({exc})",
                f"repair it, or restore the previous version from {backup}" if backup.exists() else "repair it",
            )
        return cls(path, domains)

    def save(self) -> None:
        text = tomli_w.dumps({"domains": {name: self.domains[name].to_toml() for name in sorted(self.domains)}})
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("# Written by mmdeb; `mmdeb domains` and `mmdeb rebuild` maintain it.\n" + text)
        if self.path.exists():
            shutil.copy2(self.path, self.path.with_name(self.path.name + ".bak"))
        os.replace(tmp, self.path)

    def get(self, name: str) -> DomainState:
        if name not in self.domains:
            raise MmdebError(f"{name} is not a domain of {self.path}", f"add it with: mmdeb domains add {name}")
        return self.domains[name]


@contextmanager
def locked(path: Path = DEFAULT_STATE):
    """Hold the state file's lock (waiting for other mmdeb runs), and yield the loaded state."""
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield State.load(path)
