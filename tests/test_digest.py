from __future__ import annotations

import hashlib
import io

import pytest

from oci_tools.digest import Digest, Hasher, VerifyingReader, digest_problem
from oci_tools.errors import DigestMismatchError, InvalidDocumentError

EMPTY = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_parse_and_format() -> None:
    d = Digest.parse(EMPTY)
    assert d.algorithm == "sha256" and str(d) == EMPTY and d.short == "e3b0c44298fc"


@pytest.mark.parametrize(
    "bad",
    [
        "sha256:" + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
        "sha256:abc",
        "sha512:" + "a" * 64,
        "sha256",
        ":abc",
        "SHA256:" + "a" * 64,
        "sha256:" + "a" * 63 + "/",
        "sha256:../../etc/passwd",
    ],
)
def test_invalid_digests(bad: str) -> None:
    assert digest_problem(bad) is not None
    with pytest.raises(InvalidDocumentError):
        Digest.parse(bad)


@pytest.mark.parametrize(
    "ok",
    [
        "sha512:" + "a" * 128,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_valid_other_algorithms(ok: str) -> None:
    assert digest_problem(ok) is None


def test_hasher_counts_and_hashes() -> None:
    h = Hasher()
    h.update(b"hello ")
    h.update(memoryview(b"world"))
    assert h.size == 11
    assert h.digest().encoded == hashlib.sha256(b"hello world").hexdigest()


def _reader(
    data: bytes, digest_of: bytes | None = None, size: int | None = None
) -> VerifyingReader:
    d = Digest.of_bytes(digest_of if digest_of is not None else data)
    return VerifyingReader(io.BytesIO(data), d, len(data) if size is None else size)


def test_verifying_reader_accepts_exact_content() -> None:
    r = _reader(b"x" * 5000)
    assert r.read(1000) == b"x" * 1000
    r.drain()
    assert r.verified


@pytest.mark.parametrize(
    ("data", "digest_of", "size"),
    [
        (b"tampered", b"original", None),  # wrong content, same length
        (b"short", b"short", 10),  # size says more than there is
        (b"longer than said", b"longer than said", 4),  # more bytes than the size
    ],
)
def test_verifying_reader_rejects(data: bytes, digest_of: bytes, size: int | None) -> None:
    r = _reader(data, digest_of, size)
    with pytest.raises(DigestMismatchError):
        r.read()
