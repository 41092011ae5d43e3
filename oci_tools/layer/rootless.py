"""Owners a rootless unpack cannot apply, kept in ``user.rootlesscontainers``.

The attribute holds the protobuf message umoci and the rootlesscontainers
project use (``message Resource { uint32 uid = 1; uint32 gid = 2; }``;
0xFFFFFFFF means "keep the on-disk owner").  A rootless unpack writes it on
every node whose owner is not 0:0 (the invoking user stands for container
root); a rootless commit reads it back so the layer carries the real owners.
"""

from __future__ import annotations

ROOTLESS_XATTR = "user.rootlesscontainers"
NOOP_ID = 0xFFFFFFFF


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_rootless(uid: int, gid: int) -> bytes:
    """The attribute value for owner ``uid:gid`` (zero fields are omitted, as
    protobuf does)."""
    out = b""
    if uid:
        out += b"\x08" + _encode_varint(uid)
    if gid:
        out += b"\x10" + _encode_varint(gid)
    return out


def _varint(raw: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(raw) or shift > 63:
            raise ValueError("truncated varint")
        byte = raw[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def decode_rootless(raw: bytes) -> tuple[int | None, int | None]:
    """(uid, gid) from a ``user.rootlesscontainers`` value (protobuf message:
    field 1 uid, field 2 gid, uint32 varints; absent means 0).  None means
    "keep the on-disk owner" (0xFFFFFFFF).  ValueError when malformed."""
    ids = {1: 0, 2: 0}
    pos = 0
    while pos < len(raw):
        key, pos = _varint(raw, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(raw, pos)
            if number in ids:
                if value > 0xFFFFFFFF:
                    raise ValueError(f"field {number} does not fit 32 bits")
                ids[number] = value
        elif wire == 2:
            length, pos = _varint(raw, pos)
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > len(raw):
            raise ValueError("truncated field")
    uid, gid = ids[1], ids[2]
    return (None if uid == NOOP_ID else uid), (None if gid == NOOP_ID else gid)
