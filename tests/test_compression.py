"""compression: codecs round-trip and give bytes independent of write sizes and
thread counts; the PipeWriter / ReadAhead threads keep order, raise errors
where they happened and shut down cleanly."""

from __future__ import annotations

import gzip
import io
import random
import threading

import pytest
from builders import mixed_data

from oci_tools import compression
from oci_tools.compression import (
    GZIP_BLOCK,
    PipeWriter,
    ReadAhead,
    check_codec,
    codec_for_media_type,
    compressor,
    decompressor,
)
from oci_tools.errors import UsageError
from oci_tools.spec import mediatype as mt


def _compress(codec: str, data: bytes, sizes: list[int], **kw: int) -> bytes:
    out = io.BytesIO()
    if codec == "zstd" and "threads" in kw:
        w: io.RawIOBase = compression._ZstdWriter(out, 3, threads=kw["threads"])
    else:
        w = compressor(codec, out)
    pos = 0
    i = 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        piece = data[pos : pos + n]
        # Mix bytes, bytearray and memoryview pieces, as callers do.
        w.write([piece, bytearray(piece), memoryview(piece)][i % 3])  # type: ignore[arg-type]
        pos += n
        i += 1
    w.close()
    return out.getvalue()


SPLITS = [[1 << 30], [1], [511, 512, 513], [4096], [65536, 7], [GZIP_BLOCK], [GZIP_BLOCK + 1, 3]]


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_codec_output_does_not_depend_on_write_sizes(codec: str) -> None:
    data = mixed_data(2 * GZIP_BLOCK + 777) if codec == "gzip" else mixed_data(1 << 20)
    outs = {_compress(codec, data, s) for s in (SPLITS if codec == "gzip" else SPLITS[2:])}
    assert len(outs) == 1
    assert decompressor(codec, io.BytesIO(outs.pop())).read() == data


def test_zstd_output_does_not_depend_on_thread_count() -> None:
    data = mixed_data(6 << 20)
    outs = {_compress("zstd", data, [1 << 20], threads=t) for t in (1, 2, 3, 8)}
    assert len(outs) == 1
    assert decompressor("zstd", io.BytesIO(outs.pop())).read() == data


def test_gzip_empty_and_exact_block() -> None:
    for n in (0, GZIP_BLOCK, 2 * GZIP_BLOCK):
        data = mixed_data(n) if n else b""
        blob = _compress("gzip", data, [GZIP_BLOCK])
        assert decompressor("gzip", io.BytesIO(blob)).read() == data


class _Recorder:
    def __init__(self, fail_at: int | None = None) -> None:
        self.pieces: list[bytes] = []
        self.thread: set[str] = set()
        self.fail_at = fail_at

    def write(self, data: bytes | memoryview, /) -> int:
        self.thread.add(threading.current_thread().name)
        if self.fail_at is not None and len(self.pieces) == self.fail_at:
            raise OSError(28, "No space left on device")
        self.pieces.append(bytes(data))
        return len(data)


def test_pipe_writer_keeps_pieces_order_and_runs_elsewhere() -> None:
    sink = _Recorder()
    pipe = PipeWriter(sink, depth=2)
    sent = []
    for i in range(100):
        buf = bytearray(bytes([65 + i % 26]) * (i + 1))
        piece = [bytes(buf), buf, memoryview(buf)][i % 3]
        sent.append(bytes(piece))
        pipe.write(piece)
        buf[:1] = b"!"  # a mutable piece was copied before the write returned
    pipe.close()
    assert sink.pieces == sent
    assert sink.thread == {"oci-tools-pipe"}


def test_pipe_writer_raises_sink_errors_in_the_writer() -> None:
    pipe = PipeWriter(_Recorder(fail_at=3), depth=1)
    with pytest.raises(OSError, match="No space"):
        for _ in range(1000):
            pipe.write(b"x" * 100)
        pipe.close()
    pipe.abort()  # idempotent after a failure


def test_pipe_writer_abort_stops_without_finishing() -> None:
    sink = _Recorder()
    pipe = PipeWriter(sink, depth=4)
    for _ in range(3):
        pipe.write(b"y")
    pipe.abort()
    with pytest.raises(ValueError):
        pipe.write(b"z")
    assert len(sink.pieces) <= 3


def test_read_ahead_returns_the_same_bytes() -> None:
    data = mixed_data(5 << 20)
    src = io.BytesIO(data)
    ra = ReadAhead(src.read, chunk=100_000, depth=2)
    got = []
    r = random.Random(1)
    while chunk := ra.read(r.choice([1, 512, 4096, 1 << 20])):
        got.append(chunk)
    assert b"".join(got) == data
    assert ra.read(10) == b""
    ra.close()
    ra2 = ReadAhead(io.BytesIO(data).read, chunk=70_000)
    assert ra2.read(5) == data[:5]
    assert ra2.read() == data[5:]
    ra2.close()


def test_read_ahead_raises_errors_where_they_happened() -> None:
    calls = 0

    def read(n: int) -> bytes:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ValueError("corrupt at the third chunk")
        return b"z" * n

    ra = ReadAhead(read, chunk=10, depth=8)
    assert ra.read(10) == b"z" * 10
    assert ra.read(10) == b"z" * 10
    with pytest.raises(ValueError, match="third chunk"):
        ra.read(10)
    with pytest.raises(ValueError, match="third chunk"):  # and again, not a silent EOF
        ra.read(10)
    ra.close()


def test_read_ahead_close_stops_a_blocked_worker() -> None:
    used_after_close = threading.Event()
    closed = threading.Event()

    def read(n: int) -> bytes:
        if closed.is_set():
            used_after_close.set()
        return b"q" * n

    ra = ReadAhead(read, chunk=1 << 16, depth=2)
    assert ra.read(1) == b"q"
    ra.close()  # the worker is blocked on a full queue: close must unblock and join it
    closed.set()
    assert not ra._thread.is_alive()
    assert not used_after_close.is_set()


def test_read_ahead_drain() -> None:
    ra = ReadAhead(io.BytesIO(b"a" * 1000).read, chunk=7)
    ra.read(3)
    ra.drain()
    assert ra.read(1) == b""
    ra.close()


# -- codecs ------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["none", "gzip", "zstd"])
def test_codecs_round_trip(codec: str) -> None:
    data = mixed_data(1 << 20)
    packed = _compress(codec, data, [70_000])
    if codec != "none":
        assert packed != data and len(packed) < len(data)
    assert decompressor(codec, io.BytesIO(packed)).read() == data


def test_gzip_output_is_deterministic_and_has_no_timestamp() -> None:
    data = mixed_data(300_000)
    a = _compress("gzip", data, [4096])
    b = _compress("gzip", data, [4096])
    assert a == b
    assert a[:2] == b"\x1f\x8b" and a[4:8] == b"\0\0\0\0"  # magic; MTIME zero
    assert gzip.decompress(a) == data


def test_codec_names_and_media_types() -> None:
    assert check_codec("gzip") == "gzip"
    with pytest.raises(UsageError):
        check_codec("brotli")
    assert codec_for_media_type(mt.OCI_LAYER_ZSTD) == "zstd"
    assert codec_for_media_type(mt.DOCKER_LAYER_GZIP) == "gzip"
    assert codec_for_media_type(mt.OCI_LAYER_TAR) == "none"


def _read_zstd(blob: bytes) -> bytes:
    reader = compression.decompressor("zstd", io.BytesIO(blob))
    parts = []
    while piece := reader.read(1 << 20):
        parts.append(piece)
    return b"".join(parts)


def test_zstd_cut_inside_a_frame_is_an_error() -> None:
    # python-zstandard's reader just stops at a cut; the frame walk must not
    # (the tar reader now accepts a clean end without zero blocks, so a cut
    # stream would otherwise pass as a shorter layer).
    data = mixed_data(300_000)
    import zstandard

    frames = [
        zstandard.ZstdCompressor(write_checksum=ck, write_content_size=cs).compress(data)
        for ck in (False, True)
        for cs in (False, True)
    ]
    skippable = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"12345"
    blob = b"".join(frames) + skippable + _compress("zstd", data, [70_000] * 5)
    assert _read_zstd(blob) == data * 5
    assert _read_zstd(b"") == b""
    for cut in (1, 3, 4, 100, len(blob) // 2, len(blob) - 8):
        with pytest.raises(EOFError, match="truncated"):
            _read_zstd(blob[:-cut])
