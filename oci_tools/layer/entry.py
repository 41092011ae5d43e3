"""The value type every layer reader, writer, applier and differ shares."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from oci_tools.records import field, field_names, record


class EntryType(enum.Enum):
    """File types a layer can carry (tar type flags in parentheses)."""

    REG = "reg"  # '0' (and legacy '\0')
    HARDLINK = "hardlink"  # '1'
    SYMLINK = "symlink"  # '2'
    CHAR = "char"  # '3'
    BLOCK = "block"  # '4'
    DIR = "dir"  # '5'
    FIFO = "fifo"  # '6'


@record
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


_new_object = object.__new__
(
    _set_name,
    _set_type,
    _set_mode,
    _set_uid,
    _set_gid,
    _set_size,
    _set_mtime,
    _set_linkname,
    _set_devmajor,
    _set_devminor,
    _set_xattrs,
) = (TarEntry.__dict__[f].__set__ for f in field_names(TarEntry))


def make_entry(
    name: str,
    etype: EntryType,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime_ns: int,
    linkname: str,
    devmajor: int,
    devminor: int,
    xattrs: Mapping[str, bytes],
) -> TarEntry:
    """``TarEntry(...)`` with every field given positionally, for the hot
    loops of the reader and the differ: a third of the cost, as the frozen
    record's ``__init__`` sets each slot through ``object.__setattr__``
    while this calls the slot descriptors directly.  Equal to the
    ``TarEntry`` built from the same values."""
    e: TarEntry = _new_object(TarEntry)
    _set_name(e, name)
    _set_type(e, etype)
    _set_mode(e, mode)
    _set_uid(e, uid)
    _set_gid(e, gid)
    _set_size(e, size)
    _set_mtime(e, mtime_ns)
    _set_linkname(e, linkname)
    _set_devmajor(e, devmajor)
    _set_devminor(e, devminor)
    _set_xattrs(e, xattrs)
    return e
