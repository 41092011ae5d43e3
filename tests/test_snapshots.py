"""The host layer store (``oci_tools.snapshots``) and ``unpack --overlay``.

Root and overlayfs are needed (the store writes ``trusted.overlay.*`` and
device-node whiteouts); the tests skip only where the kernel lacks overlay.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import pytest
from builders import Layer, directory, file, hardlink, make_layer, opaque, symlink, whiteout
from helpers import cli, need_root

from oci_tools.digest import Digest
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.mutate import empty_config, write_image
from oci_tools.snapshots import (
    LayerStore,
    chain_ids,
    content_size,
    is_mounted,
    mount_overlay,
    overlay_supported,
    unmount,
)
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Platform
from oci_tools.store import put_bytes


@pytest.fixture(autouse=True)
def _root_and_overlay() -> None:
    need_root()
    if not overlay_supported():
        pytest.skip("the kernel has no overlayfs")


def write_image_of(path: Path, layers: Sequence[Layer], ref: str = "latest") -> Layout:
    lay = Layout.open(str(path)) if path.exists() else Layout.init(str(path))
    descs = []
    for lyr in layers:
        put_bytes(lay.store, lyr.blob)
        descs.append(
            Descriptor(mt.OCI_LAYER_FOR_CODEC[lyr.codec], Digest.parse(lyr.digest), len(lyr.blob))
        )
    cfg = empty_config(Platform("linux", "amd64"), "2024-01-01T00:00:00Z")
    cfg["rootfs"]["diff_ids"] = [lyr.diff_id for lyr in layers]
    cfg["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": "x"} for _ in layers]
    write_image(lay, cfg, descs, ref=ref)
    return lay


def base_layer() -> Layer:
    return make_layer(
        [
            directory("etc"),
            file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n"),
            file("etc/group", b"root:x:0:\n"),
            directory("opt"),
            file("opt/a", b"aaa"),
            directory("opt/sub"),
            file("opt/sub/b", b"bb"),
            directory("data"),
            file("data/big", b"x" * 5000),
            hardlink("data/big2", "data/big"),
            symlink("link", "etc/passwd"),
        ]
    )


def top_layer() -> Layer:
    return make_layer(
        [
            directory("etc"),
            whiteout("etc/group"),
            directory("opt"),
            opaque("opt"),
            file("opt/new", b"new"),
            directory("data"),
            hardlink("data/again", "data/big"),  # target in the lower layer
            whiteout("gone-anyway"),
            directory("data/re"),
            whiteout("data/re"),  # deleted and re-added: opaque
        ]
    )


def test_chain_ids_follow_the_image_spec() -> None:
    a = Digest.parse("sha256:" + "a" * 64)
    b = Digest.parse("sha256:" + "b" * 64)
    got = chain_ids([a, b])
    assert got[0] == a
    import hashlib

    assert got[1].encoded == hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_layers_are_extracted_once_with_overlay_whiteouts(tmp_path: Path) -> None:
    lay = write_image_of(tmp_path / "lay", [base_layer(), top_layer()])
    store = LayerStore(lay)
    img = Image.load(lay, "latest")
    recs = store.ensure(img)
    assert len(recs) == 2
    base, top = (Path(r.diff) for r in recs)
    assert (base / "etc/passwd").read_bytes().startswith(b"root")
    # Docker's size: content bytes, the hardlinked file once, symlink target length.
    assert recs[0].size == len(b"root:x:0:0::/root:/bin/sh\n") + 10 + 3 + 2 + 5000 + 10
    st = os.lstat(top / "etc/group")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert os.getxattr(top / "opt", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(top / "data/re", "trusted.overlay.opaque") == b"y"
    assert (top / "data/again").read_bytes() == b"x" * 5000  # copied up
    assert stat.S_ISCHR(os.lstat(top / "gone-anyway").st_mode)
    # A second ensure reuses the dirs (same inode, no re-extraction).
    ino = os.stat(top).st_ino
    assert [r.path for r in store.ensure(img)] == [r.path for r in recs]
    assert os.stat(top).st_ino == ino
    assert not [n for n in os.listdir(store.root) if n.startswith(".tmp-")]


def test_overlay_mount_shows_the_merged_image(tmp_path: Path) -> None:
    lay = write_image_of(tmp_path / "lay", [base_layer(), top_layer()])
    recs = LayerStore(lay).ensure(Image.load(lay, "latest"))
    up, work, mnt = (tmp_path / n for n in ("upper", "work", "mnt"))
    for d in (up, work, mnt):
        d.mkdir()
    mount_overlay([r.diff for r in reversed(recs)], str(up), str(work), str(mnt))
    try:
        assert is_mounted(str(mnt))
        assert sorted(os.listdir(mnt / "opt")) == ["new"]
        assert not (mnt / "etc/group").exists()
        assert (mnt / "etc/passwd").exists()
        assert not (mnt / "gone-anyway").exists()
        assert os.listdir(mnt / "data/re") == []
        (mnt / "etc/passwd").write_text("changed\n")
        assert content_size(str(up)) == len("changed\n")
        assert recs[0].size > 0 and (Path(recs[0].diff) / "etc/passwd").read_text() != "changed\n"
    finally:
        unmount(str(mnt))
    assert not is_mounted(str(mnt))


def test_shared_base_is_stored_once_and_gc_frees_unused_layers(tmp_path: Path) -> None:
    base, top = base_layer(), top_layer()
    other = make_layer([file("other", b"o")])
    lay = write_image_of(tmp_path / "lay", [base, top], "one")
    write_image_of(tmp_path / "lay", [base, other], "two")
    store = LayerStore(lay)
    store.ensure(Image.load(lay, "one"))
    store.ensure(Image.load(lay, "two"))
    assert len(store.records()) == 3  # the base once
    assert store.gc() == []
    lay.remove_ref("two")
    freed = store.gc()
    assert [r.diff_id for r in freed] == [other.diff_id]
    assert len(store.records()) == 2
    cli("rm", f"{tmp_path / 'lay'}:one")
    assert cli("gc", str(tmp_path / "lay")).code == 0
    assert store.records() == []


def test_a_crashed_extraction_leaves_no_layer(tmp_path: Path) -> None:
    bad = make_layer([file("a", b"1")])
    # Lie about the diff_id: the applier notices at the end of the stream.
    lay = write_image_of(tmp_path / "lay", [bad])
    idx = lay.index()
    img = Image.from_descriptor(lay, idx.manifests[0])
    doc = img.config.as_dict()
    doc["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
    write_image(lay, doc, list(img.layers), ref="latest")
    store = LayerStore(lay)
    from oci_tools.errors import DigestMismatchError

    with pytest.raises(DigestMismatchError):
        store.ensure(Image.load(lay, "latest"))
    assert os.listdir(store.root) == []


def test_unpack_overlay_commit_and_diff(tmp_path: Path) -> None:
    lay = write_image_of(tmp_path / "lay", [base_layer(), top_layer()])
    b = tmp_path / "b"
    r = cli("unpack", "--overlay", f"{lay.path}:latest", str(b))
    assert r.code == 0, r.err
    assert "copied" not in r.err
    rootfs = b / "rootfs"
    try:
        assert is_mounted(str(rootfs))
        assert (b / "config.json").exists()
        assert sorted(os.listdir(rootfs / "opt")) == ["new"]
        (rootfs / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:1:1::/:/bin/sh\n")
        (rootfs / "etc/added").write_text("hi")
        os.unlink(rootfs / "link")
        r = cli("diff", str(b))
        assert r.code == 0, r.err
        assert r.out.splitlines() == ["C /etc", "A /etc/added", "C /etc/passwd", "D /link"]
        r = cli("status", "--format", "json", str(b))
        assert r.code == 0, r.err
        rw = len("root:x:0:0::/root:/bin/sh\nweb:x:1:1::/:/bin/sh\n") + len("hi")
        assert json.loads(r.out)["SizeRw"] == rw  # the upper dir's bytes
        r = cli("commit", str(b), f"{lay.path}:next")
        assert r.code == 0, r.err
        # The committed image unpacks (copy mode) to the same tree.
        c = tmp_path / "c"
        assert cli("unpack", f"{lay.path}:next", str(c)).code == 0
        assert (c / "rootfs/etc/added").read_text() == "hi"
        assert not (c / "rootfs/link").exists() and not (c / "rootfs/link").is_symlink()
        assert "web:" in (c / "rootfs/etc/passwd").read_text()
        # Its lower layers are the stored ones: a second overlay unpack extracts one more.
        store = LayerStore(lay)
        before = len(store.records())
        d = tmp_path / "d"
        assert cli("unpack", "--overlay", f"{lay.path}:next", str(d)).code == 0
        try:
            assert len(store.records()) == before + 1
            assert (d / "rootfs/etc/added").read_text() == "hi"
        finally:
            unmount(str(d / "rootfs"))
    finally:
        unmount(str(rootfs))


def test_overlay_unpack_refuses_clobber_and_force_remounts(tmp_path: Path) -> None:
    lay = write_image_of(tmp_path / "lay", [base_layer()])
    b = tmp_path / "b"
    assert cli("unpack", "--overlay", f"{lay.path}:latest", str(b)).code == 0
    try:
        assert cli("unpack", "--overlay", f"{lay.path}:latest", str(b)).code == 1
        r = cli("unpack", "--overlay", "--force", f"{lay.path}:latest", str(b))
        assert r.code == 0, r.err
        assert is_mounted(str(b / "rootfs"))
        mounts = Path("/proc/self/mountinfo").read_text().splitlines()
        assert len([ln for ln in mounts if str(b) in ln]) == 1
    finally:
        unmount(str(b / "rootfs"))


def test_unpack_overlay_falls_back_to_a_copy_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oci_tools.snapshots

    monkeypatch.setattr(oci_tools.snapshots, "overlay_supported", lambda: False)
    lay = write_image_of(tmp_path / "lay", [base_layer()])
    b = tmp_path / "b"
    r = cli("unpack", "--overlay", f"{lay.path}:latest", str(b))
    assert r.code == 0, r.err
    assert "overlay not available" in r.err
    assert not is_mounted(str(b / "rootfs"))
    assert (b / "rootfs/etc/passwd").is_file()
    assert LayerStore(lay).records() == []


def test_many_layers_mount_through_short_links(tmp_path: Path) -> None:
    # 120 absolute lowerdir paths overflow a page of mount options many times
    # over (Docker allows 127 layers): the mount names them by short links.
    n = 120
    layers = [make_layer([directory("d"), file(f"d/f{i}", str(i).encode())]) for i in range(n)]
    lay = write_image_of(tmp_path / "lay", layers)
    recs = LayerStore(lay).ensure(Image.load(lay, "latest"))
    assert len(",".join(r.diff for r in recs)) > os.sysconf("SC_PAGE_SIZE")
    b = tmp_path / "b"
    r = cli("unpack", "--overlay", f"{lay.path}:latest", str(b))
    assert r.code == 0, r.err
    try:
        assert len(os.listdir(b / "rootfs/d")) == n
        assert (b / "rootfs/d/f119").read_text() == "119"
        assert not [p for p in os.listdir(b) if p.startswith(".lowers-")]
    finally:
        unmount(str(b / "rootfs"))
