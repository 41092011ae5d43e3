"""Applying layers onto a rootfs: whiteouts, type changes, links, metadata,
digests, codecs, and the snapshot that apply leaves for commit."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from builders import (
    Layer,
    Member,
    blockdev,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    make_layer,
    opaque,
    symlink,
    whiteout,
)

from oci_tools.apply import ApplyOptions, ApplyResult, apply_layer
from oci_tools.digest import Digest, VerifyingReader
from oci_tools.errors import CorruptBlobError, DigestMismatchError, UnsafeLayerError
from oci_tools.snapshot import FileState, Snapshot, xattr_fingerprint

IS_ROOT = os.geteuid() == 0
ROOT_REASON = "needs root (chown to other ids, mknod)"


def apply(
    root: Path,
    members: Sequence[Member | bytes],
    *,
    codec: str = "gzip",
    snapshot: Snapshot | None = None,
    **opts: object,
) -> ApplyResult:
    lay = make_layer(members, codec)
    options = ApplyOptions(**opts)  # type: ignore[arg-type]
    return apply_layer(
        io.BytesIO(lay.blob),
        str(root),
        codec=codec,
        diff_id=Digest.parse(lay.diff_id),
        snapshot=snapshot,
        options=options,
    )


def tree(root: Path) -> dict[str, str]:
    """path -> short description of every node below root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "-> " + os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = Path(p).read_bytes().decode("latin-1")
            else:
                out[rel] = "special"
    return out


def _fingerprint(p: str) -> str:
    names = os.listxattr(p, follow_symlinks=False)
    return xattr_fingerprint({n: os.getxattr(p, n, follow_symlinks=False) for n in names})


def walk_state(root: Path) -> dict[str, FileState]:
    """A fresh lstat, content digest and xattr fingerprint of every path."""
    out = {"": FileState.from_stat(os.lstat(root), None, _fingerprint(str(root)))}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            content = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(Path(p).read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = hashlib.sha256(os.fsencode(os.readlink(p))).hexdigest()
            out[os.path.relpath(p, root)] = FileState.from_stat(st, content, _fingerprint(p))
    return out


def assert_snapshot_matches(snap: Snapshot, root: Path) -> None:
    """The snapshot apply kept equals a fresh walk: same paths, same lstat
    fields, same content digests and xattr fingerprints."""
    walked = walk_state(root)
    assert sorted(snap.files) == sorted(walked)
    for path, fs in walked.items():
        got = snap.files[path]
        if got.xattrs is None:
            # Only the rootfs itself predates the layers (its xattrs unknown).
            assert path == ""
            fs = replace(fs, xattrs=None)
        assert got == fs, path


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    r = tmp_path / "rootfs"
    r.mkdir()
    return r


def lower(root: Path) -> None:
    """A typical lower layer."""
    apply(
        root,
        [
            directory("etc"),
            file("etc/passwd", b"root:x:0:0\n"),
            file("etc/motd", b"hi"),
            directory("etc/conf.d"),
            file("etc/conf.d/a", b"a"),
            file("etc/conf.d/b", b"b"),
            directory("usr"),
            directory("usr/lib"),
            file("usr/lib/libc.so", b"ELF"),
            symlink("lib", "usr/lib"),
        ],
    )


# ------------------------------------------------------------------ whiteouts


def test_plain_whiteout_removes_lower_file_and_dir(root: Path) -> None:
    lower(root)
    apply(root, [whiteout("etc/motd"), whiteout("etc/conf.d")])
    t = tree(root)
    assert "etc/motd" not in t and "etc/conf.d" not in t and "etc/conf.d/a" not in t
    assert t["etc/passwd"] == "root:x:0:0\n"
    assert not any(".wh." in p for p in t)


def test_opaque_hides_lower_children_only(root: Path) -> None:
    lower(root)
    apply(root, [directory("etc"), opaque("etc"), file("etc/new", b"n")])
    assert {p for p in tree(root) if p.startswith("etc/")} == {"etc/new"}


def test_opaque_after_same_layer_additions(root: Path) -> None:
    lower(root)
    apply(
        root,
        [
            directory("etc"),
            file("etc/new", b"n"),
            directory("etc/sub"),
            file("etc/sub/x", b"x"),
            file("etc/passwd", b"mine"),
            opaque("etc"),
        ],
    )
    t = {p: v for p, v in tree(root).items() if p.startswith("etc/")}
    assert t == {"etc/new": "n", "etc/sub": "dir", "etc/sub/x": "x", "etc/passwd": "mine"}


def test_opaque_keeps_merged_dir_but_hides_its_lower_children(root: Path) -> None:
    lower(root)
    apply(root, [file("etc/conf.d/c", b"c"), opaque("etc")])
    t = {p: v for p, v in tree(root).items() if p.startswith("etc/")}
    assert t == {"etc/conf.d": "dir", "etc/conf.d/c": "c"}


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_same_layer_add_and_whiteout_keeps_the_addition(root: Path, whiteout_first: bool) -> None:
    lower(root)
    add = file("etc/motd", b"new motd")
    entries: list[Member | bytes] = (
        [whiteout("etc/motd"), add] if whiteout_first else [add, whiteout("etc/motd")]
    )
    apply(root, entries)
    assert tree(root)["etc/motd"] == "new motd"


@pytest.mark.parametrize("whiteout_first", [True, False])
def test_dir_deleted_and_recreated(root: Path, whiteout_first: bool) -> None:
    lower(root)
    wh: list[Member | bytes] = [whiteout("etc/conf.d")]
    add: list[Member | bytes] = [directory("etc/conf.d", mode=0o700), file("etc/conf.d/z", b"z")]
    apply(root, wh + add if whiteout_first else add + wh)
    t = {p: v for p, v in tree(root).items() if p.startswith("etc/conf.d")}
    assert t == {"etc/conf.d": "dir", "etc/conf.d/z": "z"}
    assert stat.S_IMODE(os.lstat(root / "etc/conf.d").st_mode) == 0o700


def test_whiteout_of_symlink_removes_only_the_link(root: Path) -> None:
    lower(root)
    apply(root, [whiteout("lib")])
    t = tree(root)
    assert "lib" not in t and t["usr/lib/libc.so"] == "ELF"


def test_whiteout_through_symlinked_parent_resolves_in_rootfs(root: Path) -> None:
    lower(root)
    apply(root, [symlink("abslib", "/usr/lib")])
    apply(root, [whiteout("abslib/libc.so"), whiteout("lib/nothing")])
    assert "usr/lib/libc.so" not in tree(root)
    assert "abslib" in tree(root)


def test_whiteout_under_missing_parent_is_a_noop(root: Path) -> None:
    lower(root)
    before = tree(root)
    apply(root, [whiteout("no/such/dir/x"), opaque("nothere"), whiteout("etc/passwd/x")])
    assert tree(root) == before


def test_whiteout_of_a_file_this_layer_wrote_through_a_symlink(root: Path) -> None:
    # The same node named two ways: written via usr/lib, whited out via lib.
    lower(root)
    apply(root, [file("usr/lib/new.so", b"n"), whiteout("lib/new.so")])
    assert tree(root)["usr/lib/new.so"] == "n"


def test_no_whiteout_file_ever_reaches_disk(root: Path) -> None:
    apply(root, [whiteout("x"), opaque(""), directory("d"), opaque("d"), whiteout("d/y")])
    assert tree(root) == {"d": "dir"}


# ------------------------------------------------------------ type transitions


def test_file_to_dir_and_dir_to_file(root: Path) -> None:
    lower(root)
    apply(root, [directory("etc/motd"), file("etc/motd/inner", b"i"), file("etc/conf.d", b"f")])
    t = tree(root)
    assert t["etc/motd"] == "dir" and t["etc/motd/inner"] == "i"
    assert t["etc/conf.d"] == "f" and "etc/conf.d/a" not in t


def test_symlink_to_dir_and_dir_to_symlink(root: Path) -> None:
    lower(root)
    apply(root, [directory("lib"), file("lib/own", b"o"), symlink("etc/conf.d", "/tmp")])
    t = tree(root)
    assert t["lib"] == "dir" and t["lib/own"] == "o"
    assert t["usr/lib/libc.so"] == "ELF" and "usr/lib/own" not in t  # not through the link
    assert t["etc/conf.d"] == "-> /tmp"


def test_file_over_symlink_does_not_write_through(root: Path) -> None:
    apply(root, [file("target", b"original"), symlink("link", "target")])
    apply(root, [file("link", b"replacement")])
    assert tree(root) == {"target": "original", "link": "replacement"}


def test_dir_over_dir_keeps_children_and_replaces_attributes(root: Path) -> None:
    apply(
        root,
        [directory("d", mode=0o700, pax={"SCHILY.xattr.user.old": b"1"}), file("d/keep", b"k")],
    )
    apply(root, [directory("d", mode=0o751, mtime=42, pax={"SCHILY.xattr.user.new": b"2"})])
    st = os.lstat(root / "d")
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime_ns == 42 * 10**9
    assert tree(root)["d/keep"] == "k"
    assert os.listxattr(root / "d") == ["user.new"]


def test_parent_component_that_is_a_file_is_an_error(root: Path) -> None:
    apply(root, [file("f", b"x")])
    with pytest.raises(UnsafeLayerError, match="not a directory"):
        apply(root, [file("f/child", b"y")])


# ------------------------------------------------------------------- links


def test_symlink_targets_stored_verbatim(root: Path) -> None:
    apply(root, [symlink("a", "/abs/path"), symlink("b", "../../up"), symlink("c", "x//y/")])
    assert [os.readlink(root / n) for n in "abc"] == ["/abs/path", "../../up", "x//y/"]


def test_hardlink_chain(root: Path) -> None:
    apply(root, [file("a", b"data"), hardlink("b", "a"), hardlink("c", "/b"), hardlink("d/e", "c")])
    inos = {os.lstat(root / p).st_ino for p in ["a", "b", "c", "d/e"]}
    assert len(inos) == 1 and os.lstat(root / "a").st_nlink == 4


def test_hardlink_to_symlink_links_the_symlink(root: Path) -> None:
    apply(root, [file("real", b"r"), symlink("sl", "real"), hardlink("hl", "sl")])
    st = os.lstat(root / "hl")
    assert stat.S_ISLNK(st.st_mode) and st.st_ino == os.lstat(root / "sl").st_ino
    assert os.lstat(root / "real").st_nlink == 1


def test_hardlink_to_lower_layer_file_across_symlinked_parent(root: Path) -> None:
    lower(root)
    apply(root, [hardlink("bin/libc", "lib/libc.so")])
    assert os.lstat(root / "bin/libc").st_ino == os.lstat(root / "usr/lib/libc.so").st_ino


def test_hardlink_errors(root: Path) -> None:
    apply(root, [directory("d")])
    with pytest.raises(UnsafeLayerError, match="directory"):
        apply(root, [hardlink("x", "d")])
    with pytest.raises(UnsafeLayerError, match="missing"):
        apply(root, [hardlink("x", "nope")])
    with pytest.raises(UnsafeLayerError, match="missing"):
        apply(root, [hardlink("x", "no/such/parent")])


# ------------------------------------------------------------------ metadata


def test_nanosecond_mtimes(root: Path) -> None:
    apply(
        root,
        [
            directory("d", pax={"mtime": "1600000000.987654321"}),
            file("d/f", pax={"mtime": "1700000000.123456789"}),
            symlink("d/l", "f", pax={"mtime": "1500000000.000000001"}),
        ],
    )
    assert os.lstat(root / "d").st_mtime_ns == 1600000000987654321
    assert os.lstat(root / "d/f").st_mtime_ns == 1700000000123456789
    assert os.lstat(root / "d/l").st_mtime_ns == 1500000000000000001


def test_directory_mtimes_set_after_contents(root: Path) -> None:
    apply(
        root,
        [
            directory("a", mtime=1000),
            directory("a/b", mtime=2000),
            file("a/b/c", mtime=3000),
            file("a/d", mtime=4000),
        ],
    )
    assert os.lstat(root / "a").st_mtime_ns == 1000 * 10**9
    assert os.lstat(root / "a/b").st_mtime_ns == 2000 * 10**9


def test_parent_mtime_restored_when_children_change(root: Path) -> None:
    apply(
        root,
        [directory("keep", mtime=1000), file("keep/old", b"o"), directory("keep/sub", mtime=1500)],
    )
    apply(root, [file("keep/new", b"n"), whiteout("keep/old"), file("keep/sub/x", b"x")])
    assert os.lstat(root / "keep").st_mtime_ns == 1000 * 10**9
    assert os.lstat(root / "keep/sub").st_mtime_ns == 1500 * 10**9
    assert sorted(os.listdir(root / "keep")) == ["new", "sub"]


def test_modes_including_setuid_setgid_sticky(root: Path) -> None:
    apply(
        root,
        [
            file("suid", mode=0o4755),
            file("sgid", mode=0o2755),
            directory("tmp", mode=0o1777),
            file("plain", mode=0o600),
            fifo("pipe", mode=0o640),
        ],
    )
    modes = {
        n: stat.S_IMODE(os.lstat(root / n).st_mode)
        for n in ["suid", "sgid", "tmp", "plain", "pipe"]
    }
    assert modes == {"suid": 0o4755, "sgid": 0o2755, "tmp": 0o1777, "plain": 0o600, "pipe": 0o640}


@pytest.mark.parametrize("rootless", [False, True])
def test_mode_000_directories_unpack(root: Path, rootless: bool) -> None:
    if not rootless and not IS_ROOT:
        pytest.skip(ROOT_REASON)
    apply(
        root,
        [
            directory("locked", mode=0o000),
            directory("locked/inner", mode=0o500),
            file("locked/inner/f", b"secret", mode=0o000),
        ],
        rootless=rootless,
    )
    apply(root, [file("locked/inner/g", b"more"), whiteout("locked/inner/f")], rootless=rootless)
    assert stat.S_IMODE(os.lstat(root / "locked").st_mode) == 0o000
    assert stat.S_IMODE(os.lstat(root / "locked/inner").st_mode) == 0o500
    os.chmod(root / "locked", 0o700)
    assert sorted(os.listdir(root / "locked/inner")) == ["g"]


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason=ROOT_REASON)
def test_owners_and_setuid_after_chown(root: Path) -> None:
    apply(
        root,
        [
            directory("home", uid=1000, gid=1000, mode=0o2750),
            file("home/su", b"x", uid=0, gid=50, mode=0o4711),
            symlink("home/l", "su", uid=1234, gid=5678),
            file("home/big", uid=2**32 - 2, gid=2**31),
        ],
    )
    st = os.lstat(root / "home")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o2750)
    st = os.lstat(root / "home/su")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 50, 0o4711)
    st = os.lstat(root / "home/l")
    assert (st.st_uid, st.st_gid) == (1234, 5678)
    assert os.lstat(root / "home/big").st_uid == 2**32 - 2


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason=ROOT_REASON)
def test_devices_and_fifos_as_root(root: Path) -> None:
    r = apply(
        root,
        [
            chardev("dev/null", 1, 3, mode=0o666),
            blockdev("dev/loop9", 7, 9),
            fifo("run/fifo", mode=0o620),
        ],
        rootless=False,
    )
    st = os.lstat(root / "dev/null")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 1 and os.minor(st.st_rdev) == 3
    assert stat.S_IMODE(st.st_mode) == 0o666
    st = os.lstat(root / "dev/loop9")
    assert stat.S_ISBLK(st.st_mode) and st.st_rdev == os.makedev(7, 9)
    assert stat.S_ISFIFO(os.lstat(root / "run/fifo").st_mode)
    assert r.skipped == []


def test_devices_skipped_when_rootless(root: Path) -> None:
    apply(root, [file("dev/null", b"placeholder from a lower layer")])
    r = apply(root, [chardev("dev/null", 1, 3), fifo("dev/fifo")], rootless=True)
    assert not (root / "dev/null").exists()
    assert stat.S_ISFIFO(os.lstat(root / "dev/fifo").st_mode)
    assert r.skipped == ["dev/null: char device 1:3 not created (rootless)"]


def test_xattrs_user_applied_trusted_refused(root: Path) -> None:
    r = apply(
        root,
        [
            file(
                "f",
                pax={
                    "SCHILY.xattr.user.mime": b"text/plain\x00\xff",
                    "SCHILY.xattr.trusted.overlay.opaque": b"y",
                    "SCHILY.xattr.security.selinux": b"system_u:object_r:etc_t:s0",
                },
            ),
            directory("d", pax={"SCHILY.xattr.user.d": b"dv"}),
        ],
    )
    assert os.getxattr(root / "f", "user.mime") == b"text/plain\x00\xff"
    assert os.listxattr(root / "f") == ["user.mime"]
    assert os.getxattr(root / "d", "user.d") == b"dv"
    assert any("trusted.overlay.opaque" in s for s in r.skipped)
    assert any("security.selinux" in s for s in r.skipped)


def test_security_capability_needs_root(root: Path) -> None:
    cap = b"\x01\x00\x00\x02" + bytes(16)  # v2: CAP_NET_BIND_SERVICE... enough to set
    r = apply(root, [file("ping", pax={"SCHILY.xattr.security.capability": cap})], rootless=True)
    assert any("security.capability" in s and "root" in s for s in r.skipped)
    if IS_ROOT:
        apply(root, [file("ping2", pax={"SCHILY.xattr.security.capability": cap})], rootless=False)
        assert os.getxattr(root / "ping2", "security.capability") == cap


# ------------------------------------------------------- digests and codecs


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_codecs_and_result(root: Path, codec: str) -> None:
    lay = make_layer([directory("d"), file("d/f", b"x" * 100_000)], codec)
    r = apply_layer(io.BytesIO(lay.blob), str(root), codec=codec, diff_id=Digest.parse(lay.diff_id))
    assert str(r.diff_id) == lay.diff_id
    assert r.uncompressed_size == len(lay.tar)
    assert r.compressed_size == len(lay.blob)
    assert r.entries == 2
    assert (root / "d/f").read_bytes() == b"x" * 100_000


def test_diff_id_covers_bytes_after_end_of_archive(root: Path) -> None:
    lay = make_layer([file("f", b"1")], "gzip", trailing=b"\0" * 9000 + b"junk")
    r = apply_layer(
        io.BytesIO(lay.blob), str(root), codec="gzip", diff_id=Digest.parse(lay.diff_id)
    )
    assert r.uncompressed_size == len(lay.tar)


def test_diff_id_mismatch(root: Path) -> None:
    lay = make_layer([file("f", b"1")])
    wrong = Digest.parse("sha256:" + "0" * 64)
    with pytest.raises(DigestMismatchError, match="diff_id"):
        apply_layer(io.BytesIO(lay.blob), str(root), codec="gzip", diff_id=wrong)


def test_no_diff_id_given_still_computed(root: Path) -> None:
    lay = make_layer([file("f", b"1")], "zstd")
    r = apply_layer(io.BytesIO(lay.blob), str(root), codec="zstd", diff_id=None)
    assert str(r.diff_id) == lay.diff_id


def verifying(lay: Layer, digest: str | None = None) -> VerifyingReader:
    return VerifyingReader(io.BytesIO(lay.blob), Digest.parse(digest or lay.digest), len(lay.blob))


def test_blob_digest_verified_at_eof(root: Path) -> None:
    lay = make_layer([file("f", b"1")], "gzip", trailing=b"\0" * 4096)
    reader = verifying(lay)
    apply_layer(
        reader,
        str(root),
        codec="gzip",  # type: ignore[arg-type]
        diff_id=Digest.parse(lay.diff_id),
    )
    assert reader.verified


def test_blob_digest_mismatch(root: Path) -> None:
    lay = make_layer([file("f", b"1")])
    reader = verifying(lay, "sha256:" + "1" * 64)
    with pytest.raises(DigestMismatchError, match="content"):
        apply_layer(
            reader,
            str(root),
            codec="gzip",  # type: ignore[arg-type]
            diff_id=Digest.parse(lay.diff_id),
        )


def test_blob_with_trailing_bytes_after_compressed_stream(root: Path) -> None:
    # Bytes the decompressor does not consume are still read (and counted).
    lay = make_layer([file("f", b"1")], "gzip")
    blob = lay.blob + b"\0" * 100
    r = apply_layer(io.BytesIO(blob), str(root), codec="gzip", diff_id=None)
    assert r.compressed_size == len(blob)


def test_corrupt_compressed_stream(root: Path) -> None:
    lay = make_layer([file("f", b"1" * 10000)], "gzip")
    bad = lay.blob[:20] + bytes(b ^ 0xFF for b in lay.blob[20:40]) + lay.blob[40:]
    with pytest.raises(CorruptBlobError, match=r"corrupt gzip data \(.+\); the blob is damaged"):
        apply_layer(io.BytesIO(bad), str(root), codec="gzip", diff_id=None)


def test_truncated_compressed_stream(root: Path) -> None:
    lay = make_layer([file("f", os.urandom(50_000))], "zstd")
    with pytest.raises(CorruptBlobError, match="truncated"):
        apply_layer(io.BytesIO(lay.blob[:-100]), str(root), codec="zstd", diff_id=None)


def test_max_entries(root: Path) -> None:
    with pytest.raises(UnsafeLayerError, match="more than 2 entries"):
        apply(root, [file("a"), file("b"), file("c")], max_entries=2)


# ------------------------------------------------------------------ snapshot


def test_snapshot_equals_a_fresh_walk(root: Path) -> None:
    snap = Snapshot()
    apply(
        root,
        [
            directory("etc", mtime=10),
            file("etc/passwd", b"p"),
            file("etc/group", b"g"),
            hardlink("etc/group-", "etc/group"),
            directory("usr/bin", mtime=20),
            file("usr/bin/tool", b"t" * 5000, mode=0o755),
            symlink("bin", "usr/bin"),
            directory("var/cache", mode=0o700),
            file("var/cache/a", b"a"),
            fifo("run/p"),
            directory("locked", mode=0o000),
            file("locked/f", b"x"),
            file("x/attr", pax={"SCHILY.xattr.user.a": b"1", "SCHILY.xattr.trusted.t": b"2"}),
            directory("x", pax={"SCHILY.xattr.user.d": b"3"}),
        ],
        snapshot=snap,
    )
    assert_snapshot_matches(snap, root)
    apply(
        root,
        [
            whiteout("var/cache"),
            file("etc/passwd", b"new"),  # replace a file
            hardlink("bin/tool2", "usr/bin/tool"),  # link to a lower file via a symlink
            file("etc/group", b"replaced"),  # unlink one peer of a lower hardlink pair
            directory("usr", mode=0o750, mtime=5),  # dir over dir
            file("new/deep/file", b"implied parents"),
            opaque("locked"),
            file("locked/g", b"g"),
            symlink("etc/passwd-", "passwd"),
            whiteout("bin/nothing"),
            directory("x", pax={"SCHILY.xattr.user.e": b"4"}),
            hardlink("x/attr2", "x/attr"),
        ],
        snapshot=snap,
    )
    assert_snapshot_matches(snap, root)
    apply(
        root,
        [file("etc", b"dir became a file"), hardlink("t3", "usr/bin/tool2"), directory("bin/sub")],
        snapshot=snap,
    )
    assert_snapshot_matches(snap, root)
    assert snap.files["usr/bin/tool"].nlink == 3
    assert snap.files["t3"].content == hashlib.sha256(b"t" * 5000).hexdigest()


def test_snapshot_rootless_mode(root: Path) -> None:
    snap = Snapshot()
    apply(
        root,
        [directory("a", mode=0o555), file("a/f", b"1"), chardev("a/c", 1, 1)],
        snapshot=snap,
        rootless=True,
    )
    apply(root, [file("a/g", b"2"), whiteout("a/f")], snapshot=snap, rootless=True)
    assert_snapshot_matches(snap, root)


# ------------------------------------------------------------ read_file_in_root


def test_read_file_in_root_follows_links_inside_only(root: Path, tmp_path: Path) -> None:
    from oci_tools.apply import read_file_in_root

    (tmp_path / "host-passwd").write_bytes(b"host\n")
    apply(
        root,
        [
            file("etc/passwd.real", b"root:x:0:0::/root:/bin/sh\n"),
            symlink("etc/passwd", "/etc/../etc/passwd.real"),
            symlink("etc/group", str(tmp_path / "host-passwd")),
            symlink("etc/loop", "loop"),
            fifo("etc/fifo"),
            directory("etc/dir"),
        ],
    )
    assert read_file_in_root(str(root), "/etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
    assert read_file_in_root(str(root), "../../etc/passwd") == b"root:x:0:0::/root:/bin/sh\n"
    assert read_file_in_root(str(root), "/etc/group") is None  # host path not reachable
    assert read_file_in_root(str(root), "/etc/fifo") is None  # never opened
    assert read_file_in_root(str(root), "/etc/dir") is None
    assert read_file_in_root(str(root), "/etc/passwd/x") is None
    assert read_file_in_root(str(root), "/nope") is None
    with pytest.raises(UnsafeLayerError, match="symbolic links"):
        read_file_in_root(str(root), "/etc/loop")
    with pytest.raises(UnsafeLayerError, match="larger"):
        read_file_in_root(str(root), "/etc/passwd", max_bytes=5)
