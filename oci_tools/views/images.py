"""``images``: every tagged image with its total, shared and unique size."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.records import record, replace
from oci_tools.spec.model import Descriptor
from oci_tools.views.sizes import SizeCache


@record
class ImageRow:
    """One ``images`` row."""

    ref: str
    id: str  # the config digest: docker's IMAGE ID
    created: str | None
    size: int  # Docker's sizes: regular-file bytes of the layers (views.sizes)
    shared: int
    unique: int
    layers: int
    digest: str = ""  # the manifest digest: the DIGEST column of --digests
    uncompressed_size: int = 0  # the layers' tar streams
    compressed_size: int = 0  # the layers' blobs as stored


def tagged_images(
    layout: Layout, manifests: Iterable[Descriptor] | None = None
) -> list[tuple[str, Image]]:
    """(ref, image) for every ref that resolves to a single image.

    Same result as ``Image.load`` for each ref (the last entry of a duplicated
    ref wins), but index.json is read once (``manifests``: its entries, when
    the caller has them) and each manifest and config is read and parsed once,
    however many refs point at it."""
    entries = list(layout.index().manifests if manifests is None else manifests)
    refs = [(d.ref_name, d) for d in entries if d.ref_name]
    last = dict(refs)
    loaded: dict[Digest, Image] = {}
    out = []
    for ref, _ in refs:
        with contextlib.suppress(OCIToolsError):
            mdesc = layout.select(last[ref])
            img = loaded.get(mdesc.digest)
            if img is None:
                img = loaded[mdesc.digest] = Image.from_descriptor(layout, mdesc, ref)
            elif img.descriptor != mdesc or img.ref != ref:
                img = replace(img, descriptor=mdesc, ref=ref)
            out.append((ref, img))
    return out


def image_rows(
    layout: Layout,
    sizes: SizeCache | None = None,
    images: list[tuple[str, Image]] | None = None,
) -> list[ImageRow]:
    """Every tagged image with its total, shared and unique size (Docker's:
    regular-file bytes of its layers; the tar and blob totals ride along).

    A layer is shared when another distinct image in the layout uses the same
    blob; images under several refs count as one image.  ``images``: the
    layout's ``tagged_images`` when the caller already has them.
    """
    sizes = sizes or SizeCache(layout)
    imgs = tagged_images(layout) if images is None else images
    users: dict[Digest, set[Digest]] = {}
    for _ref, img in imgs:
        for ld in img.layers:
            users.setdefault(ld.digest, set()).add(img.digest)
    rows = []
    for ref, img in imgs:
        total = shared = tar = blob = 0
        for ld in {d.digest: d for d in img.layers}.values():
            n = sizes.content(ld)
            total += n
            tar += sizes.size(ld)
            blob += ld.size
            if len(users[ld.digest]) > 1:
                shared += n
        rows.append(
            ImageRow(
                ref,
                str(img.id),
                img.config.created,
                total,
                shared,
                total - shared,
                len(img.layers),
                digest=str(img.digest),
                uncompressed_size=tar,
                compressed_size=blob,
            )
        )
    sizes.save()
    return rows


__all__ = ["ImageRow", "image_rows", "tagged_images"]
