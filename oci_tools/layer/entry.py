"""The value type every layer reader, writer, applier and differ shares."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field


class EntryType(enum.Enum):
    """File types a layer can carry (tar type flags in parentheses)."""

    REG = "reg"  # '0' (and legacy '\0')
    HARDLINK = "hardlink"  # '1'
    SYMLINK = "symlink"  # '2'
    CHAR = "char"  # '3'
    BLOCK = "block"  # '4'
    DIR = "dir"  # '5'
    FIFO = "fifo"  # '6'


@dataclass(frozen=True, slots=True)
class TarEntry:
    """One member of a layer tar, after PAX/GNU extensions are merged.

    ``name`` is the cleaned relative path: no leading ``/`` or ``./``, no trailing
    ``/``, components joined by ``/``; non-UTF-8 bytes are kept via
    ``surrogateescape`` so names round-trip exactly.  ``linkname`` is the
    symlink target verbatim, or the cleaned hardlink target path.
    ``mtime_ns`` is nanoseconds since the epoch (PAX sub-second times kept).
    ``xattrs`` maps names to raw byte values (from ``SCHILY.xattr.*``).
    """

    name: str
    type: EntryType
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    size: int = 0
    mtime_ns: int = 0
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Mapping[str, bytes] = field(default_factory=dict)
