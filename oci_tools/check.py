"""Whole-layout verification: every document validated, every blob re-hashed.

Returns problems as a list of one-line strings instead of raising, so
``validate`` can report all of them at once.  Blobs are read only through the
store's verifying reader and layer content only through
:func:`oci_tools.layer.stream.open_layer_stream` (with its bomb limits); the
blob graph is walked with :meth:`Layout.walk`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO, cast

from oci_tools.digest import Digest
from oci_tools.errors import DigestMismatchError, OCIToolsError
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, ImageConfig, Manifest
from oci_tools.spec.schema import problems as schema_problems
from oci_tools.store import MAX_DOCUMENT_SIZE

CHUNK = 1 << 20


def _rehash(layout: Layout, dg: Digest) -> tuple[Digest, int]:
    """What blob ``dg`` really hashes to, and its size."""
    size = layout.store.stat_size(dg)
    r = layout.store.open(dg, size)
    try:
        while True:
            try:
                b = r.read(CHUNK)
            except DigestMismatchError:
                break  # the content differs: read_digest says how
            if not b:
                break
    finally:
        r.close()
    return r.read_digest, size


def check_layout(
    layout: Layout, *, layers: bool = True, progress: Callable[[str], None] | None = None
) -> list[str]:
    """Every problem found in ``layout`` (empty when it is valid).

    Checks the header and index.json against their schemas, re-hashes every
    blob, validates every reachable manifest, index and config, checks sizes,
    and (``layers``) decompresses every layer to check its diff_id.
    """
    out: list[str] = []
    root = layout.path
    try:
        with open(os.path.join(root, "oci-layout"), "rb") as f:
            out += [
                f"oci-layout: {p}" for p in schema_problems(mt.OCI_LAYOUT_HEADER, f.read(1 << 16))
            ]
    except OSError as e:
        out.append(f"oci-layout: {e.strerror}")
    try:
        with open(os.path.join(root, "index.json"), "rb") as f:
            raw_index = f.read(MAX_DOCUMENT_SIZE)
        out += [f"index.json: {p}" for p in schema_problems(mt.OCI_INDEX, raw_index)]
    except OSError as e:
        out.append(f"index.json: {e.strerror}")
        return out

    for stray in layout.store.stray_files():
        out.append(f"{stray}: file name is not a valid digest")

    sizes: dict[Digest, int] = {}
    for dg in layout.store.digests():
        if not dg.computable:
            continue
        if progress:
            progress(f"hashing {dg}")
        try:
            actual, size = _rehash(layout, dg)
        except OCIToolsError as e:  # not a regular file, unreadable
            out.append(f"blobs/{dg.algorithm}/{dg.encoded}: {e}")
            continue
        sizes[dg] = size
        if actual != dg:
            out.append(f"blobs/{dg.algorithm}/{dg.encoded}: content hashes to {actual}")

    try:
        roots = list(layout.index().manifests)
    except OCIToolsError as e:
        out.append(str(e))
        return out

    def visit(desc: Descriptor, where: str) -> bool:
        if desc.digest not in sizes:
            if not layout.store.has(desc.digest):
                out.append(f"{where}: blob {desc.digest} is missing")
            return False
        if sizes[desc.digest] != desc.size:
            out.append(
                f"{where}: descriptor size {desc.size} but blob {desc.digest} "
                f"has {sizes[desc.digest]} bytes"
            )
            return False
        mtype = desc.media_type
        if mtype not in mt.INDEX_TYPES | mt.MANIFEST_TYPES | mt.CONFIG_TYPES:
            return False
        raw = layout.read_blob(desc)
        probs = schema_problems(mtype, raw)
        out.extend(f"{where} ({desc.digest}): {p}" for p in probs)
        if probs:
            return False
        if mtype in mt.MANIFEST_TYPES:
            out.extend(_check_image(layout, Manifest.parse(raw, mtype), desc, sizes, layers))
        return True

    layout.walk([(d, f"index.json manifests[{i}]") for i, d in enumerate(roots)], visit)
    return out


def _check_image(
    layout: Layout, m: Manifest, desc: Descriptor, sizes: dict[Digest, int], layers: bool
) -> list[str]:
    out: list[str] = []
    if m.config is None or m.config.media_type not in mt.CONFIG_TYPES:
        return out
    if m.config.digest not in sizes or sizes[m.config.digest] != m.config.size:
        return out  # reported when the config descriptor itself is visited
    try:
        cfg = ImageConfig.parse(layout.read_blob(m.config))
    except OCIToolsError as e:
        return [f"{desc.digest} config: {e}"]
    if len(cfg.diff_ids) != len(m.layers):
        out.append(f"{desc.digest}: {len(m.layers)} layers but {len(cfg.diff_ids)} diff_ids")
        return out
    if not layers:
        return out
    for i, (ld, diff_id) in enumerate(zip(m.layers, cfg.diff_ids, strict=True)):
        codec = mt.LAYER_CODECS.get(ld.media_type)
        if codec is None or ld.digest not in sizes or sizes[ld.digest] != ld.size:
            continue
        try:
            blob = layout.store.open(ld.digest, ld.size)
            try:
                stream = open_layer_stream(cast(BinaryIO, blob), codec, diff_id.algorithm)
                stream.drain()
            finally:
                blob.close()
            got = stream.hasher.digest()
            if got != diff_id:
                out.append(
                    f"{desc.digest} layers[{i}]: uncompressed content hashes to "
                    f"{got}, config says {diff_id}"
                )
        except (OSError, EOFError, ValueError, OCIToolsError) as e:
            out.append(f"{desc.digest} layers[{i}]: cannot decompress: {e}")
        except Exception as e:  # zstd and isal raise their own error classes
            out.append(f"{desc.digest} layers[{i}]: cannot decompress: {e}")
    return out


def check_path(path: str, *, layers: bool = True) -> list[str]:
    """Every problem of the layout at ``path`` (empty when it is valid).

    A directory whose ``oci-layout`` or ``index.json`` keeps it from opening
    is still checked for everything else, so that all problems are listed,
    not only the first; a path that is not a directory raises the open error.
    """
    try:
        layout = Layout.open(path)
        found: list[str] = []
    except OCIToolsError as e:
        if not os.path.isdir(path):
            raise
        layout, found = Layout(path), [str(e)]
    return found + [p for p in check_layout(layout, layers=layers) if p not in found]


def check_document_file(path: str, media_type: str) -> list[str]:
    """Every schema problem of the document in file ``path`` read as ``media_type``."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_DOCUMENT_SIZE)
    except OSError as e:
        raise OCIToolsError(f"cannot read {path}: {e.strerror}") from None
    return schema_problems(media_type, raw)


__all__ = ["check_document_file", "check_layout", "check_path"]
