"""A strict streaming tar reader for layers (our own parser, not ``tarfile``).

Why not ``tarfile``: it stops silently on a corrupt or truncated header, applies
PAX global headers, has no cap on PAX/GNU long headers, accepts negative sizes
and ids, turns unknown type flags into regular files and keeps PAX mtimes as
floats (see the team notes, layer-semantics.md §4.3).  This reader fails closed
on every one of those.

Accepted dialects: v7, ustar (with the ``prefix`` field), GNU (``L``/``K``
long names, base-256 numbers) and PAX (``x`` records: path, linkpath, size, uid,
gid, mtime with exact nanoseconds, ``SCHILY.xattr.*`` as raw bytes).  PAX global
headers (``g``) are skipped and never applied, as Go's ``archive/tar`` does.
Sparse members and every type flag outside ``0123456`` are refused.

Names are cleaned here, once, for every consumer: leading ``/`` and ``./`` are
dropped, empty and ``.`` components removed, ``..`` folded; a name that still
climbs above the root raises PathEscapeError.  A name cleaning to the root is
only accepted for a directory (CVE-2021-29136).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol
from zlib import adler32

from oci_tools.errors import (
    LinkEscapeError,
    PathEscapeError,
    SpecialFileError,
    UnsafeLayerError,
)
from oci_tools.layer.entry import EntryType, TarEntry, make_entry
from oci_tools.records import record

BLOCK = 512
_ZERO_BLOCK = bytes(BLOCK)
#: Read size from the underlying stream: large reads keep Python overhead low.
CHUNK = 1 << 20
#: Largest valid uid/gid: 2^32-1 is chown's "leave unchanged" and must not pass.
MAX_ID = (1 << 32) - 2
#: Device numbers must fit in 32 bits (as in moby and containerd).
MAX_DEV = (1 << 32) - 1
#: Longest path component Linux accepts (NAME_MAX).
NAME_MAX = 255
_NS = 1_000_000_000

_TYPES: dict[int, EntryType] = {
    ord("0"): EntryType.REG,
    0: EntryType.REG,
    ord("1"): EntryType.HARDLINK,
    ord("2"): EntryType.SYMLINK,
    ord("3"): EntryType.CHAR,
    ord("4"): EntryType.BLOCK,
    ord("5"): EntryType.DIR,
    ord("6"): EntryType.FIFO,
}
_OCTAL_DIGITS = b"01234567"
#: The numeric fields of a header (bytes 100-156: mode, uid, gid, size,
#: mtime, checksum) as nearly every writer fills them: all octal digits, one
#: NUL or space after each (the checksum: six digits, NUL, space).  One match
#: replaces six ``_number`` calls; for these fields ``_number`` gives exactly
#: ``int(digits, 8)``.  Anything else takes the field-by-field path.
_COMMON_NUMBERS = re.compile(
    rb"([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{7})[\0 ]([0-7]{11})[\0 ]([0-7]{11})[\0 ]([0-7]{6})\0 "
)
#: A PAX header holding one ``mtime`` record and nothing else, with at most
#: nine fraction digits: what our writer puts in front of nearly every member.
#: A match (whose length field must equal the header size) gives exactly what
#: ``_parse_pax`` and ``_pax_time`` give; anything else takes that path.
_PAX_MTIME_ONLY = re.compile(rb"([0-9]{1,20}) mtime=([0-9]{1,30})(?:\.([0-9]{1,9}))?\n")
_DECIMAL_DIGITS = b"0123456789"
_XATTR_PREFIX = "SCHILY.xattr."


@record
class ReadLimits:
    """Resource limits of the reader (it fails closed when one is exceeded).

    ``max_header_bytes`` caps each PAX (``x``/``g``) or GNU long-name (``L``/``K``)
    header, and also the total of the extension headers in front of one member
    (Go uses the same 1 MiB cap; CVE-2022-2879).  ``max_entry_size`` caps the
    data size of one member (None: no cap here; ``apply`` checks free space).
    """

    max_header_bytes: int = 1 << 20
    max_entry_size: int | None = None


DEFAULT_LIMITS = ReadLimits()


class ByteStream(Protocol):
    """What the reader needs from its input: ``read(n)`` returning bytes."""

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes; ``b""`` at EOF."""
        ...


def _err(name: str, reason: str) -> UnsafeLayerError:
    return UnsafeLayerError(name, reason)


def _shown(raw_name: bytes) -> str:
    """A member name as error messages show it."""
    return raw_name[:200].decode("utf-8", "replace")


class _Source:
    """Buffered view of the raw tar stream with exact-size reads.

    Data is pulled in CHUNK-sized reads; content is handed out as memoryview
    slices of the current buffer so large files are never copied in Python.
    """

    __slots__ = ("_buf", "_eof", "_pos", "_raw", "consumed")

    def __init__(self, raw: ByteStream) -> None:
        self._raw = raw
        self._buf = b""
        self._pos = 0
        self._eof = False
        #: Bytes handed out so far (the tar offset of the next byte).
        self.consumed = 0

    def _more(self) -> bool:
        if self._eof:
            return False
        data = self._raw.read(CHUNK)
        if not data:
            self._eof = True
            return False
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0
        return True

    def block(self) -> bytes | None:
        """The next 512-byte block; None at a clean EOF; error when partial."""
        pos = self._pos
        end = pos + BLOCK
        if end > len(self._buf):
            while end > len(self._buf):
                if not self._more():
                    break
                pos = self._pos
                end = pos + BLOCK
            if end > len(self._buf):
                left = len(self._buf) - self._pos
                if left == 0:
                    return None
                raise _err(
                    "", f"truncated tar header at offset {self.consumed} ({left} of {BLOCK} bytes)"
                )
        self._pos = end
        self.consumed += BLOCK
        return self._buf[pos:end]

    def chunk(self, limit: int, name: str) -> memoryview:
        """Up to ``limit`` (> 0) bytes of member content; error at EOF."""
        if self._pos >= len(self._buf) and not self._more():
            raise _err(name, f"truncated content at offset {self.consumed}")
        pos = self._pos
        end = min(len(self._buf), pos + limit)
        self._pos = end
        self.consumed += end - pos
        return memoryview(self._buf)[pos:end]

    def read_exact(self, n: int, name: str) -> bytes:
        """Exactly ``n`` bytes (used for small extension headers)."""
        parts: list[bytes] = []
        while n > 0:
            mv = self.chunk(n, name)
            parts.append(bytes(mv))
            n -= len(mv)
        return b"".join(parts)

    def skip(self, n: int, name: str) -> None:
        """Skip ``n`` bytes of content; error if the stream ends first."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if avail <= 0:
                if not self._more():
                    raise _err(name, f"truncated content at offset {self.consumed}")
                continue
            step = min(avail, n)
            self._pos += step
            self.consumed += step
            n -= step


class EntryContent:
    """Reader of one member's data; valid until the iterator moves on.

    Whatever is left unread is skipped (with its padding) by the iterator.
    """

    __slots__ = ("_name", "_src", "remaining")

    def __init__(self, src: _Source, size: int, name: str) -> None:
        self._src = src
        self._name = name
        #: Bytes of content not yet read.
        self.remaining = size

    def chunks(self, max_size: int = CHUNK) -> Iterator[memoryview]:
        """Yield the rest of the content as zero-copy slices of at most
        ``max_size`` bytes; each slice is only valid until the next one."""
        src = self._src
        while self.remaining > 0:
            mv = src.chunk(min(self.remaining, max_size), self._name)
            self.remaining -= len(mv)
            yield mv

    def buffered(self) -> memoryview | None:
        """All of the remaining content as one zero-copy slice when the
        reader's buffer already holds it (as it does for most small files),
        else None (then use ``chunks``).  The slice is valid until the
        iterator moves on."""
        src = self._src
        n = self.remaining
        pos = src._pos
        if pos + n > len(src._buf):
            return None
        src._pos = pos + n
        src.consumed += n
        self.remaining = 0
        return memoryview(src._buf)[pos : pos + n]

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (everything left when ``n`` is negative)."""
        if n is None or n < 0 or n > self.remaining:
            n = self.remaining
        parts: list[bytes] = []
        while n > 0:
            mv = self._src.chunk(n, self._name)
            parts.append(bytes(mv))
            n -= len(mv)
            self.remaining -= len(mv)
        return b"".join(parts)

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Read into ``buf``; returns the number of bytes read (0 at the end)."""
        want = min(len(buf), self.remaining)
        if want <= 0:
            return 0
        mv = self._src.chunk(want, self._name)
        buf[: len(mv)] = mv
        self.remaining -= len(mv)
        return len(mv)

    def readable(self) -> bool:
        """Always True."""
        return True


# --------------------------------------------------------------------------- fields


def _cstr(field: bytes) -> bytes:
    """A NUL-terminated fixed field (bytes after the first NUL are ignored, as Go)."""
    i = field.find(b"\0")
    return field if i < 0 else field[:i]


def _number(field: bytes, what: str, name: str) -> int:
    """Parse an octal (or GNU base-256) numeric header field."""
    # Fast path: digits, optionally ended by one NUL or space (isdigit and
    # int() are C; '8'/'9' make int() fail and land in the strict path).
    body = field[:-1] if field[-1:] in (b"\0", b" ") else field
    if body.isdigit():
        try:
            return int(body, 8)
        except ValueError:
            pass
    if field and field[0] & 0x80:
        # GNU base-256: big-endian two's complement; bit 0x40 of the first byte
        # is the sign.  Marker bits are part of the two's complement for
        # negatives (0xff...), and cleared for positives (0x80 prefix).
        value = int.from_bytes(field, "big")
        if field[0] & 0x40:
            return value - (1 << (8 * len(field)))
        return value & ~(0x80 << (8 * (len(field) - 1)))
    digits = _cstr(field).strip(b" ")
    if not digits:
        return 0
    # int(x, 8) would also take '+', '-', '_' and inner spaces: refuse them.
    if digits.translate(None, _OCTAL_DIGITS):
        raise _err(name, f"invalid octal {what} field {field!r}")
    return int(digits, 8)


def _decimal(value: bytes, key: str, name: str) -> int:
    if not value or value.translate(None, _DECIMAL_DIGITS) or len(value) > 40:
        raise _err(name, f"invalid PAX {key} value {value[:64]!r}")
    return int(value)


def _pax_time(value: bytes, name: str) -> int:
    """A PAX time string to exact nanoseconds (digits past 9 are truncated)."""
    raw = value
    neg = value.startswith(b"-")
    if neg:
        value = value[1:]
    sec, dot, frac = value.partition(b".")
    if (
        not sec
        or len(sec) > 30
        or sec.translate(None, _DECIMAL_DIGITS)
        or (dot and (not frac or frac.translate(None, _DECIMAL_DIGITS)))
    ):
        raise _err(name, f"invalid PAX mtime {raw[:64]!r}")
    ns = int(sec) * _NS + (int(frac[:9].ljust(9, b"0")) if frac else 0)
    return -ns if neg else ns


def _parse_pax(data: bytes, name: str) -> dict[str, bytes]:
    """Parse PAX records ``"%d %s=%s\\n"``; every malformed record is an error."""
    records: dict[str, bytes] = {}
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0:
            # Trailing NUL padding is tolerated only at the end.
            if data[pos:].strip(b"\0"):
                raise _err(name, "PAX header has data after NUL padding")
            break
        sp = data.find(b" ", pos, min(end, pos + 21))
        if sp < 0:
            raise _err(name, "malformed PAX record length")
        length_s = data[pos:sp]
        if not length_s or length_s.translate(None, _DECIMAL_DIGITS):
            raise _err(name, f"malformed PAX record length {length_s!r}")
        length = int(length_s)
        rec_end = pos + length
        # A zero or too-short length would loop forever (CVE-2019-20907).
        if length <= len(length_s) + 1 or rec_end > end or data[rec_end - 1] != 0x0A:
            raise _err(name, f"malformed PAX record of length {length}")
        body = data[sp + 1 : rec_end - 1]
        eq = body.find(b"=")
        if eq <= 0:
            raise _err(name, "malformed PAX record (no key)")
        key = body[:eq].decode("utf-8", "surrogateescape")
        records[key] = body[eq + 1 :]
        pos = rec_end
    return records


def _clean(raw: bytes, name_for_errors: str, *, link: bool = False) -> str:
    """Lexically clean a member name; escaping names are errors."""
    if b"\0" in raw:
        raise _err(name_for_errors, "name contains a NUL byte")
    # Fast path (almost every real name): nothing to fold, so only the
    # trailing '/' of a directory goes, and component lengths are checked.
    if (
        not raw.startswith((b"/", b"./", b"../"))
        and b"//" not in raw
        and b"/./" not in raw
        and b"/../" not in raw
        and not raw.endswith((b"/.", b"/..", b"//"))
        and raw not in (b".", b"..")
    ):
        if raw.endswith(b"/"):
            raw = raw[:-1]
        if len(raw) > NAME_MAX and max(map(len, raw.split(b"/"))) > NAME_MAX:
            raise _err(name_for_errors, f"path component longer than {NAME_MAX} bytes")
        return raw.decode("utf-8", "surrogateescape")
    parts: list[bytes] = []
    for comp in raw.split(b"/"):
        if not comp or comp == b".":
            continue
        if comp == b"..":
            if not parts:
                cls = LinkEscapeError if link else PathEscapeError
                what = "hardlink target" if link else "name"
                raise cls(name_for_errors, f"{what} {raw[:200]!r} escapes the root")
            parts.pop()
            continue
        if len(comp) > NAME_MAX:
            raise _err(name_for_errors, f"path component longer than {NAME_MAX} bytes")
        parts.append(comp)
    return b"/".join(parts).decode("utf-8", "surrogateescape")


def _check_id(value: int, what: str, name: str) -> int:
    if not 0 <= value <= MAX_ID:
        raise _err(name, f"{what} {value} outside 0..{MAX_ID}")
    return value


# ---------------------------------------------------------------------------- reader


def iter_entries(
    stream: ByteStream, limits: ReadLimits = DEFAULT_LIMITS
) -> Iterator[tuple[TarEntry, EntryContent]]:
    """Yield ``(entry, content)`` for each member of the tar read from ``stream``.

    ``content`` is valid until the next iteration; unread content is skipped.
    The iteration ends after the end-of-archive marker (two zero blocks, or one
    zero block at EOF) or at a clean EOF on a header boundary (no marker, as
    Go's archive/tar accepts); bytes after a marker are left in ``stream`` and in the internal
    buffer, so a caller hashing the stream must drain ``stream`` afterwards.
    Raises UnsafeLayerError (or a subclass) on any malformed or refused input.
    """
    src = _Source(stream)
    cap = limits.max_header_bytes
    max_entry_size = limits.max_entry_size
    pax: dict[str, bytes] = {}
    # mtime of a PAX header holding nothing else (what our writer puts in
    # front of nearly every member), parsed on the fast path; None otherwise.
    pax_mtime: int | None = None
    long_name: bytes | None = None
    long_link: bytes | None = None
    ext_bytes = 0
    content: EntryContent | None = None
    content_size = 0
    common_numbers = _COMMON_NUMBERS.fullmatch
    pax_mtime_only = _PAX_MTIME_ONLY.fullmatch
    types_get = _TYPES.get
    new_entry = make_entry
    reg = EntryType.REG
    while True:
        if content is not None:
            left = content.remaining + (-content_size % BLOCK)
            content.remaining = 0
            # Inline ``src.skip`` when the rest is buffered (the usual case).
            if src._pos + left <= len(src._buf):
                src._pos += left
                src.consumed += left
            else:
                src.skip(left, content._name)
            content = None
        offset = src.consumed
        # Inline ``src.block`` when a whole block is buffered.
        pos = src._pos
        buf = src._buf
        if pos + BLOCK <= len(buf):
            hdr = buf[pos : pos + BLOCK]
            src._pos = pos + BLOCK
            src.consumed = offset + BLOCK
        else:
            got_hdr = src.block()
            if got_hdr is None:
                # A clean end at a header boundary without the two zero blocks
                # is a complete archive, as Go's archive/tar, containerd and
                # umoci read it (Next returns io.EOF).  A cut inside a header
                # or an entry's content is still an error (block() and chunk()
                # raise).
                if pax or pax_mtime is not None or long_name is not None or long_link is not None:
                    raise _err("", f"extension header not followed by a member at offset {offset}")
                return
            hdr = got_hdr
        if hdr == _ZERO_BLOCK:
            if pax or pax_mtime is not None or long_name is not None or long_link is not None:
                raise _err("", "extension header not followed by a member")
            second = src.block()
            if second is not None and second != _ZERO_BLOCK:
                raise _err("", f"non-zero block after end-of-archive block at offset {offset}")
            return
        # Checksum: the chksum field counts as eight spaces.  Accept the signed
        # variant too (old tars), like Go and GNU tar.  The byte sum comes from
        # adler32 (its low half is 1 + sum mod 65521): exact on 256-byte
        # halves, whose sums cannot reach 65521, and far faster than sum().
        unsigned = (
            (adler32(hdr[:256]) & 0xFFFF)
            + (adler32(hdr[256:]) & 0xFFFF)
            - 2
            - sum(hdr[148:156])
            + 256
        )
        common = common_numbers(hdr, 100, 156)
        if common is not None:
            stored = int(common[6], 8)
        else:
            try:
                stored = _number(hdr[148:156], "checksum", "")
            except UnsafeLayerError:
                stored = -1
        if stored != unsigned:
            signed = unsigned - 256 * sum(1 for b in hdr if b & 0x80)
            signed += 256 * sum(1 for b in hdr[148:156] if b & 0x80)
            if stored != signed:
                raise _err("", f"bad tar header checksum at offset {offset}")
        flag = hdr[156]
        ustar = hdr[257:263] == b"ustar\0"
        nul = hdr.find(0, 0, 100)
        raw_name = hdr[:nul] if nul >= 0 else hdr[:100]
        if ustar and hdr[345] != 0:
            raw_name = _cstr(hdr[345:500]) + b"/" + raw_name
        if common is not None:
            size = int(common[4], 8)
        else:
            size = _number(hdr[124:136], "size", _shown(long_name or raw_name))
            if size < 0:
                raise _err(_shown(long_name or raw_name), f"negative size {size}")
        if flag in (0x78, 0x67, 0x4C, 0x4B):  # x g L K: extension headers
            if size > cap:
                raise _err(
                    _shown(long_name or raw_name),
                    f"extension header of {size} bytes exceeds {cap}",
                )
            ext_bytes += size
            if ext_bytes > cap:
                raise _err(
                    _shown(long_name or raw_name),
                    f"extension headers exceed {cap} bytes for one member",
                )
            padded = size + (-size % BLOCK)
            if flag == 0x78 and not pax and pax_mtime is None and padded == BLOCK:
                # Fast path: a one-block PAX header holding only an mtime
                # record (exactly one well-formed record filling ``size``).
                pos = src._pos
                if pos + BLOCK <= len(src._buf):
                    m = pax_mtime_only(src._buf, pos, pos + size)
                    if m is not None and int(m[1]) == size:
                        src._pos = pos + BLOCK
                        src.consumed += BLOCK
                        frac = m[3]
                        pax_mtime = int(m[2]) * _NS + (int(frac.ljust(9, b"0")) if frac else 0)
                        continue
            shown = _shown(long_name or raw_name)
            if flag == 0x67:
                # PAX global header: ignored, never applied (as Go).  Still
                # validate it so a malformed one is not silently accepted.
                _parse_pax(src.read_exact(size, shown), shown)
                src.skip(padded - size, shown)
                ext_bytes = 0
                continue
            data = src.read_exact(size, shown)
            src.skip(padded - size, shown)
            if flag == 0x78:
                if pax_mtime is not None:
                    # A second PAX header: fold the fast-path one back in.
                    pax["mtime"] = b"%d.%09d" % divmod(pax_mtime, _NS)
                    pax_mtime = None
                pax.update(_parse_pax(data, shown))
            else:
                value = _cstr(data)
                if data[len(value) :].strip(b"\0"):
                    raise _err(shown, "GNU long name contains a NUL byte")
                if flag == 0x4C:
                    long_name = value
                else:
                    long_link = value
            continue
        etype = types_get(flag)
        if etype is None:
            shown = _shown(long_name or raw_name)
            if flag == 0x53 or "GNU.sparse.major" in pax or "GNU.sparse.size" in pax:
                raise SpecialFileError(shown, "sparse files are not supported")
            shown_flag = chr(flag) if 32 <= flag < 127 else f"\\x{flag:02x}"
            raise SpecialFileError(shown, f"unsupported tar type flag {shown_flag!r}")
        if pax and any(k.startswith("GNU.sparse.") for k in pax):
            raise SpecialFileError(_shown(long_name or raw_name), "sparse files are not supported")
        if long_name is not None:
            raw_name = long_name
        if long_link is None:
            nul = hdr.find(0, 157, 257)
            raw_link = hdr[157:nul] if nul >= 0 else hdr[157:257]
        else:
            raw_link = long_link
        if common is not None:
            mode, uid, gid = int(common[1], 8), int(common[2], 8), int(common[3], 8)
            mtime_ns = int(common[5], 8) * _NS
        else:
            shown = _shown(raw_name)
            uid = _number(hdr[108:116], "uid", shown)
            gid = _number(hdr[116:124], "gid", shown)
            mtime_ns = _number(hdr[136:148], "mtime", shown) * _NS
            mode = _number(hdr[100:108], "mode", shown)
        devmajor = devminor = 0
        xattrs: dict[str, bytes] = {}
        if pax_mtime is not None:
            mtime_ns = pax_mtime
            pax_mtime = None
        elif pax:
            shown = _shown(raw_name)
            for key, value in pax.items():
                if key == "path":
                    if b"\0" in value:
                        raise _err(shown, "PAX path contains a NUL byte")
                    if value:
                        raw_name = value
                elif key == "linkpath":
                    if b"\0" in value:
                        raise _err(shown, "PAX linkpath contains a NUL byte")
                    if value:
                        raw_link = value
                elif key == "size":
                    if value:
                        size = _decimal(value, key, shown)
                elif key == "uid":
                    if value:
                        uid = _decimal(value, key, shown)
                elif key == "gid":
                    if value:
                        gid = _decimal(value, key, shown)
                elif key == "mtime":
                    if value:
                        mtime_ns = _pax_time(value, shown)
                elif key.startswith(_XATTR_PREFIX):
                    xname = key[len(_XATTR_PREFIX) :]
                    if not xname:
                        raise _err(shown, "PAX xattr record without a name")
                    xattrs[xname] = value
            pax = {}
        long_name = long_link = None
        ext_bytes = 0
        if etype is reg and flag == 0 and raw_name.endswith(b"/"):
            etype = EntryType.DIR  # old (v7) style directory
        shown = _shown(raw_name)
        name = _clean(raw_name, shown)
        if name == "" and etype is not EntryType.DIR:
            raise _err(
                shown or ".",
                f"root entry of type {etype.value} (only a directory may name the root)",
            )
        if not (0 <= uid <= MAX_ID and 0 <= gid <= MAX_ID):
            _check_id(uid, "uid", shown)
            _check_id(gid, "gid", shown)
        if max_entry_size is not None and size > max_entry_size:
            raise _err(shown, f"size {size} exceeds the limit {max_entry_size}")
        linkname = ""
        if etype is reg:
            data_size = size
        else:
            data_size = 0  # every other type carries no data (as Go)
            if etype is EntryType.HARDLINK:
                linkname = _clean(raw_link, shown, link=True)
                if not linkname:
                    raise LinkEscapeError(shown, "hardlink to the root directory")
            elif etype is EntryType.SYMLINK:
                if b"\0" in raw_link:
                    raise _err(shown, "symlink target contains a NUL byte")
                if not raw_link:
                    raise _err(shown, "empty symlink target")
                linkname = raw_link.decode("utf-8", "surrogateescape")
            elif etype is EntryType.CHAR or etype is EntryType.BLOCK:
                devmajor = _number(hdr[329:337], "devmajor", shown)
                devminor = _number(hdr[337:345], "devminor", shown)
                if not (0 <= devmajor <= MAX_DEV and 0 <= devminor <= MAX_DEV):
                    raise SpecialFileError(shown, "device number out of range")
        entry = new_entry(
            name,
            etype,
            mode & 0o7777,
            uid,
            gid,
            data_size,
            mtime_ns,
            linkname,
            devmajor,
            devminor,
            xattrs,
        )
        content = EntryContent(src, data_size, shown)
        content_size = data_size
        yield entry, content


__all__ = [
    "BLOCK",
    "DEFAULT_LIMITS",
    "MAX_ID",
    "ByteStream",
    "EntryContent",
    "ReadLimits",
    "iter_entries",
]
