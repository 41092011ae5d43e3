"""Deterministic tar writer for layers: our own header encoder, not ``tarfile``.

The same entries and contents always give the same bytes, so a layer's
diff_id only depends on what it contains.  The format is fixed as follows:

* ustar headers (magic ``ustar\\0``, version ``00``); numeric fields are
  zero-padded octal terminated by NUL; the checksum is six octal digits, NUL,
  space.  ``uname``/``gname`` and the ``prefix`` field are always empty.
* uid/gid are numeric only; mode is ``mode & 0o7777`` (the type lives in the
  type flag); ``devmajor``/``devminor`` are written for devices only and are
  left as NUL bytes otherwise.
* Directory names end with ``/``; the root directory (name ``""``) is ``./``.
* A PAX extended header (type ``x``, name ``@PaxHeader``, mode 0644, owner
  0:0, mtime 0) precedes an entry only when the entry needs one, with records
  in byte-wise sorted key order:

  - ``path`` / ``linkpath``: names longer than 100 bytes or not plain ASCII
    (``hdrcharset=BINARY`` is added only when one of them is not UTF-8);
  - ``uid`` / ``gid`` / ``size``: values too large for their octal field;
  - ``mtime``: exact decimal seconds, only when the nanosecond part is not zero
    (or the seconds do not fit the octal field); nanoseconds therefore
    round-trip, and whole-second times cost nothing;
  - ``SCHILY.xattr.NAME``: raw value bytes; empty values are skipped because
    a PAX record with an empty value means "unset".

  The ustar fields of such an entry carry an ASCII, truncated stand-in name
  and 0 for numbers that did not fit.
* Regular-file content follows its header, padded with zeros to 512 bytes; it
  is streamed in 1 MiB chunks and must be exactly ``entry.size`` bytes long.
* ``close()`` writes exactly two 512-byte zero blocks and no record padding.

``write_layer`` runs a whole layer through the writer and a compressor in one
pass, hashing the uncompressed tar (diff_id) and the compressed blob (digest)
on the way; hashing, compressing and storing run on a second thread
(``PipeWriter``) while the first one walks, reads and encodes.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable
from typing import BinaryIO
from zlib import adler32

from oci_tools.compression import PipeWriter, Writable, compressor
from oci_tools.digest import Digest, Hasher
from oci_tools.errors import DigestMismatchError, OCIToolsError
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.records import record

BLOCK_SIZE = 512
#: Content is read and written in chunks of this size.
CHUNK_SIZE = 1 << 20
#: Headers and small contents are gathered and written in pieces of about this
#: size: one gzip block (``GZIP_BLOCK``), as each piece crosses to the
#: PipeWriter's thread through a queue (at 64 KiB a 100k-file commit made 71k
#: futex calls, 28k at 256 KiB).
_FLUSH_AT = 1 << 18

_TYPEFLAGS = {
    EntryType.REG: b"0",
    EntryType.HARDLINK: b"1",
    EntryType.SYMLINK: b"2",
    EntryType.CHAR: b"3",
    EntryType.BLOCK: b"4",
    EntryType.DIR: b"5",
    EntryType.FIFO: b"6",
}
_NAME_LEN = 100
_MAX_ID = 0o7777777  # 7 octal digits + NUL in an 8-byte field
_MAX_SIZE = 0o77777777777  # 11 octal digits + NUL in a 12-byte field
_MAX_TIME = _MAX_SIZE
_NS = 1_000_000_000
_PAX_NAME = b"@PaxHeader"
_ZERO_BLOCK = bytes(BLOCK_SIZE)
_NUL100 = bytes(100)
#: Header bytes after the magic and version (uname, gname, device numbers,
#: prefix, padding): all NUL, or the device numbers at 329..345.
_PLAIN_TAIL = bytes(BLOCK_SIZE - 265)
_DEVICE_GAP = bytes(329 - 265)
_DEVICE_TAIL = bytes(BLOCK_SIZE - 345)


@functools.lru_cache(maxsize=64)
def _pax_header(size: int) -> bytes:
    """The header of a PAX extended header of ``size`` bytes (all else fixed)."""
    return TarWriter._header(
        name=_PAX_NAME, mode=0o644, uid=0, gid=0, size=size, mtime=0, typeflag=b"x"
    )


def _checksum(block: bytes) -> int:
    """Sum of the 512 header bytes.  adler32's low half is 1 + the byte sum
    mod 65521; 256 bytes sum to at most 65280, so per half it is exact."""
    return (adler32(block[:256]) & 0xFFFF) + (adler32(block[256:]) & 0xFFFF) - 2


def _invalid(name: str, reason: str) -> ValueError:
    """An entry the caller should never have built (a bug, not bad data)."""
    return ValueError(f"cannot write tar entry {name!r}: {reason}")


def _pax_record(key: bytes, value: bytes) -> bytes:
    """One ``"<len> <key>=<value>\\n"`` record; ``len`` counts the whole record,
    its own digits included, so iterate until the digit count is stable."""
    body = b" %s=%s\n" % (key, value)
    length = len(body) + len(b"%d" % len(body))
    while len(b"%d" % length) + len(body) != length:
        length = len(b"%d" % length) + len(body)
    return b"%d%s" % (length, body)


def _pax_time(ns: int) -> bytes:
    """Exact decimal seconds for a nanosecond timestamp, trailing zeros dropped."""
    secs, frac = divmod(abs(ns), _NS)
    text = b"-%d" % secs if ns < 0 else b"%d" % secs
    if frac:
        text += b".%s" % (b"%09d" % frac).rstrip(b"0")
    return text


def size_changed(name: str, expected: int, got: int) -> DigestMismatchError:
    """The error for a file whose content is not the ``expected`` bytes it was
    measured at: ``got`` more (read one byte past the size) or fewer."""
    grew = got > expected
    return DigestMismatchError(
        f"size of {name}",
        expected=str(expected),
        actual=f"more than {expected}" if grew else str(got),
        hint=f"the file {'grew' if grew else 'shrank'} while the layer was written",
    )


def _ascii_stand_in(raw: bytes, limit: int) -> bytes:
    """What goes in a fixed-size ustar field when the real value is in a PAX
    record: readers that ignore PAX still get something printable."""
    return bytes(b if 0x20 <= b < 0x7F else 0x5F for b in raw[:limit])


def _needs_pax_string(raw: bytes) -> bool:
    return len(raw) > _NAME_LEN or not raw.isascii()


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


class TarWriter:
    """Write layer entries to a binary stream as a deterministic tar.

    ``out`` only needs ``write``; it is never closed.  Small writes are gathered
    in a buffer, so call ``close()`` (or ``flush()``) before reading ``out``.
    """

    def __init__(self, out: Writable) -> None:
        self._out = out
        self._buf = bytearray()
        self._closed = False
        #: Number of entries written so far (PAX headers not counted).
        self.entries = 0

    # -- output --------------------------------------------------------------

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= _FLUSH_AT:
            self.flush()
            self._out.write(bytes(data) if isinstance(data, bytearray) else data)
            return
        self._buf += data
        if len(self._buf) >= _FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        """Hand everything buffered so far to ``out``."""
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()

    # -- headers -------------------------------------------------------------

    @staticmethod
    def _header(
        *,
        name: bytes,
        mode: int,
        uid: int,
        gid: int,
        size: int,
        mtime: int,
        typeflag: bytes,
        linkname: bytes = b"",
        device: tuple[int, int] | None = None,
    ) -> bytes:
        # One join of the fixed layout (name and linkname are at most 100
        # bytes here: longer ones went to a PAX record), then the checksum.
        tail = (
            _PLAIN_TAIL if device is None else _DEVICE_GAP + b"%07o\0%07o\0" % device + _DEVICE_TAIL
        )
        block = b"".join(
            (
                name,
                _NUL100[len(name) :],
                b"%07o\0%07o\0%07o\0%011o\0%011o\0        " % (mode, uid, gid, size, mtime),
                typeflag,
                linkname,
                _NUL100[len(linkname) :],
                b"ustar\x0000",
                tail,
            )
        )
        return block[:148] + b"%06o\0 " % _checksum(block) + block[156:]

    def add(self, entry: TarEntry, content: BinaryIO | None = None) -> None:
        """Append one entry; ``content`` (regular files only) must yield exactly
        ``entry.size`` bytes."""
        if self._closed:
            raise _invalid(entry.name, "the archive is already closed")
        typeflag = _TYPEFLAGS.get(entry.type)
        if typeflag is None:  # pragma: no cover - EntryType is closed
            raise _invalid(entry.name, f"unsupported type {entry.type}")
        is_reg = entry.type is EntryType.REG
        if not is_reg and content is not None:
            raise _invalid(entry.name, f"a {entry.type.value} entry has no content")
        if is_reg and content is None and entry.size != 0:
            raise _invalid(entry.name, "content is missing")

        name = _encode(entry.name)
        if not name:
            if entry.type is not EntryType.DIR:
                raise _invalid(entry.name, "only the root directory may have an empty name")
            name = b"./"
        elif entry.type is EntryType.DIR:
            name += b"/"
        if name.startswith(b"/") or b"\0" in name:
            raise _invalid(entry.name, "names must be relative and contain no NUL")
        linkname = _encode(entry.linkname)
        if b"\0" in linkname:
            raise _invalid(entry.name, "link targets cannot contain NUL")
        if entry.type in (EntryType.HARDLINK, EntryType.SYMLINK) and not linkname:
            raise _invalid(entry.name, "a link needs a target")

        if self._add_common(entry, typeflag, name, linkname, content):
            return

        pax: dict[bytes, bytes] = {}
        binary = False
        if _needs_pax_string(name):
            pax[b"path"] = name
            binary = not _is_utf8(name)
            name = _ascii_stand_in(name, _NAME_LEN)
        if _needs_pax_string(linkname):
            pax[b"linkpath"] = linkname
            binary = binary or not _is_utf8(linkname)
            linkname = _ascii_stand_in(linkname, _NAME_LEN)
        if binary:
            pax[b"hdrcharset"] = b"BINARY"

        uid, gid = entry.uid, entry.gid
        for key, number in ((b"uid", uid), (b"gid", gid)):
            if number < 0:
                raise _invalid(entry.name, f"negative {key.decode()}")
            if number > _MAX_ID:
                pax[key] = str(number).encode("ascii")
        uid = uid if uid <= _MAX_ID else 0
        gid = gid if gid <= _MAX_ID else 0

        size = entry.size if is_reg else 0
        if size < 0:
            raise _invalid(entry.name, "negative size")
        if size > _MAX_SIZE:
            pax[b"size"] = str(size).encode("ascii")
        field_size = size if size <= _MAX_SIZE else 0

        secs = entry.mtime_ns // _NS
        if entry.mtime_ns % _NS or not 0 <= secs <= _MAX_TIME:
            pax[b"mtime"] = _pax_time(entry.mtime_ns)
        field_mtime = secs if 0 <= secs <= _MAX_TIME else 0

        for xname in sorted(entry.xattrs):
            value = entry.xattrs[xname]
            if not value:
                continue
            key = b"SCHILY.xattr." + _encode(xname)
            if b"=" in key or b"\n" in key:
                # Such a name would end the PAX key early: refuse rather than corrupt.
                raise OCIToolsError(
                    f"cannot store xattr {xname!r} of {entry.name!r} in a tar",
                    hint="PAX keys cannot contain '=' or a newline; remove the attribute",
                )
            pax[key] = bytes(value)

        device: tuple[int, int] | None = None
        if entry.type in (EntryType.CHAR, EntryType.BLOCK):
            if not (0 <= entry.devmajor <= _MAX_ID and 0 <= entry.devminor <= _MAX_ID):
                raise _invalid(entry.name, "device numbers out of range")
            device = (entry.devmajor, entry.devminor)

        if pax:
            records = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
            self._write(
                self._header(
                    name=_PAX_NAME,
                    mode=0o644,
                    uid=0,
                    gid=0,
                    size=len(records),
                    mtime=0,
                    typeflag=b"x",
                )
            )
            self._write(records)
            self._pad(len(records))

        self._write(
            self._header(
                name=name,
                mode=entry.mode & 0o7777,
                uid=uid,
                gid=gid,
                size=field_size,
                mtime=field_mtime,
                typeflag=typeflag,
                linkname=linkname,
                device=device,
            )
        )
        if is_reg and content is not None:
            self._copy(entry, content)
        self.entries += 1

    def _add_common(
        self,
        entry: TarEntry,
        typeflag: bytes,
        name: bytes,
        linkname: bytes,
        content: BinaryIO | None,
    ) -> bool:
        """The same bytes as the general path of ``add`` for the entries
        nearly every layer is made of (short ASCII names, ids and size that
        fit their fields, no xattrs, no device; at most a PAX ``mtime``), in
        one write and with a cached PAX header; False for anything else."""
        uid, gid, size, ns = entry.uid, entry.gid, entry.size, entry.mtime_ns
        if (
            entry.xattrs
            or typeflag in (b"3", b"4")
            or len(name) > _NAME_LEN
            or len(linkname) > _NAME_LEN
            or not name.isascii()
            or not linkname.isascii()
            or not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID and 0 <= size <= _MAX_SIZE)
        ):
            return False
        secs, frac = divmod(ns, _NS)
        if not 0 <= secs <= _MAX_TIME:
            return False
        is_reg = typeflag == b"0"
        head = self._header(
            name=name,
            mode=entry.mode & 0o7777,
            uid=uid,
            gid=gid,
            size=size if is_reg else 0,
            mtime=secs,
            typeflag=typeflag,
            linkname=linkname,
        )
        buf = self._buf
        if frac:
            record = _pax_record(b"mtime", _pax_time(ns))
            n = len(record)
            buf += _pax_header(n)
            buf += record
            buf += _ZERO_BLOCK[: -n % BLOCK_SIZE]
        buf += head
        if is_reg and content is not None:
            if size <= _FLUSH_AT and type(content) is io.BytesIO:
                # Small content read whole by the caller: no read loop.
                data = content.read(size)
                got = len(data) + len(content.read(1))  # size + 1: it grew
                if got != size:
                    raise size_changed(entry.name, size, got)
                buf += data
                buf += _ZERO_BLOCK[: -size % BLOCK_SIZE]
            else:
                self._copy(entry, content)
        if len(buf) >= _FLUSH_AT:
            self.flush()
        self.entries += 1
        return True

    def _pad(self, length: int) -> None:
        rest = length % BLOCK_SIZE
        if rest:
            self._write(_ZERO_BLOCK[: BLOCK_SIZE - rest])

    def _copy(self, entry: TarEntry, content: BinaryIO) -> None:
        remaining = entry.size
        while remaining:
            chunk = content.read(min(CHUNK_SIZE, remaining))
            if not chunk:
                raise size_changed(entry.name, entry.size, entry.size - remaining)
            self._write(chunk)
            remaining -= len(chunk)
        # One more byte tells a file that grew after it was measured.
        if content.read(1):
            raise size_changed(entry.name, entry.size, entry.size + 1)
        self._pad(entry.size)

    def close(self) -> None:
        """Write the end-of-archive marker (two zero blocks) and flush.
        ``out`` stays open."""
        if self._closed:
            return
        self._write(_ZERO_BLOCK * 2)
        self.flush()
        self._closed = True


# -- one-pass layer writing -----------------------------------------------------


@record
class LayerInfo:
    """What a layer descriptor and an image config need to know about a layer."""

    digest: Digest  # of the blob as stored (compressed)
    size: int  # of the blob as stored
    diff_id: Digest  # of the uncompressed tar
    uncompressed_size: int
    codec: str
    entries: int


class _HashingWriter:
    """Forward writes to ``out`` while hashing them."""

    def __init__(self, out: Writable) -> None:
        self._out = out
        self.hasher = Hasher()

    def write(self, data: bytes | memoryview, /) -> int:
        self.hasher.update(data)
        self._out.write(data)
        return len(data)


def _hashed(out: Writable) -> tuple[Writable, Hasher]:
    """``out`` and a hasher of everything written to it from now on: the
    store writer's own sha256 when it keeps one and nothing was written yet
    (so the blob is not hashed twice), else a hashing wrapper."""
    own = getattr(out, "hasher", None)
    if isinstance(own, Hasher) and own.algorithm == "sha256" and own.size == 0:
        return out, own
    wrapper = _HashingWriter(out)
    return wrapper, wrapper.hasher


def _write_all(writer: TarWriter, entries: Iterable[tuple[TarEntry, BinaryIO | None]]) -> None:
    it = iter(entries)
    try:
        for entry, content in it:
            writer.add(entry, content)
    finally:
        # A generator source holds open files and directory fds: release them
        # now, also when the writer failed half way.
        close = getattr(it, "close", None)
        if close is not None:
            close()
    writer.close()


def _piped(sink: Writable, entries: Iterable[tuple[TarEntry, BinaryIO | None]]) -> TarWriter:
    """Write the tar of ``entries`` into ``sink`` through a PipeWriter: this
    thread walks, reads and encodes while a worker hashes, compresses and
    stores (same pieces, same order: the same bytes as without the thread)."""
    return _write_through(PipeWriter(sink), entries)


def _write_through(
    out: PipeWriter | _FanOut, entries: Iterable[tuple[TarEntry, BinaryIO | None]]
) -> TarWriter:
    """The tar of ``entries`` into the worker thread(s) of ``out``: closed
    when every entry is in, aborted (workers stopped) on any failure."""
    writer = TarWriter(out)
    try:
        _write_all(writer, entries)
        out.close()
    except BaseException:
        out.abort()
        raise
    return writer


class _HashSink:
    """A writable that only hashes."""

    def __init__(self) -> None:
        self.hasher = Hasher()

    def write(self, data: bytes | memoryview, /) -> int:
        self.hasher.update(data)
        return len(data)


class _FanOut:
    """Hand every piece to two PipeWriters (two worker threads): the
    compressor's and the tar hasher's.  Each sees the same pieces in the same
    order, so each result is what one thread would give."""

    def __init__(self, first: PipeWriter, second: PipeWriter) -> None:
        self._pipes = (first, second)

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        piece = data if type(data) is bytes else bytes(data)
        for pipe in self._pipes:
            pipe.write(piece)
        return len(piece)

    def close(self) -> None:
        first, second = self._pipes
        try:
            first.close()
        finally:
            second.close()

    def abort(self) -> None:
        for pipe in self._pipes:
            pipe.abort()


def _piped_hashed(
    comp: Writable, entries: Iterable[tuple[TarEntry, BinaryIO | None]]
) -> tuple[TarWriter, Hasher]:
    """``_piped`` into ``comp`` with the tar hashed on a thread of its own:
    compressing is the longest job of a commit of big files, and the diff_id's
    sha256 (which releases the GIL) then runs beside it instead of after it."""
    sink = _HashSink()
    return _write_through(_FanOut(PipeWriter(comp), PipeWriter(sink)), entries), sink.hasher


def write_layer(
    entries: Iterable[tuple[TarEntry, BinaryIO | None]],
    out: Writable,
    codec: str = "gzip",
    *,
    level: int | None = None,
) -> LayerInfo:
    """Write ``entries`` as a compressed layer blob to ``out`` in one pass.

    The tar bytes are hashed on their way into the compressor (diff_id) and the
    compressed bytes on their way into ``out`` (digest).  ``out`` is not closed.
    With codec ``none`` the two digests are one and the same.
    """
    blob, blob_hash = _hashed(out)
    if codec == "none":
        writer = _piped(blob, entries)
        digest = blob_hash.digest()
        return LayerInfo(digest, blob_hash.size, digest, blob_hash.size, codec, writer.entries)
    comp = compressor(codec, blob, level)
    writer, tar_hash = _piped_hashed(comp, entries)
    comp.close()
    return LayerInfo(
        blob_hash.digest(),
        blob_hash.size,
        tar_hash.digest(),
        tar_hash.size,
        codec,
        writer.entries,
    )


__all__ = ["BLOCK_SIZE", "CHUNK_SIZE", "LayerInfo", "TarWriter", "write_layer"]
