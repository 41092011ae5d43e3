"""THE opener of layer content: one bounded, hashing stream for every reader.

``apply``, the layer views, ``check``, the archives and ``build`` all read a
layer blob's uncompressed tar through :func:`open_layer_stream`, so the
decompression-bomb limits and the diff_id hashing live in one place.
"""

from __future__ import annotations

import contextlib
import re
from typing import BinaryIO, cast

from oci_tools.compression import decompressor
from oci_tools.digest import Hasher
from oci_tools.errors import CorruptBlobError, DigestMismatchError, OCIToolsError, UnsafeLayerError
from oci_tools.layer.reader import CHUNK
from oci_tools.records import record

STREAM_NAME = "(layer stream)"
#: Largest read from the compressed blob (keeps the expansion-ratio check tight).
_COMPRESSED_READ = 32 << 10


@record
class StreamLimits:
    """Decompression-bomb limits of a layer stream.

    max_ratio, ratio_grace_bytes:
        Refuse a stream once more than ``ratio_grace_bytes`` were decompressed
        and the uncompressed/compressed ratio exceeds ``max_ratio``.  Real
        layers stay far below 1000; gzip cannot exceed ~1032 (a layer made of
        nothing but zeros), zstd bombs reach 10^4..10^6.
    max_uncompressed_bytes:
        Absolute cap on the decompressed stream (None: no cap).
    """

    max_ratio: float = 1000.0
    ratio_grace_bytes: int = 16 << 20
    max_uncompressed_bytes: int | None = None


DEFAULT_STREAM_LIMITS = StreamLimits()


class CountingReader:
    """Counts the compressed bytes pulled from the blob.

    Reads are handed out in small pieces so the count stays close to what the
    decompressor really consumed (isal asks for 512 KiB at a time, which would
    hide a bomb's first ~500 MB behind its read-ahead).
    """

    def __init__(self, raw: BinaryIO, piece: int) -> None:
        self._raw = raw
        self._piece = piece
        self.count = 0
        self.failed = False

    def read(self, n: int = -1) -> bytes:
        """Up to ``min(n, piece)`` bytes of the blob."""
        if n is None or n < 0 or n > self._piece:
            n = self._piece
        try:
            data = self._raw.read(n)
        except BaseException:
            self.failed = True
            raise
        self.count += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        """``read`` into ``buf``."""
        data = self.read(len(buf))
        n = len(data)
        buf[:n] = data
        return n

    def readable(self) -> bool:
        """Always true (io protocol)."""
        return True

    def drain(self) -> None:
        """Read the blob to its end."""
        while self.read(CHUNK):
            pass


class LayerStream:
    """Decompressed stream of a layer: hashes every byte and refuses bombs.

    ``hasher`` gives the diff_id (and the uncompressed size) once drained;
    ``counter`` the compressed bytes read so far.
    """

    def __init__(
        self,
        raw: BinaryIO,
        counter: CountingReader,
        limits: StreamLimits,
        codec: str,
        algorithm: str,
    ) -> None:
        self._raw = raw
        self._counter = counter
        self._limits = limits
        self._codec = codec
        self.hasher = Hasher(algorithm)

    @property
    def counter(self) -> CountingReader:
        """The compressed side: bytes read from the blob so far."""
        return self._counter

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` uncompressed bytes (hashed and checked against the limits)."""
        try:
            data = self._raw.read(n)
        except DigestMismatchError as exc:
            # A blob shorter than its descriptor says is damaged (truncated);
            # other mismatches keep their own message.
            detail = _truncated(exc) if self._counter.failed else None
            if detail is None:
                raise
            raise CorruptBlobError(self._codec, detail) from exc
        except OCIToolsError:
            raise
        except Exception as exc:  # zlib/isal/zstd errors, EOFError on truncation
            if self._counter.failed:
                raise
            raise CorruptBlobError(self._codec, _decoder_detail(exc)) from exc
        if data:
            self.hasher.update(data)
            total = self.hasher.size
            lim = self._limits
            if lim.max_uncompressed_bytes is not None and total > lim.max_uncompressed_bytes:
                raise UnsafeLayerError(
                    STREAM_NAME,
                    f"more than {lim.max_uncompressed_bytes} uncompressed bytes",
                )
            if total > lim.ratio_grace_bytes and total > lim.max_ratio * max(
                self._counter.count, 1
            ):
                raise UnsafeLayerError(
                    STREAM_NAME,
                    f"expansion ratio above {lim.max_ratio:g} "
                    f"({total} bytes from {self._counter.count}): decompression bomb?",
                )
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the stream."""
        while self.read(CHUNK):
            pass


def _decoder_detail(exc: BaseException) -> str:
    """What a decoder said, without zlib's error-number preamble and the
    checksum values (``CRC check failed``, ``invalid block type``)."""
    if isinstance(exc, EOFError):
        return "truncated"
    text = str(exc) or type(exc).__name__
    text = re.sub(r"^Error -?\d+ while decompressing data: ", "", text)
    text = re.sub(r"\s+(?:0x)?[0-9a-fA-F]+ != (?:0x)?[0-9a-fA-F]+$", "", text)
    return text


def _truncated(exc: DigestMismatchError) -> str | None:
    """``truncated: N of M bytes`` when the mismatch is a short blob."""
    if exc.what.startswith("size of"):
        with contextlib.suppress(ValueError):
            if int(exc.actual) < int(exc.expected):
                return f"truncated: {exc.actual} of {exc.expected} bytes"
    return None


def open_layer_stream(
    blob: BinaryIO,
    codec: str,
    algorithm: str = "sha256",
    limits: StreamLimits = DEFAULT_STREAM_LIMITS,
) -> LayerStream:
    """The uncompressed stream of a layer blob: hashed (``.hasher`` gives the
    diff_id once it is drained) and bounded by the bomb ``limits``.  Every
    reader of layer content goes through it."""
    # Uncompressed layers have nothing to bound: read them in big pieces.
    counter = CountingReader(blob, CHUNK if codec == "none" else _COMPRESSED_READ)
    return LayerStream(
        decompressor(codec, cast(BinaryIO, counter)), counter, limits, codec, algorithm
    )
