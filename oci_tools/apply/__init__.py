"""Apply one layer (a compressed tar stream) onto a rootfs directory, safely.

One pass over the blob: the compressed bytes are counted, decompressed, hashed
(the diff_id) while the tar is parsed and applied, and everything after the tar
end-of-archive marker is drained so the diff_id covers every byte and a
VerifyingReader passed as ``blob`` reaches EOF and checks the blob digest.

Confinement (the rule every line here serves): every filesystem operation is
relative to a directory fd obtained by walking the rootfs one component at a
time with ``O_PATH|O_NOFOLLOW``.  Symlinks met on the way are resolved as if
the rootfs were ``/`` (absolute targets restart at the rootfs, ``..`` stops at
it, at most 40 hops).  The final component of an entry is never followed: it
is unlinked and recreated (directories merge), and metadata is applied through
an fd or with ``follow_symlinks=False``.  No host path is ever built from a
member name, and neither ``tarfile`` nor ``shutil.rmtree`` is used.

Semantics follow the image-spec (layer.md) with umoci as the reference where
tools differ: whiteouts remove only what lower layers left, whatever their
order relative to this layer's additions; a whiteout under a missing parent
does nothing; directory attributes are replaced on dir-over-dir; directory
times and modes are applied after all entries; parent directories keep their
times when children are created or removed.

If this raises, the rootfs is partially modified and must be thrown away (the
diff_id, for one, can only be checked once everything was applied).

The package, one concern per module (the applier is one object per layer;
its methods come from these classes, each building on the one before):

* ``options``: ``ApplyOptions`` and ``ApplyResult``;
* ``state``: ``ApplyState``, the per-layer bookkeeping the steps share;
* ``fs``: ``RootDirs``, the directory fd cache and in-root resolution (the
  confinement rules live there), and ``read_file_in_root``;
* ``remove``: ``Remover``, removal of nodes and subtrees, whiteouts;
* ``nodes``: ``NodeWriter``, one creator per entry type, owners, modes, xattrs;
* ``finish``: ``Finisher``, hardlink peers and directory modes/times, last;
* this module: the per-entry dispatch, ``apply_layer`` and ``apply_members``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from typing import BinaryIO

from oci_tools.apply.finish import Finisher
from oci_tools.apply.fs import join_path, read_file_in_root
from oci_tools.apply.nodes import NodeWriter
from oci_tools.apply.options import ApplyOptions, ApplyResult
from oci_tools.compression import ReadAhead
from oci_tools.digest import Digest
from oci_tools.errors import DigestMismatchError, SpecialFileError, UnsafeLayerError
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.paths import MAX_SYMLINK_HOPS
from oci_tools.layer.reader import CHUNK, EntryContent, iter_entries
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layer.whiteout import WHITEOUT_PREFIX, WhiteoutKind, classify
from oci_tools.snapshot import Snapshot


class _Applier(NodeWriter, Finisher):
    """State of one layer application (see the module docstring)."""

    # -- entries -----------------------------------------------------------

    def apply(self, entry: TarEntry, content: EntryContent) -> None:
        name = entry.name
        if WHITEOUT_PREFIX in name:
            kind, target = classify(name)
            if kind is not WhiteoutKind.NONE:
                if self.opts.apply_whiteouts:
                    self.whiteout(entry, kind, target)
                return
        if not name:
            self.directory(entry, "", self.rootfd, "", root=True)
            return
        lex_parent, _, base = name.rpartition("/")
        got = self.resolve_dir(lex_parent, create=True, entry=name)
        assert got is not None
        pcanon, pfd = got
        path = join_path(pcanon, base)
        self.touch(pcanon, pfd)
        etype = entry.type
        if etype is EntryType.REG:
            self.regular(entry, content, pfd, base, path)
        elif etype is EntryType.DIR:
            self.directory(entry, pcanon, pfd, base)
        elif etype is EntryType.SYMLINK:
            self.symlink(entry, pfd, base, path)
        elif etype is EntryType.HARDLINK:
            self.hardlink(entry, pfd, base, path)
        elif etype is EntryType.FIFO:
            self.special(entry, pfd, base, path, stat.S_IFIFO)
        elif etype is EntryType.CHAR:
            self.special(entry, pfd, base, path, stat.S_IFCHR)
        elif etype is EntryType.BLOCK:
            self.special(entry, pfd, base, path, stat.S_IFBLK)
        else:  # pragma: no cover - the reader yields only the types above
            raise SpecialFileError(name, f"unsupported type {etype.value}")


# --------------------------------------------------------------------------- API


def apply_layer(
    blob: BinaryIO,
    rootfs: str,
    *,
    codec: str,
    diff_id: Digest | None,
    snapshot: Snapshot | None = None,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply the layer read from ``blob`` (compressed with ``codec``) onto ``rootfs``.

    ``blob`` is read to EOF (a VerifyingReader checks the blob digest there).
    The uncompressed stream is hashed as it is applied; when ``diff_id`` is
    given and differs, DigestMismatchError is raised after the layer was
    applied.  With ``snapshot``, the final lstat of every path this layer
    created or changed is recorded in it (and removed paths are forgotten), so
    that it matches the tree without a second walk.

    Raises UnsafeLayerError (or a subclass) for a hostile or malformed layer,
    DigestMismatchError, UnsupportedMediaTypeError for an unknown codec, and
    OSError for filesystem failures.  After any error the rootfs is partially
    applied and must be discarded.
    """
    opts = options if options is not None else ApplyOptions()
    algorithm = diff_id.algorithm if diff_id is not None and diff_id.computable else "sha256"
    tee = open_layer_stream(blob, codec, algorithm, opts.stream_limits())
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # Reading, decompressing, hashing and the bomb checks run on a second
    # thread, a few MiB ahead of the applier (the codecs release the GIL).
    ahead = ReadAhead(tee.read, chunk=CHUNK)

    def end_of_stream() -> None:
        # Everything after the end-of-archive marker is part of the diff_id,
        # and the blob must reach EOF for its digest to be verified.
        ahead.drain()  # the worker is done with the counter once this returns
        tee.counter.drain()

    try:
        entries, skipped = _run(
            rootfd, iter_entries(ahead, opts.limits), snapshot, opts, end_of_stream
        )
    finally:
        ahead.close()  # before the caller closes ``blob``
        os.close(rootfd)
    actual = tee.hasher.digest()
    if diff_id is not None and actual != diff_id:
        raise DigestMismatchError("diff_id of layer", expected=str(diff_id), actual=str(actual))
    return ApplyResult(
        diff_id=actual,
        uncompressed_size=tee.hasher.size,
        compressed_size=tee.counter.count,
        entries=entries,
        skipped=skipped,
    )


def _run(
    rootfd: int,
    members: Iterable[tuple[TarEntry, EntryContent]],
    snapshot: Snapshot | None,
    opts: ApplyOptions,
    before_finish: Callable[[], None] | None = None,
) -> tuple[int, list[str]]:
    """Apply ``members`` in order; returns (members seen, skipped notes)."""
    entries = 0
    applier = _Applier(rootfd, snapshot, opts)
    try:
        for entry, content in members:
            entries += 1
            if entries > opts.max_entries:
                raise UnsafeLayerError(entry.name, f"more than {opts.max_entries} entries")
            if opts.on_entry is not None:
                opts.on_entry(entry)
            applier.evict()
            applier.apply(entry, content)
        if before_finish is not None:
            before_finish()
        applier.finish()
    finally:
        applier.close()
    skipped = list(applier.notes)
    if applier.notes_dropped:
        skipped.append(f"... and {applier.notes_dropped} more")
    return entries, skipped


def apply_members(
    members: Iterable[tuple[TarEntry, EntryContent]],
    rootfs: str,
    *,
    options: ApplyOptions | None = None,
) -> list[str]:
    """Apply already-parsed tar ``members`` onto ``rootfs``, with the same
    rules as ``apply_layer`` (confinement, links, whiteouts, metadata).

    For members that do not come from one layer stream: ``layer extract``
    copies a lower layer's file to where a hardlink of its layer points at it.
    Returns the notes of what was not applied.
    """
    opts = options if options is not None else ApplyOptions()
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _run(rootfd, members, None, opts)[1]
    finally:
        os.close(rootfd)


__all__ = [
    "MAX_SYMLINK_HOPS",
    "ApplyOptions",
    "ApplyResult",
    "apply_layer",
    "apply_members",
    "read_file_in_root",
]
