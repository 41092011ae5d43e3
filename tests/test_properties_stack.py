"""Property: random layer stacks apply as a plain in-memory model says, and
``layers`` / ``layer show`` agree with that model.

tests/test_replay_model.py holds the replay to ``apply_layer`` on seeded
random stacks, any member in any order (dropping the layers apply refuses).
Here the stacks are well formed (parents exist, one member per path, a
whiteout never meets a member of its own layer at or under its path), so a
model written from the OCI rules alone, independent of both ``apply`` and the
replay, can say what the tree must be:

- a non-directory over anything replaces the path and its subtree; a
  directory over a directory merges (its mode changes, children stay);
- a whiteout removes a lower path and its subtree; an opaque marker removes
  every lower child of its directory that this layer does not write;
- a hardlink names the content (and inode) of its target at that point, so
  a later layer replacing the target leaves the link with the old file.

Checked: the unpacked rootfs (kinds, modes, content, symlink targets, which
paths share an inode) is the model's tree, and each layer's ``layer show``
rows (``views.layers.analyze``) are the model's A/C rows (the paths the layer
writes, ``C`` when a lower layer had them) and D rows (the topmost lower
paths it removes and does not write itself).
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from builders import Member, directory, file, hardlink, make_layer, opaque, symlink, whiteout
from hypothesis import given
from hypothesis import strategies as st
from treegen import empty_layout, scratch

from oci_tools import api
from oci_tools.digest import Digest
from oci_tools.image import Image
from oci_tools.image import Layer as ImageLayer
from oci_tools.layout import Layout
from oci_tools.mutate import append_layer, write
from oci_tools.spec import mediatype as mt
from oci_tools.store import put_bytes
from oci_tools.views.layers import analyze

pytestmark = pytest.mark.fuzz

NAMES = ["a", "b", "c", "d"]
FILE_MODES = [0o644, 0o600, 0o755, 0o4755]
DIR_MODES = [0o755, 0o700, 0o1777]
TARGETS = ["a", "../b", "/c", ".", "/", "a/b"]
_ino = itertools.count(1)


@dataclass(frozen=True)
class MNode:
    """A path in the model: kind (dir, file, symlink, hardlink), mode, the
    content of a file, a symlink's target, an inode id shared by links."""

    kind: str
    mode: int
    data: bytes = b""
    target: str = ""
    ino: int = 0


Model = dict[str, MNode]


def _parent(p: str) -> str:
    return p.rpartition("/")[0]


def _under(p: str, top: str) -> bool:
    return p.startswith(top + "/")


def _drop_subtree(m: Model, p: str) -> None:
    for q in [q for q in m if q == p or _under(q, p)]:
        del m[q]


@st.composite
def stack_layer(draw: st.DrawFn, lower: Model) -> tuple[list[Member], Model, set[str]]:
    """One well-formed layer over ``lower``: (members in tar order, the model
    after it, the paths it writes)."""
    m = dict(lower)
    members: list[Member] = []
    written: set[str] = set()
    blocked: set[str] = set()  # whited out, or replaced by a non-directory here
    opaques: set[str] = set()
    link_targets: set[str] = set()
    for _ in range(draw(st.integers(1, 6))):
        dirs = [""] + [p for p, n in m.items() if n.kind == "dir"]
        dirs = [d for d in dirs if d not in blocked and not any(_under(d, b) for b in blocked)]
        # Whiteouts and opaque markers mostly aim at what lower layers have.
        existing = sorted(p for p in m if p in lower)
        if existing and draw(st.integers(0, 3)) == 0:
            path = draw(st.sampled_from(existing))
        else:
            parent = draw(st.sampled_from(dirs))
            name = draw(st.sampled_from(NAMES))
            path = f"{parent}/{name}" if parent else name
        if path in written or path in blocked or path in link_targets:
            continue
        # Below a directory made opaque earlier in this layer, a lower parent
        # is gone by the time this member comes: apply makes an implied
        # directory there (mode 0755, a D row for the lower one), which this
        # model does not do.  Members there need a parent this layer wrote.
        parent = _parent(path)
        if any(_under(parent, o) for o in opaques) and parent not in written:
            continue
        old = m.get(path)
        kinds = ["file", "dir", "symlink", "whiteout", "opaque"]
        lower_files = [
            p
            for p, n in m.items()
            if n.kind in ("file", "hardlink")
            and (p in written or p in lower)
            and not any(_under(p, o) or p == o for o in opaques if p not in written)
        ]
        if lower_files and (old is None or old.kind != "dir"):
            kinds.append("hardlink")
        kind = draw(st.sampled_from(kinds))
        # An opaque marker D/.wh..wh..opq is a member under D: like a member,
        # it makes D part of this layer, which its own whiteouts never remove.
        below = [q for q in written | link_targets | opaques if _under(q, path) or q == path]
        if kind in ("file", "symlink", "hardlink", "whiteout") and below:
            continue  # would replace or remove what this layer wrote or links to
        if kind == "whiteout":
            if path not in lower or path not in m:
                continue
            members.append(whiteout(path))
            _drop_subtree(m, path)
            blocked.add(path)
            continue
        if kind == "opaque":
            if old is None or old.kind != "dir" or path not in lower:
                continue
            if any(_under(t, path) and t not in written for t in link_targets):
                continue
            members.append(opaque(path))
            opaques.add(path)
            continue
        if kind == "hardlink":
            target = draw(st.sampled_from(lower_files))
            if target == path or _under(path, target):
                continue
            t = m[target]
            members.append(hardlink(path, target, mode=t.mode))
            if old is not None:
                _drop_subtree(m, path)
            m[path] = replace(t, kind="hardlink")
            link_targets.add(target)
        elif kind == "dir":
            mode = draw(st.sampled_from(DIR_MODES))
            members.append(directory(path, mode))
            if old is not None and old.kind != "dir":
                _drop_subtree(m, path)
            m[path] = MNode("dir", mode)
        elif kind == "file":
            data = draw(st.binary(max_size=8))
            mode = draw(st.sampled_from(FILE_MODES))
            members.append(file(path, data, mode=mode))
            _drop_subtree(m, path)
            m[path] = MNode("file", mode, data, ino=next(_ino))
        else:
            target = draw(st.sampled_from(TARGETS))
            members.append(symlink(path, target))
            _drop_subtree(m, path)
            m[path] = MNode("symlink", 0o777, target=target)
        written.add(path)
        if kind != "dir":
            blocked.add(path)  # nothing goes under a non-directory
    # Opaque directories keep only what this layer wrote (and its parents).
    for d in opaques:
        if d not in m:
            continue
        keep = {a for w in written for a in _ancestors(w)} | written
        for q in [q for q in m if _under(q, d) and q not in keep]:
            del m[q]
    return members, m, written


def _ancestors(p: str) -> Iterator[str]:
    while p:
        p = _parent(p)
        yield p


def _disk(root: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st_ = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISDIR(st_.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st_.st_mode), None, None)
            elif stat.S_ISLNK(st_.st_mode):
                out[rel] = ("symlink", None, os.readlink(p), None)
            else:
                out[rel] = ("file", stat.S_IMODE(st_.st_mode), Path(p).read_bytes(), st_.st_ino)
    return out


def _expected_disk(m: Model) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for p, n in m.items():
        if n.kind == "dir":
            out[p] = ("dir", n.mode, None, None)
        elif n.kind == "symlink":
            out[p] = ("symlink", None, n.target, None)
        else:
            out[p] = ("file", n.mode, n.data, n.ino)
    return out


def _partition(tree: dict[str, tuple[Any, ...]]) -> set[frozenset[str]]:
    groups: dict[Any, set[str]] = {}
    for p, v in tree.items():
        if v[0] == "file":
            groups.setdefault(v[3], set()).add(p)
    return {frozenset(g) for g in groups.values()}


def _strip_ino(tree: dict[str, tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    return {p: v[:3] for p, v in tree.items()}


def _topmost(paths: set[str]) -> set[str]:
    return {p for p in paths if not any(a in paths for a in _ancestors(p))}


@st.composite
def stacks(draw: st.DrawFn) -> list[tuple[list[Member], Model, Model, set[str]]]:
    """1-4 layers: (members, model before, model after, written) each."""
    out = []
    m: Model = {}
    for _ in range(draw(st.integers(1, 4))):
        members, after, written = draw(stack_layer(m))
        if members:
            out.append((members, m, after, written))
            m = after
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    base = tmp_path_factory.mktemp("props-stack")
    yield empty_layout(str(base / "lay")), base


def _write_stack(lay: Layout, layers: list[list[Member]]) -> None:
    img = Image.load(lay, "empty")
    for members in layers:
        built = make_layer(members, "gzip")
        digest = put_bytes(lay.store, built.blob)
        diff_id = Digest.parse(built.diff_id)
        layer = ImageLayer.create(
            mt.OCI_LAYER_FOR_CODEC["gzip"], digest, len(built.blob), diff_id, len(built.tar)
        )
        img = append_layer(img, layer)
    lay.set_ref("stack", write(lay, img))


@given(stack=stacks())
def test_stack_applies_as_modelled(
    work: tuple[Layout, Path], stack: list[tuple[list[Member], Model, Model, set[str]]]
) -> None:
    if not stack:
        return
    lay, base = work
    _write_stack(lay, [members for members, *_ in stack])
    final = stack[-1][2]
    with scratch(str(base)) as d:
        api.unpack(lay, "stack", os.path.join(d, "b"))
        disk = _disk(Path(d) / "b" / "rootfs")
    want = _expected_disk(final)
    layers_text = [[m.to_bytes()[:100].rstrip(b"\0") for m in ms] for ms, *_ in stack]
    assert _strip_ino(disk) == _strip_ino(want), layers_text
    assert _partition(disk) == _partition(want), layers_text

    analysis = analyze(Image.load(lay, "stack"))
    assert len(analysis.layers) == len(stack) == len(api.layers(Image.load(lay, "stack")))
    for li, (report, (_, before, after, written)) in enumerate(
        zip(analysis.layers, stack, strict=True)
    ):
        rows = {(c.change, c.path[1:]) for c in report.changes}
        ac = {("C" if p in before else "A", p) for p in written if p in after}
        gone = _topmost({p for p in before if p not in after})
        assert rows == ac | {("D", p) for p in gone}, (li, layers_text)
        for c in report.changes:
            if c.change != "D":
                n = after[c.path[1:]]
                assert c.type == {"file": "reg"}.get(n.kind, n.kind), (li, c)
