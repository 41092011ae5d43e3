"""The speed mechanisms of commit and unpack change where work runs, never
the bytes: codec output independent of write sizes and thread counts, the
PipeWriter / ReadAhead threads (order, errors, shutdown), and the blob
writer's early writeback and shared hasher."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import threading
from pathlib import Path

import pytest

from oci_tools import compression
from oci_tools.compression import (
    GZIP_BLOCK,
    PipeWriter,
    ReadAhead,
    compressor,
    decompressor,
)
from oci_tools.digest import Digest
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.writer import write_layer
from oci_tools.layout import Layout
from oci_tools.store import MemoryStore

T0 = 1_700_000_000 * 1_000_000_000


def _data(n: int = 3 * GZIP_BLOCK + 12345) -> bytes:
    r = random.Random(5)
    parts = []
    while sum(map(len, parts)) < n:
        k = r.random()
        if k < 0.4:
            parts.append(r.randbytes(r.randint(1, 40000)))
        elif k < 0.8:
            parts.append(b"some text that repeats " * r.randint(1, 3000))
        else:
            parts.append(bytes(r.randint(1, 90000)))
    return b"".join(parts)[:n]


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
    data = _data(2 * GZIP_BLOCK + 777) if codec == "gzip" else _data(1 << 20)
    outs = {_compress(codec, data, s) for s in (SPLITS if codec == "gzip" else SPLITS[2:])}
    assert len(outs) == 1
    assert decompressor(codec, io.BytesIO(outs.pop())).read() == data


def test_zstd_output_does_not_depend_on_thread_count() -> None:
    data = _data(6 << 20)
    outs = {_compress("zstd", data, [1 << 20], threads=t) for t in (1, 2, 3, 8)}
    assert len(outs) == 1
    assert decompressor("zstd", io.BytesIO(outs.pop())).read() == data


def test_gzip_empty_and_exact_block() -> None:
    for n in (0, GZIP_BLOCK, 2 * GZIP_BLOCK):
        data = _data(n) if n else b""
        blob = _compress("gzip", data, [GZIP_BLOCK])
        assert decompressor("gzip", io.BytesIO(blob)).read() == data


# -- PipeWriter --------------------------------------------------------------------


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


def test_write_layer_bytes_unchanged_by_the_pipe() -> None:
    """The layer is the same whether the tar reaches the codec through the
    pipe thread or not (a plain serial run of the same pieces)."""
    files = [(f"f{i}", _data(1000 * i + 1)) for i in range(1, 12)]

    def entries() -> list[tuple[TarEntry, io.BytesIO | None]]:
        return [
            (TarEntry(name, EntryType.REG, 0o644, 0, 0, len(d), T0), io.BytesIO(d))
            for name, d in files
        ]

    for codec in ("gzip", "zstd", "none"):
        piped = io.BytesIO()
        info = write_layer(entries(), piped, codec)  # type: ignore[arg-type]
        serial = io.BytesIO()
        orig = compression.PipeWriter
        try:
            import oci_tools.layer.writer as lw

            class Serial:
                def __init__(self, sink: compression.Writable, depth: int = 0) -> None:
                    self.write = sink.write

                def close(self) -> None:
                    pass

                def abort(self) -> None:
                    pass

            lw.PipeWriter = Serial  # type: ignore[assignment,misc]
            info2 = write_layer(entries(), serial, codec)  # type: ignore[arg-type]
        finally:
            lw.PipeWriter = orig  # type: ignore[misc]
        assert piped.getvalue() == serial.getvalue()
        assert info == info2
        assert info.digest == Digest("sha256", hashlib.sha256(piped.getvalue()).hexdigest())


def test_write_layer_failure_in_the_source_stops_the_pipe() -> None:
    def entries():  # type: ignore[no-untyped-def]
        yield TarEntry("a", EntryType.REG, 0o644, 0, 0, 3, T0), io.BytesIO(b"abc")
        raise RuntimeError("walk failed")

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="walk failed"):
        write_layer(entries(), io.BytesIO(), "gzip")
    assert not {t.name for t in threading.enumerate()} - before


def test_write_layer_uses_the_store_writers_hash() -> None:
    store = MemoryStore()
    w = store.writer()
    info = write_layer(
        [(TarEntry("a", EntryType.REG, 0o644, 0, 0, 5, T0), io.BytesIO(b"hello"))], w, "gzip"
    )
    assert w.commit() == info.digest
    assert store.blobs[info.digest][:2] == b"\x1f\x8b"


# -- ReadAhead ---------------------------------------------------------------------


def test_read_ahead_returns_the_same_bytes() -> None:
    data = _data(5 << 20)
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


# -- blob writer -------------------------------------------------------------------


def test_blob_writer_starts_writeback_and_commits_the_same_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_tools import store as store_mod

    calls: list[tuple[int, int]] = []
    real = store_mod._writeback()
    assert real is not None  # Linux with glibc: sync_file_range is found

    def spy(fd: int, off: int, n: int) -> int:
        calls.append((off, n))
        return real(fd, off, n)

    monkeypatch.setattr(store_mod, "_writeback", lambda: spy)
    monkeypatch.setattr(store_mod, "WRITEBACK_EVERY", 1 << 20)
    lay = Layout.init(str(tmp_path / "lay"))
    w = lay.store.writer()
    data = _data(5 << 20)
    for i in range(0, len(data), 300_000):
        w.write(data[i : i + 300_000])
    assert w.hasher.size == len(data)
    dg = w.commit()
    assert dg == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert Path(lay.store.path_of(dg)).read_bytes() == data
    # Consecutive ranges, each starting where the last one ended.
    assert calls and calls[0][0] == 0
    for (o1, n1), (o2, _) in itertools.pairwise(calls):
        assert o2 == o1 + n1


def test_blob_writer_without_writeback_support(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_tools import store as store_mod

    monkeypatch.setattr(store_mod, "_writeback", lambda: None)
    monkeypatch.setattr(store_mod, "WRITEBACK_EVERY", 1000)
    lay = Layout.init(str(tmp_path / "lay"))
    w = lay.store.writer()
    w.write(b"x" * 5000)
    w.write(b"y" * 5000)
    dg = w.commit()
    assert Path(lay.store.path_of(dg)).read_bytes() == b"x" * 5000 + b"y" * 5000
