"""Uncompressed layer sizes, learned once per layer and cached in the layout.

A layer's size comes from the uncompressed-size annotation our commits
write, from the blob itself when it is not compressed, or from a per-layout
cache filled once by decompressing (a layer never changes), never by
decompressing on every call.
"""

from __future__ import annotations

import contextlib
import json
import os

from oci_tools.compression import decompressor
from oci_tools.fsutil import CACHE, private_path, write_json
from oci_tools.image import UNCOMPRESSED_SIZE
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor

CHUNK = 1 << 20


class SizeCache:
    """Uncompressed sizes of layer blobs, cached in the layout by digest."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = private_path(layout.path, CACHE, "layer-sizes.json")
        self._sizes: dict[str, int] | None = None
        self._dirty = False

    def _load(self) -> dict[str, int]:
        if self._sizes is None:
            try:
                with open(self.path, "rb") as f:
                    data = json.loads(f.read())
                self._sizes = {k: int(v) for k, v in data.items()}
            except (OSError, ValueError, AttributeError):
                self._sizes = {}
        return self._sizes

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
        if not self._dirty or self._sizes is None:
            return
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_json(self.path, self._sizes, indent=None, sync=False)
        self._dirty = False


__all__ = ["SizeCache"]
