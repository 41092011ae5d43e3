"""Content-addressed blob stores: the storage contract and its implementations.

Contract (every store; one test suite runs against all of them):
- ``put`` is idempotent and verifies what it writes against an expected digest
  and size when given; a failed put leaves nothing behind.
- ``open`` returns a reader that verifies digest and size at EOF; callers
  must read to EOF before trusting the bytes (``read_small`` does that).
- Blobs are named only by validated digests, so no path can be smuggled in.

DirStore is ``LAYOUT/blobs/<alg>/<encoded>``: a blob lands via a temp file in
the layout, is fsynced, then renamed into place with mode 0644, so a crash at
any point leaves either no blob or the whole blob.  The rename itself is made
durable by an fsync of ``blobs/<alg>`` after each commit, or once for a whole
batch of commits (:meth:`DirStore.batched_dir_sync`) before anything that
refers to them is written.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import io
import os
import stat
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol, cast

from oci_tools import progress
from oci_tools.digest import Digest, Hasher, VerifyingReader, digest_problem
from oci_tools.errors import BlobNotFoundError, DigestMismatchError, InvalidLayoutError
from oci_tools.fsutil import TMP, make_temp, private_path, remove_abandoned, sync_dir, temp_prefix

#: JSON documents larger than this are refused (containerd uses 4-20 MiB).
MAX_DOCUMENT_SIZE = 16 << 20
CHUNK = 1 << 20
#: A blob being written is handed to the kernel for writeback every this many
#: bytes (``sync_file_range``, which does not wait), so the disk writes while
#: the blob is still being produced and the fsync at commit finds little left.
WRITEBACK_EVERY = 8 << 20
#: Temp blob names: ``blob.<pid>.<random>`` in ``.oci-tools/tmp``.
_BLOB_TMP = "blob"
_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _writeback() -> Callable[[int, int, int], int] | None:
    """libc's sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE), which
    Python's os module lacks; None where there is none."""
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (ImportError, OSError, AttributeError):  # pragma: no cover - not glibc/Linux
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int

    def start(fd: int, offset: int, count: int) -> int:
        return cast(int, fn(fd, offset, count, _SYNC_FILE_RANGE_WRITE))

    return start


class BlobWriter(Protocol):
    """A blob being written; ``commit`` makes it visible, ``abort`` drops it."""

    def write(self, data: bytes | memoryview, /) -> int: ...
    def commit(self, expected: Digest | None = None, size: int | None = None) -> Digest: ...
    def abort(self) -> None: ...
    @property
    def size(self) -> int: ...


class BlobStore(Protocol):
    """What oci-tools needs from a content-addressed store."""

    def has(self, digest: Digest) -> bool: ...
    def stat_size(self, digest: Digest) -> int: ...
    def open(self, digest: Digest, size: int) -> VerifyingReader: ...
    def writer(self) -> BlobWriter: ...
    def delete(self, digest: Digest) -> None: ...
    def digests(self) -> Iterator[Digest]: ...


def put_bytes(store: BlobStore, data: bytes) -> Digest:
    """Store a small blob held in memory; returns its digest."""
    w = store.writer()
    try:
        w.write(data)
        return w.commit()
    except BaseException:
        w.abort()
        raise


def put_stream(
    store: BlobStore, src: BinaryIO, expected: Digest | None = None, size: int | None = None
) -> Digest:
    """Copy a stream into the store, verifying it when ``expected`` is given."""
    w = store.writer()
    try:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            w.write(chunk)
        return w.commit(expected, size)
    except BaseException:
        w.abort()
        raise


def read_small(
    store: BlobStore, digest: Digest, size: int, limit: int = MAX_DOCUMENT_SIZE
) -> bytes:
    """Read a whole (small) blob, verified; refuses sizes above ``limit``."""
    if size > limit:
        raise DigestMismatchError(
            f"size of {digest}", expected=f"at most {limit} bytes for a document", actual=str(size)
        )
    r = store.open(digest, size)
    try:
        data = r.read()
    finally:
        r.close()
    return data


class _DirBlobWriter:
    def __init__(self, store: DirStore) -> None:
        self._store = store
        fd, self._tmp = make_temp(store.tmp_dir, temp_prefix(_BLOB_TMP))
        # Held while the file is open (until commit, abort or the death of the
        # process): remove_abandoned never takes a locked file away.
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._f = os.fdopen(fd, "wb")
        self._h: dict[str, Hasher] = {}
        self._hasher = Hasher("sha256")
        self._done = False
        self._written_back = 0  # bytes already handed to the kernel for writeback
        self._task: progress.Task | None = None  # a progress bar once the blob is big

    @property
    def size(self) -> int:
        return self._hasher.size

    @property
    def hasher(self) -> Hasher:
        """The running sha256 of what was written (``write_layer`` reads the
        blob digest from it instead of hashing the blob a second time)."""
        return self._hasher

    def write(self, data: bytes | memoryview) -> int:
        self._hasher.update(data)
        for h in self._h.values():
            h.update(data)
        n = self._f.write(data)
        if self._task is not None:
            self._task.advance(len(data))
        elif self._hasher.size >= progress.MIN_BYTES and progress.active():
            self._task = progress.task("writing blob", None)
            self._task.advance(self._hasher.size)
        if self._hasher.size - self._written_back >= WRITEBACK_EVERY:
            self._start_writeback()
        return n

    def _start_writeback(self) -> None:
        """Start (not wait for) writing out what was written so far."""
        writeback = _writeback()
        self._f.flush()
        end = self._hasher.size
        if (
            writeback is None
            or writeback(self._f.fileno(), self._written_back, end - self._written_back) != 0
        ):
            end = 1 << 62  # unsupported here: the fsync at commit does it all
        self._written_back = end

    def commit(self, expected: Digest | None = None, size: int | None = None) -> Digest:
        if expected is not None and expected.algorithm != "sha256":
            # Only start hashing with another algorithm on request.
            raise DigestMismatchError(
                "blob", expected=str(expected), actual="a sha256 digest (only sha256 is written)"
            )
        actual = self._hasher.digest()
        try:
            if size is not None and size != self._hasher.size:
                raise DigestMismatchError(
                    f"size of {expected or actual}", expected=str(size), actual=str(self.size)
                )
            if expected is not None and expected != actual:
                raise DigestMismatchError(
                    "blob content", expected=str(expected), actual=str(actual)
                )
            if self._task is not None:
                self._task.close()
            self._f.flush()
            os.fchmod(self._f.fileno(), 0o644)
            os.fsync(self._f.fileno())
            self._f.close()
            final = self._store.path_of(actual)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.replace(self._tmp, final)
            self._store._renamed_in(os.path.dirname(final))
            self._done = True
            return actual
        finally:
            if not self._done:
                self.abort()

    def abort(self) -> None:
        if self._task is not None:
            self._task.close()
        if self._done:
            return
        self._done = True
        with contextlib.suppress(OSError):
            self._f.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def __enter__(self) -> _DirBlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


class DirStore:
    """The ``blobs/`` directory of an OCI image layout."""

    def __init__(self, layout_root: str) -> None:
        self.root = layout_root
        self.blobs = os.path.join(layout_root, "blobs")
        self.tmp_dir = private_path(layout_root, TMP)
        self._swept = False
        # Directories with renames not yet fsynced (inside batched_dir_sync).
        self._unsynced: set[str] | None = None

    def path_of(self, digest: Digest) -> str:
        """Filesystem path of a blob (the digest was validated when parsed)."""
        return os.path.join(self.blobs, digest.algorithm, digest.encoded)

    def has(self, digest: Digest) -> bool:
        try:
            st = os.lstat(self.path_of(digest))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode)

    def stat_size(self, digest: Digest) -> int:
        try:
            st = os.lstat(self.path_of(digest))
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None
        return st.st_size

    def open(self, digest: Digest, size: int) -> VerifyingReader:
        # O_NOFOLLOW: a blob that is a symlink (say to /etc/shadow) is refused.
        try:
            fd = os.open(self.path_of(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BlobNotFoundError(str(digest)) from None
        except OSError as e:
            raise InvalidLayoutError(
                self.root, f"cannot open blob {digest}: {e.strerror}"
            ) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise InvalidLayoutError(self.root, f"blob {digest} is not a regular file")
        raw = io.FileIO(fd, "rb")
        return VerifyingReader(raw, digest, size)

    def writer(self) -> _DirBlobWriter:
        os.makedirs(self.tmp_dir, exist_ok=True)
        if not self._swept:
            # Temp blobs of killed writers go at the next write, not at gc.
            self._swept = True
            remove_abandoned(self.tmp_dir, _BLOB_TMP)
        return _DirBlobWriter(self)

    def delete(self, digest: Digest) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path_of(digest))

    def _renamed_in(self, directory: str) -> None:
        """A blob was renamed into ``directory``: fsync it now, or at the end
        of the batch."""
        pending = self._unsynced
        if pending is None:
            self.sync_dir(directory)
        else:
            pending.add(directory)  # one set.add: atomic for the writer threads

    @contextlib.contextmanager
    def batched_dir_sync(self) -> Iterator[None]:
        """Commits inside the block fsync their blob file before its rename as
        always, but the ``blobs/<alg>`` directory once, when the block ends
        cleanly, instead of once a blob.

        The guarantee is the same as with a directory fsync a commit, as long
        as the caller writes nothing that refers to the new blobs (index.json,
        a manifest naming them is only a blob) until the block has ended: a
        crash before the directory fsync may lose some of the renames, but
        then the previous index.json is still the one on disk, and it refers
        to none of them; after it, every renamed blob is on disk, each one
        whole (its data was fsynced before the rename).  A block that ends
        with an exception skips the fsync: its caller removes the blobs.
        """
        if self._unsynced is not None:  # nested: the outer block syncs
            yield
            return
        pending: set[str] = set()
        self._unsynced = pending
        try:
            yield
        finally:
            self._unsynced = None
        for directory in sorted(pending):
            self.sync_dir(directory)

    def _listing(self) -> Iterator[tuple[str, str | None]]:
        """(algorithm, file name) for every file under blobs/, sorted;
        (name, None) for a non-directory directly in blobs/."""
        try:
            algs = sorted(os.listdir(self.blobs))
        except FileNotFoundError:
            return
        for alg in algs:
            d = os.path.join(self.blobs, alg)
            if not os.path.isdir(d):
                yield alg, None
                continue
            for name in sorted(os.listdir(d)):
                yield alg, name

    def digests(self) -> Iterator[Digest]:
        """Every blob file whose name is a valid digest (others are skipped)."""
        for alg, name in self._listing():
            if name is not None and digest_problem(f"{alg}:{name}") is None:
                yield Digest(alg, name)

    def stray_files(self) -> Iterator[str]:
        """Paths under blobs/ whose names are not valid digests."""
        for alg, name in self._listing():
            if name is None:
                yield f"blobs/{alg}"
            elif digest_problem(f"{alg}:{name}") is not None:
                yield f"blobs/{alg}/{name}"

    sync_dir = staticmethod(sync_dir)


class _MemWriter:
    def __init__(self, store: MemoryStore) -> None:
        self._store = store
        self._buf = io.BytesIO()
        self._hasher = Hasher()

    @property
    def size(self) -> int:
        return self._hasher.size

    @property
    def hasher(self) -> Hasher:
        """The running sha256 of what was written."""
        return self._hasher

    def write(self, data: bytes | memoryview) -> int:
        self._hasher.update(data)
        return self._buf.write(data)

    def commit(self, expected: Digest | None = None, size: int | None = None) -> Digest:
        actual = self._hasher.digest()
        if size is not None and size != self.size:
            raise DigestMismatchError("blob size", expected=str(size), actual=str(self.size))
        if expected is not None and expected != actual:
            raise DigestMismatchError("blob content", expected=str(expected), actual=str(actual))
        self._store.blobs[actual] = self._buf.getvalue()
        return actual

    def abort(self) -> None:
        self._buf = io.BytesIO()


class MemoryStore:
    """An in-memory store (tests, and dry runs)."""

    def __init__(self) -> None:
        self.blobs: dict[Digest, bytes] = {}

    def has(self, digest: Digest) -> bool:
        return digest in self.blobs

    def stat_size(self, digest: Digest) -> int:
        try:
            return len(self.blobs[digest])
        except KeyError:
            raise BlobNotFoundError(str(digest)) from None

    def open(self, digest: Digest, size: int) -> VerifyingReader:
        try:
            data = self.blobs[digest]
        except KeyError:
            raise BlobNotFoundError(str(digest)) from None
        return VerifyingReader(io.BytesIO(data), digest, size)

    def writer(self) -> _MemWriter:
        return _MemWriter(self)

    def delete(self, digest: Digest) -> None:
        self.blobs.pop(digest, None)

    def digests(self) -> Iterator[Digest]:
        yield from sorted(self.blobs)


__all__ = [
    "MAX_DOCUMENT_SIZE",
    "BlobStore",
    "BlobWriter",
    "DirStore",
    "MemoryStore",
    "put_bytes",
    "put_stream",
    "read_small",
]
