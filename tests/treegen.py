"""Hypothesis strategies for random file trees, and their materialisation.

A tree is a list of :class:`Node` values, parents before children, that
:func:`materialize` creates under a directory (in the given order, or in any
order that keeps parents first): regular files, directories, symlinks,
hardlinks, fifos, with modes (setuid/setgid/sticky included), owners,
``user.*`` xattrs, nanosecond mtimes and names with unicode and odd bytes
(spaces, newlines, control bytes, invalid UTF-8, 200-byte names).

Used by the property tests (tests/test_properties_*.py) and kept apart from
them so each test module stays about its property.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from hypothesis import strategies as st

from oci_tools.layout import Layout
from oci_tools.mutate import new_image

NS = 1_000_000_000

#: Names chosen to hit the tar writer's corners: PAX paths (long, non-ASCII,
#: invalid UTF-8), shell-hostile bytes, look-alikes of whiteouts that are not.
ODD_NAMES: list[bytes] = [
    b"a",
    b"b",
    b"etc",
    b"x y",
    b"-rf",
    b".hidden",
    b"...",
    b"wh.not",
    b"a\nb",
    b"tab\there",
    b"\x01\x7f",
    b"\xff\xfe",
    b"caf\xc3\xa9",
    "日本語".encode(),
    "emoji-\U0001f600".encode(),
    b"n" * 200,
    b"\xe9" * 120,
]


def _valid_name(name: bytes) -> bool:
    return (
        b"/" not in name
        and b"\0" not in name
        and name not in (b".", b"..")
        and not name.startswith(b".wh.")
    )


names = st.one_of(
    st.sampled_from(ODD_NAMES),
    st.binary(min_size=1, max_size=16).filter(_valid_name),
    st.text(min_size=1, max_size=12).map(lambda t: t.encode("utf-8", "surrogatepass")),
).filter(_valid_name)

FILE_MODES = [0o644, 0o600, 0o755, 0o700, 0o444, 0o4755, 0o2711, 0o6750, 0o1644, 0o000]
DIR_MODES = [0o755, 0o700, 0o750, 0o1777, 0o2775, 0o555, 0o3755]
#: Owners: small, the overflow id, past the 7-digit octal field (2097151).
IDS = [0, 1, 1000, 65534, 100000, 3_000_000]
mtimes = st.one_of(
    st.sampled_from([0, 1, NS - 1, 1_700_000_000 * NS + 123_456_789]),
    st.integers(min_value=0, max_value=(1 << 33) * NS),
)
xattr_sets = st.dictionaries(
    st.sampled_from(["user.a", "user.note", "user.x.y", "user.\u00e9"]),
    st.binary(min_size=1, max_size=24),
    max_size=2,
)


@dataclass(frozen=True)
class Node:
    """One path of a generated tree (``path`` relative, bytes)."""

    path: bytes
    kind: str  # dir | file | symlink | hardlink | fifo
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    data: bytes = b""
    target: bytes = b""  # symlink target, or the hardlinked path
    xattrs: dict[str, bytes] = field(default_factory=dict)


@st.composite
def trees(draw: st.DrawFn, max_nodes: int = 14, max_depth: int = 3) -> list[Node]:
    """A random tree: parents before children, unique names per directory."""
    nodes: list[Node] = []
    dirs: list[bytes] = [b""]
    files: list[bytes] = []
    taken: set[bytes] = set()
    for _ in range(draw(st.integers(min_value=1, max_value=max_nodes))):
        parent = draw(st.sampled_from([d for d in dirs if d.count(b"/") < max_depth]))
        name = draw(names)
        path = parent + b"/" + name if parent else name
        if path in taken or len(path) > 900:
            continue
        kinds = ["dir", "dir", "file", "file", "file", "symlink", "fifo"]
        if files:
            kinds.append("hardlink")
        kind = draw(st.sampled_from(kinds))
        owner = (draw(st.sampled_from(IDS)), draw(st.sampled_from(IDS)))
        taken.add(path)
        if kind == "dir":
            dirs.append(path)
            nodes.append(
                Node(
                    path,
                    "dir",
                    draw(st.sampled_from(DIR_MODES)),
                    *owner,
                    draw(mtimes),
                    xattrs=draw(xattr_sets),
                )
            )
        elif kind == "file":
            files.append(path)
            data = draw(st.one_of(st.binary(max_size=64), st.sampled_from([b"", b"x" * 5000])))
            nodes.append(
                Node(
                    path,
                    "file",
                    draw(st.sampled_from(FILE_MODES)),
                    *owner,
                    draw(mtimes),
                    data,
                    xattrs=draw(xattr_sets),
                )
            )
        elif kind == "symlink":
            target = draw(
                st.one_of(
                    st.sampled_from([b"a", b"../x", b"/etc/passwd", b".", b"/", b"n" * 150]),
                    names,
                )
            )
            nodes.append(Node(path, "symlink", 0o777, *owner, draw(mtimes), target=target))
        elif kind == "hardlink":
            nodes.append(Node(path, "hardlink", target=draw(st.sampled_from(files))))
        else:
            nodes.append(
                Node(path, "fifo", draw(st.sampled_from([0o644, 0o600])), *owner, draw(mtimes))
            )
    return nodes


def materialize(root: str, nodes: Sequence[Node]) -> None:
    """Create ``nodes`` under ``root`` in list order (parents must come first,
    a hardlink after its target), then set directory metadata deepest first so
    creating children does not move a directory's mtime afterwards."""
    r = os.fsencode(root)
    for n in nodes:
        p = os.path.join(r, n.path)
        if n.kind == "dir":
            os.mkdir(p, 0o700)
        elif n.kind == "file":
            with open(p, "wb") as f:
                f.write(n.data)
        elif n.kind == "symlink":
            os.symlink(n.target, p)
        elif n.kind == "hardlink":
            os.link(os.path.join(r, n.target), p)
            continue
        else:
            os.mkfifo(p, 0o600)
        _meta(p, n, dirs=False)
    for n in sorted((n for n in nodes if n.kind == "dir"), key=lambda n: -n.path.count(b"/")):
        _meta(os.path.join(r, n.path), n, dirs=True)


def _meta(p: bytes, n: Node, *, dirs: bool) -> None:
    if (n.kind == "dir") != dirs:
        return
    os.chown(p, n.uid, n.gid, follow_symlinks=False)
    if n.kind == "symlink":
        # A symlink's own mtime is part of the tree (layers record it).
        os.utime(p, ns=(n.mtime_ns, n.mtime_ns), follow_symlinks=False)
    else:
        os.chmod(p, n.mode)  # after chown, which clears setuid/setgid
        for k, v in n.xattrs.items():
            os.setxattr(p, k, v)
        os.utime(p, ns=(n.mtime_ns, n.mtime_ns))


def creation_orders(nodes: Sequence[Node], seed: int) -> list[Node]:
    """The same tree in another order of creation (parents and hardlink
    targets still first): siblings shuffled, reversed where possible."""
    import random

    rng = random.Random(seed)
    remaining = list(nodes)
    rng.shuffle(remaining)
    done: set[bytes] = {b""}
    out: list[Node] = []
    while remaining:
        for i, n in enumerate(remaining):
            parent = n.path.rpartition(b"/")[0]
            if parent in done and (n.kind != "hardlink" or n.target in done):
                out.append(remaining.pop(i))
                done.add(n.path)
                break
    return out


# ------------------------------------------------------------------ layout fixtures


@contextmanager
def scratch(base: str) -> Iterator[str]:
    """A fresh directory under ``base``, removed afterwards (Hypothesis runs
    many examples per test, so function-scoped tmp_path cannot be used)."""
    d = tempfile.mkdtemp(dir=base)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def empty_layout(path: str, ref: str = "empty") -> Layout:
    """A layout holding an empty image tagged ``ref``."""
    lay = Layout.init(path)
    new_image(lay, ref)
    return lay
