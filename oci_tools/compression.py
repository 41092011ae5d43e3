"""Layer codecs: gzip, zstd and none, as streams.

gzip uses ISA-L (the ``isal`` package) when present: it writes standard gzip
and runs an order of magnitude faster than zlib; the stdlib is the fallback.
Output is deterministic for a given codec, level and library: the gzip header
carries no file name and mtime 0, and the output only depends on the bytes
written, never on how they were split into ``write`` calls: ISA-L's output
does depend on the pieces it is given, so the gzip writer feeds it fixed
``GZIP_BLOCK`` blocks; zstd always runs in its multi-threaded mode, whose
output is the same for any number of worker threads.

``PipeWriter`` and ``ReadAhead`` move the codec work to a second thread (the
codecs and hashlib release the GIL), so producing a stream and compressing it,
or decompressing a stream and using it, run on two cores.  They change where
the work runs, never the bytes.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO, Protocol, cast

if TYPE_CHECKING:
    import queue

from oci_tools.errors import UnsupportedMediaTypeError, UsageError
from oci_tools.spec.mediatype import LAYER_CODECS

CODECS = ("gzip", "zstd", "none")
#: Default compression levels: fast settings that still compress well.
DEFAULT_LEVEL = {"gzip": 1, "zstd": 3, "none": 0}
#: zstd frames may ask for a huge window; refuse more than 128 MiB (bomb guard).
ZSTD_MAX_WINDOW = 1 << 27
#: ISA-L is handed exactly this many bytes per call (the last block may be
#: shorter).  Not more: the larger ISA-L's output pieces, the more they
#: fragment glibc's heap (1 MiB blocks grew the RSS of a 2 GiB commit to
#: 130 MB; 256 KiB blocks keep it flat, at the same speed and ratio).
GZIP_BLOCK = 1 << 18
#: zstd worker threads.  Any value >= 1 gives the same bytes (zstd's
#: multi-threaded mode cuts jobs by size, not by thread); 0, the single-threaded
#: mode, would give other bytes, so it is never used.
ZSTD_THREADS = max(1, min(4, os.cpu_count() or 1))


class Writable(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


def codec_for_media_type(media_type: str) -> str:
    """The codec of a layer media type; UnsupportedMediaTypeError when unknown."""
    try:
        return LAYER_CODECS[media_type]
    except KeyError:
        raise UnsupportedMediaTypeError(media_type, "a layer") from None


def check_codec(name: str) -> str:
    """Validate a codec name given by a user."""
    if name not in CODECS:
        raise UsageError(f"unknown compression {name!r} (choose from {', '.join(CODECS)})")
    return name


def decompressor(codec: str, raw: BinaryIO) -> BinaryIO:
    """A readable stream of the decompressed bytes of ``raw``.

    gzip accepts multi-member streams (as gzip(1) does).
    """
    if codec == "none":
        return raw
    if codec == "gzip":
        try:
            from isal import igzip

            return cast(BinaryIO, igzip.GzipFile(fileobj=raw, mode="rb"))  # type: ignore[no-untyped-call]
        except ImportError:  # pragma: no cover - isal is a declared dependency
            import gzip

            return cast(BinaryIO, gzip.GzipFile(fileobj=raw, mode="rb"))
    if codec == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        checked = _ZstdFrameCheck(raw)
        return cast(BinaryIO, dctx.stream_reader(cast(BinaryIO, checked), read_across_frames=True))
    raise UnsupportedMediaTypeError(codec, "compression")


_ZSTD_MAGIC = 0xFD2FB528
#: Bytes of the rest of a frame header after its descriptor byte, by the
#: descriptor's fields (RFC 8878 §3.1.1.1): dictionary id and content size.
_ZSTD_DICT_ID = (0, 1, 2, 4)
_ZSTD_FCS = (0, 2, 4, 8)


class _ZstdFrameCheck:
    """Passes ``raw`` through while walking its zstd frame structure.

    python-zstandard's stream reader ends silently when its input stops in
    the middle of a frame (it just returns ``b""``), so a cut blob would look
    like a shorter, valid stream.  Only the frame and block headers are
    parsed (RFC 8878), never the data; at EOF the walk must sit between
    frames, else EOFError (as Go's decoder reports io.ErrUnexpectedEOF).
    """

    __slots__ = ("_checksum", "_need", "_pending", "_raw", "_skip", "_state")

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = bytearray()
        self._skip = 0
        self._state = "magic"
        self._need = 4
        self._checksum = False

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes of ``raw``; EOFError at an EOF inside a frame."""
        data = self._raw.read(n)
        if data:
            self._feed(data)
        elif self._skip or self._pending or self._state != "magic":
            raise EOFError("zstd stream ends inside a frame (truncated)")
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        """``read`` into ``buf``."""
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        """Always true (io protocol)."""
        return True

    def _feed(self, data: bytes) -> None:
        i, end = 0, len(data)
        while i < end:
            if self._skip:
                step = min(self._skip, end - i)
                self._skip -= step
                i += step
                continue
            take = min(self._need - len(self._pending), end - i)
            self._pending += data[i : i + take]
            i += take
            if len(self._pending) < self._need:
                return
            self._header(int.from_bytes(self._pending, "little"))
            self._pending.clear()

    def _header(self, value: int) -> None:
        state = self._state
        if state == "magic":
            if value == _ZSTD_MAGIC:
                self._state, self._need = "descriptor", 1
            elif value & 0xFFFFFFF0 == 0x184D2A50:  # skippable frame
                self._state, self._need = "skippable", 4
            else:
                raise EOFError(f"not a zstd frame (magic {value:#010x})")
        elif state == "skippable":
            self._skip = value
            self._state, self._need = "magic", 4
        elif state == "descriptor":
            single_segment = bool(value & 0x20)
            fcs = _ZSTD_FCS[value >> 6] or (1 if single_segment else 0)
            self._skip = (0 if single_segment else 1) + _ZSTD_DICT_ID[value & 3] + fcs
            self._checksum = bool(value & 0x04)
            self._state, self._need = "block", 3
        else:  # block header: last flag, type, size
            btype = (value >> 1) & 3
            if btype == 3:
                raise EOFError("reserved zstd block type")
            self._skip = 1 if btype == 1 else value >> 3
            if value & 1:
                self._skip += 4 if self._checksum else 0
                self._state, self._need = "magic", 4


class _ZstdWriter(io.RawIOBase):
    """zstd frame writer that leaves the underlying stream open on close."""

    def __init__(self, out: Writable, level: int, threads: int = ZSTD_THREADS) -> None:
        import zstandard

        self._out = out
        self._cobj = zstandard.ZstdCompressor(level=level, threads=max(1, threads)).compressobj()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        chunk = self._cobj.compress(bytes(data))
        if chunk:
            self._out.write(chunk)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._out.write(self._cobj.flush())
        super().close()


class _GzipWriter(io.RawIOBase):
    """Deterministic gzip writer (no name, mtime 0) that leaves ``out`` open.

    Input reaches the compressor in blocks of exactly ``GZIP_BLOCK`` bytes,
    whatever the sizes of the writes: the same stream gives the same bytes.
    """

    def __init__(self, out: Writable, level: int) -> None:
        self._out = out
        self._pending = bytearray()
        try:
            from isal import isal_zlib

            self._cobj = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        except ImportError:  # pragma: no cover - isal is a declared dependency
            import zlib

            self._cobj = zlib.compressobj(level, zlib.DEFLATED, 31)  # type: ignore[assignment]

    def writable(self) -> bool:
        return True

    def _block(self, block: bytes | bytearray | memoryview) -> None:
        chunk = self._cobj.compress(block)
        if chunk:
            self._out.write(chunk)

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        n = len(data)
        pending = self._pending
        start = 0
        if pending:
            need = GZIP_BLOCK - len(pending)
            if n < need:
                pending += data
                return n
            pending += data[:need]
            self._block(pending)
            pending.clear()
            start = need
        view = memoryview(data)
        while n - start >= GZIP_BLOCK:
            # Whole blocks straight from the caller's buffer, without a copy.
            self._block(view[start : start + GZIP_BLOCK])
            start += GZIP_BLOCK
        if start < n:
            pending += view[start:]
        return n

    def close(self) -> None:
        if not self.closed:
            if self._pending:
                self._block(self._pending)
                self._pending.clear()
            self._out.write(self._cobj.flush())
        super().close()


class _PlainWriter(io.RawIOBase):
    def __init__(self, out: Writable) -> None:
        self._out = out

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        self._out.write(data)
        return len(data)


class PipeWriter:
    """A writable stream whose writes reach ``sink`` on a worker thread.

    ``sink.write`` is called with the very same pieces, in the same order, so
    what ``sink`` produces does not change; it just runs on another core while
    the caller produces the next piece.  At most ``depth`` pieces wait in
    between (memory stays bounded).  An exception raised by ``sink`` is raised
    again by the next ``write`` or by ``close``.  ``close`` waits until ``sink``
    has everything (it does not close ``sink``); after a failure of the
    producer, ``abort`` stops the worker without finishing.
    """

    def __init__(self, sink: Writable, *, depth: int = 8) -> None:
        import queue  # here, not at the top: views and other readers never need them
        import threading

        self._sink = sink
        self._queue: queue.Queue[bytes | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._stop = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name="oci-tools-pipe", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        get = self._queue.get
        write = self._sink.write
        try:
            while (item := get()) is not None:
                if self._stop:
                    continue
                write(item)
        except BaseException as exc:  # handed to the producer thread
            self._error = exc
            while get() is not None:  # keep unblocking the producer until it stops
                pass

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        if self._error is not None:
            raise self._error
        if self._done:
            raise ValueError("write to a closed PipeWriter")
        # The worker reads the piece later: it must not change in between.
        piece = data if type(data) is bytes else bytes(data)
        self._queue.put(piece)
        return len(piece)

    def _finish(self) -> None:
        if not self._done:
            self._done = True
            self._queue.put(None)
            self._thread.join()

    def close(self) -> None:
        """Wait until ``sink`` has every piece; raise what the worker raised."""
        self._finish()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        """Stop: queued pieces are dropped, errors of the worker ignored."""
        self._stop = True
        self._finish()


class ReadAhead:
    """A readable stream filled by a worker thread calling ``read(chunk)``.

    The worker keeps up to ``depth`` chunks ready while the caller works on the
    previous ones; with a decompressing, hashing ``read`` that puts the codec on
    a second core.  The bytes, their order and the exceptions (raised where
    they happened in the stream) are those of ``read``.  Call ``close`` when
    done (also after an error): it stops the worker and waits for it, so the
    underlying stream is no longer used by the time ``close`` returns.
    """

    def __init__(
        self, read: Callable[[int], bytes], *, chunk: int = 1 << 20, depth: int = 4
    ) -> None:
        import queue
        import threading

        self._read = read
        self._chunk = chunk
        self._queue: queue.Queue[bytes | BaseException] = queue.Queue(depth)
        self._stop = False
        self._buf = b""
        self._pos = 0
        self._eof = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="oci-tools-readahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        put = self._queue.put
        try:
            while not self._stop:
                data = self._read(self._chunk)
                put(data)
                if not data:
                    return
        except BaseException as exc:  # raised again in the reader's thread
            put(exc)

    def read(self, n: int = -1, /) -> bytes:
        """Up to ``n`` bytes (everything left when negative); ``b""`` at EOF."""
        if n is None or n < 0:
            parts = [self._buf[self._pos :]]
            self._buf, self._pos = b"", 0
            while chunk := self._next():
                parts.append(chunk)
            return b"".join(parts)
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._next(), 0
        pos = self._pos
        if pos == 0 and n >= len(self._buf):
            data, self._buf = self._buf, b""
            return data
        self._pos = min(len(self._buf), pos + n)
        return self._buf[pos : self._pos]

    def _next(self) -> bytes:
        if self._error is not None:
            raise self._error
        if self._eof:
            return b""
        item = self._queue.get()
        if isinstance(item, BaseException):
            self._error = item
            raise item
        if not item:
            self._eof = True
        return item

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read to EOF, discarding."""
        self._buf, self._pos = b"", 0
        while self._next():
            pass

    def close(self) -> None:
        """Stop the worker (it may be blocked on a full queue) and wait for it."""
        self._stop = True
        import queue

        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        self._eof = True


def compressor(codec: str, out: Writable, level: int | None = None) -> io.RawIOBase:
    """A writable stream that compresses into ``out``; ``close()`` flushes the
    trailer but does not close ``out``."""
    lvl = DEFAULT_LEVEL[check_codec(codec)] if level is None else level
    if codec == "gzip":
        return _GzipWriter(out, lvl)
    if codec == "zstd":
        return _ZstdWriter(out, lvl)
    return _PlainWriter(out)
