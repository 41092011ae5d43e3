"""A small, deterministic, realistic image written with oci-tools' own code.

Three layers built with ``tarfile`` (sorted, numeric owners, fixed mtimes):

1. gzip: a base tree with a symlink and a file the next layer deletes;
2. gzip: a ``.wh.`` whiteout, a changed file and a hardlink;
3. uncompressed: an app directory owned by 1000:1000.

The config has Env, Cmd, User and WorkingDir and one non-empty history row
per layer plus one ``empty_layer`` row.  ``EXPECTED`` is the rootfs the three
layers make, for comparing with what peer tools unpack.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from oci_tools.image import UNCOMPRESSED_SIZE
from oci_tools.layout import Layout, host_platform
from oci_tools.mutate import write_image
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor
from oci_tools.store import put_bytes

MTIME = 1_700_000_000
ENV = ["PATH=/usr/local/bin:/usr/bin:/bin", "GREETING=hello interop"]
CMD = ["/bin/sh", "-c", "cat /etc/motd"]
USER = "1000:1000"
CREATED_BY = [
    "/bin/sh -c #(nop) ADD file:base.tar in / ",
    "/bin/sh -c rm /etc/remove-me && echo hi > /etc/motd",
    "/bin/sh -c #(nop)  ENV GREETING=hello interop",
    "/bin/sh -c #(nop) COPY dir:app in /app ",
]


@dataclass(frozen=True)
class Entry:
    """One tar member: kind is 'dir', 'file', 'symlink' or 'hardlink'."""

    name: str
    kind: str
    data: bytes = b""
    mode: int = 0o644
    target: str = ""
    uid: int = 0
    gid: int = 0


LAYERS: list[list[Entry]] = [
    [
        Entry("bin", "dir", mode=0o755),
        Entry("bin/sh", "symlink", target="tool"),
        Entry("bin/tool", "file", b"#!/bin/true\n", 0o755),
        Entry("etc", "dir", mode=0o755),
        Entry("etc/hosts", "file", b"127.0.0.1 localhost\n"),
        Entry("etc/os-release", "file", b'NAME="interop"\n'),
        Entry("etc/remove-me", "file", b"gone in layer 2\n"),
        Entry("usr", "dir", mode=0o755),
        Entry("usr/share", "dir", mode=0o755),
        Entry("usr/share/doc.txt", "file", b"version 1\n"),
    ],
    [
        Entry("etc", "dir", mode=0o755),
        Entry("etc/.wh.remove-me", "file", mode=0o600),
        Entry("etc/motd", "file", b"hi\n"),
        Entry("etc/motd-link", "hardlink", target="etc/motd"),
        Entry("usr", "dir", mode=0o755),
        Entry("usr/share", "dir", mode=0o755),
        Entry("usr/share/doc.txt", "file", b"version 2, longer\n"),
    ],
    [
        Entry("app", "dir", mode=0o750, uid=1000, gid=1000),
        Entry("app/data", "file", b"x" * 5000, 0o600, uid=1000, gid=1000),
    ],
]
CODECS = ["gzip", "gzip", "none"]

#: path -> (kind, mode, content or link target, uid, gid) of the final rootfs.
EXPECTED: dict[str, tuple[str, int, bytes | str, int, int]] = {
    "app": ("dir", 0o750, b"", 1000, 1000),
    "app/data": ("file", 0o600, b"x" * 5000, 1000, 1000),
    "bin": ("dir", 0o755, b"", 0, 0),
    "bin/sh": ("symlink", 0o777, "tool", 0, 0),
    "bin/tool": ("file", 0o755, b"#!/bin/true\n", 0, 0),
    "etc": ("dir", 0o755, b"", 0, 0),
    "etc/hosts": ("file", 0o644, b"127.0.0.1 localhost\n", 0, 0),
    "etc/motd": ("file", 0o644, b"hi\n", 0, 0),
    "etc/motd-link": ("file", 0o644, b"hi\n", 0, 0),
    "etc/os-release": ("file", 0o644, b'NAME="interop"\n', 0, 0),
    "usr": ("dir", 0o755, b"", 0, 0),
    "usr/share": ("dir", 0o755, b"", 0, 0),
    "usr/share/doc.txt": ("file", 0o644, b"version 2, longer\n", 0, 0),
}
#: Pairs of paths that must be the same inode after unpacking.
HARDLINKS = [("etc/motd", "etc/motd-link")]


def build_tar(entries: list[Entry]) -> bytes:
    """A deterministic tar of ``entries`` (sorted by name)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in sorted(entries, key=lambda x: x.name):
            ti = tarfile.TarInfo(e.name)
            ti.mtime = MTIME
            ti.mode = e.mode
            ti.uid, ti.gid = e.uid, e.gid
            ti.uname = ti.gname = ""
            if e.kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif e.kind == "symlink":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, e.target, 0o777
                tf.addfile(ti)
            elif e.kind == "hardlink":
                ti.type, ti.linkname = tarfile.LNKTYPE, e.target
                tf.addfile(ti)
            else:
                ti.size = len(e.data)
                tf.addfile(ti, io.BytesIO(e.data))
    return buf.getvalue()


def sha256(data: bytes) -> str:
    """``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_image(layout_path: str | Path, ref: str = "latest") -> Descriptor:
    """Write the test image into a (new or existing) layout; returns the
    manifest descriptor."""
    p = str(layout_path)
    lay = Layout.open(p) if os.path.exists(os.path.join(p, "oci-layout")) else Layout.init(p)
    layers: list[Descriptor] = []
    diff_ids: list[str] = []
    for entries, codec in zip(LAYERS, CODECS, strict=True):
        tar = build_tar(entries)
        diff_ids.append(sha256(tar))
        if codec == "gzip":
            blob = gzip.compress(tar, compresslevel=6, mtime=0)
            ann = {UNCOMPRESSED_SIZE: str(len(tar))}
        else:
            blob, ann = tar, {}
        dg = put_bytes(lay.store, blob)
        layers.append(Descriptor(mt.OCI_LAYER_FOR_CODEC[codec], dg, len(blob), ann))
    plat = host_platform()
    config = {
        "created": "2023-11-14T22:13:20Z",
        "architecture": plat.architecture,
        "os": plat.os,
        "config": {"User": USER, "Env": ENV, "Cmd": CMD, "WorkingDir": "/app"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": "2023-11-14T22:13:20Z", "created_by": CREATED_BY[0]},
            {"created": "2023-11-14T22:13:21Z", "created_by": CREATED_BY[1]},
            {"created": "2023-11-14T22:13:22Z", "created_by": CREATED_BY[2], "empty_layer": True},
            {"created": "2023-11-14T22:13:23Z", "created_by": CREATED_BY[3]},
        ],
    }
    if plat.variant:
        config["variant"] = plat.variant
    return write_image(lay, config, layers, ref=ref)


def tree_of(root: str | Path) -> dict[str, tuple[str, int, bytes | str, int, int]]:
    """The same shape as ``EXPECTED`` for a directory on disk."""
    out: dict[str, tuple[str, int, bytes | str, int, int]] = {}
    base = str(root)
    for dirpath, dirnames, filenames in os.walk(base):
        for n in sorted(dirnames + filenames):
            full = os.path.join(dirpath, n)
            rel = os.path.relpath(full, base)
            st = os.lstat(full)
            perm = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0o777, os.readlink(full), st.st_uid, st.st_gid)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", perm, b"", st.st_uid, st.st_gid)
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", perm, f.read(), st.st_uid, st.st_gid)
    return out


def add_busybox(rootfs: Path, *tools: str) -> None:
    """Put the host's static busybox in ``rootfs/bin`` with ``tools`` as
    symlinks to it (skips the test when busybox-static is not installed)."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    (rootfs / "bin").mkdir(exist_ok=True)
    (rootfs / "bin/busybox").write_bytes(Path("/bin/busybox").read_bytes())
    os.chmod(rootfs / "bin/busybox", 0o755)
    for tool in tools:
        (rootfs / "bin" / tool).symlink_to("busybox")
