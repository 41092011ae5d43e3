"""Multi-platform indexes in a layout: create, add, remove, annotate (as
``docker manifest`` / ``podman manifest`` do), and the image lookups they need."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from oci_tools.digest import Digest
from oci_tools.errors import (
    InvalidDocumentError,
    NotFoundError,
    UsageError,
)
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Index, Platform, merge_annotations

# ---------------------------------------------------------------------------
# images by digest, multi-platform indexes


def image_by_digest(layout: Layout, digest: Digest) -> Image:
    """The image whose manifest blob is ``digest`` in ``layout`` (tagged or
    not); NotFoundError when the blob is missing, InvalidDocumentError when
    it is not an image manifest."""
    import json

    if not layout.store.has(digest):
        raise NotFoundError(f"manifest {digest} is not in {layout.path}")
    size = layout.store.stat_size(digest)
    probe = Descriptor(mt.OCI_MANIFEST, digest, size)
    raw = layout.read_blob(probe)
    try:
        media_type = json.loads(raw).get("mediaType") or mt.OCI_MANIFEST
    except (ValueError, AttributeError) as e:
        raise InvalidDocumentError("manifest", [f"{digest} is not JSON"]) from e
    if media_type not in mt.MANIFEST_TYPES:
        raise InvalidDocumentError("manifest", [f"{digest} is a {media_type}, not an image"])
    return Image.from_descriptor(layout, Descriptor(media_type, digest, size))


def manifest_entry(image: Image) -> Descriptor:
    """The index entry for ``image``: its manifest descriptor with the
    platform its config declares (os, architecture, variant, os.version,
    os.features)."""
    plat = Platform.from_dict(image.config.doc)
    d = image.descriptor
    return Descriptor(d.media_type, d.digest, d.size, platform=plat)


def _put_index(layout: Layout, index: Index) -> Descriptor:
    from oci_tools.store import put_bytes

    with layout.lock():
        put_bytes(layout.store, index.raw)
    return Descriptor(index.media_type, index.digest, index.size)


def _bring(layout: Layout, image: Image) -> Image:
    """``image`` with its blobs in ``layout`` (written there when it lives
    elsewhere)."""
    if image.layout.is_same(layout):
        return image
    from oci_tools.mutate import write

    write(layout, image)
    return Image.from_descriptor(layout, image.descriptor)


def create_index(
    layout: Layout,
    images: Sequence[Image],
    *,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Write an OCI image index listing ``images`` (``docker manifest
    create``), each with the platform its config declares; images from other
    layouts are copied into ``layout`` first.  Two images for the same
    platform are refused.  Returns the index descriptor (untagged)."""
    if not images:
        raise UsageError("an index needs at least one image")
    entries = [manifest_entry(_bring(layout, img)) for img in images]
    _check_unique(entries)
    return _put_index(layout, Index.build(entries, annotations))


def _check_unique(entries: Sequence[Descriptor]) -> None:
    seen: dict[tuple[str, ...], Digest] = {}
    for d in entries:
        p = d.platform
        if p is None:
            continue
        key = (p.os, p.architecture, p.variant, p.os_version, *p.os_features)
        if key in seen and seen[key] != d.digest:
            raise UsageError(
                f"two images for platform {p}: {seen[key].short} and {d.digest.short}",
                hint="give each image its own platform (index annotate --platform)",
            )
        seen[key] = d.digest


def load_index(layout: Layout, ref: str) -> tuple[Descriptor, Index]:
    """The index ``ref`` names (UsageError when it names an image)."""
    desc = layout.lookup(ref)
    if desc.media_type not in mt.INDEX_TYPES:
        raise UsageError(
            f"{ref} is an image, not an index",
            hint="make one with: index create LAYOUT:REF IMAGE...",
        )
    return desc, Index.parse(layout.read_blob(desc), desc.media_type)


def _rebuild(index: Index, entries: Sequence[Descriptor], ann: Mapping[str, str]) -> Index:
    return Index.build(list(entries), ann or None)


def index_add(layout: Layout, ref: str, images: Sequence[Image]) -> Descriptor:
    """The index ``ref`` names with ``images`` added (an image already listed
    is replaced by the new entry).  Returns the new index descriptor."""
    _, idx = load_index(layout, ref)
    new = [manifest_entry(_bring(layout, img)) for img in images]
    digests = {d.digest for d in new}
    entries = [d for d in idx.manifests if d.digest not in digests] + new
    _check_unique(entries)
    return _put_index(layout, _rebuild(idx, entries, idx.annotations))


def _matches(d: Descriptor, target: str) -> bool:
    if target.startswith("sha256:") or ":" in target:
        return str(d.digest) == target or (len(target) > 7 and str(d.digest).startswith(target))
    want = Platform.parse(target)
    return (
        d.platform is not None and d.platform.matches(want) and (want.variant == d.platform.variant)
    )


def _select(idx: Index, target: str) -> list[int]:
    hits = [i for i, d in enumerate(idx.manifests) if _matches(d, target)]
    if not hits:
        raise NotFoundError(
            f"no entry {target} in the index",
            hint="entries: "
            + ", ".join(f"{d.digest.short} {d.platform or '-'}" for d in idx.manifests),
        )
    return hits


def index_remove(layout: Layout, ref: str, targets: Sequence[str]) -> Descriptor:
    """The index ``ref`` names without the entries ``targets`` name (a
    manifest digest, a digest prefix, or ``os/arch[/variant]``)."""
    _, idx = load_index(layout, ref)
    drop: set[int] = set()
    for t in targets:
        drop.update(_select(idx, t))
    entries = [d for i, d in enumerate(idx.manifests) if i not in drop]
    return _put_index(layout, _rebuild(idx, entries, idx.annotations))


def index_annotate(
    layout: Layout,
    ref: str,
    target: str,
    *,
    platform: Platform | None = None,
    os_version: str | None = None,
    os_features: Sequence[str] | None = None,
    annotations: Mapping[str, str | None] | None = None,
) -> Descriptor:
    """The index ``ref`` names with the entry ``target`` (digest or
    platform) changed: its platform (``docker manifest annotate --os/--arch/
    --variant``), ``os.version``, ``os.features`` and annotations."""
    _, idx = load_index(layout, ref)
    hits = _select(idx, target)
    if len(hits) > 1:
        raise UsageError(f"{target} names {len(hits)} entries; name one by digest")
    i = hits[0]
    d = idx.manifests[i]
    p = platform or d.platform or Platform("", "")
    if platform is not None and d.platform is not None:
        p = Platform(p.os, p.architecture, p.variant, d.platform.os_version, d.platform.os_features)
    if os_version is not None:
        p = Platform(p.os, p.architecture, p.variant, os_version, p.os_features)
    if os_features is not None:
        p = Platform(p.os, p.architecture, p.variant, p.os_version, tuple(os_features))
    if not p.os or not p.architecture:
        raise UsageError("the entry has no platform yet: give --platform os/arch[/variant]")
    ann = merge_annotations(d.annotations, annotations or {})
    new = Descriptor(d.media_type, d.digest, d.size, ann, p, d.urls, d.data, d.artifact_type)
    entries = list(idx.manifests)
    entries[i] = new
    _check_unique(entries)
    return _put_index(layout, _rebuild(idx, entries, idx.annotations))


def annotate_index(layout: Layout, ref: str, changes: Mapping[str, str | None]) -> Descriptor:
    """The index ``ref`` names with its own annotations changed."""
    _, idx = load_index(layout, ref)
    if any(not k for k in changes):
        raise UsageError("an annotation needs a non-empty key")
    ann = merge_annotations(idx.annotations, changes)
    return _put_index(layout, _rebuild(idx, idx.manifests, ann))
