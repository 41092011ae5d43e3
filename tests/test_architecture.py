"""The package's import graph is the house of docs/architecture.md.

``ALLOWED`` is the table of edges between packages (top-level modules and
subpackages of ``oci_tools``): an import not in it fails, a package not in it
fails, a row naming a package that does not exist fails, and the graph of
modules must have no cycle.  Lazy imports inside functions count too: they are
edges all the same, only paid for later.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "oci_tools"

_BASE = {"errors", "fsutil", "render", "progress", "records"}
_VALUES = _BASE | {"digest", "spec"}
_STORE = _VALUES | {"compression", "store"}
_LAYERS = _STORE | {"layer", "snapshot"}
_IMAGES = _LAYERS | {"layout", "image"}

#: package -> the packages it may import.  Read bottom-up: each row may use
#: what the rows above it offer, never what comes after it.
ALLOWED: dict[str, set[str]] = {
    # L0: no oci_tools imports but the error tree
    "errors": set(),
    "records": set(),  # frozen value classes (dataclasses, made cheaply)
    "fsutil": set(),
    "progress": set(),
    "render": {"errors"},
    # L1: values
    "digest": {"errors", "render", "progress", "records"},
    "spec": {"errors", "digest", "records"},
    "compression": {"errors", "spec"},
    # L2: storage and layer streams
    "store": _BASE | {"digest"},
    "layer": _BASE | {"digest", "compression", "spec"},
    "snapshot": _BASE,
    # L3: trees <-> layers (streams and directories only: never a store or a layout)
    "apply": _LAYERS,
    "diff": _LAYERS,
    # L4: the layout
    "layout": _STORE,
    # L5: images as values, changes to them, whole-layout checks
    "image": _STORE | {"layout", "layer"},
    "mutate": _IMAGES,
    "check": _IMAGES,
    # L6: operations on images
    "bundle": _IMAGES | {"apply", "diff", "mutate"},
    "archive": _IMAGES | {"mutate"},
    "registry": _IMAGES | {"archive", "mutate"},
    "sign": _IMAGES | {"registry", "mutate"},
    "snapshots": _IMAGES | {"apply", "diff", "bundle"},  # overlay bundles use bundle's record
    "surgery": _IMAGES | {"apply", "diff", "mutate"},
    # L7: what users see and build
    "containers": _IMAGES | {"apply", "diff", "mutate", "bundle", "snapshots"},
    "views": _IMAGES | {"apply", "bundle", "render", "snapshots", "containers"},
    "build": _IMAGES | {"apply", "diff", "mutate", "bundle", "archive"},
    "api": _IMAGES | {"apply", "diff", "mutate", "bundle", "archive", "check", "views", "build"},
    # L8: the command line imports anything; nothing imports it
    "cli": set(),  # filled below
    "__main__": {"cli"},
}
ALLOWED["cli"] = set(ALLOWED) - {"cli", "__main__"}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = ["oci_tools", *rel.parts]
        if parts[-1] == "__init__":
            parts.pop()
        yield ".".join(parts), path


def _imports(path: Path, module: str) -> set[str]:
    """Absolute names of the oci_tools modules (or module attributes) imported."""
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                drop = node.level - 1 if is_pkg else node.level
                anchor = anchor[: len(anchor) - drop] if drop else anchor
                base = ".".join(anchor + ([base] if base else []))
            if base == "oci_tools" or base.startswith("oci_tools."):
                # each name is a submodule or a name defined in ``base``
                found.update(f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("oci_tools."))
    return found


def _package(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@functools.cache
def _graph() -> dict[str, set[str]]:
    mods = dict(_modules())
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps: set[str] = set()
        for imp in _imports(path, name):
            # "from oci_tools.x import y": y may be a module or a name in x.
            target = imp if imp in mods else imp.rsplit(".", 1)[0]
            if target in mods and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def test_every_package_has_a_row() -> None:
    missing = sorted(
        {_package(m) for m in _graph()} - set(ALLOWED) - {"__init__"},
    )
    assert not missing, f"packages with no row in ALLOWED: {missing}"


def test_every_row_names_a_package_that_exists_or_is_planned() -> None:
    existing = {_package(m) for m in _graph()}
    planned = {"registry", "sign", "snapshots", "containers", "api", "mutate"}
    assert set(ALLOWED) - existing <= planned


def test_imports_follow_the_table() -> None:
    bad = []
    for name, deps in _graph().items():
        src = _package(name)
        if src == "__init__":
            continue  # the public API re-exports from every layer (lazily)
        for dep in deps:
            dst = _package(dep)
            if dst in (src, "__init__"):
                continue
            if dst not in ALLOWED.get(src, set()):
                bad.append(f"{name} imports {dep} ({src} -> {dst})")
    assert not bad, "imports outside the table:\n" + "\n".join(sorted(bad))


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles_between_modules() -> None:
    graph = {
        n: {d for d in deps if d != "oci_tools"} for n, deps in _graph().items() if n != "oci_tools"
    }
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_command_modules_import_only_the_shared_cli_helpers() -> None:
    bad = []
    for name, deps in _graph().items():
        if not name.startswith("oci_tools.cli.commands."):
            continue
        for dep in deps:
            if dep.startswith("oci_tools.cli") and dep not in (
                "oci_tools.cli._common",
                "oci_tools.cli.tables",
                "oci_tools.cli.commands",
            ):
                bad.append(f"{name} imports {dep}")
    assert not bad, "\n".join(bad)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from oci_tools.cli import main\nfrom . import sibling\n")
    assert "oci_tools.cli.main" in _imports(f, "oci_tools.layer.x")
    assert "oci_tools.layer.sibling" in _imports(f, "oci_tools.layer.x")
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize("row", sorted(ALLOWED))
def test_no_row_allows_the_cli(row: str) -> None:
    if row != "__main__":
        assert "cli" not in ALLOWED[row]
