"""Runtime bundles: ``unpack`` an image into one, ``commit`` its changes back.

A bundle directory (mode 0700, so setuid binaries inside are not reachable by
other local users) holds:

- ``rootfs/``: every layer applied in order;
- ``config.json``: the runtime-spec config generated from the image config;
- ``oci-tools.snapshot``: the file state of every path right after unpack,
  recorded while applying (no second walk);
- ``oci-tools.json``: the base record (layout, manifest descriptor, ref),
  written LAST: a bundle without it is not finished and commit refuses it.

The layout gets an extra gc root for the bundle's base image, released when
the bundle's record disappears.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from typing import Any, BinaryIO, cast

from oci_tools.apply import ApplyOptions, apply_layer, read_file_in_root
from oci_tools.compression import check_codec
from oci_tools.diff import write_diff
from oci_tools.errors import (
    ClobberError,
    InvalidDocumentError,
    NotFoundError,
    OCIToolsError,
)
from oci_tools.fsutil import empty_dir, remove_tree, write_json
from oci_tools.image import Image, Layer, created_now, source_date_epoch
from oci_tools.layout import Layout
from oci_tools.mutate import ConfigEdit, add_history, append_layer, edit_config, set_created, write
from oci_tools.snapshot import Snapshot
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, Platform
from oci_tools.spec.runtime import runtime_config

RECORD = "oci-tools.json"
SNAPSHOT = "oci-tools.snapshot"
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class BaseRecord:
    """What ``unpack`` remembers for ``commit``."""

    layout: str  # absolute path of the layout the base image lives in
    manifest: Descriptor  # the base image's manifest descriptor
    ref: str | None
    rootless: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "layout": self.layout,
            "manifest": self.manifest.to_dict(),
            "ref": self.ref,
            "rootless": self.rootless,
        }

    @classmethod
    def load(cls, bundle: str) -> BaseRecord:
        """Read a bundle's base record; a clear error when there is none."""
        path = os.path.join(bundle, RECORD)
        try:
            with open(path, "rb") as f:
                d = json.loads(f.read(1 << 20))
            if d.get("version") != RECORD_VERSION:
                raise ValueError(f"unknown record version {d.get('version')!r}")
            return cls(
                d["layout"], Descriptor.from_dict(d["manifest"]), d.get("ref"), bool(d["rootless"])
            )
        except FileNotFoundError:
            raise NotFoundError(
                f"{bundle} has no base record ({RECORD})",
                hint="only bundles made by 'oci-tools unpack' (and finished) can be committed",
            ) from None
        except (ValueError, KeyError, TypeError, OCIToolsError) as e:
            raise InvalidDocumentError(f"bundle record {path}", [str(e)]) from None


def _root_key(bundle: str) -> str:
    return "bundle-" + hashlib.sha256(os.path.abspath(bundle).encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class UnpackResult:
    """Summary of an unpack."""

    bundle: str
    image: Image
    layers: int
    skipped: tuple[str, ...]


def unpack(
    layout: Layout,
    ref: str | Image,
    bundle: str,
    *,
    platform: Platform | None = None,
    rootless: bool | None = None,
    force: bool = False,
    options: ApplyOptions | None = None,
) -> UnpackResult:
    """Unpack image ``ref`` into runtime bundle ``bundle``.

    ``ref`` is a ref in ``layout`` or an ``Image`` value already written to
    ``layout`` (``mutate.write``), so an untagged image can be unpacked too.
    (``oci_tools.snapshots.overlay.unpack_overlay`` mounts the image instead.)"""
    if isinstance(ref, Image):
        img = ref
        if not layout.store.has(img.digest):
            raise NotFoundError(
                f"image {img.digest} is not in {layout.path}",
                hint="write it into the layout first (mutate.write)",
            )
    else:
        img = Image.load(layout, ref, platform)
    img.check_consistent()
    if rootless is None:
        rootless = os.geteuid() != 0
    if os.path.lexists(bundle):
        if not os.path.isdir(bundle) or os.path.islink(bundle):
            raise ClobberError(bundle, hint="the bundle path exists and is not a directory")
        if os.listdir(bundle):
            if not force:
                raise ClobberError(
                    bundle, hint="the directory is not empty; unpack with force replaces it"
                )
            _remove_bundle_contents(bundle)
        created_dir = False
    else:
        os.makedirs(bundle)
        created_dir = True
    os.chmod(bundle, 0o700)
    rootfs = os.path.join(bundle, "rootfs")
    opts = options or ApplyOptions(rootless=rootless)
    snap = Snapshot()
    skipped: list[str] = []
    try:
        os.mkdir(rootfs, 0o755)
        for i, (ld, diff_id) in enumerate(zip(img.layers, img.config.diff_ids, strict=True)):
            codec = _layer_codec(ld)
            blob = layout.store.open(ld.digest, ld.size)
            try:
                res = apply_layer(
                    cast(BinaryIO, blob),
                    rootfs,
                    codec=codec,
                    diff_id=diff_id,
                    snapshot=snap,
                    options=opts,
                )
            except OCIToolsError as e:
                e.message = f"layer {i} ({ld.digest.short}): {e.message}"
                e.args = (e.message,)
                raise
            finally:
                blob.close()
            skipped += res.skipped
        spec = runtime_config(img.config, lambda p: read_file_in_root(rootfs, p), rootless=rootless)
        write_json(os.path.join(bundle, "config.json"), spec)
        snap.dump(os.path.join(bundle, SNAPSHOT))
        base_ref = ref if isinstance(ref, str) else None
        rec = BaseRecord(os.path.abspath(layout.path), img.descriptor, base_ref, rootless)
        layout.add_root(
            _root_key(bundle), img.descriptor, owner=os.path.abspath(os.path.join(bundle, RECORD))
        )
        write_json(os.path.join(bundle, RECORD), rec.to_dict())
    except BaseException:
        # Leave nothing that looks like a finished bundle.
        with contextlib.suppress(OSError):
            if created_dir:
                remove_tree(bundle)
            else:
                _remove_bundle_contents(bundle)
        raise
    return UnpackResult(bundle, img, len(img.layers), tuple(skipped))


def _layer_codec(desc: Descriptor) -> str:
    from oci_tools.compression import codec_for_media_type

    return codec_for_media_type(desc.media_type)


def _remove_bundle_contents(bundle: str) -> None:
    # The record goes first, so an interrupted cleanup never looks finished.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(bundle, RECORD))
    empty_dir(bundle)


@dataclass(frozen=True, slots=True)
class CommitOptions:
    """How ``commit`` builds the new image."""

    compress: str = "gzip"  # gzip | zstd | none | auto
    created: str | None = None
    created_by: str = "oci-tools commit"
    author: str | None = None
    comment: str | None = None
    allow_empty: bool = False
    refresh: bool = False
    from_upper: str | None = None


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What commit did: the resulting manifest, and whether a layer was added."""

    descriptor: Descriptor
    layer: Descriptor | None
    empty: bool


def commit(
    bundle: str, layout: Layout, ref: str | None, opts: CommitOptions | None = None
) -> CommitResult:
    """Diff ``bundle``'s rootfs against its base into a new layer on top of the
    base image, write the new image into ``layout`` and, when ``ref`` is given,
    point ``ref`` at it (with ``ref=None`` nothing is tagged; the result's
    descriptor names the image).

    When nothing changed and ``opts.allow_empty`` is false, no image is made:
    the result is the base image (``empty``), which ``ref`` then names."""
    opts = opts or CommitOptions()
    rec = BaseRecord.load(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    if not os.path.isdir(rootfs):
        raise NotFoundError(f"{bundle} has no rootfs directory")
    # An overlay bundle (``unpack --overlay``): its changes are its upper dir.
    ov_upper = _overlay_upper(bundle)
    from_upper = opts.from_upper or ov_upper
    base_layout = layout if os.path.abspath(layout.path) == rec.layout else _open(rec.layout)
    if not base_layout.store.has(rec.manifest.digest):
        raise NotFoundError(
            f"the base image {rec.manifest.digest} of {bundle} is gone from {rec.layout}",
            hint="it was removed (gc?) after unpack; unpack again",
        )
    base = Image.from_descriptor(base_layout, rec.manifest)
    base.check_consistent()
    if base_layout is not layout:
        # The base itself (not only its layers): an empty commit names it.
        write(layout, base)
    codec = _choose_codec(opts.compress, base)
    sde = source_date_epoch()
    created = created_now(opts.created)
    with layout.lock():
        layer: Layer | None = None
        w = layout.store.writer()
        try:
            if from_upper:
                from oci_tools.diff import write_upper

                info = write_upper(from_upper, w, codec, sde)
            else:
                snap = Snapshot.load(os.path.join(bundle, SNAPSHOT))
                info = write_diff(rootfs, snap, w, codec, sde, rootless=rec.rootless)
            if info.entries == 0:
                w.abort()
            else:
                dg = w.commit()
                media_type = mt.OCI_LAYER_FOR_CODEC[codec]
                layer = Layer.create(
                    media_type, dg, info.size, info.diff_id, info.uncompressed_size
                )
        except BaseException:
            w.abort()
            raise
        if layer is None and not opts.allow_empty:
            if ref is not None:
                layout.set_ref(ref, base.descriptor)
            return CommitResult(base.descriptor, None, True)
        row = History(
            created=created,
            created_by=opts.created_by,
            author=opts.author,
            comment=opts.comment,
            empty_layer=layer is None,
        )
        img = add_history(base, row) if layer is None else append_layer(base, layer, history=row)
        img = set_created(img, created)
        if opts.author:
            img = edit_config(img, ConfigEdit(author=opts.author))
        desc = write(layout, img)
        if ref is not None:
            layout.set_ref(ref, desc)
    if opts.refresh and ov_upper is None:
        refresh(bundle, layout, desc, ref)
    return CommitResult(desc, None if layer is None else layer.descriptor, layer is None)


def refresh(bundle: str, layout: Layout, desc: Descriptor, ref: str | None) -> None:
    """Make ``bundle`` look freshly unpacked from image ``desc``: a new
    snapshot of its rootfs and a base record pointing at ``desc``."""
    rec = BaseRecord.load(bundle)
    snap = Snapshot.walk(os.path.join(bundle, "rootfs"), hash_content=True)
    snap.dump(os.path.join(bundle, SNAPSHOT))
    layout.add_root(_root_key(bundle), desc, owner=os.path.abspath(os.path.join(bundle, RECORD)))
    new = BaseRecord(os.path.abspath(layout.path), desc, ref, rec.rootless)
    write_json(os.path.join(bundle, RECORD), new.to_dict())


def _open(path: str) -> Layout:
    try:
        return Layout.open(path)
    except OCIToolsError as e:
        raise NotFoundError(
            f"the bundle's base layout {path} cannot be opened: {e}",
            hint="the layout was moved or deleted after unpack",
        ) from None


def _choose_codec(name: str, base: Image) -> str:
    if name != "auto":
        return check_codec(name)
    for ld in reversed(base.layers):
        c = mt.LAYER_CODECS.get(ld.media_type)
        if c in ("gzip", "zstd"):
            return c
    return "gzip"


def _overlay_upper(bundle: str) -> str | None:
    """The upper dir of an overlay bundle (its record's ``overlay`` object,
    written by ``oci_tools.snapshots.overlay``), None for a copy bundle."""
    try:
        with open(os.path.join(bundle, RECORD), "rb") as f:
            ov = json.loads(f.read(1 << 20)).get("overlay")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(ov, dict):
        return None
    return os.path.join(bundle, str(ov.get("upper", "upper")))


def changes_of(bundle: str) -> list[Any]:
    """``docker diff`` of a bundle: what changed since unpack."""
    from oci_tools.diff import changes

    BaseRecord.load(bundle)
    if _overlay_upper(bundle) is not None:
        raise OCIToolsError(
            f"{bundle} is an overlay bundle",
            hint="its changes are listed by oci_tools.snapshots.overlay.bundle_changes",
        )
    snap = Snapshot.load(os.path.join(bundle, SNAPSHOT))
    return list(changes(os.path.join(bundle, "rootfs"), snap))


__all__ = [
    "BaseRecord",
    "CommitOptions",
    "CommitResult",
    "UnpackResult",
    "changes_of",
    "commit",
    "empty_dir",
    "refresh",
    "remove_tree",
    "unpack",
    "write_json",
]
