"""``layer extract``: one layer's own files written into a directory.

The layer goes through ``apply`` (the same confinement and checks as unpack),
whiteouts listed rather than applied; a hardlink to a lower layer's file is
written as a copy of that file, found by the replay.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import BinaryIO, cast

from oci_tools.apply import ApplyOptions, apply_layer, apply_members
from oci_tools.compression import codec_for_media_type
from oci_tools.errors import ClobberError, UnsafeLayerError
from oci_tools.fsutil import empty_dir, remove_tree
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.reader import EntryContent
from oci_tools.views.layers.index import (
    OPAQUE,
    WHITEOUT,
    IndexEntry,
    LayerBlobReader,
    LayerCache,
    LayerIndex,
    layer_index,
)
from oci_tools.views.layers.replay import Replay, path_sort_key, paused_gc


@dataclass(frozen=True, slots=True)
class LinkCopy:
    """A hardlink of the extracted layer whose target is a lower layer's
    file: ``path`` was written as a copy of ``target`` from layer ``layer``."""

    path: str
    target: str
    layer: int


@dataclass(frozen=True, slots=True)
class ExtractResult:
    """What ``extract_layer`` wrote, and the whiteouts it did not apply."""

    index: int
    entries: int
    whiteouts: list[IndexEntry]
    skipped: list[str]
    copies: list[LinkCopy] = field(default_factory=list)


def extract_layer(
    image: Image,
    i: int,
    dest: str,
    *,
    rootless: bool | None = None,
    cache: LayerCache | None = None,
) -> ExtractResult:
    """Write layer ``i``'s own files into ``dest`` (created, or empty).

    The layer goes through ``apply`` (same confinement and checks as unpack:
    blob digest, diff_id, path escapes, links, bombs) with whiteouts left
    unapplied; they are returned instead.  A hardlink to a file of a lower
    layer (which ``dest`` does not have) becomes a copy of that file, read
    from the lower layer that holds it.  The layer is indexed in the same
    pass (and cached) when no index was cached yet.  After an error, what
    was written is removed again: ``dest`` is left as it was found.
    """
    image.check_consistent()
    cache = cache or LayerCache(image.layout)
    desc = image.layers[i]
    made = not os.path.lexists(dest)
    if not made and (not os.path.isdir(dest) or os.listdir(dest)):
        raise ClobberError(dest, hint="layer extract needs a new or empty directory")
    os.makedirs(dest, exist_ok=True)
    codec = codec_for_media_type(desc.media_type)
    cached = cache.get(desc.digest)
    seen: list[IndexEntry] = []
    missing: list[tuple[int, TarEntry]] = []  # (member position, hardlink)
    opts = ApplyOptions(
        on_entry=lambda e: seen.append(IndexEntry.from_tar(e)),
        apply_whiteouts=False,
        on_missing_link=lambda e: missing.append((len(seen) - 1, e)),
    )
    if rootless is not None:
        opts.rootless = rootless
    try:
        raw = image.layout.store.open(desc.digest, desc.size)
        try:
            res = apply_layer(
                cast(BinaryIO, raw),
                dest,
                codec=codec,
                diff_id=image.config.diff_ids[i],
                options=opts,
            )
        finally:
            raw.close()
        index = LayerIndex(desc.digest, res.diff_id, res.uncompressed_size, tuple(seen))
        copies, notes = _copy_lower_links(image, i, index, missing, dest, opts, cache)
    except BaseException:
        # Undo: nothing of a failed extraction stays (never through a symlink).
        if made:
            remove_tree(dest)
        else:
            empty_dir(dest)
        raise
    if cached is None:
        cache.put(index)
    whiteouts = [e for e in seen if e.kind in (WHITEOUT, OPAQUE)]
    return ExtractResult(i, res.entries, whiteouts, res.skipped + notes, copies)


def _copy_lower_links(
    image: Image,
    i: int,
    index: LayerIndex,
    missing: list[tuple[int, TarEntry]],
    dest: str,
    opts: ApplyOptions,
    cache: LayerCache,
) -> tuple[list[LinkCopy], list[str]]:
    """Write each hardlink of ``missing`` (whose targets ``dest`` lacks) as a
    copy of the lower layers' file it refers to.

    Only a hardlink that is the last member of its name is copied (a later
    member replaced it).  Each source layer is streamed once, verified like
    any layer, and its member goes through ``apply_members`` under the
    hardlink's name, so the same confinement rules hold.
    """
    if not missing:
        return [], []
    # The replay knows, for every hardlink member, which member holds its
    # content, following symlinks and link chains down the layers.
    replay = Replay()
    indexes = [layer_index(image, li, cache) for li in range(i)] + [index]
    for li, idx in enumerate(indexes):
        with paused_gc():
            replay.layer(li, idx)
    last = {e.path: k for k, e in enumerate(index.entries) if e.kind not in (WHITEOUT, OPAQUE)}
    wanted: dict[int, dict[int, list[TarEntry]]] = {}  # layer -> position -> links
    for pos, link in missing:
        if last.get(link.name) != pos:
            continue  # replaced by a later member of the layer
        src = replay.link_sources.get((i, pos))
        if src is None or src[0] == i:
            raise UnsafeLayerError(
                link.name, f"hardlink target {link.linkname!r} missing in this and lower layers"
            )
        wanted.setdefault(src[0], {}).setdefault(src[1], []).append(link)
    copies: list[LinkCopy] = []
    notes: list[str] = []
    for li in sorted(wanted):
        at = wanted[li]
        for k, links in at.items():
            copies += [LinkCopy(link.name, indexes[li].entries[k].path, li) for link in links]
        notes += apply_members(
            _lower_members(image, li, at),
            dest,
            options=replace(opts, on_entry=None, on_missing_link=None),
        )
    copies.sort(key=lambda c: path_sort_key(c.path))
    return copies, notes


def _lower_members(
    image: Image, li: int, at: dict[int, list[TarEntry]]
) -> Iterator[tuple[TarEntry, EntryContent]]:
    """Stream layer ``li`` and yield, for each wanted member position, its
    file under the first hardlink's name, then hardlinks to that copy for
    the other names.  The whole stream is read and verified (blob digest,
    diff_id) before the iteration ends."""
    stream = LayerBlobReader(image.layout, image.layers[li], image.config.diff_ids[li])
    try:
        for k, (entry, content) in enumerate(stream.members()):
            links = at.get(k)
            if not links:
                continue
            first, *rest = links
            yield replace(entry, name=first.name), content
            for link in rest:
                yield TarEntry(link.name, EntryType.HARDLINK, linkname=first.name), content
        stream.finish()
    finally:
        stream.close()


__all__ = ["ExtractResult", "LinkCopy", "extract_layer"]
