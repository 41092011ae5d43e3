"""The replay: layer indexes applied in order to a model of the merged tree.

What a layer means relative to the layers below is computed from the indexes
by replaying them on a model of the merged tree (paths and metadata only),
member by member in tar order, with ``apply``'s rules: a whiteout or opaque
marker removes only what lower layers left (never what this layer wrote
before it or under it); a non-directory over anything replaces the whole
subtree; a directory over a directory merges.  Paths are where members land,
as ``apply`` resolves them: parent components are followed through symlinks
inside the rootfs (missing ones made, as apply makes them), so ``lib/x``
under ``lib -> usr/lib`` is ``/usr/lib/x``; the last component is never
followed.  tests/test_replay_model.py holds the model to ``apply_layer`` on
random layer stacks, path by path.

A path is ``A`` (added) when no lower layer had it, ``C`` (changed) when one
did.  ``D`` rows are the topmost lower paths a layer removes and does not
put back itself: what a plain whiteout or an opaque marker removes, what a
member replaces (a directory's old children, a symlink whited out so that a
real directory can stand there).  Along the way the replay records the
*waste*: file versions that ship in a layer but never reach a container.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from dataclasses import dataclass, replace

from oci_tools.layer.entry import EntryType
from oci_tools.layer.paths import resolve_in_root
from oci_tools.views.layers.index import OPAQUE, WHITEOUT, IndexEntry, LayerIndex

_DIR = EntryType.DIR.value
_REG = EntryType.REG.value
_SYMLINK = EntryType.SYMLINK.value
_HARDLINK = EntryType.HARDLINK.value


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a layer's model is built.

    Loading and replaying a 100k-entry layer makes a few hundred thousand
    small objects, none of them in a cycle; every one of them triggers
    collector passes over all the others (half the time of a cached view).
    Reference counting still frees everything; the collector is restored.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True, slots=True)
class Change:
    """One row of ``layer show``.

    ``path`` starts with ``/``.  For ``A``/``C`` rows the fields describe the
    layer's entry (``size``: its content bytes); for ``D`` rows they describe
    what is removed, and ``size`` is the file bytes it hid (a directory: its
    whole subtree).  ``target`` is the symlink target as stored, or ``/path``
    for a hardlink.
    """

    change: str
    path: str
    type: str
    mode: int
    uid: int
    gid: int
    size: int
    target: str = ""


@dataclass(frozen=True, slots=True)
class Waste:
    """A file version (``size`` bytes in layer ``layer``) that layer ``by``
    overwrote or deleted, so its bytes ship but never reach a container."""

    path: str
    layer: int
    size: int
    by: int
    how: str  # "overwritten" or "deleted"


@dataclass(slots=True)
class Node:
    """What the model keeps of one path: an index entry's metadata, the
    layer that put it there (``-1`` for the root) and where its content is."""

    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    layer: int
    linkname: str = ""
    # (layer, member position) holding the file's content: a regular file's
    # own member, or for a hardlink the member its target's content came from.
    src: tuple[int, int] | None = None


def parent_dir(path: str) -> str:
    """The parent of a model path (``a/b`` -> ``a``, ``a`` -> ``''``, the root)."""
    return path.rpartition("/")[0]


def ancestors(path: str) -> Iterator[str]:
    """The parents of a model path, nearest first, the root (``''``) last."""
    while path:
        path = parent_dir(path)
        yield path


class Tree:
    """The merged filesystem as path -> metadata, with a child index so that
    removing a subtree costs the size of the subtree."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {"": Node(_DIR, 0o755, 0, 0, 0, -1)}
        self.kids: dict[str, set[str]] = {}

    def set(self, path: str, node: Node) -> list[str]:
        """Put ``node`` at ``path``; returns the implied parent directories
        it had to create (as apply creates them)."""
        self.nodes[path] = node
        made: list[str] = []
        child = path
        for parent in ancestors(path):
            self.kids.setdefault(parent, set()).add(child)
            if parent in self.nodes:
                break
            self.nodes[parent] = Node(_DIR, 0o755, 0, 0, 0, node.layer)
            made.append(parent)
            child = parent
        return made

    def pop_subtree(self, path: str) -> list[tuple[str, Node]]:
        """Remove ``path`` and everything below it; return what was removed."""
        out: list[tuple[str, Node]] = []
        todo = [path]
        while todo:
            p = todo.pop()
            node = self.nodes.pop(p, None)
            if node is not None:
                out.append((p, node))
            todo.extend(self.kids.pop(p, ()))
        parent = self.kids.get(parent_dir(path))
        if parent is not None:
            parent.discard(path)
        return out


def path_sort_key(path: str) -> list[str]:
    """Sort key ordering paths component by component (a directory's
    contents right after it, before ``dir-x``)."""
    return path.split("/")


class _Resolver:
    """Resolves member names the way ``apply`` does, on the modelled tree as
    it stands at that point of layer ``li`` (``..`` clamped at the root,
    absolute targets restarting there).  With ``create``, a missing directory
    on the way is made, as apply makes it (an implied directory, added to
    ``clean``).  Results are cached until the replay says a symlink was made
    or something was removed."""

    def __init__(self, tree: Tree, li: int, clean: set[str]) -> None:
        self.tree = tree
        self.li = li
        self.clean = clean
        self.cache: dict[tuple[str, bool], str] = {}

    def directory(self, lex: str, *, create: bool = False) -> str | None:
        """The resolved form of directory path ``lex`` (every component
        followed); None when it does not resolve to a directory (a loop, a
        non-directory on the way, or without ``create`` a missing one: apply
        finds nothing there, or refuses)."""
        if not lex:
            return ""
        hit = self.cache.get((lex, create))
        if hit is not None:
            return hit
        nodes = self.tree.nodes

        def readlink(prefix: str, _more: bool) -> str | None:
            node = nodes.get(prefix)
            if node is None:
                if not create:
                    raise FileNotFoundError(prefix)
                implied = Node(_DIR, 0o755, 0, 0, 0, self.li)
                self.clean.update(self.tree.set(prefix, implied))
                self.clean.add(prefix)
                return None
            if node.kind == _SYMLINK:
                return node.linkname
            if node.kind != _DIR:
                raise NotADirectoryError(prefix)
            return None

        try:
            out = resolve_in_root(lex, readlink)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if out is not None:
            self.cache[(lex, create)] = out
        return out

    def path(self, name: str, *, create: bool = False) -> str | None:
        """Where member ``name`` lands (its last component not followed);
        None when its parent does not resolve."""
        lex, slash, base = name.rpartition("/")
        if not slash:
            return name
        parent = self.directory(lex, create=create)
        if parent is None:
            return None
        return f"{parent}/{base}" if parent else base


class _LayerState:
    """What apply knows while it applies one layer, mirrored: the paths the
    layer wrote and their ancestors (whiteouts never remove those), the
    directories known to hold nothing from lower layers, and every lower
    path it removed, with the file bytes that went with it."""

    def __init__(self, li: int) -> None:
        self.li = li
        self.written: set[str] = set()
        self.ancestors: set[str] = set()
        self.clean: set[str] = set()
        self.removed: dict[str, Node] = {}  # lower path -> what stood there


class Replay:
    """Applies layer indexes, one after the other, to a ``Tree``, member by
    member in tar order with ``apply``'s rules (see the module docstring)."""

    def __init__(self) -> None:
        self.tree = Tree()
        self.waste: list[Waste] = []
        self.layer_bytes: list[int] = []  # file content bytes per layer
        # (layer, position) of each hardlink member -> (layer, position) of
        # the member holding its content (None: no regular file there).
        self.link_sources: dict[tuple[int, int], tuple[int, int] | None] = {}
        # Content (layer, position) -> [its size, names still linking to it]:
        # bytes are wasted when the last name of a file goes, not before.
        self.contents: dict[tuple[int, int], list[int]] = {}

    def _remove(
        self, st: _LayerState, path: str, how: str, resolve: _Resolver
    ) -> list[tuple[str, Node]]:
        """Remove ``path`` and its subtree (returned); lower nodes are
        remembered for the D rows; a file's content removed with its last
        name is waste."""
        resolve.cache.clear()
        removed = self.tree.pop_subtree(path)
        for p, node in removed:
            if node.src is not None:
                held = self.contents[node.src]
                held[1] -= 1
                if held[1] == 0 and held[0]:
                    self.waste.append(Waste(p, node.src[0], held[0], st.li, how))
            if node.layer < st.li:
                st.removed[p] = node
        return removed

    def _whiteout(self, st: _LayerState, w: IndexEntry, resolve: _Resolver) -> None:
        """A plain whiteout or opaque marker, met in tar order: it removes
        only what lower layers left (apply's prune and prune_children)."""
        tree = self.tree
        if w.kind == OPAQUE:
            d = resolve.directory(w.path)
            node = tree.nodes.get(d) if d is not None else None
            if d is None or node is None or node.kind != _DIR:
                return  # hides nothing
        else:
            p = resolve.path(w.path)
            node = tree.nodes.get(p) if p is not None else None
            if p is None or node is None or p in st.clean:
                return
            if p not in st.written and p not in st.ancestors:
                self._remove(st, p, "deleted", resolve)
                return
            if node.kind != _DIR:
                return
            d = p
        todo = [d]
        while todo:
            x = todo.pop()
            if x in st.clean:
                continue
            for child in sorted(tree.kids.get(x, ())):
                if child in st.written or child in st.ancestors:
                    if tree.nodes[child].kind == _DIR:
                        todo.append(child)
                else:
                    self._remove(st, child, "deleted", resolve)
            st.clean.add(x)

    def layer(self, li: int, index: LayerIndex) -> tuple[list[Change], list[IndexEntry]]:
        """Apply layer ``li`` (the next one up) to the model; returns its rows,
        sorted by path, and its whiteouts as stored.  Waste, per-layer bytes
        and hardlink sources accumulate on the replay."""
        tree = self.tree
        st = _LayerState(li)
        resolve = _Resolver(tree, li, st.clean)
        final: dict[str, IndexEntry] = {}  # surviving members, resolved, by path
        lower: set[str] = set()  # member paths a lower layer had
        whiteouts: list[IndexEntry] = []  # as stored, for ``layer extract``
        own_bytes = 0
        for pos, e in enumerate(index.entries):
            if e.kind in (WHITEOUT, OPAQUE):
                whiteouts.append(e)
                self._whiteout(st, e, resolve)
                continue
            if e.kind == _REG:
                own_bytes += e.size
            if not e.path:
                continue  # the root directory entry: metadata of '/', not listed
            # None: apply refuses this member (a loop, a file as a parent
            # directory); it is shown as named.
            p = resolve.path(e.path, create=True) or e.path
            src: tuple[int, int] | None = (li, pos) if e.kind == _REG else None
            target = None
            link = e.linkname
            if e.kind == _HARDLINK:
                resolved = resolve.path(e.linkname)
                target = tree.nodes.get(resolved) if resolved is not None else None
                link = resolved or e.linkname
            if (p, link) != (e.path, e.linkname):
                e = replace(e, path=p, linkname=link)
            node = Node(e.kind, e.mode, e.uid, e.gid, e.size, li, e.linkname)
            if e.kind == _HARDLINK:
                src = target.src if target is not None else None
                self.link_sources[(li, pos)] = src
                if target is not None and target.kind not in (_REG, _HARDLINK):
                    # A link to a symlink (or a device) is one: it resolves as one.
                    node = Node(
                        target.kind, target.mode, target.uid, target.gid, 0, li, target.linkname
                    )
            node.src = src
            old = tree.nodes.get(p)
            if p in st.removed or (old is not None and old.layer < li):
                lower.add(p)
            if old is not None and old.kind == _DIR and e.kind == _DIR:
                old.mode, old.uid, old.gid = e.mode, e.uid, e.gid  # merged
            elif old is not None and target is old:
                pass  # a link to itself: apply finds that very file there already
            else:
                if old is not None:
                    for q, _ in self._remove(st, p, "overwritten", resolve):
                        final.pop(q, None)  # this layer's own, replaced
                if src is not None:
                    held = self.contents.setdefault(src, [e.size, 0])
                    held[1] += 1
                st.clean.update(tree.set(p, node))
                if e.kind == _DIR:
                    st.clean.add(p)
                if node.kind == _SYMLINK:
                    resolve.cache.clear()
            final.pop(p, None)
            final[p] = e  # re-inserted: tar order of the last occurrence
            st.written.add(p)
            for a in ancestors(p):
                if a in st.ancestors:
                    break
                st.ancestors.add(a)
        self.layer_bytes.append(own_bytes)
        rows = [
            Change(
                "C" if p in lower else "A",
                "/" + p,
                e.kind,
                e.mode,
                e.uid,
                e.gid,
                e.size,
                "/" + e.linkname if e.kind == _HARDLINK else e.linkname,
            )
            for p, e in final.items()
        ]
        # One D row per removed lower subtree, at its topmost path, with every
        # byte hidden below it (a path a member re-made is a C row instead; an
        # implied directory standing there now does not count).
        gone = {p for p in st.removed if p not in final}
        hidden: dict[str, int] = {}
        for p in gone:
            top = p
            for a in ancestors(p):
                if a in gone:
                    top = a
            node = st.removed[p]
            hidden[top] = hidden.get(top, 0) + (node.size if node.kind == _REG else 0)
        for p, size in hidden.items():
            node = st.removed[p]
            rows.append(
                Change("D", "/" + p, node.kind, node.mode, node.uid, node.gid, size, node.linkname)
            )
        rows.sort(key=lambda c: path_sort_key(c.path))
        return rows, whiteouts


__all__ = [
    "Change",
    "Node",
    "Replay",
    "Tree",
    "Waste",
    "ancestors",
    "parent_dir",
    "path_sort_key",
    "paused_gc",
]
