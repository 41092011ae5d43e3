"""Property: a committed tree unpacks to itself, and commits are deterministic.

For random trees (tests/treegen.py: files, directories, symlinks, hardlinks,
fifos, modes with setuid/setgid/sticky, owners past the octal field, user.*
xattrs, nanosecond mtimes, names with unicode and bytes that are not UTF-8),
``unpack(commit(tree))`` gives the tree back, compared with a full metadata
walk (tests/treecmp.py), and the same tree created in two different orders
commits to the same digest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treecmp import tree_state
from treegen import Node, creation_orders, empty_layout, materialize, scratch, trees

from oci_tools import api
from oci_tools.layout import Layout

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, owners in layers)"),
]

CREATED = "2024-01-02T03:04:05Z"


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    base = tmp_path_factory.mktemp("props")
    yield empty_layout(str(base / "lay")), base


def _commit_tree(
    lay: Layout, nodes: list[Node], where: str, ref: str | None = None
) -> tuple[str, str]:
    """Unpack the empty image into a bundle under ``where``, create ``nodes``
    in its rootfs, commit it as ``ref``; (manifest digest, rootfs path)."""
    bundle = os.path.join(where, "bundle")
    api.unpack(lay, "empty", bundle)
    rootfs = os.path.join(bundle, "rootfs")
    materialize(rootfs, nodes)
    res = api.commit(lay, ref, bundle, created=CREATED, allow_empty=True)
    return str(res.descriptor.digest), rootfs


@given(nodes=trees())
def test_unpack_of_commit_is_the_tree(work: tuple[Layout, Path], nodes: list[Node]) -> None:
    lay, base = work
    with scratch(str(base)) as d:
        _, rootfs = _commit_tree(lay, nodes, d, "rt")
        again = os.path.join(d, "again")
        api.unpack(lay, "rt", again)
        want, got = tree_state(rootfs), tree_state(os.path.join(again, "rootfs"))
        assert sorted(want) == sorted(got)
        for p in want:
            assert want[p] == got[p], p


@given(nodes=trees(), seed=st.integers(0, 1 << 16))
def test_commit_is_deterministic(work: tuple[Layout, Path], nodes: list[Node], seed: int) -> None:
    lay, base = work
    with scratch(str(base)) as d1, scratch(str(base)) as d2:
        first, _ = _commit_tree(lay, nodes, d1)
        second, _ = _commit_tree(lay, creation_orders(nodes, seed), d2)
        assert first == second
