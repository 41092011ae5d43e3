"""The package's import graph points only downward (DESIGN.md)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "oci_tools"

#: Level of every module (subpackages by their top name).
LEVELS = {
    "errors": 0,
    "fsutil": 0,
    "digest": 1,
    "render": 1,
    "spec": 2,
    "compression": 2,
    "store": 3,
    "layer": 3,
    "layout": 4,
    "apply": 4,
    "diff": 4,
    "snapshot": 4,
    "image": 5,
    "mutate": 5,
    "bundle": 5,
    "archive": 5,
    "registry": 5,
    "sign": 5,
    "check": 5,
    "views": 5,
    "inspect": 5,
    "build": 6,
    "cli": 7,
    "__main__": 8,
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("oci_tools"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.add(parts[1])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("oci_tools."):
                    found.add(a.name.split(".")[1])
    return found


def test_every_module_has_a_level() -> None:
    for path in PKG.rglob("*.py"):
        name = _module_name(path)
        if name == "__init__":
            continue
        assert name in LEVELS, f"{path} has no level in DESIGN.md's picture"


def test_imports_point_down() -> None:
    bad = []
    for path in PKG.rglob("*.py"):
        name = _module_name(path)
        if name == "__init__":
            continue
        for dep in _imports(path):
            if dep in ("__init__", name) or dep == "__version__":
                continue
            if dep not in LEVELS:
                continue
            if LEVELS[dep] > LEVELS[name]:
                bad.append(
                    f"{path.relative_to(PKG)} (L{LEVELS[name]}) imports {dep} (L{LEVELS[dep]})"
                )
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    f = tmp_path / "x.py"
    f.write_text("from oci_tools.cli.app import main\n")
    assert "cli" in _imports(f)
