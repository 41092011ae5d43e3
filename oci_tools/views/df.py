"""``df``: what a layout stores, counted once per blob, and what gc would free."""

from __future__ import annotations

from collections.abc import Iterable

from oci_tools.digest import Digest
from oci_tools.layout import Layout
from oci_tools.records import record
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Manifest
from oci_tools.views.images import ImageRow, image_rows, tagged_images
from oci_tools.views.sizes import SizeCache


@record
class LayerUse:
    """A layer blob and the images using it (``df -v``)."""

    digest: str
    size: int  # bytes on disk (compressed)
    uncompressed: int
    images: int
    content: int = 0  # Docker's size: regular-file bytes (views.sizes)


@record
class DiskUsage:
    """``df``: what the layout stores, counted once per blob."""

    images: int
    active_images: int
    image_bytes: int  # on-disk bytes of every blob reachable from a ref
    layers: int
    layer_bytes: int  # on-disk bytes of the layer blobs
    total_bytes: int  # every blob file
    reclaimable: int  # bytes gc would free
    layer_uses: list[LayerUse]
    image_rows: list[ImageRow]
    #: Docker's size (regular-file bytes) of the distinct layers of the
    #: tagged images: what ``docker system df`` shows as the images' SIZE.
    content_bytes: int = 0


def _reachable(
    layout: Layout, roots: Iterable[Descriptor], known: dict[Digest, Manifest]
) -> set[Digest]:
    """``layout.reachable(roots)``, using the manifests already parsed in
    ``known`` instead of reading them again."""
    marked: set[Digest] = set()
    other: list[Descriptor] = []
    nested = mt.INDEX_TYPES | mt.MANIFEST_TYPES
    for d in roots:
        m = known.get(d.digest)
        if m is None or d.media_type not in mt.MANIFEST_TYPES:
            other.append(d)
            continue
        marked.add(d.digest)
        for child in ([m.config] if m.config is not None else []) + list(m.layers):
            if child.media_type in nested:
                other.append(child)
            else:
                marked.add(child.digest)
        if m.subject is not None:
            other.append(m.subject)
    if other:
        marked |= layout.reachable(other)
    return marked


def disk_usage(layout: Layout, verbose: bool = False) -> DiskUsage:
    """Compute ``df`` figures from the layout's documents and blob sizes
    (``verbose``: also per-image rows and uncompressed layer sizes).  Each
    layer's content size is read once per layout (then cached)."""
    sizes = SizeCache(layout)
    index_roots = list(layout.index().manifests)
    imgs = tagged_images(layout, index_roots)
    known = {img.descriptor.digest: img.manifest for _, img in imgs}
    blob_size = {d: layout.store.stat_size(d) for d in layout.store.digests()}
    extra = layout.extra_roots()
    reachable = _reachable(layout, index_roots, known)
    live = reachable | _reachable(layout, extra, known)
    distinct = {img.digest for _, img in imgs}
    active = {d.digest for d in extra} & distinct
    layer_users: dict[Digest, set[Digest]] = {}
    layer_desc: dict[Digest, Descriptor] = {}
    for _, img in imgs:
        for ld in img.layers:
            layer_users.setdefault(ld.digest, set()).add(img.digest)
            layer_desc[ld.digest] = ld
    content = {d: sizes.content(desc) for d, desc in layer_desc.items()}
    uses = [
        LayerUse(
            str(d),
            blob_size.get(d, 0),
            sizes.size(layer_desc[d]) if verbose else 0,
            len(u),
            content[d],
        )
        for d, u in sorted(layer_users.items())
    ]
    rows = image_rows(layout, sizes, imgs) if verbose else []
    sizes.save()
    return DiskUsage(
        images=len(distinct),
        active_images=len(active),
        image_bytes=sum(blob_size.get(d, 0) for d in reachable),
        layers=len(layer_users),
        layer_bytes=sum(blob_size.get(d, 0) for d in layer_users),
        total_bytes=sum(blob_size.values()),
        reclaimable=sum(n for d, n in blob_size.items() if d not in live),
        layer_uses=uses,
        image_rows=rows,
        content_bytes=sum(content.values()),
    )


__all__ = ["DiskUsage", "LayerUse", "disk_usage"]
