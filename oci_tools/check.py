"""Whole-layout verification: every document validated, every blob re-hashed.

Returns problems as a list of one-line strings instead of raising, so
``validate`` can report all of them at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from oci_tools.compression import decompressor
from oci_tools.digest import Digest, Hasher
from oci_tools.errors import OCIToolsError
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, ImageConfig, Index, Manifest
from oci_tools.spec.schema import problems as schema_problems
from oci_tools.store import MAX_DOCUMENT_SIZE

CHUNK = 1 << 20


def _rehash(path: str, algorithm: str) -> tuple[Digest, int]:
    h = Hasher(algorithm)
    with open(path, "rb", buffering=0) as f:
        while True:
            b = f.read(CHUNK)
            if not b:
                break
            h.update(b)
    return h.digest(), h.size


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
        actual, size = _rehash(layout.store.path_of(dg), dg.algorithm)
        sizes[dg] = size
        if actual != dg:
            out.append(f"blobs/{dg.algorithm}/{dg.encoded}: content hashes to {actual}")

    try:
        roots = list(layout.index().manifests)
    except OCIToolsError as e:
        out.append(str(e))
        return out

    seen: set[Digest] = set()
    stack: list[tuple[Descriptor, str]] = [
        (d, f"index.json manifests[{i}]") for i, d in enumerate(roots)
    ]
    while stack:
        desc, where = stack.pop()
        if desc.digest in seen:
            continue
        seen.add(desc.digest)
        if desc.digest not in sizes:
            if not layout.store.has(desc.digest):
                out.append(f"{where}: blob {desc.digest} is missing")
            continue
        if sizes[desc.digest] != desc.size:
            out.append(
                f"{where}: descriptor size {desc.size} but blob {desc.digest} "
                f"has {sizes[desc.digest]} bytes"
            )
            continue
        mtype = desc.media_type
        if mtype in mt.INDEX_TYPES | mt.MANIFEST_TYPES | mt.CONFIG_TYPES:
            raw = layout.read_blob(desc)
            probs = schema_problems(mtype, raw)
            out += [f"{where} ({desc.digest}): {p}" for p in probs]
            if probs:
                continue
            if mtype in mt.INDEX_TYPES:
                idx = Index.parse(raw, mtype)
                stack += [(d, f"{desc.digest} manifests[{i}]") for i, d in enumerate(idx.manifests)]
            elif mtype in mt.MANIFEST_TYPES:
                m = Manifest.parse(raw, mtype)
                out += _check_image(layout, m, desc, sizes, layers)
                if m.config is not None:
                    stack.append((m.config, f"{desc.digest} config"))
                stack += [(d, f"{desc.digest} layers[{i}]") for i, d in enumerate(m.layers)]
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
            h = Hasher(diff_id.algorithm)
            with open(layout.store.path_of(ld.digest), "rb") as raw:
                stream = decompressor(codec, raw)
                while True:
                    b = stream.read(CHUNK)
                    if not b:
                        break
                    h.update(b)
            if h.digest() != diff_id:
                out.append(
                    f"{desc.digest} layers[{i}]: uncompressed content hashes to "
                    f"{h.digest()}, config says {diff_id}"
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
