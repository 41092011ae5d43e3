"""Per-layer views of an image: what each layer adds, changes, removes and wastes.

The commands ``layers``, ``layer show``, ``layer extract`` and ``efficiency``
are built from one *index* per layer: the metadata of every tar member (name,
type, mode, owner, size, link target; never content), whiteouts included.  An
index is learned by streaming the layer once, through the strict reader, in
bounded memory, with the blob digest and the diff_id verified; it is then
cached under ``LAYOUT/.oci-tools/cache/layers/`` by layer digest (a layer never
changes), so later calls decompress nothing.

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
real directory can stand there).
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, BinaryIO, cast

from oci_tools.apply import (
    ApplyOptions,
    apply_layer,
    apply_members,
)
from oci_tools.compression import codec_for_media_type
from oci_tools.digest import Digest
from oci_tools.errors import (
    ClobberError,
    DigestMismatchError,
    OCIToolsError,
    UnsafeLayerError,
    UsageError,
)
from oci_tools.fsutil import CACHE, empty_dir, private_path, remove_tree, write_json
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.paths import resolve_in_root
from oci_tools.layer.reader import CHUNK, EntryContent, iter_entries
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layer.whiteout import WHITEOUT_PREFIX, WhiteoutKind, classify
from oci_tools.layout import Layout
from oci_tools.spec.model import Descriptor

#: Version of the cached index format (a different version is a cache miss).
CACHE_VERSION = 1
#: Index kinds beyond the tar types (EntryType values).
WHITEOUT = "whiteout"
OPAQUE = "opaque"
_DIR = EntryType.DIR.value
_REG = EntryType.REG.value
_SYMLINK = EntryType.SYMLINK.value
_HARDLINK = EntryType.HARDLINK.value
_KINDS = frozenset({t.value for t in EntryType} | {WHITEOUT, OPAQUE})


# ----------------------------------------------------------------------- indexes


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One layer member as an index keeps it.

    ``path`` is the cleaned member name (``a/b``, ``''`` for the root); for a
    whiteout it is the path it deletes, for an opaque marker the directory
    whose lower contents it hides.  ``kind`` is an EntryType value or
    ``whiteout``/``opaque``.  ``linkname`` is the symlink target as stored or
    the (cleaned) path a hardlink points at.
    """

    path: str
    kind: str
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    linkname: str = ""

    @classmethod
    def from_tar(cls, entry: TarEntry) -> IndexEntry:
        """Index one member (raises UnsafeLayerError for an invalid whiteout)."""
        kind, path = entry.type.value, entry.name
        if WHITEOUT_PREFIX in path:
            wk, target = classify(path)
            if wk is WhiteoutKind.PLAIN:
                kind, path = WHITEOUT, target
            elif wk is WhiteoutKind.OPAQUE:
                kind, path = OPAQUE, target
        return cls(path, kind, entry.mode, entry.uid, entry.gid, entry.size, entry.linkname)


@dataclass(frozen=True, slots=True)
class LayerIndex:
    """Everything streaming one layer blob taught us (no file contents)."""

    digest: Digest  # of the blob as stored
    diff_id: Digest  # of the uncompressed tar, as computed
    uncompressed_size: int
    entries: tuple[IndexEntry, ...]  # in tar order, whiteouts included

    def to_json(self) -> dict[str, Any]:
        """The cached form."""
        return {
            "version": CACHE_VERSION,
            "digest": str(self.digest),
            "diff_id": str(self.diff_id),
            "uncompressed_size": self.uncompressed_size,
            "entries": [
                [e.path, e.kind, e.mode, e.uid, e.gid, e.size, e.linkname] for e in self.entries
            ],
        }

    @classmethod
    def from_json(cls, doc: Any) -> LayerIndex:
        """Parse the cached form; ValueError (or a subclass) when malformed."""
        if not isinstance(doc, dict) or doc.get("version") != CACHE_VERSION:
            raise ValueError("not a layer index of this version")
        size = doc["uncompressed_size"]
        if not isinstance(size, int) or size < 0:
            raise ValueError("bad uncompressed_size")
        entries = []
        kinds, str_, int_ = _KINDS, str, int
        for row in doc["entries"]:
            path, kind, mode, uid, gid, esize, link = row
            # Written out (no generator per row): 100k-entry layers load often.
            if not (
                type(path) is str_
                and type(link) is str_
                and kind in kinds
                and type(mode) is int_
                and type(uid) is int_
                and type(gid) is int_
                and type(esize) is int_
                and min(mode, uid, gid, esize) >= 0
            ):
                raise ValueError(f"bad index row {row!r}")
            entries.append(IndexEntry(path, kind, mode, uid, gid, esize, link))
        return cls(Digest.parse(doc["digest"]), Digest.parse(doc["diff_id"]), size, tuple(entries))


class LayerCache:
    """Layer indexes kept in the layout, one file per layer digest.

    Files live under ``LAYOUT/.oci-tools/cache/layers/<algorithm>/<hex>.json``;
    they are written atomically and best effort (a read-only layout still
    works, it just streams again).  A missing, unreadable or malformed file
    is a miss.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = private_path(layout.path, CACHE, "layers")

    def path_for(self, digest: Digest) -> str:
        """Where the index of the layer ``digest`` is cached."""
        return os.path.join(self.root, digest.algorithm, digest.encoded + ".json")

    def get(self, digest: Digest) -> LayerIndex | None:
        """The cached index of layer ``digest``, or None."""
        try:
            with open(self.path_for(digest), "rb") as f:
                index = LayerIndex.from_json(json.loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError, OCIToolsError):
            return None
        return index if index.digest == digest else None

    def put(self, index: LayerIndex) -> None:
        """Store ``index`` (errors are ignored: a cache is optional)."""
        path = self.path_for(index.digest)
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            write_json(path, index.to_json(), indent=None, sync=False)


@contextlib.contextmanager
def _bulk() -> Iterator[None]:
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


def _check_diff_id(actual: Digest, expected: Digest | None) -> None:
    if expected is not None and expected.computable and actual != expected:
        raise DigestMismatchError("diff_id of layer", expected=str(expected), actual=str(actual))


class _LayerStream:
    """One layer blob streamed through apply's bounded, hashing opener (bomb
    limits included): ``members()``, then ``finish()`` reads to EOF (the blob
    digest is verified there) and checks the diff_id; ``close()`` always."""

    def __init__(self, layout: Layout, desc: Descriptor, diff_id: Digest | None) -> None:
        codec = codec_for_media_type(desc.media_type)
        algorithm = diff_id.algorithm if diff_id is not None and diff_id.computable else "sha256"
        self.diff_id = diff_id
        self.raw = layout.store.open(desc.digest, desc.size)
        try:
            self.tee = open_layer_stream(cast(BinaryIO, self.raw), codec, algorithm)
        except BaseException:
            self.raw.close()
            raise

    def members(self) -> Iterator[tuple[TarEntry, EntryContent]]:
        """The tar members, in order (each content valid until the next)."""
        return iter_entries(self.tee)

    def finish(self) -> tuple[Digest, int]:
        """Read the rest (still part of the diff_id); (diff_id, size)."""
        while self.tee.read(CHUNK):
            pass
        self.raw.drain()
        actual = self.tee.hasher.digest()
        _check_diff_id(actual, self.diff_id)
        return actual, self.tee.hasher.size

    def close(self) -> None:
        """Release the blob."""
        self.raw.close()


def read_index(layout: Layout, desc: Descriptor, diff_id: Digest | None) -> LayerIndex:
    """Stream the layer ``desc`` once and index it (nothing is cached here).

    The blob digest and size are verified at EOF, the uncompressed stream is
    hashed and checked against ``diff_id`` when given.  Raises
    UnsafeLayerError for a malformed or hostile tar (the strict reader fails
    closed), DigestMismatchError, UnsupportedMediaTypeError.
    """
    stream = _LayerStream(layout, desc, diff_id)
    try:
        entries = [IndexEntry.from_tar(entry) for entry, _content in stream.members()]
        actual, size = stream.finish()
    finally:
        stream.close()
    return LayerIndex(desc.digest, actual, size, tuple(entries))


def layer_index(image: Image, i: int, cache: LayerCache | None = None) -> LayerIndex:
    """The index of layer ``i`` of ``image``: from the cache, else streamed
    once and cached."""
    cache = cache or LayerCache(image.layout)
    desc = image.layers[i]
    diff_id = image.config.diff_ids[i] if i < len(image.config.diff_ids) else None
    index = cache.get(desc.digest)
    if index is not None:
        _check_diff_id(index.diff_id, diff_id)
        return index
    index = read_index(image.layout, desc, diff_id)
    cache.put(index)
    return index


# ----------------------------------------------------------------- the replay


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
class _Node:
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


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _ancestors(path: str) -> Iterator[str]:
    while path:
        path = _parent(path)
        yield path


class _Tree:
    """The merged filesystem as path -> metadata, with a child index so that
    removing a subtree costs the size of the subtree."""

    def __init__(self) -> None:
        self.nodes: dict[str, _Node] = {"": _Node(_DIR, 0o755, 0, 0, 0, -1)}
        self.kids: dict[str, set[str]] = {}

    def set(self, path: str, node: _Node) -> list[str]:
        """Put ``node`` at ``path``; returns the implied parent directories
        it had to create (as apply creates them)."""
        self.nodes[path] = node
        made: list[str] = []
        child = path
        for parent in _ancestors(path):
            self.kids.setdefault(parent, set()).add(child)
            if parent in self.nodes:
                break
            self.nodes[parent] = _Node(_DIR, 0o755, 0, 0, 0, node.layer)
            made.append(parent)
            child = parent
        return made

    def pop_subtree(self, path: str) -> list[tuple[str, _Node]]:
        """Remove ``path`` and everything below it; return what was removed."""
        out: list[tuple[str, _Node]] = []
        todo = [path]
        while todo:
            p = todo.pop()
            node = self.nodes.pop(p, None)
            if node is not None:
                out.append((p, node))
            todo.extend(self.kids.pop(p, ()))
        parent = self.kids.get(_parent(path))
        if parent is not None:
            parent.discard(path)
        return out


@dataclass
class LayerReport:
    """One layer of an image and what it does relative to the layers below."""

    index: int
    descriptor: Descriptor
    created_by: str
    uncompressed_size: int
    changes: list[Change]  # sorted by path
    whiteouts: list[IndexEntry] = field(default_factory=list)  # as stored

    def count(self, change: str) -> int:
        """Number of ``A``, ``C`` or ``D`` rows."""
        return sum(1 for c in self.changes if c.change == change)


def _sort_key(path: str) -> list[str]:
    return path.split("/")


class _Resolver:
    """Resolves member names the way ``apply`` does, on the modelled tree as
    it stands at that point of layer ``li`` (``..`` clamped at the root,
    absolute targets restarting there).  With ``create``, a missing directory
    on the way is made, as apply makes it (an implied directory, added to
    ``clean``).  Results are cached until the replay says a symlink was made
    or something was removed."""

    def __init__(self, tree: _Tree, li: int, clean: set[str]) -> None:
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
                implied = _Node(_DIR, 0o755, 0, 0, 0, self.li)
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
        self.removed: dict[str, _Node] = {}  # lower path -> what stood there


class _Replay:
    """Applies layer indexes, one after the other, to a ``_Tree``, member by
    member in tar order with ``apply``'s rules (see the module docstring)."""

    def __init__(self) -> None:
        self.tree = _Tree()
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
    ) -> list[tuple[str, _Node]]:
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
            node = _Node(e.kind, e.mode, e.uid, e.gid, e.size, li, e.linkname)
            if e.kind == _HARDLINK:
                src = target.src if target is not None else None
                self.link_sources[(li, pos)] = src
                if target is not None and target.kind not in (_REG, _HARDLINK):
                    # A link to a symlink (or a device) is one: it resolves as one.
                    node = _Node(
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
            for a in _ancestors(p):
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
            for a in _ancestors(p):
                if a in gone:
                    top = a
            node = st.removed[p]
            hidden[top] = hidden.get(top, 0) + (node.size if node.kind == _REG else 0)
        for p, size in hidden.items():
            node = st.removed[p]
            rows.append(
                Change("D", "/" + p, node.kind, node.mode, node.uid, node.gid, size, node.linkname)
            )
        rows.sort(key=lambda c: _sort_key(c.path))
        return rows, whiteouts


@dataclass
class Analysis:
    """Every layer of an image replayed: per-layer reports and the waste."""

    image: Image
    layers: list[LayerReport]
    waste: list[Waste]
    layer_bytes: list[int]  # file content bytes per layer (every version)

    @property
    def total_bytes(self) -> int:
        """File content bytes in all layers."""
        return sum(self.layer_bytes)


def _created_by(image: Image) -> dict[int, str]:
    out: dict[int, str] = {}
    for h, li in image.config.layer_history():
        if li is not None:
            out[li] = h.created_by or ""
    return out


def analyze(image: Image, upto: int | None = None, cache: LayerCache | None = None) -> Analysis:
    """Replay layers ``0..upto`` (all by default) of ``image``.

    Each layer is streamed at most once, and not at all when its index is
    cached; only per-path metadata is held.
    """
    image.check_consistent()
    cache = cache or LayerCache(image.layout)
    last = len(image.layers) - 1 if upto is None else upto
    replay = _Replay()
    created_by = _created_by(image)
    reports = []
    for li in range(last + 1):
        with _bulk():
            index = layer_index(image, li, cache)
            rows, whiteouts = replay.layer(li, index)
        reports.append(
            LayerReport(
                li,
                image.layers[li],
                created_by.get(li, ""),
                index.uncompressed_size,
                rows,
                whiteouts,
            )
        )
    return Analysis(image, reports, replay.waste, replay.layer_bytes)


def select_layer(image: Image, text: str) -> int:
    """The layer index ``text`` names: ``N`` (0 is the bottom layer, -1 the
    top), or a blob digest (``sha256:...``, or a unique hex prefix of at least
    4 characters, with or without the algorithm)."""
    n = len(image.layers)
    try:
        i = int(text)
    except ValueError:
        pass
    else:
        if not -n <= i < n:
            raise UsageError(
                f"layer {i} out of range: the image has {n} layer{'s' if n != 1 else ''}",
                hint="layers are numbered from 0 (bottom); -1 is the top layer",
            )
        return i % n
    alg, colon, hexpart = text.rpartition(":")
    if len(hexpart) < 4 or not all(c in "0123456789abcdef" for c in hexpart):
        raise UsageError(f"{text!r} is neither a layer number nor a layer digest")
    hits = sorted(
        {
            i
            for i, d in enumerate(image.layers)
            if d.digest.encoded.startswith(hexpart) and (not colon or d.digest.algorithm == alg)
        }
    )
    if not hits:
        raise UsageError(
            f"no layer of the image has digest {text}",
            hint="see the LAYER column of: oci-tools layers",
        )
    digests = {str(image.layers[i].digest) for i in hits}
    if len(hits) > 1:
        what = "is shared by" if len(digests) == 1 else "matches"
        raise UsageError(
            f"{text} {what} layers {', '.join(map(str, hits))}", hint="give the layer number"
        )
    return hits[0]


def layer_report(image: Image, i: int, cache: LayerCache | None = None) -> LayerReport:
    """The report of layer ``i`` (layers below it are replayed, not above)."""
    return analyze(image, upto=i, cache=cache).layers[i]


# ------------------------------------------------------------------------ tree


@dataclass
class TreeNode:
    """A node of ``layer show --tree``.

    ``change`` is None for a directory the layer does not carry itself (only
    its contents).  ``size``: for a directory, the bytes this layer adds or
    changes below it; for a file its size; for a ``D`` row what it hides.
    """

    name: str
    path: str
    change: Change | None
    size: int = 0
    children: list[TreeNode] = field(default_factory=list)


def change_tree(changes: list[Change]) -> TreeNode:
    """Arrange sorted ``changes`` as a tree rooted at ``/`` with totals."""
    root = TreeNode("/", "/", None)
    nodes: dict[str, TreeNode] = {"": root}

    def get(path: str) -> TreeNode:
        node = nodes.get(path)
        if node is None:
            parent = get(_parent(path))
            node = TreeNode(path.rpartition("/")[2], "/" + path, None)
            parent.children.append(node)
            nodes[path] = node
        return node

    for ch in changes:
        node = get(ch.path[1:])
        node.change = ch
        if ch.change == "D" or ch.type != _DIR:
            node.size = ch.size
        if ch.change != "D" and ch.type == _REG and ch.size:
            for a in _ancestors(ch.path[1:]):
                nodes[a].size += ch.size
    return root


# ------------------------------------------------------------------ efficiency


@dataclass(frozen=True, slots=True)
class WastedFile:
    """A path whose earlier versions were overwritten or deleted."""

    path: str  # starts with /
    count: int  # versions wasted
    size: int  # their bytes
    layers: tuple[int, ...]  # the layers holding them


@dataclass(frozen=True, slots=True)
class Efficiency:
    """``dive``-style efficiency: ``score = 1 - wasted / total``.

    ``total`` counts the file bytes of every version of every file in every
    layer; ``wasted`` the bytes of versions a later layer (or a later member
    of the same layer) overwrote or deleted.  (dive scores the other way: it
    counts every copy of a path seen in more than one layer, the surviving
    one included.)
    """

    layers: int
    total_bytes: int
    wasted_bytes: int
    files: list[WastedFile]  # largest first
    user_bytes: int = 0  # file bytes of the layers above the first (the base)

    @property
    def score(self) -> float:
        """1.0 for an image that wastes nothing (or has no file bytes)."""
        return 1.0 - self.wasted_bytes / self.total_bytes if self.total_bytes else 1.0

    @property
    def user_wasted(self) -> float:
        """Wasted bytes relative to the bytes the layers above the base add
        (dive's ``highestUserWastedPercent`` measure); 0.0 when they add none."""
        return self.wasted_bytes / self.user_bytes if self.user_bytes else 0.0


def efficiency(image: Image, cache: LayerCache | None = None) -> Efficiency:
    """Wasted bytes and score of ``image``."""
    a = analyze(image, cache=cache)
    per: dict[str, list[Waste]] = {}
    for w in a.waste:
        per.setdefault(w.path, []).append(w)
    files = [
        WastedFile("/" + p, len(ws), sum(w.size for w in ws), tuple(sorted({w.layer for w in ws})))
        for p, ws in per.items()
    ]
    files.sort(key=lambda f: (-f.size, _sort_key(f.path)))
    return Efficiency(
        len(image.layers),
        a.total_bytes,
        sum(w.size for w in a.waste),
        files,
        user_bytes=sum(a.layer_bytes[1:]),
    )


# --------------------------------------------------------------------- extract


@dataclass(frozen=True, slots=True)
class LinkCopy:
    """A hardlink of the extracted layer whose target is a lower layer's
    file: ``path`` was written as a copy of ``target`` from layer ``layer``."""

    path: str
    target: str
    layer: int


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What ``extract_layer`` wrote, and the whiteouts it did not apply."""

    index: int
    entries: int
    whiteouts: list[IndexEntry]
    skipped: list[str]
    copies: list[LinkCopy] = field(default_factory=list)


def extract_layer(
    image: Image,
    i: int,
    dest: str,
    *,
    rootless: bool | None = None,
    cache: LayerCache | None = None,
) -> ExtractResult:
    """Write layer ``i``'s own files into ``dest`` (created, or empty).

    The layer goes through ``apply`` (same confinement and checks as unpack:
    blob digest, diff_id, path escapes, links, bombs) with whiteouts left
    unapplied; they are returned instead.  A hardlink to a file of a lower
    layer (which ``dest`` does not have) becomes a copy of that file, read
    from the lower layer that holds it.  The layer is indexed in the same
    pass (and cached) when no index was cached yet.  After an error, what
    was written is removed again: ``dest`` is left as it was found.
    """
    image.check_consistent()
    cache = cache or LayerCache(image.layout)
    desc = image.layers[i]
    made = not os.path.lexists(dest)
    if not made and (not os.path.isdir(dest) or os.listdir(dest)):
        raise ClobberError(dest, hint="layer extract needs a new or empty directory")
    os.makedirs(dest, exist_ok=True)
    codec = codec_for_media_type(desc.media_type)
    cached = cache.get(desc.digest)
    seen: list[IndexEntry] = []
    missing: list[tuple[int, TarEntry]] = []  # (member position, hardlink)
    opts = ApplyOptions(
        on_entry=lambda e: seen.append(IndexEntry.from_tar(e)),
        apply_whiteouts=False,
        on_missing_link=lambda e: missing.append((len(seen) - 1, e)),
    )
    if rootless is not None:
        opts.rootless = rootless
    try:
        raw = image.layout.store.open(desc.digest, desc.size)
        try:
            res = apply_layer(
                cast(BinaryIO, raw),
                dest,
                codec=codec,
                diff_id=image.config.diff_ids[i],
                options=opts,
            )
        finally:
            raw.close()
        index = LayerIndex(desc.digest, res.diff_id, res.uncompressed_size, tuple(seen))
        copies, notes = _copy_lower_links(image, i, index, missing, dest, opts, cache)
    except BaseException:
        # Undo: nothing of a failed extraction stays (never through a symlink).
        # Imported here: bundle is heavy, and only a failure needs it.

        if made:
            remove_tree(dest)
        else:
            empty_dir(dest)
        raise
    if cached is None:
        cache.put(index)
    whiteouts = [e for e in seen if e.kind in (WHITEOUT, OPAQUE)]
    return ExtractResult(i, res.entries, whiteouts, res.skipped + notes, copies)


def _copy_lower_links(
    image: Image,
    i: int,
    index: LayerIndex,
    missing: list[tuple[int, TarEntry]],
    dest: str,
    opts: ApplyOptions,
    cache: LayerCache,
) -> tuple[list[LinkCopy], list[str]]:
    """Write each hardlink of ``missing`` (whose targets ``dest`` lacks) as a
    copy of the lower layers' file it refers to.

    Only a hardlink that is the last member of its name is copied (a later
    member replaced it).  Each source layer is streamed once, verified like
    any layer, and its member goes through ``apply_members`` under the
    hardlink's name, so the same confinement rules hold.
    """
    if not missing:
        return [], []
    # The replay knows, for every hardlink member, which member holds its
    # content, following symlinks and link chains down the layers.
    replay = _Replay()
    indexes = [layer_index(image, li, cache) for li in range(i)] + [index]
    for li, idx in enumerate(indexes):
        with _bulk():
            replay.layer(li, idx)
    last = {e.path: k for k, e in enumerate(index.entries) if e.kind not in (WHITEOUT, OPAQUE)}
    wanted: dict[int, dict[int, list[TarEntry]]] = {}  # layer -> position -> links
    for pos, link in missing:
        if last.get(link.name) != pos:
            continue  # replaced by a later member of the layer
        src = replay.link_sources.get((i, pos))
        if src is None or src[0] == i:
            raise UnsafeLayerError(
                link.name, f"hardlink target {link.linkname!r} missing in this and lower layers"
            )
        wanted.setdefault(src[0], {}).setdefault(src[1], []).append(link)
    copies: list[LinkCopy] = []
    notes: list[str] = []
    for li in sorted(wanted):
        at = wanted[li]
        for k, links in at.items():
            copies += [LinkCopy(link.name, indexes[li].entries[k].path, li) for link in links]
        notes += apply_members(
            _lower_members(image, li, at),
            dest,
            options=replace(opts, on_entry=None, on_missing_link=None),
        )
    copies.sort(key=lambda c: _sort_key(c.path))
    return copies, notes


def _lower_members(
    image: Image, li: int, at: dict[int, list[TarEntry]]
) -> Iterator[tuple[TarEntry, EntryContent]]:
    """Stream layer ``li`` and yield, for each wanted member position, its
    file under the first hardlink's name, then hardlinks to that copy for
    the other names.  The whole stream is read and verified (blob digest,
    diff_id) before the iteration ends."""
    stream = _LayerStream(image.layout, image.layers[li], image.config.diff_ids[li])
    try:
        for k, (entry, content) in enumerate(stream.members()):
            links = at.get(k)
            if not links:
                continue
            first, *rest = links
            yield replace(entry, name=first.name), content
            for link in rest:
                yield TarEntry(link.name, EntryType.HARDLINK, linkname=first.name), content
        stream.finish()
    finally:
        stream.close()


__all__ = [
    "CACHE_VERSION",
    "OPAQUE",
    "WHITEOUT",
    "Analysis",
    "Change",
    "Efficiency",
    "ExtractResult",
    "IndexEntry",
    "LayerCache",
    "LayerIndex",
    "LayerReport",
    "LinkCopy",
    "TreeNode",
    "Waste",
    "WastedFile",
    "analyze",
    "change_tree",
    "efficiency",
    "extract_layer",
    "layer_index",
    "layer_report",
    "read_index",
    "select_layer",
]
