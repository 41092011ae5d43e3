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
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from oci_tools.errors import (
    ClobberError,
    CorruptBlobError,
    InvalidDocumentError,
    NotFoundError,
    OCIToolsError,
)
from oci_tools.fsutil import empty_dir, remove_tree, write_json
from oci_tools.image import Image, Layer, created_now, source_date_epoch
from oci_tools.layout import Layout
from oci_tools.records import record
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, Platform

if TYPE_CHECKING:
    from oci_tools.apply import ApplyOptions

# apply, diff, mutate, snapshot and the runtime config are imported by the
# functions that use them: the base record (``BaseRecord``, ``register_root``)
# is all that ``unpack --overlay``, ``status`` and containers need from here,
# and they start faster without the layer machinery.

RECORD = "oci-tools.json"
SNAPSHOT = "oci-tools.snapshot"
RECORD_VERSION = 2


def new_bundle_id() -> str:
    """A random 128-bit id for a new bundle, 32 hex digits (what names its gc
    root wherever the bundle moves)."""
    return os.urandom(16).hex()


@record
class BaseRecord:
    """What ``unpack`` remembers for ``commit``.

    ``id`` names the bundle wherever it is moved: the layout's gc root for
    the base image is keyed by it (version-1 records, made before ids, use
    a key derived from the bundle's path)."""

    layout: str  # absolute path of the layout the base image lives in
    manifest: Descriptor  # the base image's manifest descriptor
    ref: str | None
    rootless: bool
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "layout": self.layout,
            "manifest": self.manifest.to_dict(),
            "ref": self.ref,
            "rootless": self.rootless,
        }

    def root_key(self, bundle: str) -> str:
        """The name of this bundle's gc root in its base layout."""
        if self.id:
            return "bundle-" + self.id
        return "bundle-" + hashlib.sha256(os.path.abspath(bundle).encode()).hexdigest()[:32]

    @classmethod
    def load(cls, bundle: str) -> BaseRecord:
        """Read a bundle's base record; a clear error when there is none."""
        path = os.path.join(bundle, RECORD)
        try:
            with open(path, "rb") as f:
                d = json.loads(f.read(1 << 20))
            if d.get("version") not in (1, RECORD_VERSION):
                raise ValueError(f"unknown record version {d.get('version')!r}")
            return cls(
                d["layout"],
                Descriptor.from_dict(d["manifest"]),
                d.get("ref"),
                bool(d["rootless"]),
                str(d.get("id") or ""),
            )
        except FileNotFoundError:
            raise NotFoundError(
                f"{bundle} has no base record ({RECORD})",
                hint="only bundles made by 'oci-tools unpack' (and finished) can be committed",
            ) from None
        except (ValueError, KeyError, TypeError, OCIToolsError) as e:
            raise InvalidDocumentError(f"bundle record {path}", [str(e)]) from None


def register_root(layout: Layout, bundle: str, rec: BaseRecord) -> None:
    """Record (or move, after the bundle was moved) the gc root that keeps
    ``rec``'s base image alive in ``layout`` for ``bundle``."""
    layout.add_root(
        rec.root_key(bundle),
        rec.manifest,
        owner=os.path.abspath(os.path.join(bundle, RECORD)),
        owner_id=rec.id,
    )


@record
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
    from oci_tools.apply import ApplyOptions, apply_layer, read_file_in_root
    from oci_tools.snapshot import Snapshot
    from oci_tools.spec.runtime import runtime_config

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
    replacing = False
    if os.path.lexists(bundle):
        if not os.path.isdir(bundle) or os.path.islink(bundle):
            raise ClobberError(bundle, hint="the bundle path exists and is not a directory")
        if os.listdir(bundle):
            if not force:
                raise ClobberError(
                    bundle, hint="the directory is not empty; unpack with force replaces it"
                )
            replacing = True
        created_dir = False
    else:
        os.makedirs(bundle)
        created_dir = True
    final = bundle
    if replacing:
        # Unpack beside the old bundle and swap only once the new one is
        # finished: a failure (a corrupt blob, a full disk) leaves the old
        # bundle, with its uncommitted work, untouched.
        import tempfile

        parent = os.path.dirname(os.path.abspath(bundle))
        name = os.path.basename(os.path.abspath(bundle))
        bundle = tempfile.mkdtemp(prefix=f".{name}.unpack-", dir=parent)
        created_dir = True
    os.chmod(bundle, 0o700)
    rootfs = os.path.join(bundle, "rootfs")
    opts = options or ApplyOptions(rootless=rootless)
    snap = Snapshot()
    skipped: list[str] = []
    registered = ""
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
                e.message = (
                    f"layer {i} ({ld.digest.algorithm}:{ld.digest.encoded[:12]}…): {e.message}"
                )
                e.args = (e.message,)
                if isinstance(e, CorruptBlobError):
                    e.layout = layout.path
                raise
            finally:
                blob.close()
            skipped += res.skipped
        spec = runtime_config(img.config, lambda p: read_file_in_root(rootfs, p), rootless=rootless)
        write_json(os.path.join(bundle, "config.json"), spec)
        snap.dump(os.path.join(bundle, SNAPSHOT))
        base_ref = ref if isinstance(ref, str) and not ref.startswith("@") else None
        rec = BaseRecord(
            os.path.abspath(layout.path), img.descriptor, base_ref, rootless, new_bundle_id()
        )
        register_root(layout, final, rec)
        registered = rec.root_key(final)
        write_json(os.path.join(bundle, RECORD), rec.to_dict())
        if replacing:
            _swap(bundle, final)
            bundle = final
    except BaseException:
        # Leave nothing that looks like a finished bundle (nor a root for it).
        if registered:
            with contextlib.suppress(OSError):
                layout.remove_root(registered)
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


def _swap(new: str, old: str) -> None:
    """Put the finished bundle ``new`` where ``old`` is, then delete ``old``
    and release the gc root it held."""
    try:
        old_rec: BaseRecord | None = BaseRecord.load(old)
    except OCIToolsError:
        old_rec = None
    trash = new + ".old"
    os.rename(old, trash)
    try:
        os.rename(new, old)
    except BaseException:
        os.rename(trash, old)
        raise
    with contextlib.suppress(OSError):
        remove_tree(trash)
    if old_rec is not None:
        with contextlib.suppress(OSError, OCIToolsError):
            Layout.open(old_rec.layout).remove_root(old_rec.root_key(old))


def _remove_bundle_contents(bundle: str) -> None:
    # The record goes first, so an interrupted cleanup never looks finished.
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(bundle, RECORD))
    empty_dir(bundle)


@record
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


@record
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
    from oci_tools.mutate import (
        ConfigEdit,
        add_history,
        append_layer,
        edit_config,
        set_created,
        write,
    )

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
    # The bundle may have moved since unpack: its root follows it.
    register_root(base_layout, bundle, rec)
    base = Image.from_descriptor(base_layout, rec.manifest)
    base.check_consistent()
    if base_layout is not layout:
        # The base itself (not only its layers): an empty commit names it.
        write(layout, base)
    codec = _choose_codec(opts.compress, base)
    sde = source_date_epoch()
    created = created_now(opts.created)
    with layout.lock():
        # One fsync of blobs/<alg> for the layer, config and manifest this
        # commit renames in, before index.json names them (batched_dir_sync).
        with layout.store.batched_dir_sync():
            layer = _write_layer(layout, bundle, rootfs, rec, from_upper, codec, sde)
            if layer is None and not opts.allow_empty:
                desc, empty = base.descriptor, True
            else:
                row = History(
                    created=created,
                    created_by=opts.created_by,
                    author=opts.author,
                    comment=opts.comment,
                    empty_layer=layer is None,
                )
                img = (
                    add_history(base, row)
                    if layer is None
                    else append_layer(base, layer, history=row)
                )
                img = set_created(img, created)
                if opts.author:
                    img = edit_config(img, ConfigEdit(author=opts.author))
                desc, empty = write(layout, img), False
        if ref is not None:
            layout.set_ref(ref, desc)
    if empty:
        return CommitResult(desc, None, True)
    if opts.refresh and ov_upper is None:
        refresh(bundle, layout, desc, ref)
    return CommitResult(desc, None if layer is None else layer.descriptor, layer is None)


def _write_layer(
    layout: Layout,
    bundle: str,
    rootfs: str,
    rec: BaseRecord,
    from_upper: str | None,
    codec: str,
    sde: int | None,
) -> Layer | None:
    """The bundle's changes as a layer blob in ``layout`` (None when nothing
    changed): from the overlay upper dir, else diffed against the snapshot."""
    from oci_tools.diff import write_diff, write_upper
    from oci_tools.snapshot import Snapshot

    w = layout.store.writer()
    try:
        if from_upper:
            info = write_upper(from_upper, w, codec, sde)
        else:
            snap = Snapshot.load(os.path.join(bundle, SNAPSHOT))
            info = write_diff(rootfs, snap, w, codec, sde, rootless=rec.rootless)
        if info.entries == 0:
            w.abort()
            return None
        dg = w.commit()
    except BaseException:
        w.abort()
        raise
    return Layer.create(
        mt.OCI_LAYER_FOR_CODEC[codec], dg, info.size, info.diff_id, info.uncompressed_size
    )


def refresh(bundle: str, layout: Layout, desc: Descriptor, ref: str | None) -> None:
    """Make ``bundle`` look freshly unpacked from image ``desc``: a new
    snapshot of its rootfs and a base record pointing at ``desc``."""
    from oci_tools.snapshot import Snapshot

    rec = BaseRecord.load(bundle)
    snap = Snapshot.walk(os.path.join(bundle, "rootfs"), hash_content=True)
    snap.dump(os.path.join(bundle, SNAPSHOT))
    new = BaseRecord(os.path.abspath(layout.path), desc, ref, rec.rootless, rec.id)
    register_root(layout, bundle, new)
    write_json(os.path.join(bundle, RECORD), new.to_dict())


def relocate(bundle: str) -> bool:
    """Tell the base layout where ``bundle`` is now (after a move), so its
    gc root is found again.  False when the base image is gone (or its
    layout cannot be opened): the bundle can no longer be committed."""
    rec = BaseRecord.load(bundle)
    try:
        layout = Layout.open(rec.layout)
    except OCIToolsError:
        return False
    if not layout.store.has(rec.manifest.digest):
        return False
    register_root(layout, bundle, rec)
    return True


def find_bundles(directory: str = ".") -> tuple[list[str], list[str]]:
    """The bundles ``directory`` knows of: its sub-directories that are
    bundles, and the bundles (wherever they are) whose base lives in a layout
    that is ``directory`` or one of its sub-directories.  Returns (bundles,
    those layouts), each sorted, bundle paths as found."""
    from oci_tools.layout import is_layout

    try:
        names = sorted(os.listdir(directory))
    except OSError:
        names = []
    subdirs = [os.path.join(directory, n) for n in names]
    subdirs = [p for p in subdirs if os.path.isdir(p) and not os.path.islink(p)]
    bundles = {os.path.normpath(p) for p in subdirs if os.path.isfile(os.path.join(p, RECORD))}
    layouts = [p for p in [directory, *subdirs] if is_layout(p)]
    for lp in layouts:
        with contextlib.suppress(OSError, OCIToolsError):
            for r in Layout.open(lp).root_records():
                if r.found and r.owner.endswith(os.sep + RECORD):
                    bundles.add(_display(os.path.dirname(r.owner)))
    return sorted(bundles), [os.path.normpath(p) for p in layouts]


def _display(path: str) -> str:
    """``path`` relative to the current directory when it is inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def _open(path: str) -> Layout:
    try:
        return Layout.open(path)
    except OCIToolsError as e:
        raise NotFoundError(
            f"the bundle's base layout {path} cannot be opened: {e}",
            hint="the layout was moved or deleted after unpack",
        ) from None


def _choose_codec(name: str, base: Image) -> str:
    from oci_tools.compression import check_codec

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
    from oci_tools.snapshot import Snapshot

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
    "find_bundles",
    "new_bundle_id",
    "refresh",
    "register_root",
    "relocate",
    "remove_tree",
    "unpack",
    "write_json",
]
