"""The layering views people know from Docker: history, images, df, ps, diff.

These build rows of plain data from a layout's JSON documents; ``render``
turns them into docker-formatted tables and the CLI prints them.  Layer sizes
come from the uncompressed-size annotation our commits write, or from a
per-layout cache filled once by decompressing (a layer never changes), never
by decompressing on every call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass

from oci_tools.compression import decompressor
from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError
from oci_tools.fsutil import CACHE, private_path, write_json
from oci_tools.image import UNCOMPRESSED_SIZE, Image
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, Manifest

CHUNK = 1 << 20


class SizeCache:
    """Uncompressed sizes of layer blobs, cached in the layout by digest."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.path = private_path(layout.path, CACHE, "layer-sizes.json")
        self._sizes: dict[str, int] | None = None
        self._dirty = False

    def _load(self) -> dict[str, int]:
        if self._sizes is None:
            try:
                with open(self.path, "rb") as f:
                    data = json.loads(f.read())
                self._sizes = {k: int(v) for k, v in data.items()}
            except (OSError, ValueError, AttributeError):
                self._sizes = {}
        return self._sizes

    def size(self, desc: Descriptor) -> int:
        """Uncompressed size of the layer ``desc`` points at."""
        hint = desc.annotations.get(UNCOMPRESSED_SIZE)
        if hint is not None and hint.isdigit():
            return int(hint)
        codec = mt.LAYER_CODECS.get(desc.media_type)
        if codec == "none":
            return desc.size
        sizes = self._load()
        key = str(desc.digest)
        if key in sizes:
            return sizes[key]
        if codec is None or not self.layout.store.has(desc.digest):
            return desc.size
        n = 0
        r = self.layout.store.open(desc.digest, desc.size)
        try:
            stream = decompressor(codec, r)  # type: ignore[arg-type]
            while True:
                b = stream.read(CHUNK)
                if not b:
                    break
                n += len(b)
            r.drain()
        finally:
            r.close()
        sizes[key] = n
        self._dirty = True
        return n

    def save(self) -> None:
        """Persist newly learned sizes (best effort: a cache is optional)."""
        if not self._dirty or self._sizes is None:
            return
        with contextlib.suppress(OSError):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            write_json(self.path, self._sizes, indent=None, sync=False)
        self._dirty = False


# -- history ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One ``history`` row (newest first in output)."""

    id: str  # a digest string, or "<missing>"
    created: str | None
    created_by: str
    size: int
    comment: str
    empty_layer: bool


def _state_key(history: Iterable[History], diff_ids: Iterable[Digest]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([r.to_dict() for r in history], sort_keys=True).encode())
    h.update(b"\0" + " ".join(str(d) for d in diff_ids).encode())
    return h.hexdigest()


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
                img = dataclasses.replace(img, descriptor=mdesc, ref=ref)
            out.append((ref, img))
    return out


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


def history_rows(image: Image, sizes: SizeCache) -> list[HistoryRow]:
    """``docker history`` rows for ``image``, newest first.

    The top row shows the image's id; a row whose state (history and layers
    so far) is itself a tagged image in the layout shows that image's id;
    other rows show ``<missing>``.
    """
    states: dict[str, str] = {}
    for _ref, other in tagged_images(image.layout):
        key = _state_key(other.config.history, other.config.diff_ids)
        states.setdefault(key, str(other.digest))
    rows: list[HistoryRow] = []
    hist = image.config.history
    pairs = image.config.layer_history()
    layers_so_far = 0
    for k, (h, li) in enumerate(pairs):
        if li is not None:
            layers_so_far = li + 1
        key = _state_key(hist[: k + 1], image.config.diff_ids[:layers_so_far])
        size = sizes.size(image.layers[li]) if li is not None and li < len(image.layers) else 0
        rows.append(
            HistoryRow(
                id=states.get(key, "<missing>"),
                created=h.created,
                created_by=h.created_by or "",
                size=size,
                comment=h.comment or "",
                empty_layer=li is None,
            )
        )
    rows.reverse()
    if rows:
        top = rows[0]
        rows[0] = HistoryRow(
            str(image.digest), top.created, top.created_by, top.size, top.comment, top.empty_layer
        )
    sizes.save()
    return rows


# -- images and df ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageRow:
    """One ``images`` row."""

    ref: str
    id: str
    created: str | None
    size: int
    shared: int
    unique: int
    layers: int


def image_rows(
    layout: Layout,
    sizes: SizeCache | None = None,
    images: list[tuple[str, Image]] | None = None,
) -> list[ImageRow]:
    """Every tagged image with its total, shared and unique (uncompressed) size.

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
        total = shared = 0
        for ld in {d.digest: d for d in img.layers}.values():
            n = sizes.size(ld)
            total += n
            if len(users[ld.digest]) > 1:
                shared += n
        rows.append(
            ImageRow(
                ref,
                str(img.digest),
                img.config.created,
                total,
                shared,
                total - shared,
                len(img.layers),
            )
        )
    sizes.save()
    return rows


@dataclass(frozen=True, slots=True)
class LayerUse:
    """A layer blob and the images using it (``df -v``)."""

    digest: str
    size: int  # bytes on disk (compressed)
    uncompressed: int
    images: int


@dataclass(frozen=True, slots=True)
class DiskUsage:
    """``df``: what the layout stores, counted once per blob."""

    images: int
    active_images: int
    image_bytes: int  # on-disk bytes of every blob reachable from a ref
    layers: int
    layer_bytes: int
    total_bytes: int  # every blob file
    reclaimable: int  # bytes gc would free
    layer_uses: list[LayerUse]
    image_rows: list[ImageRow]


def disk_usage(layout: Layout, verbose: bool = False) -> DiskUsage:
    """Compute ``df`` figures from the layout's documents and blob sizes."""
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
    uses = [
        LayerUse(str(d), blob_size.get(d, 0), sizes.size(layer_desc[d]) if verbose else 0, len(u))
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
    )


__all__ = [
    "DiskUsage",
    "HistoryRow",
    "ImageRow",
    "LayerUse",
    "SizeCache",
    "disk_usage",
    "history_rows",
    "image_rows",
    "tagged_images",
]


# -- bundles: ps / status ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BundleStatus:
    """``docker ps -s`` for a bundle."""

    bundle: str
    image: str  # ref@short-id of the base image
    image_id: str
    command: str
    created: datetime.datetime  # when the bundle was unpacked
    rw: int  # bytes written since unpack
    virtual: int  # base image size + rw

    def size_text(self) -> str:
        from oci_tools.render import human_size

        return f"{human_size(self.rw)} (virtual {human_size(self.virtual)})"

    def to_json(self) -> dict[str, str]:
        return {
            "Bundle": self.bundle,
            "Image": self.image,
            "ImageID": self.image_id,
            "Command": self.command,
            "Size": self.size_text(),
            "SizeRw": str(self.rw),
            "SizeRootFs": str(self.virtual),
        }


def bundle_status(bundle: str) -> BundleStatus:
    """Base image and writable-layer size of a bundle."""
    from oci_tools.bundle import RECORD, BaseRecord, changes_of

    rec = BaseRecord.load(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    rw = 0
    for ch in changes_of(bundle):
        if ch.kind == "D":
            continue
        try:
            st = os.lstat(os.path.join(rootfs, ch.path.lstrip("/")))
        except OSError:
            continue
        if not os.path.isdir(os.path.join(rootfs, ch.path.lstrip("/"))) or os.path.islink(
            os.path.join(rootfs, ch.path.lstrip("/"))
        ):
            rw += st.st_size
    base_size = 0
    with contextlib.suppress(OCIToolsError):
        lay = Layout.open(rec.layout)
        img = Image.from_descriptor(lay, rec.manifest)
        sizes = SizeCache(lay)
        base_size = sum(sizes.size(d) for d in img.layers)
        sizes.save()
    cmd = ""
    with contextlib.suppress(OSError, ValueError), open(os.path.join(bundle, "config.json")) as f:
        cmd = " ".join(json.load(f)["process"]["args"])
    created = datetime.datetime.fromtimestamp(
        os.stat(os.path.join(bundle, RECORD)).st_mtime, datetime.UTC
    )
    ident = str(rec.manifest.digest)
    name = f"{rec.ref}@{rec.manifest.digest.short}" if rec.ref else rec.manifest.digest.short
    return BundleStatus(bundle, name, ident, f'"{cmd}"', created, rw, base_size + rw)


# -- presentation: every view as a Listing (a docker table or JSON lines) ------------


@dataclass(frozen=True, slots=True)
class Listing:
    """Rows of strings with named columns: ``columns`` maps each table header
    to the row key it shows; JSON output carries every key of a row."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, str]]

    def table(self) -> str:
        """docker's table layout."""
        from oci_tools.render import table

        return table(
            [h for h, _ in self.columns], [[r[k] for _, k in self.columns] for r in self.rows]
        )

    def json(self) -> str:
        """One JSON object per row (docker's ``--format json``)."""
        from oci_tools.render import json_lines

        return json_lines(self.rows)


def _when(value: str | None) -> datetime.datetime | None:
    from oci_tools.render import parse_time

    if not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


def _ident(value: str, full: bool) -> str:
    from oci_tools.render import short_id

    return value if full or value.startswith("<") else short_id(value)


def history_listing(
    rows: list[HistoryRow], *, human: bool, no_trunc: bool, now: datetime.datetime
) -> Listing:
    """``docker history`` columns (``--human=false``: RFC 3339 times, bytes)."""
    from oci_tools.render import format_rfc3339, human_size, time_ago, truncate

    out = []
    for r in rows:
        ts = _when(r.created)
        out.append(
            {
                "ID": _ident(r.id, no_trunc),
                "CreatedSince": time_ago(ts, now),
                "CreatedAt": format_rfc3339(ts) if ts else "N/A",
                "CreatedBy": r.created_by if no_trunc else truncate(r.created_by, 45),
                "Size": human_size(r.size) if human else str(r.size),
                "Comment": r.comment,
            }
        )
    created = ("CREATED", "CreatedSince") if human else ("CREATED AT", "CreatedAt")
    cols = [
        ("IMAGE", "ID"),
        created,
        ("CREATED BY", "CreatedBy"),
        ("SIZE", "Size"),
        ("COMMENT", "Comment"),
    ]
    return Listing(cols, out)


def _image_row(r: ImageRow, now: datetime.datetime, no_trunc: bool) -> dict[str, str]:
    from oci_tools.render import human_size, time_ago

    return {
        "Ref": r.ref,
        "Digest": r.id,
        "ID": _ident(r.id, no_trunc),
        "CreatedAt": r.created or "",
        "CreatedSince": time_ago(_when(r.created), now),
        "Size": human_size(r.size),
        "SharedSize": human_size(r.shared, 4),
        "UniqueSize": human_size(r.unique, 4),
        "Layers": str(r.layers),
    }


_IMAGE_COLUMNS = [
    ("IMAGE ID", "ID"),
    ("CREATED", "CreatedSince"),
    ("SIZE", "Size"),
    ("SHARED SIZE", "SharedSize"),
    ("UNIQUE SIZE", "UniqueSize"),
]


def images_listing(
    rows: list[ImageRow], *, digests: bool, no_trunc: bool, now: datetime.datetime
) -> Listing:
    """``images``: REF [DIGEST] IMAGE ID CREATED SIZE SHARED SIZE UNIQUE SIZE."""
    cols = [("REF", "Ref")] + ([("DIGEST", "Digest")] if digests else []) + _IMAGE_COLUMNS
    return Listing(cols, [_image_row(r, now, no_trunc) for r in rows])


def df_listings(
    du: DiskUsage, now: datetime.datetime, *, verbose: bool = False
) -> list[tuple[str, Listing]]:
    """``df`` summary, then (with -v data) per-image and per-layer sections."""
    from oci_tools.render import human_size, short_id

    pct = (100 * du.reclaimable // du.total_bytes) if du.total_bytes else 0
    summary = Listing(
        [
            ("TYPE", "Type"),
            ("TOTAL", "TotalCount"),
            ("ACTIVE", "Active"),
            ("SIZE", "Size"),
            ("RECLAIMABLE", "Reclaimable"),
        ],
        [
            {
                "Type": "Images",
                "TotalCount": str(du.images),
                "Active": str(du.active_images),
                "Size": human_size(du.image_bytes, 4),
                "Reclaimable": f"{human_size(du.reclaimable, 4)} ({pct}%)",
            },
            {
                "Type": "Layers",
                "TotalCount": str(du.layers),
                "Active": str(du.layers),
                "Size": human_size(du.layer_bytes, 4),
                "Reclaimable": "0B (0%)",
            },
        ],
    )
    out = [("", summary)]
    if verbose:
        out.append(
            (
                "Images space usage:",
                Listing(
                    [("REF", "Ref"), *_IMAGE_COLUMNS],
                    [_image_row(r, now, False) for r in du.image_rows],
                ),
            )
        )
        out.append(
            (
                "Layers space usage:",
                Listing(
                    [
                        ("LAYER", "Layer"),
                        ("SIZE", "Size"),
                        ("UNCOMPRESSED", "Uncompressed"),
                        ("IMAGES", "Images"),
                    ],
                    [
                        {
                            "Layer": short_id(u.digest),
                            "Digest": u.digest,
                            "Size": human_size(u.size),
                            "Uncompressed": human_size(u.uncompressed),
                            "Images": str(u.images),
                        }
                        for u in du.layer_uses
                    ],
                ),
            )
        )
    return out
