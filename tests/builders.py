"""Deterministic builders of raw tar bytes and layer blobs for tests.

Headers are assembled by hand, 512 bytes at a time, so tests can make any tar,
including malformed and hostile ones (bad checksums, negative sizes, base-256
ids, unknown type flags, huge PAX headers, names that escape...).  Nothing here
uses ``tarfile``.  Same input, same bytes: gzip output has mtime 0 and no name.

Typical use::

    tar = build_tar([directory("etc"), file("etc/hosts", b"127.0.0.1 localhost\\n"),
                     whiteout("etc/motd")])
    blob = compress(tar, "gzip")
    lay = make_layer([...], codec="zstd")      # .blob, .tar, .digest, .diff_id
"""

from __future__ import annotations

import gzip
import hashlib
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from oci_tools.compression import GZIP_BLOCK

BLOCK = 512
ZERO_BLOCK = bytes(BLOCK)

# (offset, width) of every ustar header field.
FIELDS: dict[str, tuple[int, int]] = {
    "name": (0, 100),
    "mode": (100, 8),
    "uid": (108, 8),
    "gid": (116, 8),
    "size": (124, 12),
    "mtime": (136, 12),
    "chksum": (148, 8),
    "typeflag": (156, 1),
    "linkname": (157, 100),
    "magic": (257, 6),
    "version": (263, 2),
    "uname": (265, 32),
    "gname": (297, 32),
    "devmajor": (329, 8),
    "devminor": (337, 8),
    "prefix": (345, 155),
}
MAGIC = {
    "ustar": (b"ustar\0", b"00"),
    "gnu": (b"ustar ", b" \0"),
    "v7": (b"\0" * 6, b"\0\0"),
}


def _b(value: str | bytes) -> bytes:
    return value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value


def octal(value: int, width: int) -> bytes:
    """``width``-byte octal field: zero-padded digits and a NUL terminator."""
    digits = f"{value:o}".encode()
    if len(digits) > width - 1:
        raise ValueError(f"{value} does not fit in a {width}-byte octal field")
    return digits.rjust(width - 1, b"0") + b"\0"


def base256(value: int, width: int) -> bytes:
    """GNU base-256 field (two's complement, high bit of the first byte set)."""
    if value >= 0:
        raw = value.to_bytes(width, "big")
        if raw[0] & 0x80:
            raise ValueError("value too large for base-256 field")
        return bytes([raw[0] | 0x80]) + raw[1:]
    return (value % (1 << (8 * width))).to_bytes(width, "big")


def number(value: int, width: int) -> bytes:
    """Octal when it fits, else base-256 (as GNU tar does)."""
    if 0 <= value < 8 ** (width - 1):
        return octal(value, width)
    return base256(value, width)


def checksum(block: bytes | bytearray) -> int:
    """The ustar checksum of a header (checksum field counted as spaces)."""
    return sum(block[:148]) + 8 * 32 + sum(block[156:])


def header(fields: Mapping[str, bytes], *, chksum: bytes | None = None) -> bytes:
    """A 512-byte header from raw field values (missing fields are NUL).

    The checksum is computed unless ``chksum`` (raw field bytes) is given.
    """
    block = bytearray(BLOCK)
    for key, value in fields.items():
        off, width = FIELDS[key]
        if len(value) > width:
            raise ValueError(f"field {key} longer than {width} bytes")
        block[off : off + len(value)] = value
    block[148:156] = chksum if chksum is not None else b"%06o\0 " % checksum(block)
    return bytes(block)


def pad(data: bytes) -> bytes:
    """``data`` padded with NULs to a multiple of 512 bytes."""
    return data + bytes(-len(data) % BLOCK)


def pax_records(records: Mapping[str, str | bytes]) -> bytes:
    """Encode PAX records (``"%d %s=%s\\n"``, the length counting itself)."""
    out = []
    for key, value in records.items():
        body = b" " + _b(key) + b"=" + _b(value) + b"\n"
        n = len(body) + 1
        while len(str(n)) + len(body) != n:
            n = len(str(n)) + len(body)
        out.append(str(n).encode() + body)
    return b"".join(out)


def ext_header(
    typeflag: bytes,
    data: bytes,
    *,
    name: bytes = b"PaxHeader",
    size: int | None = None,
    fmt: str = "ustar",
) -> bytes:
    """An extension member (``x``, ``g``, ``L``, ``K``) with its padded data."""
    magic, version = MAGIC[fmt]
    h = header(
        {
            "name": name[:100],
            "mode": octal(0o644, 8),
            "uid": octal(0, 8),
            "gid": octal(0, 8),
            "size": number(len(data) if size is None else size, 12),
            "mtime": octal(0, 12),
            "typeflag": typeflag,
            "magic": magic,
            "version": version,
        }
    )
    return h + pad(data)


@dataclass(frozen=True)
class Member:
    """One tar member to build.

    ``typeflag`` is the raw flag byte.  ``long_names`` picks how names and
    link names over 100 bytes are stored: ``"pax"``, ``"gnu"`` (L/K headers)
    or ``"prefix"`` (ustar prefix field).  ``pax`` adds PAX records in an
    ``x`` header before the member; ``raw`` overrides any header field with
    raw bytes; ``size`` overrides the header size field (``data`` is written
    as given); ``chksum`` overrides the checksum field; ``pad_data=False``
    leaves the data unpadded (for truncation tests).
    """

    name: str | bytes
    typeflag: bytes = b"0"
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 0
    linkname: str | bytes = b""
    devmajor: int = 0
    devminor: int = 0
    uname: bytes = b""
    gname: bytes = b""
    fmt: str = "ustar"
    long_names: str = "pax"
    pax: Mapping[str, str | bytes] | None = None
    raw: Mapping[str, bytes] = field(default_factory=dict)
    size: int | None = None
    chksum: bytes | None = None
    pad_data: bool = True

    def with_(self, **changes: object) -> Member:
        """A copy with some fields changed."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_bytes(self) -> bytes:
        """Extension headers (if any), the header and the padded data."""
        out: list[bytes] = []
        name = _b(self.name)
        link = _b(self.linkname)
        pax = dict(self.pax or {})
        prefix = b""
        if len(name) > 100:
            if self.long_names == "pax":
                pax.setdefault("path", name)
                name = name[:100]
            elif self.long_names == "gnu":
                out.append(ext_header(b"L", name + b"\0", name=b"././@LongLink", fmt="gnu"))
                name = name[:100]
            elif self.long_names == "prefix":
                cut = name.rfind(b"/", 0, 156)
                if cut <= 0 or len(name) - cut - 1 > 100:
                    raise ValueError("name cannot be split into prefix and name")
                prefix, name = name[:cut], name[cut + 1 :]
            else:
                raise ValueError(self.long_names)
        if len(link) > 100:
            if self.long_names == "gnu":
                out.append(ext_header(b"K", link + b"\0", name=b"././@LongLink", fmt="gnu"))
            else:
                pax.setdefault("linkpath", link)
            link = link[:100]
        if pax:
            out.append(ext_header(b"x", pax_records(pax)))
        magic, version = MAGIC[self.fmt]
        fields: dict[str, bytes] = {
            "name": name,
            "mode": number(self.mode, 8),
            "uid": number(self.uid, 8),
            "gid": number(self.gid, 8),
            "size": number(len(self.data) if self.size is None else self.size, 12),
            "mtime": number(self.mtime, 12),
            "typeflag": self.typeflag,
            "linkname": link,
            "magic": magic,
            "version": version,
        }
        if self.fmt != "v7":
            fields.update(
                uname=self.uname,
                gname=self.gname,
                devmajor=number(self.devmajor, 8),
                devminor=number(self.devminor, 8),
            )
        if prefix:
            fields["prefix"] = prefix
        fields.update(self.raw)
        out.append(header(fields, chksum=self.chksum))
        out.append(pad(self.data) if self.pad_data else self.data)
        return b"".join(out)


# ------------------------------------------------------------------ constructors


def file(name: str | bytes, data: bytes = b"", **kw: object) -> Member:
    """A regular file."""
    return Member(name, b"0", data, **kw)  # type: ignore[arg-type]


def directory(name: str | bytes, mode: int = 0o755, **kw: object) -> Member:
    """A directory (name written with a trailing ``/``)."""
    n = _b(name)
    return Member(n if n.endswith(b"/") else n + b"/", b"5", mode=mode, **kw)  # type: ignore[arg-type]


def symlink(name: str | bytes, target: str | bytes, **kw: object) -> Member:
    """A symbolic link (target stored verbatim)."""
    return Member(name, b"2", linkname=target, mode=0o777, **kw)  # type: ignore[arg-type]


def hardlink(name: str | bytes, target: str | bytes, **kw: object) -> Member:
    """A hard link to an earlier member (or a lower-layer path)."""
    return Member(name, b"1", linkname=target, **kw)  # type: ignore[arg-type]


def chardev(name: str | bytes, major: int, minor: int, **kw: object) -> Member:
    """A character device."""
    return Member(name, b"3", devmajor=major, devminor=minor, **kw)  # type: ignore[arg-type]


def blockdev(name: str | bytes, major: int, minor: int, **kw: object) -> Member:
    """A block device."""
    return Member(name, b"4", devmajor=major, devminor=minor, **kw)  # type: ignore[arg-type]


def fifo(name: str | bytes, **kw: object) -> Member:
    """A named pipe."""
    return Member(name, b"6", **kw)  # type: ignore[arg-type]


def whiteout(path: str) -> Member:
    """The whiteout member that deletes ``path`` from lower layers."""
    parent, _, base = path.rpartition("/")
    return file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")


def opaque(dirpath: str) -> Member:
    """The opaque marker of ``dirpath`` ('' for the root)."""
    return file(f"{dirpath}/.wh..wh..opq" if dirpath else ".wh..wh..opq")


# ---------------------------------------------------------------------- archives


def build_tar(
    members: Iterable[Member | bytes],
    *,
    eof_blocks: int = 2,
    trailing: bytes = b"",
) -> bytes:
    """Concatenate members (``bytes`` items are emitted verbatim), then
    ``eof_blocks`` zero blocks, then ``trailing``."""
    parts = [m if isinstance(m, bytes) else m.to_bytes() for m in members]
    parts.append(ZERO_BLOCK * eof_blocks)
    parts.append(trailing)
    return b"".join(parts)


def member_offsets(tar: bytes) -> list[int]:
    """Offsets of the headers of a well-formed tar (extension headers included)."""
    out = []
    pos = 0
    while pos + BLOCK <= len(tar):
        block = tar[pos : pos + BLOCK]
        if block == ZERO_BLOCK:
            break
        out.append(pos)
        size_field = block[124:136]
        if size_field[0] & 0x80:
            size = int.from_bytes(size_field[1:], "big")
        else:
            size = int(size_field.strip(b"\0 ") or b"0", 8)
        if block[156:157] in (b"1", b"2", b"3", b"4", b"5", b"6"):
            size = 0
        pos += BLOCK + size + (-size % BLOCK)
    return out


def corrupt_checksum(tar: bytes, index: int) -> bytes:
    """Flip one name byte of header number ``index`` (checksum left stale)."""
    off = member_offsets(tar)[index]
    b = bytearray(tar)
    b[off] ^= 0x01
    return bytes(b)


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    """Deterministic gzip (mtime 0, no file name)."""
    return gzip.compress(data, compresslevel=level, mtime=0)


def zstd_bytes(data: bytes, level: int = 3) -> bytes:
    """zstd frame with the content size recorded."""
    import zstandard

    return zstandard.ZstdCompressor(level=level).compress(data)


def compress(data: bytes, codec: str) -> bytes:
    """Compress with ``gzip``, ``zstd`` or ``none``."""
    if codec == "gzip":
        return gzip_bytes(data)
    if codec == "zstd":
        return zstd_bytes(data)
    if codec == "none":
        return data
    raise ValueError(codec)


def sha256_digest(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Layer:
    """A built layer: the tar, the blob as stored, and both digests."""

    tar: bytes
    blob: bytes
    codec: str
    digest: str
    diff_id: str


def make_layer(members: Iterable[Member | bytes], codec: str = "gzip", **tar_kw: object) -> Layer:
    """Build a tar from ``members`` and compress it with ``codec``."""
    tar = build_tar(members, **tar_kw)  # type: ignore[arg-type]
    blob = compress(tar, codec)
    return Layer(tar, blob, codec, sha256_digest(blob), sha256_digest(tar))


def mixed_data(n: int = 3 * GZIP_BLOCK + 12345) -> bytes:
    """``n`` reproducible bytes mixing random, repetitive and zero runs (so
    codecs meet every kind of input and block boundaries fall mid-run)."""
    r = random.Random(5)
    parts: list[bytes] = []
    while sum(map(len, parts)) < n:
        k = r.random()
        if k < 0.4:
            parts.append(r.randbytes(r.randint(1, 40000)))
        elif k < 0.8:
            parts.append(b"some text that repeats " * r.randint(1, 3000))
        else:
            parts.append(bytes(r.randint(1, 90000)))
    return b"".join(parts)[:n]
