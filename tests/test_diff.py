"""diff: live tree vs snapshot, two trees, overlay upper dirs -> layer entries."""

from __future__ import annotations

import io
import os
import random
import shutil
import socket
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

import oci_tools.diff as diff_mod
from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.diff import (
    _RANK_OPAQUE,
    _RANK_WHITEOUT,
    Change,
    _child_key,
    _enc,
    _key,
    changes,
    decode_rootless,
    diff_entries,
    diff_trees,
    from_upper,
    write_diff,
    write_upper,
)
from oci_tools.errors import OCIToolsError, UnsafeLayerError
from oci_tools.layer.entry import EntryType
from oci_tools.layer.writer import write_layer
from oci_tools.snapshot import Snapshot

NS = 1_000_000_000
IS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (chown, mknod, trusted.*)")


# -- helpers -----------------------------------------------------------------------------


def snap(root: Path, **kw: bool) -> Snapshot:
    """A base snapshot as unpack would leave it (content digests included)."""
    return Snapshot.walk(str(root), hash_content=True, **kw)


def tick() -> None:
    """Let the clock move past the kernel's timestamp granularity, so a change
    made right after a snapshot gets a different ctime."""
    time.sleep(0.02)


class Layer:
    """A layer read back with tarfile: names (dirs with a trailing /) in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.members: list[tarfile.TarInfo] = []
        self.content: dict[str, bytes] = {}
        with tarfile.open(fileobj=io.BytesIO(data)) as t:
            for m in t:
                self.members.append(m)
                if m.isreg():
                    f = t.extractfile(m)
                    assert f is not None
                    self.content[m.name] = f.read()

    @property
    def names(self) -> list[str]:
        return [m.name + "/" if m.isdir() else m.name for m in self.members]

    def __getitem__(self, name: str) -> tarfile.TarInfo:
        for m in self.members:
            if m.name == name.rstrip("/"):
                return m
        raise KeyError(name)


def layer(root: Path, base: Snapshot, sde: int | None = None, codec: str = "none") -> Layer:
    out = io.BytesIO()
    info = write_diff(str(root), base, out, codec, sde)
    lay = Layer(out.getvalue() if codec == "none" else _plain(out.getvalue(), codec))
    assert info.entries == len(lay.members)
    return lay


def _plain(blob: bytes, codec: str) -> bytes:
    from oci_tools.compression import decompressor

    return decompressor(codec, io.BytesIO(blob)).read()


def entries_layer(entries: Iterator[tuple[object, object]]) -> Layer:
    out = io.BytesIO()
    write_layer(entries, out, "none")  # type: ignore[arg-type]
    return Layer(out.getvalue())


def kinds(root: Path, base: Snapshot) -> list[str]:
    return [str(c) for c in changes(str(root), base)]


def restore_mtime(path: Path, st: os.stat_result) -> None:
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def assert_links_point_backwards(lay: Layer) -> None:
    seen: set[str] = set()
    for m in lay.members:
        if m.islnk():
            assert m.linkname in seen, f"{m.name} links to {m.linkname}, not earlier in the layer"
        seen.add(m.name)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/a").write_text("alpha\n")
    (root / "etc/b").write_text("beta\n")
    (root / "etc/c").write_text("gamma\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/tool").write_text("#!/bin/sh\n")
    os.chmod(root / "usr/bin/tool", 0o755)
    return root


# -- basics ----------------------------------------------------------------------------


def test_unchanged_tree_gives_empty_layer(tree: Path) -> None:
    base = snap(tree)
    lay = layer(tree, base)
    assert lay.names == []
    assert lay.data == bytes(1024)
    assert changes(str(tree), base) == []


def test_add_modify_delete(tree: Path) -> None:
    base = snap(tree)
    tick()
    (tree / "etc/a").write_text("ALPHA!\n")
    (tree / "etc/b").unlink()
    (tree / "etc/new").write_text("new\n")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/.wh.b", "etc/a", "etc/new"]
    assert lay.content["etc/a"] == b"ALPHA!\n"
    assert lay.content["etc/new"] == b"new\n"
    wh = lay["etc/.wh.b"]
    assert (wh.isreg(), wh.size, wh.mode, wh.uid, wh.gid, wh.mtime) == (True, 0, 0o644, 0, 0, 0)
    assert kinds(tree, base) == ["C /etc", "C /etc/a", "D /etc/b", "A /etc/new"]
    ch = changes(str(tree), base)
    assert ch[0] == Change("C", "/etc", True)


def test_same_size_edit_with_restored_mtime_is_found_by_digest(tree: Path) -> None:
    base = snap(tree)
    stat_only = Snapshot.walk(str(tree))
    before = os.lstat(tree / "etc/a")
    tick()
    (tree / "etc/a").write_text("ALPHA\n")  # same size
    restore_mtime(tree / "etc/a", before)
    after = os.lstat(tree / "etc/a")
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert after.st_ctime_ns != before.st_ctime_ns
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/a"]
    assert lay.content["etc/a"] == b"ALPHA\n"
    # Without a recorded digest stat cannot prove anything: counted as changed.
    assert layer(tree, stat_only).names == ["etc/", "etc/a"]


def test_verify_content_rehashes_untouched_files(tree: Path) -> None:
    base = snap(tree)
    # A digest that disagrees with a file whose stat is untouched: only a
    # verifying diff reads the file and notices.
    recorded = base.get("etc/b")
    assert recorded is not None
    base.put("etc/b", replace(recorded, content="00" * 32))
    assert layer(tree, base).names == []
    out = io.BytesIO()
    write_diff(str(tree), base, out, "none", verify_content=True)
    assert Layer(out.getvalue()).names == ["etc/", "etc/b"]


def test_rewrite_with_same_bytes_is_not_a_change(tree: Path) -> None:
    base = snap(tree)
    before = os.lstat(tree / "etc/a")
    tick()
    (tree / "etc/a").write_text("alpha\n")
    restore_mtime(tree / "etc/a", before)
    assert layer(tree, base).names == []


def test_ns_mtime_round_trips(tree: Path) -> None:
    base = snap(tree)
    os.utime(tree / "etc/a", ns=(0, 1_600_000_000 * NS + 123_456_789))
    lay = layer(tree, base)
    assert lay["etc/a"].pax_headers["mtime"] == "1600000000.123456789"


# -- deletions and opaque directories -----------------------------------------------


def test_deleting_a_big_dir_is_one_whiteout(tree: Path) -> None:
    big = tree / "var/big"
    (tree / "var/keep").mkdir(parents=True)
    for i in range(10):
        (big / f"sub{i}").mkdir(parents=True)
        for j in range(100):
            (big / f"sub{i}/f{j}").write_text("x")
    base = snap(tree)
    shutil.rmtree(big)
    lay = layer(tree, base)
    assert lay.names == ["var/", "var/.wh.big"]
    assert kinds(tree, base) == ["C /var", "D /var/big"]


def test_recreated_dir_gets_opaque_marker(tree: Path) -> None:
    base = snap(tree)
    # Build the new directory first, so it cannot reuse the old inode number.
    fresh = tree / "etc.new"
    fresh.mkdir()
    (fresh / "a").write_text("other\n")
    (fresh / "z").write_text("zed\n")
    shutil.rmtree(tree / "etc")
    fresh.rename(tree / "etc")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/.wh..wh..opq", "etc/a", "etc/z"]
    assert not any(".wh.b" in n or ".wh.c" in n for n in lay.names)
    assert kinds(tree, base) == ["C /etc", "C /etc/a", "D /etc/b", "D /etc/c", "A /etc/z"]


def test_recreated_dir_with_identical_copy_is_still_complete(tree: Path) -> None:
    # etc removed and restored from a copy missing one file: the opaque marker
    # hides the lower etc, so every file in the new etc must be in the layer.
    base = snap(tree)
    copy = tree / "etc.copy"
    shutil.copytree(tree / "etc", copy)
    (copy / "c").unlink()
    shutil.rmtree(tree / "etc")
    copy.rename(tree / "etc")
    assert layer(tree, base).names == ["etc/", "etc/.wh..wh..opq", "etc/a", "etc/b"]


def test_emptied_dir_gets_opaque_marker(tree: Path) -> None:
    base = snap(tree)
    for name in "abc":
        (tree / "etc" / name).unlink()
    assert layer(tree, base).names == ["etc/", "etc/.wh..wh..opq"]
    (tree / "etc/fresh").write_text("f")
    assert layer(tree, base).names == ["etc/", "etc/.wh..wh..opq", "etc/fresh"]


def test_dir_losing_its_only_child_gets_a_plain_whiteout(tree: Path) -> None:
    base = snap(tree)
    (tree / "usr/bin/tool").unlink()
    assert layer(tree, base).names == ["usr/", "usr/bin/", "usr/bin/.wh.tool"]


def test_partly_emptied_dir_gets_whiteouts(tree: Path) -> None:
    base = snap(tree)
    (tree / "etc/a").unlink()
    (tree / "etc/c").unlink()
    assert layer(tree, base).names == ["etc/", "etc/.wh.a", "etc/.wh.c"]


def test_root_never_gets_an_opaque_marker(tree: Path) -> None:
    base = snap(tree)
    shutil.rmtree(tree / "etc")
    shutil.rmtree(tree / "usr")
    assert layer(tree, base).names == [".wh.etc", ".wh.usr"]


def test_type_changes(tree: Path) -> None:
    base = snap(tree)
    shutil.rmtree(tree / "usr/bin")
    (tree / "usr/bin").write_text("now a file")  # dir -> file: no child whiteouts
    (tree / "etc/a").unlink()
    (tree / "etc/a").mkdir()  # file -> dir: no opaque marker needed
    (tree / "etc/a/inner").write_text("i")
    (tree / "etc/b").unlink()
    (tree / "etc/b").symlink_to("c")  # file -> symlink
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/a/", "etc/a/inner", "etc/b", "usr/", "usr/bin"]
    assert lay["etc/b"].issym() and lay["etc/b"].linkname == "c"
    assert lay["usr/bin"].isreg()


# -- metadata --------------------------------------------------------------------------


def test_chmod_is_a_change(tree: Path) -> None:
    base = snap(tree)
    os.chmod(tree / "etc/a", 0o600)
    os.chmod(tree / "usr/bin", 0o700)
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/a", "usr/", "usr/bin/"]
    assert lay["etc/a"].mode == 0o600
    assert lay["usr/bin"].mode == 0o700


@needs_root
def test_chown_is_a_change(tree: Path) -> None:
    base = snap(tree)
    os.chown(tree / "etc/a", 1234, 5678)
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/a"]
    assert (lay["etc/a"].uid, lay["etc/a"].gid, lay["etc/a"].uname) == (1234, 5678, "")


@pytest.mark.parametrize("recorded", [True, False])
def test_xattr_change_is_found(tree: Path, recorded: bool) -> None:
    os.setxattr(tree / "etc/c", "user.old", b"1")
    base = snap(tree, xattrs=recorded)
    tick()
    os.setxattr(tree / "etc/a", "user.k", b"v\x00\xff")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/a"]
    assert (
        lay["etc/a"].pax_headers["SCHILY.xattr.user.k"].encode("utf-8", "surrogateescape")
        == b"v\x00\xff"
    )
    os.removexattr(tree / "etc/c", "user.old")
    names = layer(tree, base).names
    # A removal is only visible when the fingerprint was recorded.
    assert ("etc/c" in names) is recorded


def test_xattr_filtering(tree: Path) -> None:
    base = snap(tree)
    os.setxattr(tree / "etc/a", "user.empty", b"")
    os.setxattr(tree / "etc/a", "user.kept", b"yes")
    with_selinux = True
    try:
        os.setxattr(tree / "etc/a", "security.selinux", b"system_u:object_r:etc_t:s0\x00")
    except OSError:
        with_selinux = False
    tick()
    os.chmod(tree / "etc/a", 0o640)
    pax = layer(tree, base)["etc/a"].pax_headers
    assert "SCHILY.xattr.user.kept" in pax
    assert "SCHILY.xattr.user.empty" not in pax
    assert "SCHILY.xattr.security.selinux" not in pax
    print("security.selinux settable:", with_selinux)


def test_rootlesscontainers_owner(tree: Path) -> None:
    base = snap(tree)
    # uid 1000, gid 1001 (fields 1 and 2, varints)
    os.setxattr(
        tree / "etc/a", "user.rootlesscontainers", bytes([0x08, 0xE8, 0x07, 0x10, 0xE9, 0x07])
    )
    # uid 0 (absent field), gid "keep on-disk" (0xFFFFFFFF)
    os.setxattr(
        tree / "etc/b", "user.rootlesscontainers", bytes([0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
    )
    lay = layer(tree, base)
    a, b = lay["etc/a"], lay["etc/b"]
    assert (a.uid, a.gid) == (1000, 1001)
    assert (b.uid, b.gid) == (0, os.lstat(tree / "etc/b").st_gid)
    assert not any("rootlesscontainers" in k for k in a.pax_headers)


def test_decode_rootless() -> None:
    assert decode_rootless(b"") == (0, 0)
    assert decode_rootless(bytes([0x08, 0x05])) == (5, 0)
    assert decode_rootless(bytes([0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F, 0x10, 0x02])) == (None, 2)
    # An unknown length-delimited field is skipped.
    assert decode_rootless(bytes([0x1A, 0x02, 0x41, 0x42, 0x08, 0x07])) == (7, 0)
    for bad in (bytes([0x08]), bytes([0x08, 0x80]), bytes([0x1A, 0x05, 0x41]), bytes([0x0B])):
        with pytest.raises(ValueError):
            decode_rootless(bad)


def test_malformed_rootlesscontainers_is_a_clean_error(tree: Path) -> None:
    base = snap(tree)
    os.setxattr(tree / "etc/a", "user.rootlesscontainers", b"\x08")
    with pytest.raises(OCIToolsError, match="rootlesscontainers"):
        layer(tree, base)


def test_symlink_retarget_with_restored_mtime(tree: Path) -> None:
    (tree / "etc/link").symlink_to("aaaa")
    base = snap(tree)
    before = os.lstat(tree / "etc/link")
    tick()
    (tree / "etc/link").unlink()
    (tree / "etc/link").symlink_to("bbbb")  # same length
    restore_mtime(tree / "etc/link", before)
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/link"]
    assert lay["etc/link"].linkname == "bbbb"


@needs_root
def test_devices_fifos_and_sockets(tree: Path) -> None:
    base = snap(tree)
    os.mknod(tree / "etc/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(tree / "etc/loop", 0o660 | stat.S_IFBLK, os.makedev(7, 1))
    os.mkfifo(tree / "etc/pipe", 0o600)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "etc/sock"))
    try:
        lay = layer(tree, base)
    finally:
        sock.close()
    assert lay.names == ["etc/", "etc/loop", "etc/null", "etc/pipe"]
    assert lay["etc/null"].ischr() and (lay["etc/null"].devmajor, lay["etc/null"].devminor) == (
        1,
        3,
    )
    assert lay["etc/loop"].isblk() and lay["etc/loop"].devminor == 1
    assert lay["etc/pipe"].isfifo()
    # A device whose numbers change is changed.
    base = snap(tree)
    os.unlink(tree / "etc/null")
    os.mknod(tree / "etc/null", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    assert layer(tree, base).names == ["etc/", "etc/null"]


def test_socket_replacing_a_file_whites_it_out(tree: Path) -> None:
    base = snap(tree)
    (tree / "etc/a").unlink()
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "etc/a"))
    try:
        assert layer(tree, base).names == ["etc/", "etc/.wh.a"]
    finally:
        sock.close()


def test_root_metadata(tree: Path) -> None:
    base = snap(tree)
    (tree / "new").write_text("n")  # root mtime changes: the root is not emitted
    assert layer(tree, base).names == ["new"]
    os.chmod(tree, 0o700)
    lay = layer(tree, base)
    assert lay.names == ["./", "new"]
    assert lay["."].mode == 0o700


# -- hardlinks -------------------------------------------------------------------------


def test_new_link_to_unchanged_file_includes_the_peer(tree: Path) -> None:
    base = snap(tree)
    os.link(tree / "etc/c", tree / "usr/bin/c-link")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/c", "usr/", "usr/bin/", "usr/bin/c-link"]
    assert lay["etc/c"].isreg() and lay.content["etc/c"] == b"gamma\n"
    assert lay["usr/bin/c-link"].islnk() and lay["usr/bin/c-link"].linkname == "etc/c"
    assert_links_point_backwards(lay)
    assert kinds(tree, base) == ["C /etc", "C /etc/c", "C /usr", "C /usr/bin", "A /usr/bin/c-link"]


def test_new_link_sorting_first_carries_the_content(tree: Path) -> None:
    base = snap(tree)
    os.link(tree / "usr/bin/tool", tree / "etc/0-tool")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/0-tool", "usr/", "usr/bin/", "usr/bin/tool"]
    assert lay["etc/0-tool"].isreg() and lay["etc/0-tool"].mode == 0o755
    assert lay["usr/bin/tool"].islnk() and lay["usr/bin/tool"].linkname == "etc/0-tool"
    assert_links_point_backwards(lay)


def test_new_hardlink_group(tree: Path) -> None:
    base = snap(tree)
    (tree / "etc/h1").write_text("shared")
    os.link(tree / "etc/h1", tree / "etc/h2")
    os.link(tree / "etc/h1", tree / "h0")
    lay = layer(tree, base)
    assert lay.names == ["etc/", "etc/h1", "etc/h2", "h0"]
    assert lay["etc/h1"].isreg() and lay.content["etc/h1"] == b"shared"
    assert lay["etc/h2"].linkname == "etc/h1" and lay["h0"].linkname == "etc/h1"
    assert_links_point_backwards(lay)


# -- refusals, clamping, determinism ----------------------------------------------------


def test_whiteout_names_are_refused(tree: Path) -> None:
    base = snap(tree)
    (tree / "etc/.wh.sneaky").write_text("x")
    with pytest.raises(UnsafeLayerError) as err:
        layer(tree, base)
    assert err.value.entry == "/etc/.wh.sneaky"
    assert err.value.hint
    with pytest.raises(UnsafeLayerError):
        changes(str(tree), base)


def test_unchanged_dir_named_like_a_whiteout_is_refused_when_needed(tree: Path) -> None:
    (tree / ".wh.dir").mkdir()
    base = snap(tree)
    assert layer(tree, base).names == []  # unchanged: nothing to store
    (tree / ".wh.dir/new").write_text("x")
    with pytest.raises(UnsafeLayerError):
        layer(tree, base)


def test_source_date_epoch_clamps_newer_times_only(tree: Path) -> None:
    base = snap(tree)
    sde = 1_600_000_000
    tick()
    (tree / "etc/new").write_text("n")  # now: newer than sde
    (tree / "etc/old").write_text("o")
    os.utime(tree / "etc/old", ns=(0, 1_000_000_000 * NS + 5))
    (tree / "etc/b").unlink()
    lay = layer(tree, base, sde=sde)
    assert lay["etc/new"].mtime == sde
    assert "mtime" not in lay["etc/new"].pax_headers
    assert lay["etc"].mtime == sde
    assert lay["etc/old"].pax_headers["mtime"] == "1000000000.000000005"
    assert lay["etc/.wh.b"].mtime == 0


def test_same_tree_twice_gives_identical_bytes(tree: Path) -> None:
    base = snap(tree)
    (tree / "etc/new").write_text("n" * 5000)
    (tree / "etc/b").unlink()
    os.link(tree / "etc/a", tree / "etc/z")
    (tree / ("l\u00e9" * 40)).symlink_to("x" * 200)
    first = io.BytesIO()
    second = io.BytesIO()
    i1 = write_diff(str(tree), base, first, "gzip", 1_700_000_000)
    i2 = write_diff(str(tree), base, second, "gzip", 1_700_000_000)
    assert first.getvalue() == second.getvalue()
    assert i1 == i2


def test_entry_order_is_depth_first(tree: Path) -> None:
    base = snap(tree)
    (tree / "a").mkdir()
    (tree / "a/x").write_text("x")
    (tree / "a-b").write_text("y")
    (tree / "a.c").write_text("z")
    (tree / "B").write_text("upper case sorts first")
    lay = layer(tree, base)
    assert lay.names == ["B", "a/", "a/x", "a-b", "a.c"]


def test_parents_are_emitted_before_children(tree: Path) -> None:
    deep = tree / "opt/a/b/c"
    deep.mkdir(parents=True)
    base = snap(tree)
    stats = {p: os.lstat(p) for p in [tree / "opt", tree / "opt/a", tree / "opt/a/b", deep]}
    tick()
    (deep / "new").write_text("n")
    for p, st in stats.items():
        restore_mtime(p, st)
    lay = layer(tree, base)
    assert lay.names == ["opt/", "opt/a/", "opt/a/b/", "opt/a/b/c/", "opt/a/b/c/new"]


def test_only_changed_files_are_read(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for d in range(30):
        (tree / f"data/d{d}").mkdir(parents=True)
        for f in range(100):
            (tree / f"data/d{d}/f{f}").write_text(f"content {d} {f}\n")
    base = snap(tree)
    opened: list[str] = []
    real = diff_mod._open_content

    def counting(dir_fd: int, name: str) -> int:
        opened.append(name)
        return real(dir_fd, name)

    monkeypatch.setattr(diff_mod, "_open_content", counting)
    tick()
    (tree / "data/d7/f42").write_text("changed content\n")
    assert layer(tree, base).names == ["data/", "data/d7/", "data/d7/f42"]
    assert opened == ["f42"]  # only to archive it
    opened.clear()
    os.chmod(tree / "data/d3/f3", 0o600)
    os.chmod(tree / "data/d3/f3", 0o644)  # ctime moved, nothing else: hash to be sure
    layer(tree, base)
    assert sorted(opened) == ["f3", "f42"]


def test_copied_tree_has_no_changes(tree: Path, tmp_path: Path) -> None:
    (tree / "etc/link").symlink_to("a")
    os.setxattr(tree / "etc/a", "user.k", b"v")
    os.utime(tree / "etc/b", ns=(0, 1_500_000_000 * NS + 7))
    base = snap(tree, xattrs=True)
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    # Every inode and ctime differs: content digests settle it.
    assert layer(copy, base).names == []
    (copy / "etc/c").write_text("GAMMA\n")  # same size
    restore_mtime(copy / "etc/c", os.lstat(tree / "etc/c"))
    assert layer(copy, base).names == ["etc/", "etc/c"]


def test_swapped_symlink_is_not_followed(tree: Path) -> None:
    base = snap(tree)
    tick()
    (tree / "etc/a").write_text("changed\n")
    it = diff_entries(str(tree), base)
    entry, _ = next(it)
    assert entry.name == "etc" and entry.type is EntryType.DIR
    # Between planning and archiving, etc/a becomes a link to a host file.
    (tree / "etc/a").unlink()
    (tree / "etc/a").symlink_to("/etc/passwd")
    with pytest.raises(OCIToolsError, match="changed while"):
        next(it)
    it.close()


# -- two trees -----------------------------------------------------------------------------


def test_diff_trees(tree: Path, tmp_path: Path) -> None:
    os.utime(tree / "etc/c", ns=(0, 1_600_000_000 * NS))  # whole second: ambiguous
    os.utime(tree / "etc/a", ns=(0, 1_600_000_000 * NS + 5))
    upper = tmp_path / "upper"
    shutil.copytree(tree, upper, symlinks=True)
    assert entries_layer(diff_trees(str(tree), str(upper))).names == []
    (upper / "etc/b").unlink()
    (upper / "etc/new").write_text("n")
    (upper / "etc/c").write_text("GAMMA\n")
    os.utime(upper / "etc/c", ns=(0, 1_600_000_000 * NS))
    (upper / "etc/a").write_text("ALPHA\n")
    os.utime(upper / "etc/a", ns=(0, 1_600_000_000 * NS + 5))
    os.setxattr(upper / "usr/bin/tool", "user.x", b"1")
    for d in (upper / "etc", upper):
        restore_mtime(d, os.lstat(tree / d.relative_to(upper)))
    lay = entries_layer(diff_trees(str(tree), str(upper)))
    # etc/a keeps a nanosecond mtime: trusted unless compare_content.
    assert lay.names == [
        "etc/",
        "etc/.wh.b",
        "etc/c",
        "etc/new",
        "usr/",
        "usr/bin/",
        "usr/bin/tool",
    ]
    lay = entries_layer(diff_trees(str(tree), str(upper), compare_content=True))
    assert "etc/a" in lay.names


# -- overlay upper dirs ----------------------------------------------------------------------


@needs_root
def test_from_upper(tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    (upper / "etc").mkdir(parents=True)
    (upper / "etc/conf").write_text("c")
    os.setxattr(upper / "etc/conf", "trusted.overlay.origin", b"\x00\x01")
    os.mknod(upper / "etc/gone", stat.S_IFCHR | 0o000, 0)
    (upper / "var/cache").mkdir(parents=True)
    os.setxattr(upper / "var/cache", "trusted.overlay.opaque", b"y")
    (upper / "var/cache/fresh").write_text("f")
    (upper / "home").mkdir()
    os.setxattr(upper / "home", "user.overlay.opaque", b"y")
    (upper / "old").write_text("")
    os.setxattr(upper / "old", "trusted.overlay.whiteout", b"")
    (upper / "srv").mkdir()
    os.setxattr(upper / "srv", "trusted.overlay.opaque", b"x")  # has xattr whiteouts, not opaque
    lay = entries_layer(from_upper(str(upper)))
    assert lay.names == [
        ".wh.old",
        "etc/",
        "etc/.wh.gone",
        "etc/conf",
        "home/",
        "home/.wh..wh..opq",
        "srv/",
        "var/",
        "var/cache/",
        "var/cache/.wh..wh..opq",
        "var/cache/fresh",
    ]
    assert not any("overlay" in k for m in lay.members for k in m.pax_headers)
    out = io.BytesIO()
    info = write_upper(str(upper), out, "gzip")
    assert info.entries == len(lay.names)


@needs_root
@pytest.mark.parametrize("attr", ["trusted.overlay.redirect", "user.overlay.metacopy"])
def test_from_upper_refuses_redirect_and_metacopy(tmp_path: Path, attr: str) -> None:
    upper = tmp_path / "upper"
    (upper / "moved").mkdir(parents=True)
    os.setxattr(upper / "moved", attr, b"/orig")
    with pytest.raises(UnsafeLayerError, match="overlay"):
        list(from_upper(str(upper)))


# -- round trip through apply -----------------------------------------------------------


def tree_state(root: Path) -> dict[str, tuple[object, ...]]:
    """Everything a layer is meant to carry, per path (not inodes or ctimes)."""
    s = Snapshot.walk(str(root), hash_content=True, xattrs=True)
    out: dict[str, tuple[object, ...]] = {}
    groups: dict[int, list[str]] = {}
    for p in s.paths():
        fs = s.get(p)
        assert fs is not None
        is_dir = stat.S_ISDIR(fs.mode)
        if not is_dir:
            groups.setdefault(fs.ino, []).append(p)
        out[p] = (
            fs.mode,
            fs.uid,
            fs.gid,
            None if is_dir else fs.size,
            None if p == "" else fs.mtime_ns,  # the root is not in layers
            fs.rdev,
            fs.content,
            fs.xattrs,
            None if is_dir else fs.nlink,
        )
    for members in groups.values():
        for p in members:
            out[p] = (*out[p], tuple(sorted(members)))
    return out


@needs_root
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_round_trip_through_apply(tree: Path, tmp_path: Path, codec: str) -> None:

    (tree / "var/lib/pkgs").mkdir(parents=True)
    for i in range(5):
        (tree / f"var/lib/pkgs/p{i}").write_text(f"pkg {i}\n")
    (tree / "var/cache").mkdir()
    (tree / "var/cache/x").write_text("x")
    (tree / "var/cache/y").write_text("y")
    (tree / "opt/old").mkdir(parents=True)
    (tree / "opt/old/f").write_text("old")
    (tree / "etc/hl1").write_text("linked")
    os.link(tree / "etc/hl1", tree / "etc/hl2")
    (tree / "etc/sym").symlink_to("a")
    os.setxattr(tree / "etc/c", "user.keep", b"1")
    lower = tmp_path / "lower"
    subprocess_cp(tree, lower)
    assert tree_state(lower) == tree_state(tree)
    base = snap(tree)
    tick()

    # Every kind of change at once.
    (tree / "etc/a").write_text("a longer alpha\n")
    before = os.lstat(tree / "etc/b")
    (tree / "etc/b").write_text("BETA\n")
    restore_mtime(tree / "etc/b", before)
    os.chmod(tree / "usr/bin/tool", 0o700)
    os.chown(tree / "etc/c", 123, 456)
    os.setxattr(tree / "etc/c", "user.new", b"\x00\x01")
    shutil.rmtree(tree / "opt/old")
    (tree / "var/cache/x").unlink()
    (tree / "var/cache/y").unlink()
    fresh = tree / "var/lib/pkgs.new"
    fresh.mkdir()
    (fresh / "p0").write_text("pkg 0 v2\n")
    shutil.rmtree(tree / "var/lib/pkgs")
    fresh.rename(tree / "var/lib/pkgs")
    (tree / "etc/sym").unlink()
    (tree / "etc/sym").symlink_to("c")
    os.link(tree / "etc/a", tree / "usr/a-link")
    os.link(tree / "etc/c", tree / "0-c-link")  # new link to an unchanged peer
    (tree / "srv/www").mkdir(parents=True)
    (tree / "srv/www/index.html").write_text("<h1>hi</h1>")
    os.utime(tree / "srv/www/index.html", ns=(0, 1_650_000_000 * NS + 42))
    os.mkfifo(tree / "srv/fifo")
    os.mknod(tree / "srv/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (tree / "etc/hl2").unlink()
    shutil.rmtree(tree / "usr/bin")
    (tree / "usr/bin").write_text("a file now")

    out = io.BytesIO()
    info = write_diff(str(tree), base, out, codec, None)
    lower_snap = snap(lower)
    apply_layer(
        io.BytesIO(out.getvalue()),
        str(lower),
        codec=codec,
        diff_id=info.diff_id,
        snapshot=lower_snap,
        options=ApplyOptions(rootless=False),
    )
    assert tree_state(lower) == tree_state(tree)
    # The snapshot apply kept up to date describes the result: nothing to commit.
    assert changes(str(lower), lower_snap) == []
    assert write_diff(str(lower), lower_snap, io.BytesIO(), "none").entries == 0


def subprocess_cp(src: Path, dst: Path) -> None:
    """A faithful copy: hardlinks, xattrs, owners and ns times kept."""
    import subprocess

    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def _tuple_key(rel: str) -> tuple[tuple[int, bytes], ...]:
    return () if not rel else tuple((2, c) for c in _enc(rel).split(b"/"))


def test_flat_sort_keys_order_like_component_tuples() -> None:
    r = random.Random(3)
    alphabet = ["a", "b", "a-", "a.b", "é", "\udcff", "ab", "a0", ".wh.x", "z", "A", "a\x01"]
    for _ in range(200):
        paths = {"/".join(r.choice(alphabet) for _ in range(r.randint(1, 4))) for _ in range(50)}
        ref, flat = [], []
        for p in paths:
            ref.append((_tuple_key(p), 2, p))
            flat.append((_key(p), 2, p))
            parent, _, name = p.rpartition("/")
            if r.random() < 0.3:
                wh = _enc(".wh." + name)
                ref.append(((*_tuple_key(parent), (1, wh)), 1, p))
                flat.append((_child_key(parent, _RANK_WHITEOUT, wh), 1, p))
            if r.random() < 0.2:
                ref.append(((*_tuple_key(p), (0, b"")), 0, p))
                flat.append((_child_key(p, _RANK_OPAQUE, b""), 0, p))
        ref.sort()
        flat.sort()
        assert [(w, p) for _, w, p in ref] == [(w, p) for _, w, p in flat]
