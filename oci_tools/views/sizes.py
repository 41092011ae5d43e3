"""Layer sizes, learned once per layer and cached in the layout.

Three sizes describe a layer:

- its *content size*, what Docker calls a layer's size (``docker history``,
  ``docker images``, ``docker ps -s``): the bytes of its regular files, a
  hardlinked inode counted once (hardlink entries carry no data) -- the sum
  of the tar headers' sizes that moby's ``UnpackLayer`` returns;
- its *uncompressed size*: the length of the tar stream (the diff_id's input);
- its *compressed size*: the blob as stored (the descriptor's ``size``).

The uncompressed size comes from the annotation our commits write, from the
blob itself when it is not compressed, or from a per-layout cache filled once
by decompressing; the content size from a per-layout cache filled by reading
the tar headers once (a layer never changes), never on every call.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import BinaryIO, cast

from oci_tools.errors import OCIToolsError
from oci_tools.fsutil import CACHE, private_path, write_json
from oci_tools.image import UNCOMPRESSED_SIZE
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor

CHUNK = 1 << 20


def _load_cache(path: str) -> dict[str, int]:
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read())
        return {k: int(v) for k, v in data.items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


class SizeCache:
    """Content and uncompressed sizes of layer blobs, cached in the layout by digest."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = private_path(layout.path, CACHE, "layer-sizes.json")
        self.content_path = private_path(layout.path, CACHE, "layer-content-sizes.json")
        self._sizes: dict[str, int] | None = None
        self._contents: dict[str, int] | None = None
        self._dirty = False
        self._contents_dirty = False

    def _load(self) -> dict[str, int]:
        if self._sizes is None:
            self._sizes = _load_cache(self.path)
        return self._sizes

    def content(self, desc: Descriptor) -> int:
        """Docker's size of the layer ``desc`` points at: its regular files'
        bytes, each hardlinked inode once (see the module docstring).

        A layer whose blob is not in the store (or cannot be read) falls back
        to its uncompressed size: a size, never an error, for a listing.
        """
        if self._contents is None:
            self._contents = _load_cache(self.content_path)
        key = str(desc.digest)
        if key in self._contents:
            return self._contents[key]
        codec = mt.LAYER_CODECS.get(desc.media_type)
        if codec is None or not self.layout.store.has(desc.digest):
            return self.size(desc)
        # Reading a layer is the rare case (once per layer ever): the views
        # start faster without the codecs and the tar reader.
        from oci_tools.layer.entry import EntryType
        from oci_tools.layer.reader import iter_entries
        from oci_tools.layer.stream import open_layer_stream

        total = 0
        raw = self.layout.store.open(desc.digest, desc.size)
        try:
            stream = open_layer_stream(cast(BinaryIO, raw), codec)
            for entry, _content in iter_entries(stream):
                if entry.type is EntryType.REG:
                    total += entry.size
            stream.drain()
            raw.drain()
        except OCIToolsError:
            return self.size(desc)
        finally:
            raw.close()
        self._contents[key] = total
        self._contents_dirty = True
        sizes = self._load()
        if key not in sizes and UNCOMPRESSED_SIZE not in desc.annotations:
            sizes[key] = stream.hasher.size  # learned on the way
            self._dirty = True
        return total

    def size(self, desc: Descriptor) -> int:
        """Uncompressed size of the layer ``desc`` points at."""
        hint = desc.annotations.get(UNCOMPRESSED_SIZE)
        if hint is not None and hint.isdigit():
            return int(hint)
        codec = mt.LAYER_CODECS.get(desc.media_type)
        if codec == "none":
            return desc.size
        sizes = self._load()
        key = str(desc.digest)
        if key in sizes:
            return sizes[key]
        if codec is None or not self.layout.store.has(desc.digest):
            return desc.size
        from oci_tools.compression import decompressor  # rare: see content()

        n = 0
        r = self.layout.store.open(desc.digest, desc.size)
        try:
            stream = decompressor(codec, r)  # type: ignore[arg-type]
            while True:
                b = stream.read(CHUNK)
                if not b:
                    break
                n += len(b)
            r.drain()
        finally:
            r.close()
        sizes[key] = n
        self._dirty = True
        return n

    def save(self) -> None:
        """Persist newly learned sizes (best effort: a cache is optional)."""
        for dirty, path, sizes in (
            (self._dirty, self.path, self._sizes),
            (self._contents_dirty, self.content_path, self._contents),
        ):
            if dirty and sizes is not None:
                with contextlib.suppress(OSError):
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    write_json(path, sizes, indent=None, sync=False)
        self._dirty = self._contents_dirty = False


__all__ = ["SizeCache"]
