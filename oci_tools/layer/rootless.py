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


def _varint(value: int) -> bytes:
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
        out += b"\x08" + _varint(uid)
    if gid:
        out += b"\x10" + _varint(gid)
    return out
