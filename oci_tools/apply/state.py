"""What one layer application has done so far: the bookkeeping every step shares.

``ApplyState`` is the base of the applier (see ``oci_tools.apply``): the sets
and maps that let whiteouts spare this layer's own additions, that defer
directory modes and times to the end, and that keep a ``Snapshot`` in step
with the tree.  It does no filesystem work beyond ``fstat``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from oci_tools.apply.options import ApplyOptions
from oci_tools.snapshot import FileState, Snapshot

#: Notes kept in ``ApplyResult.skipped``; the rest are only counted.
_MAX_NOTES = 1000


class ApplyState:
    """Per-layer bookkeeping (paths are canonical: relative to the rootfs,
    no symlinks, no ``.``/``..``; ``""`` is the rootfs itself)."""

    def __init__(self, rootfd: int, snapshot: Snapshot | None, opts: ApplyOptions) -> None:
        self.rootfd = rootfd
        self.snap = snapshot
        self.opts = opts
        self.rootless = opts.rootless
        self.notes: list[str] = []
        self.notes_dropped = 0
        # paths (canonical) written by this layer, and all their ancestors
        self.written: set[str] = set()
        self.ancestors: set[str] = set()
        # directories known to hold nothing from lower layers
        self.clean: set[str] = set()
        # directories created by this layer (entry or implied) / implied only
        self.new_dirs: set[str] = set()
        self.implied: set[str] = set()
        # directory entries: canonical path -> (mode, mtime_ns), applied last
        self.dir_meta: dict[str, tuple[int, int]] = {}
        # directory entries: canonical path -> xattrs now on them (None: unknown)
        self.dir_xattrs: dict[str, dict[str, bytes] | None] = {}
        # directories whose children changed -> original (atime, mtime) or None
        self.touched: dict[str, tuple[int, int] | None] = {}
        # rootless: directories temporarily given u+rwx -> original mode
        self.tempmode: dict[str, int] = {}
        # inodes whose link count changed (their recorded peers need a re-stat)
        self.dirty_inos: set[int] = set()
        # free bytes on the rootfs filesystem as last measured (see NodeWriter._space)
        self._avail: int | None = None

    # -- bookkeeping -------------------------------------------------------

    def note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)
        else:
            self.notes_dropped += 1

    def mark_written(self, path: str) -> None:
        self.written.add(path)
        anc = self.ancestors
        parent = path
        while parent:
            parent = parent.rpartition("/")[0]
            if parent in anc:
                break
            anc.add(parent)

    def touch(self, dpath: str, dfd: int) -> None:
        """Remember ``dpath``'s times before its children change."""
        if dpath in self.touched:
            return
        if dpath in self.new_dirs:
            self.touched[dpath] = None
        else:
            st = os.fstat(dfd)
            self.touched[dpath] = (st.st_atime_ns, st.st_mtime_ns)

    def record(
        self,
        path: str,
        st: os.stat_result,
        content: str | None = None,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Record the final state of a node this layer created or rewrote.

        ``xattrs`` are the attributes now on the node (None when unknown).
        """
        if self.snap is not None:
            self.snap.record(path, st, content, xattrs=xattrs)

    def rerecord(self, path: str, st: os.stat_result) -> None:
        """Record a new stat for a node whose content and xattrs this layer
        did not change (a restored parent, a hardlink peer)."""
        snap = self.snap
        if snap is None:
            return
        old = snap.get(path)
        if old is None:
            snap.record(path, st)
        else:
            snap.put(path, FileState.from_stat(st, old.content, old.xattrs))

    def forget(self, path: str) -> None:
        snap = self.snap
        if snap is not None and path in snap.files:
            snap.forget(path)
