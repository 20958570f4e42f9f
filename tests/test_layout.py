"""The package's layout follows the data flow, and no import runs back up it (README, Layout)."""

import ast
from pathlib import Path

import mmdeb

PACKAGE = Path(mmdeb.__file__).parent
# Lowest first. A module imports only from lower layers and from its own unit; import stands
# beside planning, and so does listhost (code for list hosts; none imports another).
LAYERS = (
    ("mmdeb", "mmdeb.errors", "mmdeb.run"),
    ("mmdeb.domains",),
    ("mmdeb.upstream",),
    ("mmdeb.build",),
    ("mmdeb.publish",),
    ("mmdeb.plan", "mmdeb.importing", "mmdeb.listhost"),
    ("mmdeb.app",),
    ("mmdeb.cli", "mmdeb.__main__"),
)
ONE_UNIT = (0, 7)  # the base modules, and the command line


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(path): ast.parse(path.read_text()) for path in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """The mmdeb modules tree imports, anywhere in it (from mmdeb.x import y: mmdeb.x.y if that is a module)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "mmdeb":
            names.update(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module
                         for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.split(".")[0] == "mmdeb")
    return names


def unit(name: str) -> tuple[int, str]:
    """The layer of a module, and the package it belongs to within that layer."""
    for level, owners in enumerate(LAYERS):
        for owner in sorted(owners, key=len, reverse=True):
            if name == owner or (owner != "mmdeb" and name.startswith(owner + ".")):
                return level, LAYERS[level][0] if level in ONE_UNIT else owner
    return 0, "mmdeb"


def test_every_module_has_a_layer():
    loose = [name for name in modules() if name.count(".") == 1 and unit(name) == (0, "mmdeb")
             and name not in LAYERS[0]]
    assert loose == []


def test_no_import_runs_back_up_the_flow():
    trees = modules()
    upward = []
    for name, tree in trees.items():
        level, owner = unit(name)
        for target in imported(tree, set(trees)):
            target_level, target_owner = unit(target)
            if target_owner != owner and target_level >= level:
                upward.append(f"{name} imports {target}")
    assert upward == []


def test_no_import_cycle():
    trees = modules()
    graph = {name: imported(tree, set(trees)) & set(trees) for name, tree in trees.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, " -> ".join((*path, name))
        if name in done:
            return
        for target in sorted(graph[name]):
            # A package's __init__ is imported with any of its modules, not by them.
            if not name.startswith(target + "."):
                visit(target, (*path, name))
        done.add(name)

    for name in sorted(graph):
        visit(name, ())


def test_ambient_places_are_read_only_on_top():
    """Only the command line asks where this run keeps its files; everything below gets them."""
    callers = [name for name, tree in modules().items()
               for node in ast.walk(tree)
               if isinstance(node, ast.Attribute) and node.attr == "current"
               and isinstance(node.value, ast.Name) and node.value.id == "places"]
    assert callers == ["mmdeb.cli"]
