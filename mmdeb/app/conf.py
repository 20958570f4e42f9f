"""mmdeb.conf: the build host's settings (builder, chroot age, what autorebuild may do).
A missing file or key means the default; etc/mmdeb.conf documents each one."""

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from mmdeb import PATCHES_DIR
from mmdeb.build.builders import BUILDERS
from mmdeb.build.builders.chroot import ARCHIVE, Mirror, mirror_setting_line
from mmdeb.errors import MmdebError
from mmdeb.upstream.dists import DIST_RELEASES

POLICIES = ("report", "build", "build+publish")
WHEN_OLD = ("update", "refuse")
URGENCIES = ("low", "medium", "high", "critical", "emergency")  # of a changelog entry


@dataclass(frozen=True)
class Settings:
    builder: str = "sbuild"
    jobs: int = 0
    patches: str = ""
    max_age_days: int = 7
    when_old: str = "update"
    policy: str = "report"
    mail_to: str = "root"
    urgency: str = "high"
    mirrors: dict[str, dict[str, str]] = field(default_factory=dict)  # dist -> some of Mirror's fields

    @property
    def build_jobs(self) -> int:
        return max(1, self.jobs or os.cpu_count() or 1)

    @property
    def patches_dir(self) -> Path:
        return Path(self.patches) if self.patches else PATCHES_DIR


# Each setting's table in the file, and the values it may take (None: any of its type).
LAYOUT = {
    "builder": ("build", BUILDERS), "jobs": ("build", None), "patches": ("build", None),
    "max_age_days": ("chroot", None), "when_old": ("chroot", WHEN_OLD), "mirrors": ("chroot", None),
    "policy": ("autorebuild", POLICIES), "mail_to": ("autorebuild", None), "urgency": ("autorebuild", URGENCIES),
}


def load(path: Path) -> Settings:
    if not path.exists():
        return Settings()
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise MmdebError(f"{path} is not valid TOML ({exc})", f"correct {path}")
    loose = [key for key, value in data.items() if not isinstance(value, dict)]
    if loose:  # TOML puts a key above the first [table] in no table
        key = loose[0]
        raise MmdebError(f"{path}: setting {key} is above the first table, so it is in none",
                         f"move it under [{LAYOUT[key][0]}]" if key in LAYOUT else "remove it")
    values = {}
    for setting in fields(Settings):
        table, allowed = LAYOUT[setting.name]
        if setting.name not in data.get(table, {}):
            continue
        value = data[table][setting.name]
        if setting.name == "mirrors":
            values[setting.name] = mirrors(path, value)
            continue
        kind = type(setting.default)
        if type(value) is not kind or (allowed and value not in allowed) or (kind is int and value < 0):
            expected = " or ".join(f'"{choice}"' for choice in allowed) if allowed else f"a {'whole number' if kind is int else 'string'}"
            raise MmdebError(f"{path}: {table}.{setting.name} = {value!r} is not a valid setting",
                             f"set it to {expected}")
        values[setting.name] = value
    unknown = sorted(f"{table}.{key}" for table, keys in data.items() if isinstance(keys, dict)
                     for key in keys if LAYOUT.get(key, ("",))[0] != table)
    if unknown:
        raise MmdebError(f"{path}: unknown setting {', '.join(unknown)}", f"remove it; the known ones are in {path.name}'s comments")
    return Settings(**values)


def mirrors(path: Path, value) -> dict[str, dict[str, str]]:
    """chroot.mirrors: for a distribution, a table of some of Mirror's fields, each a URL."""
    if not isinstance(value, dict):
        raise MmdebError(f"{path}: chroot.mirrors = {value!r} is not a valid setting",
                         f"give one line per distribution under [chroot], e.g. {mirror_setting_line('bullseye', ARCHIVE)}")
    keys = [each.name for each in fields(Mirror)]
    for dist, entry in value.items():
        if dist not in DIST_RELEASES or not isinstance(entry, dict) or not entry or set(entry) - set(keys) or not all(
                isinstance(url, str) and url.startswith(("http://", "https://", "file:")) for url in entry.values()):
            raise MmdebError(f"{path}: chroot.mirrors.{dist} = {entry!r} is not a valid setting",
                             f"name one of {', '.join(DIST_RELEASES)} and give {' and/or '.join(keys)} URLs, "
                             f"e.g. {mirror_setting_line('bullseye', ARCHIVE)}")
    return value
