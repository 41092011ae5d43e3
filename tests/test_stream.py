"""layer.stream: the one bounded, hashing layer-stream opener (diff_id
hashing, decompression-bomb limits, one-line errors for corrupt data)."""

from __future__ import annotations

import gzip
import hashlib
import io

import pytest
import zstandard

from oci_tools.digest import Digest
from oci_tools.errors import CorruptBlobError, DigestMismatchError, UnsafeLayerError
from oci_tools.layer.stream import StreamLimits, open_layer_stream
from oci_tools.store import MemoryStore, put_bytes

DATA = b"".join(b"line %d of a layer\n" % i for i in range(50_000))


@pytest.mark.parametrize(
    ("codec", "pack"),
    [
        ("none", lambda b: b),
        ("gzip", lambda b: gzip.compress(b, mtime=0)),
        ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ],
)
def test_stream_gives_the_content_and_its_diff_id(codec: str, pack: object) -> None:
    blob = pack(DATA)  # type: ignore[operator]
    s = open_layer_stream(io.BytesIO(blob), codec)
    got = b""
    while chunk := s.read(7000):
        got += chunk
    assert got == DATA
    assert s.hasher.digest() == Digest("sha256", hashlib.sha256(DATA).hexdigest())
    assert s.hasher.size == len(DATA)
    assert s.counter.count == len(blob)


def test_drain_hashes_the_rest() -> None:
    s = open_layer_stream(io.BytesIO(gzip.compress(DATA)), "gzip")
    s.read(10)
    s.drain()
    assert s.hasher.digest() == Digest.of_bytes(DATA)


def test_a_bomb_is_refused_by_its_expansion_ratio() -> None:
    bomb = zstandard.ZstdCompressor(level=19).compress(bytes(8 << 20))
    limits = StreamLimits(max_ratio=100.0, ratio_grace_bytes=1 << 20)
    s = open_layer_stream(io.BytesIO(bomb), "zstd", limits=limits)
    with pytest.raises(UnsafeLayerError, match=r"expansion ratio above 100 .*decompression bomb"):
        s.drain()
    # The same blob under the default limits, within the grace bytes, is fine.
    open_layer_stream(io.BytesIO(bomb), "zstd").drain()


def test_max_uncompressed_bytes_is_enforced() -> None:
    s = open_layer_stream(
        io.BytesIO(gzip.compress(DATA)), "gzip", limits=StreamLimits(max_uncompressed_bytes=1000)
    )
    with pytest.raises(UnsafeLayerError, match="more than 1000 uncompressed bytes"):
        s.drain()


def test_corrupt_gzip_is_a_one_line_corrupt_blob_error() -> None:
    blob = bytearray(gzip.compress(DATA))
    blob[40:60] = b"\xff" * 20
    s = open_layer_stream(io.BytesIO(bytes(blob)), "gzip")
    with pytest.raises(CorruptBlobError) as e:
        s.drain()
    assert str(e.value).startswith("corrupt gzip data (") and "\n" not in str(e.value)
    assert str(e.value).endswith("; the blob is damaged") and "Error -3" not in str(e.value)


def test_a_truncated_stream_is_refused() -> None:
    s = open_layer_stream(io.BytesIO(gzip.compress(DATA)[:-20]), "gzip")
    with pytest.raises(CorruptBlobError, match="corrupt gzip data"):
        s.drain()


def test_errors_of_the_blob_reader_pass_through() -> None:
    # A blob that does not match its digest: the verifying reader's error wins.
    store = MemoryStore()
    blob = gzip.compress(DATA)
    dg = put_bytes(store, blob)
    wrong = Digest.of_bytes(b"other")
    store.blobs[wrong] = blob
    s = open_layer_stream(store.open(wrong, len(blob)), "gzip")  # type: ignore[arg-type]
    with pytest.raises(DigestMismatchError):
        s.drain()
    assert dg != wrong
