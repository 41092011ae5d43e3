"""Fuzz the layer stream, the strict tar reader and the applier: any bytes as
a layer blob (gzip or zstd when it starts with their magic, else an
uncompressed tar).  The stream (decompression, bomb limits) and
``iter_entries`` must read it (every member's content to the end) or raise an
error of ours; ``apply_layer`` must apply it inside a fresh rootfs or raise
one, and never touch the canary directory beside the rootfs."""

from __future__ import annotations

import io
import os
import shutil
import sys

sys.path[:0] = [os.path.dirname(__file__), os.path.join(os.path.dirname(__file__), "..")]

from harness import instrumented, main  # noqa: E402

with instrumented():
    from oci_tools.apply import ApplyOptions, apply_layer
    from oci_tools.layer.reader import iter_entries
    from oci_tools.layer.stream import open_layer_stream

import builders as b  # noqa: E402

CANARY = "canary"
ZSTD = b"\x28\xb5\x2f\xfd"


def _canary_state() -> list[tuple[str, int, int]]:
    out = []
    for dirpath, dirs, files in os.walk(CANARY):
        for n in sorted(dirs + files):
            st = os.lstat(os.path.join(dirpath, n))
            out.append((os.path.join(dirpath, n), st.st_mode, st.st_mtime_ns))
    return sorted(out)


_before: list[tuple[str, int, int]] = []


def one_input(data: bytes) -> None:
    """Read, then apply, ``data`` as a layer tar."""
    global _before
    if not _before:
        os.makedirs(os.path.join(CANARY, "etc"), exist_ok=True)
        with open(os.path.join(CANARY, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0::/root:/bin/sh\n")
        _before = _canary_state()
    codec = "gzip" if data[:2] == b"\x1f\x8b" else "zstd" if data[:4] == ZSTD else "none"
    stream = open_layer_stream(io.BytesIO(data), codec)
    for _entry, content in iter_entries(stream):
        while content.read(1 << 16):
            pass
    while stream.read(1 << 16):  # what follows the end-of-archive marker
        pass
    root = "rootfs"
    shutil.rmtree(root, ignore_errors=True)
    os.mkdir(root)
    try:
        apply_layer(
            io.BytesIO(data),
            root,
            codec=codec,
            diff_id=None,
            options=ApplyOptions(rootless=os.geteuid() != 0),
        )
    finally:
        extra = sorted(set(os.listdir(".")) - {root, CANARY, "corpus"})
        if extra or _canary_state() != _before:
            raise AssertionError(f"a layer wrote outside its rootfs: {extra}")


def seeds() -> list[bytes]:
    """Well-formed and hostile tars built by tests/builders.py."""
    long = "d/" + "n" * 150
    members = [
        [b.directory("etc"), b.file("etc/hosts", b"127.0.0.1 localhost\n")],
        [b.file("a", b"x" * 700), b.hardlink("b", "a"), b.symlink("c", "../../etc")],
        [b.directory("d"), b.file(long, b"long"), b.whiteout("x"), b.opaque("d")],
        [b.file("gnu/" + "g" * 120, b"g", long_names="gnu"), b.fifo("p")],
        [b.file("pax", b"p", pax={"mtime": "1.5", "SCHILY.xattr.user.a": "v", "uid": "7"})],
        [b.symlink("up", "/"), b.file("up/escape", b"no")],
        [b.file("../evil", b"no")],
        [b.chardev("dev/null", 1, 3)],
        [b.file("big", b"", size=1 << 40, pad_data=False)],
    ]
    out = [b.build_tar(m) for m in members]
    out.append(b.corrupt_checksum(out[0], 1))
    out += [b.compress(out[0], "gzip"), b.compress(out[1], "zstd")]
    out.append(b.compress(bytes(1 << 20), "zstd"))  # a small bomb
    return out


if __name__ == "__main__":
    main("tar", one_input, seeds())
