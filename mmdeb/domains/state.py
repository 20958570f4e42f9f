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

from mmdeb.domains.domain import Domain
from mmdeb.errors import MmdebError
from mmdeb.build.spec import DEFAULT_CGI_GID, DEFAULT_MAIL_GID, ChangelogEntry
from mmdeb.upstream.dists import FLAVOURS

DEFAULT_STATE = Path("mmdeb.toml")


@dataclass(kw_only=True)
class PackageState:
    """What was last built and published of one source package, and from what."""

    built: str = ""  # the version last built
    published: str = ""  # the version last published
    inputs: dict[str, str] = field(default_factory=dict)  # what the last build was made from
    changelog: list[ChangelogEntry] = field(default_factory=list)  # newest first

    @classmethod
    def from_toml(cls, table: dict):
        entries = [ChangelogEntry(**entry) for entry in table.get("changelog", [])]
        return cls(**{**table, "changelog": entries})

    def to_toml(self) -> dict:
        table = asdict(self)
        return {key: value for key, value in table.items() if value not in ("", {}, [])}


@dataclass
class DomainState(PackageState):
    upstream: str  # a catalogue name or a tarball path
    flavour: str
    dist: str
    mail_gid: str = DEFAULT_MAIL_GID
    cgi_gid: str = DEFAULT_CGI_GID
    site_list_owner: str = ""
    mode: str = "prefix"  # or "shared": the code comes from the core package of flavour and dist
    runners: str = "on-demand"  # or "always-on": mailmanctl's runners run all the time


def core_key(flavour: str, dist: str) -> str:
    return f"{flavour}-{dist}"


@dataclass
class State:
    path: Path
    domains: dict[str, DomainState] = field(default_factory=dict)
    cores: dict[str, PackageState] = field(default_factory=dict)  # by core_key(flavour, dist)

    @classmethod
    def load(cls, path: Path = DEFAULT_STATE) -> "State":
        if not path.exists():
            return cls(path)
        try:
            data = tomllib.loads(path.read_text())
            domains = {name: DomainState.from_toml(table) for name, table in data.get("domains", {}).items()}
            cores = {key: PackageState.from_toml(table) for key, table in data.get("cores", {}).items()}
        except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
            backup = path.with_name(path.name + ".bak")
            raise MmdebError(
                f"the state file {path} is corrupted ({exc})",
                f"repair it, or restore the previous version from {backup}" if backup.exists() else "repair it",
            )
        return cls(path, domains, cores)

    def save(self) -> None:
        text = tomli_w.dumps({
            "domains": {name: self.domains[name].to_toml() for name in sorted(self.domains)},
            "cores": {key: self.cores[key].to_toml() for key in sorted(self.cores)},
        })
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text("# Written by mmdeb; `mmdeb domains` and `mmdeb rebuild` maintain it.\n" + text)
        if self.path.exists():
            shutil.copy2(self.path, self.path.with_name(self.path.name + ".bak"))
        os.replace(tmp, self.path)

    def get(self, name: str) -> DomainState:
        if name not in self.domains:
            raise MmdebError(f"{name} is not a domain of {self.path}", f"add it with: mmdeb domains add {name}")
        return self.domains[name]

    def packages(self) -> list[tuple[str, str, PackageState]]:
        """Every recorded source package as (name, dist, record)."""
        packages = [(Domain(name).package, domain.dist, domain) for name, domain in self.domains.items()]
        for key, core in self.cores.items():
            flavour, dist = key.split("-", 1)
            packages.append((FLAVOURS[flavour].core_package, dist, core))
        return sorted(packages, key=lambda item: item[:2])

    def core(self, flavour: str, dist: str) -> PackageState:
        return self.cores.setdefault(core_key(flavour, dist), PackageState())


@contextmanager
def locked(path: Path = DEFAULT_STATE):
    """Hold the state file's lock (waiting for other mmdeb runs), and yield the loaded state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield State.load(path)
