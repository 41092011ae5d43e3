"""The build package's own import order: each module imports only the ones
below it (no cycles), and the package re-exports its public names."""

from __future__ import annotations

import ast
from pathlib import Path

import oci_tools.build

BUILD = Path(oci_tools.build.__file__).parent
#: Bottom first; a module may import only modules listed before it.
ORDER = [
    "words",
    "dockerfile",
    "dockerignore",
    "context",
    "sourcehash",
    "cache",
    "executor",
    "workspace",
    "builder",
]


def _siblings(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[:2] == ["oci_tools", "build"]:
                found.update(parts[2:3] or [a.name for a in node.names])
    return found


def test_every_module_has_a_place_and_imports_point_down() -> None:
    modules = {p.stem for p in BUILD.glob("*.py")} - {"__init__"}
    assert modules == set(ORDER)
    for name in ORDER:
        below = set(ORDER[: ORDER.index(name)])
        assert _siblings(BUILD / f"{name}.py") <= below, name


def test_public_names_are_reexported() -> None:
    for name in oci_tools.build.__all__:
        assert getattr(oci_tools.build, name) is not None
    assert {"build", "BuildOptions", "BuildError", "parse_dockerfile"} <= set(
        oci_tools.build.__all__
    )
