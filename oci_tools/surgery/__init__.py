"""Image surgery: squash, append, rebase, flat export and rootfs-only unpack.

What ``crane flatten/append/rebase/export`` and ``docker build --squash`` do,
on images kept in a layout.  Every operation takes ``Image`` values and
returns a new one (nothing is tagged; ``mutate.write`` and
``layout.set_ref`` stay separate steps).  The only thing written is a new
layer blob, into the image's own layout store, because ``mutate.write``
expects layer blobs to be there already (as ``bundle.commit`` does).

Layer content goes through the audited paths only: ``apply`` (confinement,
links, bombs) to build a tree in a private work directory of the layout, and
``diff`` to turn a tree back into a deterministic layer.  A squashed layer is
therefore exactly "the tree the layers make", never a paper merge of tars.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.compression import Writable, codec_for_media_type, compressor
from oci_tools.diff import write_diff
from oci_tools.digest import Digest
from oci_tools.errors import (
    InvalidDocumentError,
    NotFoundError,
    OCIToolsError,
    UnsafeLayerError,
    UsageError,
)
from oci_tools.fsutil import private_path, remove_tree
from oci_tools.image import Image, Layer, created_now
from oci_tools.layer.reader import iter_entries
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layer.writer import LayerInfo
from oci_tools.layout import Layout
from oci_tools.mutate import assemble
from oci_tools.snapshot import Snapshot
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History
from oci_tools.surgery.index import (
    annotate_index,
    create_index,
    image_by_digest,
    index_add,
    index_annotate,
    index_remove,
    load_index,
    manifest_entry,
)

#: Manifest annotations naming the base image (image-spec annotations.md).
BASE_DIGEST = "org.opencontainers.image.base.digest"
BASE_NAME = "org.opencontainers.image.base.name"

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


# ---------------------------------------------------------------------------
# trees from layers


@contextlib.contextmanager
def work_dir(layout: Layout, prefix: str = "surgery-") -> Iterator[str]:
    """A private scratch directory inside ``layout`` (same filesystem as the
    blobs, never outside the layout), removed afterwards."""
    parent = private_path(layout.path, "tmp")
    os.makedirs(parent, exist_ok=True)
    path = tempfile.mkdtemp(prefix=prefix, dir=parent)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            remove_tree(path)


def _apply_layers(
    image: Image,
    indices: range,
    rootfs: str,
    *,
    snapshot: Snapshot | None,
    rootless: bool,
) -> list[str]:
    """Apply layers ``indices`` of ``image`` onto ``rootfs`` (as unpack does);
    returns the notes of what rootless mode skipped."""
    skipped: list[str] = []
    opts = ApplyOptions(rootless=rootless)
    for i in indices:
        ld = image.layers[i]
        diff_id = image.config.diff_ids[i]
        blob = image.layout.store.open(ld.digest, ld.size)
        try:
            res = apply_layer(
                cast(BinaryIO, blob),
                rootfs,
                codec=codec_for_media_type(ld.media_type),
                diff_id=diff_id,
                snapshot=snapshot,
                options=opts,
            )
        except OCIToolsError as e:
            e.message = f"layer {i} ({ld.digest.short}): {e.message}"
            e.args = (e.message,)
            raise
        finally:
            blob.close()
        skipped += res.skipped
    return skipped


def _default_rootless(rootless: bool | None) -> bool:
    return os.geteuid() != 0 if rootless is None else rootless


def _fixed_time(image: Image) -> int:
    """A deterministic time (ns) for directories no layer gives a time: the
    image's ``created`` time, else the Unix epoch."""
    import datetime as _dt

    created = image.config.doc.get("created")
    if isinstance(created, str):
        try:
            when = _dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
            return max(0, int(when.timestamp())) * 1_000_000_000
        except ValueError:
            pass
    return 0


def _settle_dir_times(rootfs: str, since_ns: int, when_ns: int) -> None:
    """Give every directory touched after ``since_ns`` (made implicitly for a
    member whose parent no layer lists, or changed by a whiteout without a
    directory entry) the time ``when_ns``.  Unpack leaves "now" there; a layer
    written from the tree must not depend on when it was written."""
    for dirpath, dirnames, _files in os.walk(rootfs):
        for name in dirnames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode) and st.st_mtime_ns >= since_ns:
                os.utime(p, ns=(when_ns, when_ns), follow_symlinks=False)


def unpack_rootfs(
    image: Image, dest: str, *, rootless: bool | None = None, force: bool = False
) -> list[str]:
    """Apply every layer of ``image`` onto directory ``dest`` (created, or
    empty; ``force`` empties it) and nothing else: no config.json, no
    snapshot, no gc root (umoci's ``raw unpack``).  Returns the rootless notes.
    After an error ``dest`` is removed (when it was made here) or emptied."""
    from oci_tools.errors import ClobberError
    from oci_tools.fsutil import empty_dir

    image.check_consistent()
    made = not os.path.lexists(dest)
    if not made:
        if not os.path.isdir(dest) or os.path.islink(dest):
            raise ClobberError(dest, hint="the target exists and is not a directory")
        if os.listdir(dest):
            if not force:
                raise ClobberError(dest, hint="the directory is not empty; force replaces it")
            empty_dir(dest)
    else:
        os.makedirs(dest)
    try:
        return _apply_layers(
            image,
            range(len(image.layers)),
            dest,
            snapshot=None,
            rootless=_default_rootless(rootless),
        )
    except BaseException:
        with contextlib.suppress(OSError):
            if made:
                remove_tree(dest)
            else:
                empty_dir(dest)
        raise


def write_flat(image: Image, out: Writable, *, rootless: bool | None = None) -> LayerInfo:
    """Write one uncompressed tar of ``image``'s final filesystem to ``out``
    (``crane export`` / ``docker export``): the layers applied in a private
    work directory, whiteouts and all, then the tree written as a
    deterministic tar, streamed to ``out``."""
    image.check_consistent()
    rl = _default_rootless(rootless)
    with work_dir(image.layout, "export-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        os.mkdir(rootfs, 0o755)
        since = time.time_ns()
        _apply_layers(image, range(len(image.layers)), rootfs, snapshot=None, rootless=rl)
        _settle_dir_times(rootfs, since, _fixed_time(image))
        return write_diff(rootfs, Snapshot(), out, "none", None, rootless=rl)


def export_flat(image: Image, dest: str | BinaryIO, *, rootless: bool | None = None) -> LayerInfo:
    """``write_flat`` into a file path (replaced atomically, only once the
    whole tar is written) or an open binary stream (``-``: stdout)."""
    from oci_tools.fsutil import atomic_writer

    if isinstance(dest, str):
        with atomic_writer(dest) as f:
            return write_flat(image, f, rootless=rootless)
    return write_flat(image, cast(Writable, dest), rootless=rootless)


# ---------------------------------------------------------------------------
# squash


def _history_rows(image: Image) -> list[History]:
    return [History.from_dict(h) for h in image.config.doc.get("history") or []]


def _layer_rows(rows: Sequence[History], n_layers: int) -> list[int] | None:
    """For each layer, the index of its history row; None when the history
    does not pair up with the layers (no history, or a count mismatch)."""
    idx = [i for i, r in enumerate(rows) if not r.empty_layer]
    return idx if len(idx) == n_layers else None


@dataclass(frozen=True, slots=True)
class SquashResult:
    """A squashed image and what went into its top layer."""

    image: Image
    merged: int  # how many layers were merged
    layer: Layer


def _squashed_layer(image: Image, start: int, codec: str, rootless: bool) -> Layer:
    """The layer that turns the tree of layers ``0..start-1`` into the tree
    of all layers, written into the image's layout store."""
    layout = image.layout
    with work_dir(layout, "squash-") as tmp:
        rootfs = os.path.join(tmp, "rootfs")
        os.mkdir(rootfs, 0o755)
        when = _fixed_time(image)
        since = time.time_ns()
        _apply_layers(image, range(start), rootfs, snapshot=None, rootless=rootless)
        _settle_dir_times(rootfs, since, when)
        # The base is the lower layers' tree as it now stands (with settled
        # directory times), content hashed, so the diff below re-checks
        # every file a merged layer may have replaced with same-size bytes.
        base = Snapshot.walk(rootfs, hash_content=True, xattrs=True)
        n = len(image.layers)
        since = time.time_ns()
        _apply_layers(image, range(start, n), rootfs, snapshot=None, rootless=rootless)
        _settle_dir_times(rootfs, since, when)
        w = layout.store.writer()
        try:
            info = write_diff(rootfs, base, w, codec, None, verify_content=True, rootless=rootless)
            dg = w.commit()
        except BaseException:
            w.abort()
            raise
    return Layer.create(
        mt.OCI_LAYER_FOR_CODEC[codec], dg, info.size, info.diff_id, info.uncompressed_size
    )


def squash(
    image: Image,
    *,
    start: int = 0,
    codec: str | None = None,
    rootless: bool | None = None,
    comment: str | None = None,
) -> SquashResult:
    """``image`` with layers ``start``..top merged into one layer whose
    content is what those layers make on top of the lower ones (whiteouts of
    lower paths kept as whiteouts).  The history keeps every original row,
    those of the merged layers marked ``empty_layer``, plus one row for the
    new layer whose comment names what was merged.  The config's ``created``
    time is kept, so the same input gives the same digest.

    ``codec`` defaults to the top layer's (gzip when it is uncompressed).
    UsageError for an image with no layers or a ``start`` out of range."""
    image.check_consistent()
    n = len(image.layers)
    if n == 0:
        raise UsageError(
            f"image {image.digest.short} has no layers: nothing to squash",
            hint="squash needs an image with at least one layer",
        )
    if not 0 <= start < n:
        raise UsageError(
            f"cannot squash from layer {start}: the image has layers 0..{n - 1}",
        )
    if codec is None:
        top = codec_for_media_type(image.layers[-1].media_type)
        codec = top if top != "none" else "gzip"
    layout = image.layout
    if start == n - 1:
        # One layer "merged" is that layer: its content already is the
        # applied result over the lower ones.  Reusing the blob keeps the
        # size promise (a re-diff may spell an opaque dir as many whiteouts).
        layer = image.layer(start)
    else:
        layer = _squashed_layer(image, start, codec, _default_rootless(rootless))
    merged = n - start
    rows = _history_rows(image)
    doc = image.config.as_dict()
    what = (
        f"squashed layers {start}..{n - 1} ({merged} layer{'s' if merged != 1 else ''}: "
        + ", ".join(d.digest.short for d in image.layers[start:])
        + ")"
    )
    pairing = _layer_rows(rows, n)
    new_rows: list[History] = []
    if rows:
        first_merged_row = pairing[start] if pairing is not None else len(rows)
        for i, r in enumerate(rows):
            if i >= first_merged_row and not r.empty_layer:
                r = History(r.created, r.created_by, r.author, r.comment, True)
            new_rows.append(r)
    if pairing is None and rows:
        # The old history did not pair with the layers; rather than guess,
        # mark every row empty and give each kept lower layer a row of its own.
        new_rows = [History(r.created, r.created_by, r.author, r.comment, True) for r in rows]
        new_rows += [History(comment=f"layer {i}") for i in range(start)]
    elif not rows:
        new_rows = [History(comment=f"layer {i}") for i in range(start)]
    new_rows.append(
        History(
            created=image.config.doc.get("created")
            if isinstance(image.config.doc.get("created"), str)
            else None,
            created_by="oci-tools squash",
            comment=comment or what,
        )
    )
    doc["history"] = [r.to_dict() for r in new_rows]
    doc["rootfs"] = {
        "type": "layers",
        "diff_ids": [*map(str, image.config.diff_ids[:start]), str(layer.diff_id)],
    }
    new = assemble(
        layout, doc, [*image.layers[:start], layer.descriptor], image.manifest.annotations
    )
    return SquashResult(new, merged, layer)


# ---------------------------------------------------------------------------
# append


class _Tee:
    """A reader passing every byte it reads on to ``sink`` as well."""

    def __init__(self, raw: BinaryIO, sink: Writable) -> None:
        self._raw = raw
        self._sink = sink
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._sink.write(data)
            self.count += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True


class _Counter:
    """A sink counting what passes to the blob writer."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self._out.write(data)
        self.size += len(data)
        return len(data)


def sniff_codec(path: str) -> str:
    """``gzip``, ``zstd`` or ``none`` from the first bytes of file ``path``."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def layer_from_tarball(layout: Layout, path: str, *, codec: str = "gzip") -> Layer:
    """Store the tar file ``path`` (plain, gzip or zstd) as a layer blob in
    ``layout`` and return its ``Layer``.

    The tar is read once, through the bounded layer stream and the strict
    tar reader (names escaping the root, bad headers and bombs are refused
    with UnsafeLayerError); its diff_id is computed on the way.  A compressed
    file is stored as it is; a plain tar is compressed with ``codec``."""
    if not os.path.isfile(path):
        raise NotFoundError(f"layer tarball {path} not found (or not a regular file)")
    given = sniff_codec(path)
    w = layout.store.writer()
    try:
        sink = _Counter(w)
        with open(path, "rb") as f:
            if given != "none":
                # Keep the compressed bytes as they are: tee the raw file.
                stream = open_layer_stream(cast(BinaryIO, _Tee(f, sink)), given)
                _check_tar(stream, path)
                stream.counter.drain()
                blob_codec = given
                comp = None
            else:
                blob_codec = codec
                comp = compressor(codec, sink) if codec != "none" else None
                stream = open_layer_stream(f, "none")
                tee = _Tee(cast(BinaryIO, stream), comp if comp is not None else sink)
                _check_tar(tee, path)
                while tee.read(1 << 20):
                    pass
                if comp is not None:
                    comp.close()
        diff_id = stream.hasher.digest()
        size = stream.hasher.size
        dg = w.commit()
    except BaseException:
        w.abort()
        raise
    return Layer.create(mt.OCI_LAYER_FOR_CODEC[blob_codec], dg, sink.size, diff_id, size)


def _check_tar(stream: object, path: str) -> None:
    try:
        for _entry, _content in iter_entries(cast(BinaryIO, stream)):
            pass  # unread content is skipped (and hashed) by the reader
    except UnsafeLayerError as e:
        e.message = f"{path}: {e.message}"
        e.args = (e.message,)
        raise


def append(
    image: Image,
    tarballs: Sequence[str],
    *,
    codec: str = "gzip",
    comment: str | None = None,
    created: str | None = None,
) -> Image:
    """``image`` with one layer per tar file in ``tarballs`` on top (``crane
    append``), each with a history row (``created_by`` names the file).
    The config's ``created`` is set to ``created`` (default: now, or
    SOURCE_DATE_EPOCH)."""
    from oci_tools.mutate import append_layer, set_created

    if not tarballs:
        raise UsageError("append needs at least one tar file")
    when = created_now(created)
    img = image
    for path in tarballs:
        layer = layer_from_tarball(image.layout, path, codec=codec)
        row = History(
            created=when,
            created_by=f"oci-tools append {os.path.basename(path)}",
            comment=comment,
        )
        img = append_layer(img, layer, history=row)
    keep = image.manifest.annotations
    img = set_created(img, when)
    return assemble(img.layout, img.config.as_dict(), img.layers, keep) if keep else img


# ---------------------------------------------------------------------------
# rebase


def base_of(image: Image) -> tuple[Digest | None, str | None]:
    """The base image an image records (``org.opencontainers.image.base.*``
    manifest annotations): (digest, name), each None when absent."""
    ann = image.manifest.annotations
    dg = ann.get(BASE_DIGEST)
    try:
        digest = Digest.parse(dg) if dg else None
    except OCIToolsError:
        digest = None
    return digest, ann.get(BASE_NAME)


def rebase(
    image: Image,
    old_base: Image,
    new_base: Image,
    *,
    new_base_name: str | None = None,
) -> Image:
    """``image``'s layers above ``old_base``'s, put on ``new_base`` (crane's
    rebase): the new image has ``new_base``'s layers, then ``image``'s own;
    ``image``'s container config; ``new_base``'s os/architecture/variant/
    os.version; ``new_base``'s history followed by ``image``'s rows above the
    old base.  The manifest records the new base in the
    ``org.opencontainers.image.base.digest``/``.name`` annotations.
    When ``new_base`` lives in another layout it is first written into
    ``image``'s (blobs only, untagged).

    UsageError when ``image`` does not start with ``old_base``'s layers."""
    image.check_consistent()
    old_base.check_consistent()
    new_base.check_consistent()
    if not new_base.layout.is_same(image.layout):
        # The result lives in the image's layout: bring the new base's blobs
        # there first (``write`` copies only from the image's own layout).
        from oci_tools.mutate import write

        write(image.layout, new_base)
        new_base = Image.from_descriptor(image.layout, new_base.descriptor)
    old_layers = old_base.layers
    if len(old_layers) > len(image.layers):
        raise UsageError(
            f"image {image.digest.short} is not based on {old_base.digest.short}: "
            f"it has {len(image.layers)} layers, the old base {len(old_layers)}",
            hint="--old-base must be the image this one was built on",
        )
    for i, (a, b) in enumerate(zip(old_layers, image.layers, strict=False)):
        if a.digest != b.digest or old_base.config.diff_ids[i] != image.config.diff_ids[i]:
            raise UsageError(
                f"image {image.digest.short} is not based on {old_base.digest.short}: "
                f"layer {i} differs ({b.digest.short} vs {a.digest.short})",
                hint="--old-base must be the image this one was built on",
            )
    k = len(old_layers)
    own_layers = image.layers[k:]
    own_diff_ids = image.config.diff_ids[k:]

    rows = _history_rows(image)
    old_rows = _history_rows(old_base)
    if rows[: len(old_rows)] == old_rows and old_rows:
        own_rows = rows[len(old_rows) :]
    else:
        # The history does not start with the old base's: skip the rows of
        # the first k layers (and the empty rows among them) by counting.
        seen = 0
        cut = 0
        for cut, r in enumerate(rows):  # noqa: B007 - cut is used after the loop
            if seen == k:
                break
            if not r.empty_layer:
                seen += 1
        else:
            cut = len(rows)
        own_rows = rows[cut:] if seen == k else []
    if sum(not r.empty_layer for r in own_rows) != len(own_layers):
        own_rows = [History(comment=f"layer {k + i}") for i in range(len(own_layers))]
    new_rows = _history_rows(new_base)
    if sum(not r.empty_layer for r in new_rows) != len(new_base.layers):
        new_rows = [History(comment=f"base layer {i}") for i in range(len(new_base.layers))]

    doc = image.config.as_dict()
    nb = new_base.config.doc
    for key in ("architecture", "os", "variant", "os.version", "os.features"):
        if key in nb:
            doc[key] = nb[key]
        else:
            doc.pop(key, None)
    doc["rootfs"] = {
        "type": "layers",
        "diff_ids": [*map(str, new_base.config.diff_ids), *map(str, own_diff_ids)],
    }
    doc["history"] = [r.to_dict() for r in [*new_rows, *own_rows]]
    ann = dict(image.manifest.annotations)
    ann[BASE_DIGEST] = str(new_base.digest)
    if new_base_name:
        ann[BASE_NAME] = new_base_name
    else:
        ann.pop(BASE_NAME, None)
    layers: list[Descriptor] = [*new_base.layers, *own_layers]
    return assemble(image.layout, doc, layers, ann)


def check_base_annotation(image: Image) -> Digest:
    """The recorded base digest, or a clear error when there is none."""
    dg, _ = base_of(image)
    if dg is None:
        raise InvalidDocumentError(
            "manifest",
            [f"image {image.digest.short} records no {BASE_DIGEST} annotation"],
        )
    return dg


__all__ = [
    "BASE_DIGEST",
    "BASE_NAME",
    "SquashResult",
    "annotate_index",
    "append",
    "base_of",
    "check_base_annotation",
    "create_index",
    "export_flat",
    "image_by_digest",
    "index_add",
    "index_annotate",
    "index_remove",
    "layer_from_tarball",
    "load_index",
    "manifest_entry",
    "rebase",
    "sniff_codec",
    "squash",
    "unpack_rootfs",
    "work_dir",
    "write_flat",
]
