"""Images in a layout as read-only values: ``Image`` and its ``Layer`` values.

An ``Image`` is one image manifest plus its config, with the layout its blobs
are read from.  It is a value: nothing here changes it.  ``oci_tools.mutate``
derives new images from it (append a layer, edit the config, add history) and
writes them; tagging is ``Layout.set_ref``, a separate step.

Two digests name two different things and are never confused:

- a layer's ``digest`` is the blob as stored (usually compressed), what the
  manifest lists; its ``diff_id`` is the uncompressed tar, what the config's
  ``rootfs.diff_ids`` lists;
- an image's ``id`` is its config digest (docker's IMAGE ID); its ``digest``
  is its manifest digest (what registries, skopeo and ``--digests`` show).
"""

from __future__ import annotations

import datetime as _dt
import os

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError, UsageError
from oci_tools.layout import Layout, Resolved
from oci_tools.records import record
from oci_tools.render import format_rfc3339
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, ImageConfig, Manifest, Platform

#: Layer descriptor annotation caching the uncompressed size (a hint only).
UNCOMPRESSED_SIZE = "io.github.oci-tools.uncompressed-size"


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH from the environment, validated."""
    v = os.environ.get("SOURCE_DATE_EPOCH")
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={v!r} is not an integer") from None
    if n < 0:
        raise UsageError(f"SOURCE_DATE_EPOCH={v!r} is negative")
    return n


def format_time(ts: float | _dt.datetime) -> str:
    """RFC 3339 UTC with ``Z`` (seconds precision unless fractional, then all
    six microsecond digits, as the configs we write carry them).  A Unix time
    or a datetime (a naive one is local time, as ``astimezone`` takes it)."""
    dt = ts if isinstance(ts, _dt.datetime) else _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return format_rfc3339(dt.astimezone(_dt.UTC), trim=False)


def created_now(explicit: str | None = None) -> str:
    """The ``created`` value for a new step: explicit, SOURCE_DATE_EPOCH, or now."""
    if explicit:
        try:
            _dt.datetime.fromisoformat(explicit.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(
                f"creation time {explicit!r} is not an RFC 3339 time",
                hint="for example 2024-01-01T00:00:00Z",
            ) from None
        return explicit
    sde = source_date_epoch()
    if sde is not None:
        return format_time(sde)
    return format_time(_dt.datetime.now(_dt.UTC).replace(microsecond=0))


@record(repr=False)
class Layer:
    """One layer of an image: the blob's descriptor plus what the config says.

    ``descriptor`` is the manifest's entry (``digest``, ``size`` and
    ``media_type`` of the blob as stored, usually compressed); ``diff_id`` is
    the digest of the uncompressed tar (the config's ``rootfs.diff_ids``
    entry); ``uncompressed_size`` is the tar's size when known (recorded at
    write time, or equal to ``size`` for an uncompressed blob), else None.
    """

    descriptor: Descriptor
    diff_id: Digest
    uncompressed_size: int | None = None

    @classmethod
    def create(
        cls,
        media_type: str,
        digest: Digest,
        size: int,
        diff_id: Digest,
        uncompressed_size: int | None = None,
    ) -> Layer:
        """A layer for a blob just written: its descriptor records the
        uncompressed size (when given) as the ``UNCOMPRESSED_SIZE`` annotation,
        so later readers need not decompress to learn it."""
        ann = {} if uncompressed_size is None else {UNCOMPRESSED_SIZE: str(uncompressed_size)}
        return cls(Descriptor(media_type, digest, size, ann), diff_id, uncompressed_size)

    @classmethod
    def from_descriptor(cls, descriptor: Descriptor, diff_id: Digest) -> Layer:
        """A manifest entry paired with its diff_id; the uncompressed size comes
        from the annotation, or is the blob size for an uncompressed blob."""
        return cls(descriptor, diff_id, _known_uncompressed_size(descriptor))

    @property
    def digest(self) -> Digest:
        """Digest of the blob as stored (compressed): the manifest's name for it."""
        return self.descriptor.digest

    @property
    def size(self) -> int:
        """Size in bytes of the blob as stored."""
        return self.descriptor.size

    @property
    def media_type(self) -> str:
        """The blob's media type (it says how the tar is compressed)."""
        return self.descriptor.media_type

    @property
    def codec(self) -> str | None:
        """``gzip``, ``zstd`` or ``none`` for a known layer media type, else None."""
        return mt.LAYER_CODECS.get(self.descriptor.media_type)

    def __repr__(self) -> str:
        return (
            f"Layer({self.digest.short} {self.codec or self.media_type} {self.size} B, "
            f"diff_id={self.diff_id.short})"
        )


def _known_uncompressed_size(d: Descriptor) -> int | None:
    v = d.annotations.get(UNCOMPRESSED_SIZE)
    if v is not None and v.isdigit():
        return int(v)
    if mt.LAYER_CODECS.get(d.media_type) == "none":
        return d.size
    return None


@record(repr=False)
class Image:
    """A read-only image: manifest, config, and the layout its blobs live in.

    ``descriptor``, ``manifest`` and ``config`` hold the exact bytes the
    digests are computed over.  An image returned by ``oci_tools.mutate`` is
    not in any layout until ``mutate.write`` puts it there; ``layout`` is then
    still where its layer blobs are read from.  ``ref`` is the ref it was
    loaded by, if any (a derived image has none).
    """

    layout: Layout
    descriptor: Descriptor  # the manifest's descriptor
    manifest: Manifest
    config: ImageConfig
    ref: str | None = None

    @classmethod
    def load(cls, layout: Layout, ref: str, platform: Platform | None = None) -> Image:
        """Resolve ``ref`` and read its manifest and config."""
        r: Resolved = layout.resolve(ref, platform)
        return cls.from_descriptor(layout, r.manifest_descriptor, ref)

    @classmethod
    def from_descriptor(cls, layout: Layout, desc: Descriptor, ref: str | None = None) -> Image:
        """Read the image a manifest descriptor points at."""
        m = layout.manifest(desc)
        return cls(layout, desc, m, layout.config(m), ref)

    @property
    def id(self) -> Digest:
        """The image id: the config digest (docker's and podman's IMAGE ID)."""
        assert self.manifest.config is not None
        return self.manifest.config.digest

    @property
    def digest(self) -> Digest:
        """The manifest digest: what registries, skopeo and ``--digests`` show,
        and what commands that change an image print."""
        return self.descriptor.digest

    @property
    def platform(self) -> Platform:
        """``os/architecture[/variant]`` from the config."""
        return self.config.platform

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        """The manifest's layer descriptors (blobs as stored), bottom first.
        ``layer_values()`` pairs each with its diff_id and sizes."""
        return self.manifest.layers

    def layer_values(self) -> tuple[Layer, ...]:
        """Every layer as a ``Layer`` value (descriptor + diff_id + sizes),
        bottom first; InvalidDocumentError when the manifest and config
        disagree on the number of layers."""
        self.check_consistent()
        return tuple(
            Layer.from_descriptor(d, diff_id)
            for d, diff_id in zip(self.manifest.layers, self.config.diff_ids, strict=True)
        )

    def layer(self, i: int) -> Layer:
        """Layer ``i`` (negative counts from the top) as a ``Layer`` value."""
        return self.layer_values()[i]

    def check_consistent(self) -> None:
        """Layers and diff_ids must pair up."""
        if len(self.manifest.layers) != len(self.config.diff_ids):
            raise InvalidDocumentError(
                "image",
                [
                    f"{len(self.manifest.layers)} layers but "
                    f"{len(self.config.diff_ids)} diff_ids in the config"
                ],
            )

    def uncompressed_size(self, i: int) -> int | None:
        """Cached uncompressed size of layer ``i`` if known."""
        return _known_uncompressed_size(self.manifest.layers[i])

    def __repr__(self) -> str:
        n = len(self.manifest.layers)
        ref = f", ref={self.ref!r}" if self.ref else ""
        return (
            f"Image(digest={self.digest.short}, id={self.id.short}, {self.platform}, "
            f"{n} layer{'' if n == 1 else 's'}{ref})"
        )


__all__ = [
    "UNCOMPRESSED_SIZE",
    "Image",
    "Layer",
    "created_now",
    "format_time",
    "source_date_epoch",
]
