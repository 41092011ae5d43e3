"""Property: random changes on top of a base are listed and committed exactly.

A random base tree (tests/treegen.py) is committed and unpacked into a
bundle; a random sequence of changes is made in its rootfs (add, rewrite,
chmod, chown, touch, xattr, delete, replace by another kind, recreate a
directory, hardlink).  Then:

- ``diff`` (``bundle.changes_of``, what ``oci-tools diff`` prints) lists
  exactly the paths an independent model derives from a before/after
  metadata walk (the rules are in oci_tools/diff.py's docstring);
- the committed layer holds exactly the A/C paths as members; a deleted
  directory is one whiteout (or its parent's opaque marker) and nothing
  below it; a recreated directory carries an opaque marker;
- the committed image unpacked elsewhere is the changed tree.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from treecmp import tree_state
from treegen import DIR_MODES, FILE_MODES, IDS, Node, empty_layout, materialize, names, scratch
from treegen import trees as tree_strategy

from oci_tools import api
from oci_tools.bundle import changes_of
from oci_tools.compression import codec_for_media_type
from oci_tools.image import Image
from oci_tools.layer.reader import iter_entries
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layer.whiteout import OPAQUE, WHITEOUT_PREFIX
from oci_tools.layout import Layout

pytestmark = [
    pytest.mark.fuzz,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown, owners in layers)"),
]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, Path]]:
    base = tmp_path_factory.mktemp("props-diff")
    yield empty_layout(str(base / "lay")), base


# -- the model ---------------------------------------------------------------------------


def _state(root: str) -> dict[str, tuple[Any, ...]]:
    """rel -> (fmt, mode, uid, gid, size, mtime, content/target, xattrs, ino, nlink):
    what diff may compare (no link-group ids: losing a peer changes nothing)."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            fmt = stat.S_IFMT(st.st_mode)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                xattrs = {k: os.getxattr(p, k) for k in sorted(os.listxattr(p))}
            size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
            out[os.path.relpath(p, root)] = (
                fmt,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                size,
                st.st_mtime_ns,
                extra,
                xattrs,
                st.st_ino,
                st.st_nlink,
            )
    return out


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _ancestors(rel: str) -> list[str]:
    out = []
    while rel:
        rel = _parent(rel)
        if rel:
            out.append(rel)
    return out


def _is_dir(s: tuple[Any, ...] | None) -> bool:
    return s is not None and s[0] == stat.S_IFDIR


def expected_changes(
    before: dict[str, tuple[Any, ...]], after: dict[str, tuple[Any, ...]]
) -> tuple[dict[str, str], set[str], set[str]]:
    """(path -> A|C, deleted paths (D rows), recreated directories)."""
    rows: dict[str, str] = {}
    recreated = {
        p
        for p in after
        if _is_dir(after[p]) and _is_dir(before.get(p)) and after[p][8] != before[p][8]
    }
    # Roots of subtrees emitted whole: added, replaced or recreated directories.
    whole = {
        p
        for p in after
        if _is_dir(after[p]) and (p not in before or before[p][0] != after[p][0] or p in recreated)
    }

    def label(p: str) -> str:
        return "C" if p in before else "A"

    for p, s in after.items():
        if any(p == w or p.startswith(w + "/") for w in whole):
            rows[p] = label(p)
        elif p not in before:
            rows[p] = "A"
        elif before[p][0] != s[0] or before[p][:8] != s[:8]:
            rows[p] = "C"

    def parent_stays(p: str) -> bool:
        q = _parent(p)
        return q == "" or (_is_dir(before.get(q)) and _is_dir(after.get(q)))

    deleted = {p for p in before if p not in after and parent_stays(p)}
    # Hardlink peers of an emitted file come along.
    by_ino: dict[int, list[str]] = {}
    for p, s in after.items():
        if s[0] != stat.S_IFDIR and s[9] > 1:
            by_ino.setdefault(s[8], []).append(p)
    for peers in by_ino.values():
        if any(p in rows for p in peers):
            for p in peers:
                rows.setdefault(p, label(p))
    # Every ancestor of an emitted path or a deletion (the root excepted).
    for p in [*rows, *deleted]:
        d = _parent(p)
        while d:
            rows.setdefault(d, label(d))
            d = _parent(d)
    return rows, deleted, recreated


# -- the changes -------------------------------------------------------------------------

OPS = ["add_file", "add_dir", "write", "chmod", "chown", "touch", "xattr", "delete"]
OPS += ["recreate_dir", "replace", "link"]


def _walk(root: bytes) -> list[tuple[bytes, os.stat_result]]:
    out = []
    for dirpath, dirs, files in os.walk(root):
        for n in sorted(dirs + files):
            p = os.path.join(dirpath, n)
            out.append((os.path.relpath(p, root), os.lstat(p)))
    return sorted(out)


def _remove(p: bytes) -> None:
    if os.path.isdir(p) and not os.path.islink(p):
        shutil.rmtree(p)
    else:
        os.unlink(p)


def mutate(data: st.DataObject, root: bytes) -> list[str]:
    """Make 1-8 random changes under ``root``; returns what was done (for the report)."""
    log: list[str] = []
    for _ in range(data.draw(st.integers(1, 8), label="changes")):
        paths = _walk(root)
        dirs = [b""] + [p for p, s in paths if stat.S_ISDIR(s.st_mode)]
        regs = [p for p, s in paths if stat.S_ISREG(s.st_mode)]
        op = data.draw(st.sampled_from(OPS), label="op")
        j = os.path.join
        if op in ("add_file", "add_dir", "link"):
            parent = data.draw(st.sampled_from(dirs), label="parent")
            name = data.draw(names, label="name")
            new = j(parent, name) if parent else name
            if os.path.lexists(j(root, new)) or (op == "link" and not regs):
                continue
            if op == "add_file":
                Path(os.fsdecode(j(root, new))).write_bytes(data.draw(st.binary(max_size=40)))
            elif op == "add_dir":
                os.mkdir(j(root, new))
            else:
                os.link(j(root, data.draw(st.sampled_from(regs), label="target")), j(root, new))
            log.append(f"{op} {new!r}")
            continue
        pool = {"write": regs, "recreate_dir": dirs[1:]}.get(op, [p for p, _ in paths])
        if op in ("chmod", "xattr"):
            pool = [p for p, s in paths if not stat.S_ISLNK(s.st_mode)]
        if op == "xattr":
            pool = [p for p, s in paths if stat.S_ISREG(s.st_mode) or stat.S_ISDIR(s.st_mode)]
        if not pool:
            continue
        rel = data.draw(st.sampled_from(pool), label="path")
        p = j(root, rel)
        log.append(f"{op} {rel!r}")
        if op == "write":
            with open(p, "r+b") as f:
                f.truncate(0)
                f.write(data.draw(st.binary(max_size=40)))
        elif op == "chmod":
            isdir = os.path.isdir(p) and not os.path.islink(p)
            os.chmod(p, data.draw(st.sampled_from(DIR_MODES if isdir else FILE_MODES)))
        elif op == "chown":
            ids = st.sampled_from(IDS)
            os.chown(p, data.draw(ids), data.draw(ids), follow_symlinks=False)
        elif op == "touch":
            ns = data.draw(st.integers(0, 1 << 62))
            os.utime(p, ns=(ns, ns), follow_symlinks=False)
        elif op == "xattr":
            os.setxattr(p, "user.changed", data.draw(st.binary(min_size=1, max_size=8)))
        elif op == "delete":
            _remove(p)
        elif op == "recreate_dir":
            # A new directory (a new inode for sure: both exist for a while),
            # some old children moved into it, the old one removed.
            tmp = p + b".recreated"
            if os.path.lexists(tmp):
                continue
            os.mkdir(tmp)
            for name in sorted(os.listdir(p)):
                if data.draw(st.booleans(), label="keep child"):
                    os.rename(j(p, name), j(tmp, name))
            shutil.rmtree(p)
            os.rename(tmp, p)
        else:  # replace by another kind
            was_dir = os.path.isdir(p) and not os.path.islink(p)
            _remove(p)
            kind = data.draw(
                st.sampled_from(["file", "symlink"] if was_dir else ["dir", "symlink"])
            )
            if kind == "file":
                Path(os.fsdecode(p)).write_bytes(b"replaced")
            elif kind == "dir":
                os.mkdir(p)
                Path(os.fsdecode(j(p, b"inside"))).write_bytes(b"x")
            else:
                os.symlink(b"elsewhere", p)
            log.append(f"  -> {kind}")
    return log


def _layer_names(lay: Layout, ref: str) -> list[str]:
    img = Image.load(lay, ref)
    top = img.layers[-1]
    blob = lay.store.open(top.digest, top.size)
    try:
        stream = open_layer_stream(
            cast(io.BufferedReader, blob), codec_for_media_type(top.media_type)
        )
        return [e.name.removeprefix("./").rstrip("/") for e, _ in iter_entries(stream)]
    finally:
        blob.close()


@given(nodes=tree_strategy(), data=st.data())
def test_changes_on_a_base(work: tuple[Layout, Path], nodes: list[Node], data: Any) -> None:
    lay, base = work
    with scratch(str(base)) as d:
        b0 = os.path.join(d, "b0")
        api.unpack(lay, "empty", b0)
        materialize(os.path.join(b0, "rootfs"), nodes)
        api.commit(lay, "base", b0, allow_empty=True)
        b1 = os.path.join(d, "b1")
        api.unpack(lay, "base", b1)
        rootfs = os.path.join(b1, "rootfs")
        before = _state(rootfs)
        # Let the clock move past the kernel's timestamp granularity, so a
        # change that only moves ctime (an xattr) is seen as one.
        time.sleep(0.02)
        log = mutate(data, os.fsencode(rootfs))
        after = _state(rootfs)
        rows, deleted, recreated = expected_changes(before, after)

        got = {c.path[1:]: c.kind for c in changes_of(b1)}
        want = dict(rows) | {p: "D" for p in deleted}
        assert got == want, log

        if not rows and not deleted:
            return
        api.commit(lay, "changed", b1)
        names = _layer_names(lay, "changed")
        members = [n for n in names if not n.rpartition("/")[2].startswith(WHITEOUT_PREFIX)]
        assert sorted(members) == sorted(p for p in rows), log
        opaque = {_parent(n) for n in names if n.rpartition("/")[2] == OPAQUE}
        whiteouts = [
            (_parent(n) + "/" if "/" in n else "") + n.rpartition("/")[2][len(WHITEOUT_PREFIX) :]
            for n in names
            if n.rpartition("/")[2].startswith(WHITEOUT_PREFIX) and n.rpartition("/")[2] != OPAQUE
        ]
        assert len(whiteouts) == len(set(whiteouts)), log
        for p in deleted:
            # One whiteout, or an opaque marker above it (its parent's, when
            # all recorded children went; a recreated ancestor's); nothing below.
            hidden = any(a in opaque for a in _ancestors(p))
            assert (p in whiteouts) != hidden, (p, log)
            assert not any(n.startswith(p + "/") for n in names), (p, log)
        for r in recreated:
            # Its own marker, or (recreated inside a recreated one) the outer one's.
            assert r in opaque or any(a in opaque for a in _ancestors(r)), (r, log)
        assert set(whiteouts) <= deleted, log

        again = os.path.join(d, "again")
        api.unpack(lay, "changed", again)
        want_tree, got_tree = tree_state(rootfs), tree_state(os.path.join(again, "rootfs"))
        assert sorted(want_tree) == sorted(got_tree), log
        for p in want_tree:
            assert want_tree[p] == got_tree[p], (p, log)
