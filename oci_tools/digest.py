"""Content digests: the value type, a streaming hasher and a verifying reader.

Grammar and per-algorithm rules follow the image-spec (descriptor.md §Digests):
``algorithm ":" encoded``; registered algorithms impose their own encoding
(sha256 and blake3: 64 lower-case hex; sha512: 128).  Unregistered algorithms
that match the grammar are valid values but cannot be computed here.
"""

from __future__ import annotations

import hashlib
import re
from typing import BinaryIO, Protocol

from oci_tools import progress
from oci_tools.errors import DigestMismatchError, InvalidDocumentError
from oci_tools.records import record
from oci_tools.render import short_id

_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_ENCODING = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
    "blake3": re.compile(r"[a-f0-9]{64}"),
}
#: Algorithms this module can compute (blake3 is registered but not in hashlib).
COMPUTABLE = ("sha256", "sha512")


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def hexdigest(self) -> str: ...


def digest_problem(value: str) -> str | None:
    """Return why ``value`` is not a valid digest string, or None when it is."""
    if not isinstance(value, str) or not _GRAMMAR.fullmatch(value):
        return f"{value!r} does not match the digest grammar"
    alg, _, enc = value.partition(":")
    rule = _ENCODING.get(alg)
    if rule is not None and not rule.fullmatch(enc):
        return f"{value!r}: {alg} digests must be lower-case hex of the right length"
    return None


@record(order=True)
class Digest:
    """A validated ``algorithm:encoded`` digest."""

    algorithm: str
    encoded: str

    @classmethod
    def parse(cls, value: str) -> Digest:
        """Parse and validate a digest string; raises InvalidDocumentError."""
        problem = digest_problem(value)
        if problem is not None:
            raise InvalidDocumentError("digest", [problem])
        alg, _, enc = value.partition(":")
        return cls(alg, enc)

    @classmethod
    def of_bytes(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        """Digest of an in-memory byte string (small documents only)."""
        h = Hasher(algorithm)
        h.update(data)
        return h.digest()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.encoded}"

    def __repr__(self) -> str:
        return f"Digest({str(self)!r})"

    @property
    def short(self) -> str:
        """The 12-hex display id (``render.short_id``, the one definition)."""
        return short_id(str(self))

    @property
    def computable(self) -> bool:
        """True when this module can hash content to check this digest."""
        return self.algorithm in COMPUTABLE


class Hasher:
    """Incremental digest computation that also counts bytes."""

    __slots__ = ("_h", "algorithm", "size")

    def __init__(self, algorithm: str = "sha256") -> None:
        if algorithm not in COMPUTABLE:
            raise InvalidDocumentError(
                "digest", [f"algorithm {algorithm!r} is not supported for hashing"]
            )
        self.algorithm = algorithm
        self._h: _Hash = hashlib.new(algorithm)
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        """Feed more bytes."""
        self._h.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        """The digest of everything fed so far."""
        return Digest(self.algorithm, self._h.hexdigest())


class VerifyingReader:
    """Wrap a binary stream; at EOF check that the bytes match digest and size.

    Reading past ``size`` bytes, or reaching EOF early, raises
    DigestMismatchError.  Consumers must read to EOF (``drain``) before trusting
    anything they read.
    """

    def __init__(self, raw: BinaryIO, expected: Digest, size: int, *, what: str = "") -> None:
        self._raw = raw
        self._expected = expected
        self._size = size
        self._hasher = Hasher(expected.algorithm)
        self._what = what or str(expected)
        self._done = False
        self._task = progress.NO_TASK
        if size >= progress.MIN_BYTES and progress.active():
            self._task = progress.task(f"{expected.algorithm}:{expected.encoded[:12]}", size)

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes (all remaining when negative)."""
        if self._done:
            return b""
        remaining = self._size - self._hasher.size
        # Ask for one byte more than allowed so an over-long blob is noticed.
        want = remaining + 1 if n is None or n < 0 else min(n, remaining + 1)
        if want <= 0:
            want = 1
        data = self._raw.read(want)
        if data:
            self._hasher.update(data)
            self._task.advance(len(data))
            if self._hasher.size > self._size:
                raise DigestMismatchError(
                    f"size of {self._what}",
                    expected=str(self._size),
                    actual=f"more than {self._size} bytes",
                )
            if n is None or n < 0:
                # Caller wanted everything: keep going to EOF.
                rest = [data]
                while True:
                    more = self.read(1 << 20)
                    if not more:
                        break
                    rest.append(more)
                return b"".join(rest)
            return data
        self._finish()
        return b""

    def readinto(self, buf: bytearray | memoryview) -> int:
        """Read into a buffer (used by io.BufferedReader wrappers)."""
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        self._done = True
        self._task.close()
        if self._hasher.size != self._size:
            raise DigestMismatchError(
                f"size of {self._what}",
                expected=str(self._size),
                actual=str(self._hasher.size),
            )
        actual = self._hasher.digest()
        if actual != self._expected:
            raise DigestMismatchError(
                f"content of {self._what}", expected=str(self._expected), actual=str(actual)
            )

    def drain(self) -> None:
        """Read to EOF so the digest and size are checked."""
        while self.read(1 << 20):
            pass

    @property
    def read_digest(self) -> Digest:
        """Digest of the bytes read so far (after a content mismatch: what the
        blob really hashes to)."""
        return self._hasher.digest()

    @property
    def verified(self) -> bool:
        """True once EOF was reached and everything matched."""
        return self._done

    def close(self) -> None:
        self._task.close()
        self._raw.close()


__all__ = ["COMPUTABLE", "Digest", "Hasher", "VerifyingReader", "digest_problem"]
