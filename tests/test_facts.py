"""Each fact of a list host's layout is spelt once, in its owner; templates get it from render's
context. mmdeb-import's modules, shipped to list hosts, need nothing but themselves."""

import ast
import re
import sys
from pathlib import Path

import pytest

import mmdeb
from mmdeb.build.render import IMPORTER_MODULES, importer_files
from mmdeb.domains import layout

ROOT = Path(mmdeb.__file__).resolve().parent.parent
LAYOUT = "mmdeb/domains/layout.py"
QUEUE = "|".join(layout.WAITING_QUEUES)
# fact -> (how it would be spelt, the one file allowed to spell it)
FACTS = {
    "the prefixes' root": (re.escape(layout.PREFIX_ROOT), LAYOUT),
    "/etc/mailmen": (re.escape(layout.ETC_ROOT), LAYOUT),
    "the logs' root": (re.escape(layout.LOG_ROOT), LAYOUT),
    "the locks' root": (re.escape(layout.LOCK_ROOT), LAYOUT),
    "the site list": (rf"""["']{layout.SITE_LIST}["']|lists/{layout.SITE_LIST}\b|newlist\b.*\b{layout.SITE_LIST}\b""", LAYOUT),
    "the queue names": (rf"""["']({QUEUE})["']\s*,\s*["']({QUEUE})["']|qfiles/({QUEUE})\b""", LAYOUT),
    "the public suffix list": (re.escape(layout.PUBLIC_SUFFIX_LIST), LAYOUT),
    "the making of the lock directory": (r"install -d.*(lock_dir|LOCKDIR)", "debian-templates/include/postinst/runtime.j2"),
}


def sources() -> dict[str, str]:
    """Every text file of debian-templates/ and mmdeb/, by its path in the checkout."""
    found = {}
    for top in ("debian-templates", "mmdeb"):
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                try:
                    found[str(path.relative_to(ROOT))] = path.read_text()
                except UnicodeDecodeError:  # signing keys
                    continue
    return found


@pytest.mark.parametrize("fact", FACTS)
def test_each_fact_is_spelt_only_by_its_owner(fact):
    pattern, owner = FACTS[fact]
    spelt_in = sorted(name for name, text in sources().items() if re.search(pattern, text))
    assert spelt_in == [owner]


def module_exists(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_the_importers_modules_import_only_the_standard_library_and_each_other():
    shipped = {"mmdeb." + name.removesuffix(".py").removesuffix("__init__").replace("/", ".") for name in IMPORTER_MODULES}
    shipped = {name.rstrip(".") for name in shipped}
    for path in importer_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # from a package import a module: that module is imported too
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names
                                        if module_exists(f"{node.module}.{alias.name}"))]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                # Mailman: the domain's own, which the importer drives.
                assert top in sys.stdlib_module_names or top == "Mailman" or name in shipped, f"{path} imports {name}"
