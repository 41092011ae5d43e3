"""The step cache: one index blob of cached states, kept by one gc root.

A key covers the parent state, the instruction text after ARG/ENV
substitution and the content hash of copied files (:func:`cache_key`).
"""

from __future__ import annotations

import hashlib
import json
import os

from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Index
from oci_tools.store import put_bytes

#: Annotation naming the cache key of a state in the cache index.
CACHE_KEY_ANNOTATION = "io.github.oci-tools.build.cache-key"
#: Extra gc root (see ``Layout.add_root``) holding the cache index.
CACHE_ROOT = "build-cache"
#: Oldest cache entries beyond this many are dropped (gc then frees them).
CACHE_MAX_ENTRIES = 4096
#: Bumped whenever what a cache key covers changes meaning.
CACHE_VERSION = "oci-tools-build-1"


def cache_key(parent: Digest, *parts: str) -> str:
    """The cache key of a step on top of state ``parent``: a sha256 over
    :data:`CACHE_VERSION`, the parent's manifest digest and ``parts`` (what
    the step does: its kind and its ``created_by`` text), NUL-separated."""
    h = hashlib.sha256()
    for p in (CACHE_VERSION, str(parent), *parts):
        h.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


class Cache:
    """Cached step results of a layout (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.entries = self._load()

    def _load(self) -> dict[str, Descriptor]:
        path = os.path.join(self.layout.roots_dir(), CACHE_ROOT + ".json")
        try:
            with open(path, "rb") as f:
                rec = json.loads(f.read(1 << 20))
            idx = Index.parse(self.layout.read_blob(Descriptor.from_dict(rec["descriptor"])))
        except (OSError, ValueError, KeyError, TypeError, OCIToolsError):
            return {}
        return {d.annotations[CACHE_KEY_ANNOTATION]: d for d in idx.manifests if d.annotations}

    def get(self, key: str) -> Descriptor | None:
        """The state cached under ``key``, if all of its blobs are still there."""
        desc = self.entries.get(key)
        if desc is None:
            return None
        try:
            img = Image.from_descriptor(
                self.layout, desc.with_annotations(**{CACHE_KEY_ANNOTATION: None})
            )
        except OCIToolsError:
            return None
        if not all(self.layout.store.has(d.digest) for d in img.layers):
            return None
        return img.descriptor

    def put(self, key: str, desc: Descriptor) -> None:
        """Remember ``desc`` under ``key``.  Call under the layout lock, in the
        same hold as the one that wrote ``desc``'s blobs, so no gc runs between."""
        entries = self._load()  # another build may have added entries meanwhile
        tagged = desc.with_annotations(**{CACHE_KEY_ANNOTATION: key})
        if entries.get(key) == tagged:
            self.entries = entries
            return
        entries.pop(key, None)
        entries[key] = tagged
        while len(entries) > CACHE_MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        idx = Index.build(list(entries.values()))
        put_bytes(self.layout.store, idx.raw)
        self.layout.add_root(CACHE_ROOT, idx.descriptor(mt.OCI_INDEX))
        self.entries = entries


__all__ = [
    "CACHE_KEY_ANNOTATION",
    "CACHE_MAX_ENTRIES",
    "CACHE_ROOT",
    "CACHE_VERSION",
    "Cache",
    "cache_key",
]
