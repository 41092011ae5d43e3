"""Layer codecs: gzip, zstd and none, as streams.

gzip uses ISA-L (the ``isal`` package) when present: it writes standard gzip
and runs an order of magnitude faster than zlib; the stdlib is the fallback.
Output is deterministic for a given codec, level and library: the gzip header
carries no file name and mtime 0.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Protocol, cast

from oci_tools.errors import UnsupportedMediaTypeError, UsageError
from oci_tools.mediatype import LAYER_CODECS

CODECS = ("gzip", "zstd", "none")
#: Default compression levels: fast settings that still compress well.
DEFAULT_LEVEL = {"gzip": 1, "zstd": 3, "none": 0}
#: zstd frames may ask for a huge window; refuse more than 128 MiB (bomb guard).
ZSTD_MAX_WINDOW = 1 << 27


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
        return cast(BinaryIO, dctx.stream_reader(raw, read_across_frames=True))
    raise UnsupportedMediaTypeError(codec, "compression")


class _ZstdWriter(io.RawIOBase):
    """zstd frame writer that leaves the underlying stream open on close."""

    def __init__(self, out: Writable, level: int) -> None:
        import zstandard

        self._out = out
        self._cobj = zstandard.ZstdCompressor(level=level).compressobj()

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
    """Deterministic gzip writer (no name, mtime 0) that leaves ``out`` open."""

    def __init__(self, out: Writable, level: int) -> None:
        self._out = out
        try:
            from isal import isal_zlib

            self._cobj = isal_zlib.compressobj(level, isal_zlib.DEFLATED, 31)
        except ImportError:  # pragma: no cover - isal is a declared dependency
            import zlib

            self._cobj = zlib.compressobj(level, zlib.DEFLATED, 31)  # type: ignore[assignment]

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | memoryview) -> int:  # type: ignore[override]
        chunk = self._cobj.compress(bytes(data) if isinstance(data, memoryview) else data)
        if chunk:
            self._out.write(chunk)
        return len(data)

    def close(self) -> None:
        if not self.closed:
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


def compressor(codec: str, out: Writable, level: int | None = None) -> io.RawIOBase:
    """A writable stream that compresses into ``out``; ``close()`` flushes the
    trailer but does not close ``out``."""
    lvl = DEFAULT_LEVEL[check_codec(codec)] if level is None else level
    if codec == "gzip":
        return _GzipWriter(out, lvl)
    if codec == "zstd":
        return _ZstdWriter(out, lvl)
    return _PlainWriter(out)
