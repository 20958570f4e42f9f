"""mmdeb.conf: the build host's settings (builder, chroot age, what autorebuild may do).
A missing file or key means the default; etc/mmdeb.conf documents each one."""

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from mmdeb import PATCHES_DIR
from mmdeb.build.builders import BUILDERS
from mmdeb.errors import MmdebError

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

    @property
    def build_jobs(self) -> int:
        return max(1, self.jobs or os.cpu_count() or 1)

    @property
    def patches_dir(self) -> Path:
        return Path(self.patches) if self.patches else PATCHES_DIR


# Each setting's table in the file, and the values it may take (None: any of its type).
LAYOUT = {
    "builder": ("build", BUILDERS), "jobs": ("build", None), "patches": ("build", None),
    "max_age_days": ("chroot", None), "when_old": ("chroot", WHEN_OLD),
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
    for field in fields(Settings):
        table, allowed = LAYOUT[field.name]
        if field.name not in data.get(table, {}):
            continue
        value = data[table][field.name]
        kind = type(field.default)
        if type(value) is not kind or (allowed and value not in allowed) or (kind is int and value < 0):
            expected = " or ".join(f'"{choice}"' for choice in allowed) if allowed else f"a {'whole number' if kind is int else 'string'}"
            raise MmdebError(f"{path}: {table}.{field.name} = {value!r} is not a valid setting",
                             f"set it to {expected}")
        values[field.name] = value
    unknown = sorted(f"{table}.{key}" for table, keys in data.items() if isinstance(keys, dict)
                     for key in keys if LAYOUT.get(key, ("",))[0] != table)
    if unknown:
        raise MmdebError(f"{path}: unknown setting {', '.join(unknown)}", f"remove it; the known ones are in {path.name}'s comments")
    return Settings(**values)
