"""Layer indexes: what streaming one layer blob teaches, and their cache.

An *index* is the metadata of every tar member of a layer (name, type, mode,
owner, size, link target; never content), whiteouts included.  An index is
learned by streaming the layer once, through the strict reader, in bounded
memory, with the blob digest and the diff_id verified; it is then cached under
``LAYOUT/.oci-tools/cache/layers/`` by layer digest (a layer never changes),
so later calls decompress nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from oci_tools.compression import codec_for_media_type
from oci_tools.digest import Digest
from oci_tools.errors import DigestMismatchError, OCIToolsError
from oci_tools.fsutil import CACHE, private_path, write_json
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.reader import CHUNK, EntryContent, iter_entries
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layer.whiteout import WHITEOUT_PREFIX, WhiteoutKind, classify
from oci_tools.layout import Layout
from oci_tools.spec.model import Descriptor

#: Version of the cached index format (a different version is a cache miss).
CACHE_VERSION = 1
#: Index kinds beyond the tar types (EntryType values): a plain whiteout and an
#: opaque marker, as an index records them.  These are the words of the index
#: (and of ``layer extract``'s output), not member names: whiteout member names
#: live only in oci_tools.layer.whiteout.
WHITEOUT = "whiteout"
OPAQUE = "opaque"
_KINDS = frozenset({t.value for t in EntryType} | {WHITEOUT, OPAQUE})


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


def _check_diff_id(actual: Digest, expected: Digest | None) -> None:
    if expected is not None and expected.computable and actual != expected:
        raise DigestMismatchError("diff_id of layer", expected=str(expected), actual=str(actual))


class LayerBlobReader:
    """One layer blob of a layout, read member by member through
    ``open_layer_stream`` (the bounded, hashing opener: bomb limits included):
    ``members()``, then ``finish()`` reads to EOF (the blob digest is verified
    there) and checks the diff_id; ``close()`` always."""

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
    stream = LayerBlobReader(layout, desc, diff_id)
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


__all__ = [
    "CACHE_VERSION",
    "OPAQUE",
    "WHITEOUT",
    "IndexEntry",
    "LayerBlobReader",
    "LayerCache",
    "LayerIndex",
    "layer_index",
    "read_index",
]
