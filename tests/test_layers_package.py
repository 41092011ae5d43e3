"""The ``oci_tools.views.layers`` package: its public names, and imports
between its modules pointing one way (index <- replay <- report <- efficiency;
extract on index and replay), with ``.wh.`` names only from layer.whiteout."""

from __future__ import annotations

import ast
from pathlib import Path

import oci_tools.views.layers

PKG = Path(oci_tools.views.layers.__file__).parent
#: Which sibling modules each module may import.
ALLOWED = {
    "index": set(),
    "replay": {"index"},
    "report": {"index", "replay"},
    "efficiency": {"index", "replay", "report"},
    "extract": {"index", "replay"},
    "__init__": {"index", "replay", "report", "efficiency", "extract"},
}


def _siblings(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            if name.startswith("oci_tools.views.layers."):
                found.add(name.split(".")[3])
    return found


def test_every_public_name_is_exported() -> None:
    exported = oci_tools.views.layers.__all__
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert not name.startswith("_") and getattr(oci_tools.views.layers, name) is not None
    # What the CLI uses today.
    for name in (
        "Change",
        "Efficiency",
        "LayerReport",
        "TreeNode",
        "analyze",
        "change_tree",
        "efficiency",
        "extract_layer",
        "layer_report",
        "select_layer",
    ):
        assert name in exported


def test_modules_import_one_way() -> None:
    modules = {p.stem: p for p in PKG.glob("*.py")}
    assert set(modules) == set(ALLOWED)
    for name, path in modules.items():
        assert _siblings(path) <= ALLOWED[name], name


def test_whiteout_names_come_from_layer_whiteout() -> None:
    for path in PKG.glob("*.py"):
        assert ".wh." not in path.read_text(), path
