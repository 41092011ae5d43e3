"""One contract suite run against every BlobStore implementation."""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import mixed_data

from oci_tools.digest import Digest
from oci_tools.errors import BlobNotFoundError, DigestMismatchError, InvalidLayoutError
from oci_tools.layout import Layout
from oci_tools.store import BlobStore, DirStore, MemoryStore, put_bytes, put_stream, read_small


def _dir_store(tmp_path: Path) -> BlobStore:
    return Layout.init(str(tmp_path / "lay")).store


def _mem_store(tmp_path: Path) -> BlobStore:
    return MemoryStore()


STORES = [pytest.param(_dir_store, id="dir"), pytest.param(_mem_store, id="memory")]
Factory = Callable[[Path], BlobStore]


@pytest.mark.parametrize("make", STORES)
def test_put_and_read_back(make: Factory, tmp_path: Path) -> None:
    s = make(tmp_path)
    d = put_bytes(s, b"hello")
    assert d == Digest.of_bytes(b"hello")
    assert s.has(d) and s.stat_size(d) == 5
    assert read_small(s, d, 5) == b"hello"
    assert d in set(s.digests())


@pytest.mark.parametrize("make", STORES)
def test_put_is_idempotent(make: Factory, tmp_path: Path) -> None:
    s = make(tmp_path)
    assert put_bytes(s, b"a") == put_bytes(s, b"a")
    assert list(s.digests()).count(Digest.of_bytes(b"a")) == 1


@pytest.mark.parametrize("make", STORES)
def test_put_stream_verifies_expected(make: Factory, tmp_path: Path) -> None:
    s = make(tmp_path)
    wrong = Digest.of_bytes(b"something else")
    with pytest.raises(DigestMismatchError):
        put_stream(s, io.BytesIO(b"data"), wrong)
    assert not s.has(Digest.of_bytes(b"data")) and not s.has(wrong)
    with pytest.raises(DigestMismatchError):
        put_stream(s, io.BytesIO(b"data"), Digest.of_bytes(b"data"), size=3)
    assert list(s.digests()) == []


@pytest.mark.parametrize("make", STORES)
def test_missing_blob(make: Factory, tmp_path: Path) -> None:
    s = make(tmp_path)
    d = Digest.of_bytes(b"nope")
    assert not s.has(d)
    with pytest.raises(BlobNotFoundError):
        s.open(d, 4)
    s.delete(d)  # deleting a missing blob is fine


@pytest.mark.parametrize("make", STORES)
def test_wrong_size_on_read(make: Factory, tmp_path: Path) -> None:
    s = make(tmp_path)
    d = put_bytes(s, b"12345")
    with pytest.raises(DigestMismatchError):
        read_small(s, d, 4)
    with pytest.raises(DigestMismatchError):
        read_small(s, d, 6)


def test_dir_store_detects_tampering_and_writes_0644(tmp_path: Path) -> None:
    s = _dir_store(tmp_path)
    assert isinstance(s, DirStore)
    d = put_bytes(s, b"original")
    p = s.path_of(d)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o644
    Path(p).write_bytes(b"tampered")
    with pytest.raises(DigestMismatchError):
        read_small(s, d, 8)
    # no temp files left behind by writes
    assert os.listdir(s.tmp_dir) == []


def test_dir_store_refuses_symlinked_blob(tmp_path: Path) -> None:
    s = _dir_store(tmp_path)
    assert isinstance(s, DirStore)
    secret = tmp_path / "secret"
    secret.write_bytes(b"secret")
    d = Digest.of_bytes(b"secret")
    os.symlink(secret, s.path_of(d))
    with pytest.raises(InvalidLayoutError):
        read_small(s, d, 6)
    assert not s.has(d)


def test_blob_writer_starts_writeback_and_commits_the_same_blob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_tools import store as store_mod

    calls: list[tuple[int, int]] = []
    real = store_mod._writeback()
    assert real is not None  # Linux with glibc: sync_file_range is found

    def spy(fd: int, off: int, n: int) -> int:
        calls.append((off, n))
        return real(fd, off, n)

    monkeypatch.setattr(store_mod, "_writeback", lambda: spy)
    monkeypatch.setattr(store_mod, "WRITEBACK_EVERY", 1 << 20)
    lay = Layout.init(str(tmp_path / "lay"))
    w = lay.store.writer()
    data = mixed_data(5 << 20)
    for i in range(0, len(data), 300_000):
        w.write(data[i : i + 300_000])
    assert w.hasher.size == len(data)
    dg = w.commit()
    assert dg == Digest("sha256", hashlib.sha256(data).hexdigest())
    assert Path(lay.store.path_of(dg)).read_bytes() == data
    # Consecutive ranges, each starting where the last one ended.
    assert calls and calls[0][0] == 0
    for (o1, n1), (o2, _) in itertools.pairwise(calls):
        assert o2 == o1 + n1


def test_blob_writer_without_writeback_support(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from oci_tools import store as store_mod

    monkeypatch.setattr(store_mod, "_writeback", lambda: None)
    monkeypatch.setattr(store_mod, "WRITEBACK_EVERY", 1000)
    lay = Layout.init(str(tmp_path / "lay"))
    w = lay.store.writer()
    w.write(b"x" * 5000)
    w.write(b"y" * 5000)
    dg = w.commit()
    assert Path(lay.store.path_of(dg)).read_bytes() == b"x" * 5000 + b"y" * 5000


def test_batched_dir_sync_fsyncs_the_directory_once_after_the_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _dir_store(tmp_path)
    assert isinstance(s, DirStore)
    synced: list[str] = []
    monkeypatch.setattr(s, "sync_dir", synced.append)
    put_bytes(s, b"alone")  # outside a batch: its own directory fsync
    assert synced == [os.path.join(s.blobs, "sha256")]
    synced.clear()
    with s.batched_dir_sync():
        digests = [put_bytes(s, b"blob %d" % i) for i in range(3)]
        with s.batched_dir_sync():  # nested: the outer block syncs
            digests.append(put_bytes(s, b"inner"))
        # Renamed into place (visible, whole) but not yet made durable.
        assert synced == []
        assert all(s.has(d) for d in digests)
    assert synced == [os.path.join(s.blobs, "sha256")]


def test_batched_dir_sync_skips_the_fsync_when_the_batch_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = _dir_store(tmp_path)
    assert isinstance(s, DirStore)
    synced: list[str] = []
    monkeypatch.setattr(s, "sync_dir", synced.append)
    with pytest.raises(RuntimeError), s.batched_dir_sync():
        put_bytes(s, b"x")
        raise RuntimeError("pull failed")
    assert synced == []
    put_bytes(s, b"after")  # the batch is over: back to a fsync a commit
    assert synced == [os.path.join(s.blobs, "sha256")]
