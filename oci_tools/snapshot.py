"""The file-state record of a tree: what ``unpack`` leaves for ``commit``.

A Snapshot maps each relative path ('' is the root itself) to the FileState
that lstat reported after the path was last written.  ``apply`` fills it
while unpacking (no second walk); ``diff`` compares a live tree with it so a
commit only reads what changed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FileState:
    """The parts of an lstat result that reveal a change, plus an optional
    content digest (sha256 hex) for regular files, taken while the file was
    written, for when stat alone cannot decide."""

    mode: int  # full st_mode: type bits and permission bits
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    nlink: int
    rdev: int = 0
    content: str | None = None

    @classmethod
    def from_stat(cls, st: os.stat_result, content: str | None = None) -> FileState:
        """Build from an ``os.lstat``/``os.stat(..., follow_symlinks=False)`` result."""
        return cls(
            st.st_mode,
            st.st_uid,
            st.st_gid,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            st.st_nlink,
            st.st_rdev,
            content,
        )


class Snapshot:
    """Mutable path -> FileState map of one rootfs."""

    def __init__(self, files: dict[str, FileState] | None = None) -> None:
        self.files: dict[str, FileState] = files if files is not None else {}

    def record(self, path: str, st: os.stat_result, content: str | None = None) -> None:
        """Remember the state of ``path`` (relative, '' for the root)."""
        self.files[path] = FileState.from_stat(st, content)

    def forget(self, path: str) -> None:
        """Drop ``path`` and everything below it."""
        self.files.pop(path, None)
        prefix = path + "/" if path else ""
        doomed = [p for p in self.files if p.startswith(prefix) and p != ""]
        for p in doomed:
            del self.files[p]

    def __len__(self) -> int:
        return len(self.files)
