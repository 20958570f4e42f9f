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

from mmdeb.domains.domain import Domain, core_package
from mmdeb.domains.layout import COMMON_PACKAGE
from mmdeb.domains.settings import NAMES as SETTING_NAMES, DomainSettings
from mmdeb.errors import MmdebError


@dataclass(frozen=True)
class ChangelogEntry:
    version: str
    dist: str
    urgency: str
    timestamp: int
    reason: str


@dataclass(kw_only=True)
class PackageState:
    """What was last built and published of one source package, and from what."""

    built: str = ""  # the version last built
    published: str = ""  # the version last published
    inputs: dict[str, str] = field(default_factory=dict)  # what the last build was made from
    changelog: list[ChangelogEntry] = field(default_factory=list)  # newest first

    @classmethod
    def from_toml(cls, table: dict, where: str):
        """The record in table; where names the table for an error about an unknown key."""
        known = {name for name in cls.__dataclass_fields__ if name != "settings"}
        unknown = sorted(set(table) - known)
        if unknown:
            raise MmdebError(f"{where} has an unknown key {unknown[0]!r}",
                             f"remove it, or correct it to one of {', '.join(sorted(known))}")
        entries = [ChangelogEntry(**entry) for entry in table.get("changelog", [])]
        return cls(**{**table, "changelog": entries})

    def to_toml(self) -> dict:
        table = asdict(self)
        return {key: value for key, value in table.items() if value not in ("", {}, [])}


@dataclass(kw_only=True)
class DomainState(PackageState):
    settings: DomainSettings

    @classmethod
    def from_toml(cls, table: dict, where: str):
        try:
            settings = DomainSettings(**{key: value for key, value in table.items() if key in SETTING_NAMES})
        except MmdebError as exc:
            raise MmdebError(f"{where} {exc.message}", f"correct it, or record the domain again with mmdeb domains add")
        record = PackageState.from_toml({key: value for key, value in table.items() if key not in SETTING_NAMES}, where)
        return cls(settings=settings, **vars(record))

    def to_toml(self) -> dict:
        table = {**asdict(self.settings), **asdict(self)}
        del table["settings"]
        return {key: value for key, value in table.items() if value not in ("", {}, [])}


def core_key(flavour: str, dist: str) -> str:
    return f"{flavour}-{dist}"


# Where a record is kept: ("domains", name), ("cores", core_key(flavour, dist)) or ("commons", dist).
Where = tuple[str, str]


@dataclass
class State:
    path: Path
    domains: dict[str, DomainState] = field(default_factory=dict)
    cores: dict[str, PackageState] = field(default_factory=dict)  # by core_key(flavour, dist)
    commons: dict[str, PackageState] = field(default_factory=dict)  # mailmen-common's, by dist

    @classmethod
    def load(cls, path: Path) -> "State":
        if not path.exists():
            return cls(path)
        try:
            data = tomllib.loads(path.read_text())
            unknown = sorted(set(data) - {"domains", "cores", "common"})
            if unknown:
                raise MmdebError(f"{path} has an unknown table {unknown[0]!r}",
                                 "remove it; mmdeb writes only [domains], [cores] and [common]")
            domains = {name: DomainState.from_toml(table, f"{path}, domain {name},")
                       for name, table in data.get("domains", {}).items()}
            cores = {key: PackageState.from_toml(table, f"{path}, core {key},") for key, table in data.get("cores", {}).items()}
            commons = {dist: PackageState.from_toml(table, f"{path}, common {dist},")
                       for dist, table in data.get("common", {}).items()}
        except (tomllib.TOMLDecodeError, TypeError, ValueError) as exc:
            backup = path.with_name(path.name + ".bak")
            raise MmdebError(
                f"the state file {path} is corrupted ({exc})",
                f"repair it, or restore the previous version from {backup}" if backup.exists() else "repair it",
            )
        return cls(path, domains, cores, commons)

    def save(self) -> None:
        text = tomli_w.dumps({
            "domains": {name: self.domains[name].to_toml() for name in sorted(self.domains)},
            "cores": {key: self.cores[key].to_toml() for key in sorted(self.cores)},
            "common": {dist: self.commons[dist].to_toml() for dist in sorted(self.commons)},
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
        packages = [(Domain(name).package, domain.settings.dist, domain) for name, domain in self.domains.items()]
        for key, core in self.cores.items():
            flavour, dist = key.split("-", 1)
            packages.append((core_package(flavour), dist, core))
        packages.extend((COMMON_PACKAGE, dist, common) for dist, common in self.commons.items())
        return sorted(packages, key=lambda item: item[:2])

    def put(self, where: Where, record: PackageState) -> None:
        table, key = where
        {"domains": self.domains, "cores": self.cores, "commons": self.commons}[table][key] = record

    def core(self, flavour: str, dist: str) -> PackageState:
        return self.cores.setdefault(core_key(flavour, dist), PackageState())

    def common(self, dist: str) -> PackageState:
        return self.commons.setdefault(dist, PackageState())


@contextmanager
def locked(path: Path):
    """Hold the state file's lock (waiting for other mmdeb runs), and yield the loaded state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield State.load(path)
