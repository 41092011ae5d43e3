"""Snapshot: record/forget semantics, the dump/load format, and tree walks."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest
import zstandard as zstd

from oci_tools.errors import InvalidDocumentError
from oci_tools.snapshot import (
    FileState,
    Snapshot,
    layer_xattrs,
    read_xattrs,
    scan_tree,
    xattr_fingerprint,
)

IS_ROOT = os.geteuid() == 0


def fs(mode: int = 0o100644, ino: int = 1, **kw: object) -> FileState:
    base: dict[str, object] = dict(
        mode=mode, uid=0, gid=0, size=0, mtime_ns=0, ctime_ns=0, ino=ino, nlink=1
    )
    base.update(kw)
    return FileState(**base)  # type: ignore[arg-type]


DIR = 0o040755


def test_record_and_get(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"x")
    st = os.lstat(p)
    snap = Snapshot()
    snap.record("f", st, "ab" * 32, xattrs={"user.a": b"1"})
    got = snap.get("f")
    assert got == FileState.from_stat(st, "ab" * 32, xattr_fingerprint({"user.a": b"1"}))
    assert snap.files["f"] == got
    assert "f" in snap and "f" in snap.files and len(snap) == 1
    assert snap.get("nope") is None
    # Re-recording replaces in place.
    snap.record("f", st)
    assert snap.get("f") == FileState.from_stat(st)
    assert len(snap) == 1


def test_files_view_is_a_mutable_mapping() -> None:
    snap = Snapshot({"a": fs(), "b": fs(ino=2)})
    assert dict(snap.files) == {"a": fs(), "b": fs(ino=2)}
    snap.files["c"] = fs(ino=3)
    assert snap.get("c") == fs(ino=3)
    del snap.files["a"]
    assert sorted(snap.files) == ["b", "c"]
    assert snap.files.get("a") is None
    with pytest.raises(KeyError):
        del snap.files["a"]


def test_items_and_with_inodes() -> None:
    snap = Snapshot({"": fs(DIR, ino=1), "a": fs(ino=5), "b": fs(ino=5), "c": fs(ino=6)})
    assert dict(snap.files.items()) == dict(snap.files)
    assert sorted(snap.with_inodes([5, 1])) == [("a", fs(ino=5)), ("b", fs(ino=5))]


def test_same_stat(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    snap = Snapshot.walk(str(tmp_path))
    assert snap.same_stat("f", os.lstat(f)) == 1
    assert snap.same_stat("nope", os.lstat(f)) == -1
    os.chmod(f, 0o600)
    assert snap.same_stat("f", os.lstat(f)) == 0


def test_forget_drops_subtree_only() -> None:
    snap = Snapshot(
        {
            "": fs(DIR),
            "a": fs(DIR),
            "a/b": fs(),
            "a/c": fs(DIR),
            "a/c/d": fs(),
            "ab": fs(),
            "a-b": fs(),
        }
    )
    snap.forget("a/b")
    assert "a/b" not in snap and "a" in snap
    snap.forget("a")
    assert sorted(snap.paths()) == ["", "a-b", "ab"]
    # Records made after the child index exists are tracked by it.
    snap.record("a", os.lstat("/"))
    snap.put("a/x", fs())
    snap.put("a/x2", fs())
    snap.forget("a")
    assert sorted(snap.paths()) == ["", "a-b", "ab"]
    snap.forget("missing")
    snap.forget("")
    assert len(snap) == 0


def test_forget_many_is_linear() -> None:
    # 10k directories of 10 files each, then every directory whited out: with
    # a scan per forget this is 10^9 steps; with the child index it is 10^5.
    files = {"": fs(DIR)}
    for d in range(10_000):
        files[f"d{d}"] = fs(DIR)
        for f in range(10):
            files[f"d{d}/f{f}"] = fs()
    snap = Snapshot(files)
    t = time.perf_counter()
    for d in range(10_000):
        snap.forget(f"d{d}/f0")  # a file whiteout
        snap.forget(f"d{d}")
    print(f"20k forgets over 110k entries: {time.perf_counter() - t:.3f}s")
    assert list(snap.paths()) == [""]


def sample_snapshot() -> Snapshot:
    return Snapshot(
        {
            "": fs(DIR, ino=2),
            "etc": fs(DIR, ino=3, nlink=2, mtime_ns=-5),
            "etc/passwd": fs(
                size=1234,
                mtime_ns=1_700_000_000_123_456_789,
                ctime_ns=1_700_000_001_000_000_000,
                ino=(1 << 64) - 1,
                uid=1000,
                gid=(1 << 32) - 2,
                content=hashlib.sha256(b"x").hexdigest(),
                xattrs="",
            ),
            "dev/null": fs(0o020666, rdev=os.makedev(1, 3), xattrs="cd" * 32),
            "bad\udcffname": fs(),
            "caf\u00e9/\u65e5\u672c": fs(0o120777, content="ef" * 32),
        }
    )


def test_dump_load_round_trip(tmp_path: Path) -> None:
    snap = sample_snapshot()
    path = str(tmp_path / "snap")
    snap.dump(path)
    loaded = Snapshot.load(path)
    assert loaded == snap
    assert loaded.get("etc/passwd") == snap.get("etc/passwd")
    assert loaded.get("bad\udcffname") is not None
    # Deterministic: the same snapshot dumps to the same bytes.
    snap.dump(path + "2")
    assert Path(path).read_bytes() == Path(path + "2").read_bytes()
    # A loaded snapshot is fully usable.
    loaded.forget("etc")
    loaded.put("new", fs())
    loaded.dump(path)
    again = Snapshot.load(path)
    assert sorted(again.paths()) == sorted(
        ["", "dev/null", "bad\udcffname", "caf\u00e9/\u65e5\u672c", "new"]
    )


def test_dump_drops_forgotten_rows(tmp_path: Path) -> None:
    snap = Snapshot({f"f{i}": fs(ino=i) for i in range(100)})
    for i in range(99):
        snap.forget(f"f{i}")
    snap.dump(str(tmp_path / "s"))
    assert Snapshot.load(str(tmp_path / "s")) == Snapshot({"f99": fs(ino=99)})


def test_empty_snapshot_round_trip(tmp_path: Path) -> None:
    Snapshot().dump(str(tmp_path / "s"))
    assert len(Snapshot.load(str(tmp_path / "s"))) == 0


def test_load_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "s"
    sample_snapshot().dump(str(path))
    good = path.read_bytes()
    cases = {
        "short": good[:10],
        "magic": b"NOTSNAP!" + good[8:],
        "version": good[:8] + (99).to_bytes(4, "little") + good[12:],
        "frame": good[:24] + b"garbage",
        "count": good[:16] + (7).to_bytes(8, "little") + good[24:],
        "body": good[:24]
        + zstd.ZstdCompressor().compress(zstd.ZstdDecompressor().decompress(good[24:])[:-1]),
    }
    for name, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(InvalidDocumentError):
            Snapshot.load(str(path))
        print("rejected", name)


def test_load_100k_entries_time(tmp_path: Path) -> None:
    n = 100_000
    files = {
        f"usr/share/pkg{i // 100}/sub/file-{i}.txt": FileState(
            0o100644,
            0,
            0,
            i * 7,
            1_700_000_000_000_000_000 + i * 12345,
            1_700_000_000_000_000_000 + i * 54321,
            10_000 + i,
            1,
            0,
            hashlib.sha256(str(i).encode()).hexdigest(),
        )
        for i in range(n)
    }
    snap = Snapshot(files)
    path = str(tmp_path / "snap")
    t = time.perf_counter()
    snap.dump(path)
    dumped = time.perf_counter() - t
    t = time.perf_counter()
    loaded = Snapshot.load(path)
    took = time.perf_counter() - t
    print(
        f"100k entries: dump {dumped:.3f}s, load {took:.3f}s, "
        f"file {os.path.getsize(path) / 1e6:.1f} MB"
    )
    assert len(loaded) == n
    assert (
        loaded.get("usr/share/pkg999/sub/file-99999.txt")
        == files["usr/share/pkg999/sub/file-99999.txt"]
    )


# -- walking ---------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    (root / "etc/sub").mkdir(parents=True)
    (root / "etc/hosts").write_bytes(b"127.0.0.1 localhost\n")
    (root / "etc/sub/empty").write_bytes(b"")
    (root / "etc/link").symlink_to("hosts")
    (root / "etc/dangling").symlink_to("/nowhere")
    os.link(root / "etc/hosts", root / "hard")
    os.mkfifo(root / "fifo")


def test_walk_records_every_path_without_reading(tmp_path: Path) -> None:
    make_tree(tmp_path)
    snap = Snapshot.walk(str(tmp_path))
    assert sorted(snap.paths()) == sorted(
        [
            "",
            "etc",
            "etc/sub",
            "etc/hosts",
            "etc/sub/empty",
            "etc/link",
            "etc/dangling",
            "hard",
            "fifo",
        ]
    )
    for p in snap.paths():
        st = os.lstat(tmp_path / p) if p else os.lstat(tmp_path)
        assert snap.get(p) == FileState.from_stat(st)


def test_walk_hash_content_and_xattrs(tmp_path: Path) -> None:
    make_tree(tmp_path)
    os.setxattr(tmp_path / "etc/hosts", "user.k", b"v")
    snap = Snapshot.walk(str(tmp_path), hash_content=True, xattrs=True)
    hosts = snap.get("etc/hosts")
    assert hosts is not None
    assert hosts.content == hashlib.sha256(b"127.0.0.1 localhost\n").hexdigest()
    assert hosts.xattrs == xattr_fingerprint({"user.k": b"v"}) != ""
    link = snap.get("etc/link")
    assert link is not None and link.content == hashlib.sha256(b"hosts").hexdigest()
    empty = snap.get("etc/sub/empty")
    assert empty is not None and empty.content == hashlib.sha256(b"").hexdigest()
    assert empty.xattrs == ""
    d = snap.get("etc")
    assert d is not None and d.content is None and d.is_dir


def test_walk_does_not_follow_symlinked_dirs(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape").symlink_to(outside)
    snap = Snapshot.walk(str(root), hash_content=True)
    assert sorted(snap.paths()) == ["", "escape"]
    got = snap.get("escape")
    assert got is not None and stat.S_ISLNK(got.mode)


def test_scan_tree_is_parent_first_and_sorted(tmp_path: Path) -> None:
    for d in ["b/x", "a/y/z", "c"]:
        (tmp_path / d).mkdir(parents=True)
    order = [rel for rel, _, _, _ in scan_tree(str(tmp_path))]
    assert order == ["", "a", "a/y", "a/y/z", "b", "b/x", "c"]
    for rel, _, _, children in scan_tree(str(tmp_path)):
        assert [n for n, _ in children] == sorted(n for n, _ in children)
        if rel == "":
            assert [n for n, _ in children] == ["a", "b", "c"]


def test_xattr_filter_and_fingerprint(tmp_path: Path) -> None:
    raw = {
        "security.selinux": b"system_u:object_r:etc_t:s0",
        "trusted.overlay.opaque": b"y",
        "user.overlay.origin": b"x",
        "user.empty": b"",
        "user.keep": b"1",
        "security.capability": b"\x01\x00",
    }
    assert layer_xattrs(raw) == {"user.keep": b"1", "security.capability": b"\x01\x00"}
    assert xattr_fingerprint({}) == ""
    assert xattr_fingerprint({"security.selinux": b"x"}) == ""
    assert xattr_fingerprint({"a": b"bc"}) != xattr_fingerprint({"ab": b"c"})
    assert xattr_fingerprint({"user.a": b"1", "user.b": b"2"}) == xattr_fingerprint(
        {"user.b": b"2", "user.a": b"1"}
    )
    f = tmp_path / "f"
    f.write_text("x")
    os.setxattr(f, "user.k", b"v")
    (tmp_path / "l").symlink_to("f")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert read_xattrs(fd, "f") == {"user.k": b"v"}
        assert read_xattrs(fd, "l") == {}  # the link itself, not its target
    finally:
        os.close(fd)


def test_record_plain_equals_record(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"data")
    st = os.lstat(f)
    digest = hashlib.sha256(b"data").digest()
    a, b = Snapshot(), Snapshot()
    a.record("f", st, digest.hex(), xattrs={})
    b.record_plain("f", st, digest)
    assert a == b
    # Again for a recorded path (the row is rewritten, not appended).
    b.record_plain("f", st, digest)
    assert a == b and len(b) == 1
    with pytest.raises(ValueError):
        b.record_plain("g", st, b"short")
