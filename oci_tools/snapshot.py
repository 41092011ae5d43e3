"""The file-state record of a tree: what ``unpack`` leaves for ``commit``.

A Snapshot maps each relative path ('' is the root itself) to the FileState
that lstat reported after the path was last written.  ``apply`` fills it
while unpacking (no second walk); ``diff`` compares a live tree with it so a
commit only reads what changed.

Storage is columnar (one ``array`` per stat field, a path -> row index): a
snapshot of 100k paths loads without building 100k Python objects, and
FileState values are made on demand.  ``dump``/``load`` use a small versioned
binary format, see ``Snapshot.dump``.

This module also holds the tree-walking primitives ``diff`` shares:
``scan_tree`` (iterative, directory-fd relative, never follows a symlink) and
the xattr helpers (``read_xattrs``, ``layer_xattrs``, ``xattr_fingerprint``).
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
import sys
from array import array
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, MutableMapping

from oci_tools.errors import InvalidDocumentError, OCIToolsError
from oci_tools.fsutil import atomic_write
from oci_tools.records import record

# Signed where the kernel value may be negative (times) or where it cannot
# exceed 2^63 (size); unsigned for inode numbers and device ids.
_TYPECODES = ("Q", "Q", "Q", "q", "q", "q", "Q", "Q", "Q")
_DIGEST_LEN = 32  # raw sha256
_NO_DIGEST = bytes(_DIGEST_LEN)
# Per-row flag bits.
_HAS_CONTENT = 1
_XATTRS_RECORDED = 2
_HAS_XATTRS = 4

_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: if a FIFO is swapped in under our feet, opening it must not hang.
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1 << 20


def stat_fields(st: os.stat_result) -> tuple[int, int, int, int, int, int, int, int, int]:
    """The lstat fields a FileState keeps, in its field order."""
    return (
        st.st_mode,
        st.st_uid,
        st.st_gid,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        st.st_ino,
        st.st_nlink,
        st.st_rdev,
    )


@record
class FileState:
    """The parts of an lstat result that reveal a change, plus optional
    digests for when stat alone cannot decide.

    ``content`` is the sha256 hex of a regular file's bytes (taken while the
    file was written) or of a symlink's target bytes; None when not recorded.
    ``xattrs`` is ``xattr_fingerprint`` of the path's extended attributes:
    None when not recorded, ``""`` when it has none that a layer would carry.
    """

    mode: int  # full st_mode: type bits and permission bits
    uid: int
    gid: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    nlink: int
    rdev: int = 0
    content: str | None = None
    xattrs: str | None = None

    @classmethod
    def from_stat(
        cls, st: os.stat_result, content: str | None = None, xattrs: str | None = None
    ) -> FileState:
        """Build from an ``os.lstat``/``os.stat(..., follow_symlinks=False)`` result."""
        return cls(*stat_fields(st), content, xattrs)

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return stat.S_ISDIR(self.mode)


# -- xattrs -----------------------------------------------------------------------

#: Attributes a layer never carries: host labels, and overlayfs bookkeeping that
#: would change overlay semantics wherever the layer is later applied.
_DROPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DROPPED_XATTRS = frozenset({"security.selinux"})


def read_xattrs(dir_fd: int, name: str | None) -> dict[str, bytes]:
    """All extended attributes of ``name`` inside the directory ``dir_fd``
    (the last component is not followed), or of ``dir_fd`` itself when
    ``name`` is None.  A filesystem without xattr support gives ``{}``."""
    # /proc/self/fd/N resolves to the open directory itself, so the lookup of
    # ``name`` stays relative to it without a path that a rename could redirect.
    target: int | str = dir_fd if name is None else f"/proc/self/fd/{dir_fd}/{name}"
    follow = name is None
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        raise
    out: dict[str, bytes] = {}
    for attr in names:
        try:
            out[attr] = os.getxattr(target, attr, follow_symlinks=follow)
        except OSError as exc:
            # Removed between list and get, or not readable by us: not there.
            if exc.errno in (errno.ENODATA, errno.EPERM, errno.EACCES):
                continue
            raise
    return out


def layer_xattrs(raw: Mapping[str, bytes]) -> dict[str, bytes]:
    """The attributes a layer would carry: ``security.selinux``, overlayfs
    attributes and empty values (PAX cannot say "empty") are dropped."""
    return {
        k: v
        for k, v in raw.items()
        if v and k not in _DROPPED_XATTRS and not k.startswith(_DROPPED_XATTR_PREFIXES)
    }


def xattr_fingerprint(xattrs: Mapping[str, bytes]) -> str:
    """A short stable value for a set of attributes (after ``layer_xattrs``):
    ``""`` when there are none, else a sha256 hex over the sorted pairs."""
    kept = layer_xattrs(xattrs)
    if not kept:
        return ""
    h = hashlib.sha256()
    for k in sorted(kept):
        key = k.encode("utf-8", "surrogateescape")
        value = kept[k]
        # Length prefixes keep ("ab", "c") and ("a", "bc") apart.
        h.update(struct.pack("<II", len(key), len(value)))
        h.update(key)
        h.update(value)
    return h.hexdigest()


# -- tree walking ------------------------------------------------------------------


def tree_changed(path: str, detail: str = "") -> OCIToolsError:
    """The error for a tree that changed under a walk or diff (a path vanished
    or was swapped): retrying on a quiet tree is the fix."""
    extra = f" ({detail})" if detail else ""
    return OCIToolsError(
        f"{path} changed while it was being read{extra}",
        hint="stop whatever is writing to the tree (pause the container) and retry",
    )


def join(parent: str, name: str) -> str:
    """Join a relative directory path ('' for the root) and a name."""
    return f"{parent}/{name}" if parent else name


def open_dir_at(dir_fd: int, name: str, expect: os.stat_result | None, rel: str) -> int:
    """Open a subdirectory without following a symlink; when ``expect`` is
    given, check it is still the directory that was listed."""
    try:
        fd = os.open(name, _OPEN_DIR, dir_fd=dir_fd)
    except OSError as exc:
        raise tree_changed("/" + rel, exc.strerror or str(exc)) from None
    if expect is not None:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != (expect.st_dev, expect.st_ino):
            os.close(fd)
            raise tree_changed("/" + rel, "replaced by another directory")
    return fd


def _list_dir(fd: int) -> list[tuple[str, os.stat_result]]:
    out: list[tuple[str, os.stat_result]] = []
    with os.scandir(fd) as it:
        for entry in it:
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue  # removed since the listing: it is simply not there
    out.sort()
    return out


DirListing = tuple[str, int, os.stat_result, list[tuple[str, os.stat_result]]]


def scan_tree(root: str) -> Iterator[DirListing]:
    """Walk ``root`` iteratively; for each directory yield ``(rel, fd, st,
    children)`` where ``children`` is a name-sorted list of ``(name, lstat)``.

    Parents come before their children.  ``fd`` is an open descriptor of the
    directory, valid until the next iteration.  Subdirectories are opened
    relative to their parent with O_NOFOLLOW and checked against the listed
    inode, so a symlink swapped in cannot lead the walk out of the tree.  At
    most one descriptor per level of depth is open at a time.
    """
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    frames: list[tuple[int, str, Iterator[tuple[str, os.stat_result]]]] = [(root_fd, "", iter(()))]
    try:
        root_st = os.fstat(root_fd)
        children = _list_dir(root_fd)
        frames[0] = (root_fd, "", iter([c for c in children if stat.S_ISDIR(c[1].st_mode)]))
        yield "", root_fd, root_st, children
        while frames:
            parent_fd, parent_rel, pending = frames[-1]
            nxt = next(pending, None)
            if nxt is None:
                frames.pop()
                os.close(parent_fd)
                continue
            name, st = nxt
            rel = join(parent_rel, name)
            fd = open_dir_at(parent_fd, name, st, rel)
            frames.append((fd, rel, iter(())))
            children = _list_dir(fd)
            frames[-1] = (fd, rel, iter([c for c in children if stat.S_ISDIR(c[1].st_mode)]))
            yield rel, fd, st, children
    finally:
        for fd, _, _ in frames:
            os.close(fd)


def hash_fd(fd: int) -> str:
    """sha256 hex of what is left to read from ``fd`` (a file's content)."""
    h = hashlib.sha256()
    while chunk := os.read(fd, _CHUNK):
        h.update(chunk)
    return h.hexdigest()


def hash_file_at(dir_fd: int, name: str) -> str:
    """sha256 hex of a regular file, opened relative to ``dir_fd`` without
    following a symlink."""
    fd = os.open(name, _OPEN_FILE, dir_fd=dir_fd)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise tree_changed(name, "no longer a regular file")
        return hash_fd(fd)
    finally:
        os.close(fd)


def hash_link_at(dir_fd: int, name: str) -> str:
    """sha256 hex of a symlink's target bytes."""
    target = os.readlink(name, dir_fd=dir_fd)
    return hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()


# -- the snapshot -----------------------------------------------------------------

_MAGIC = b"OCISNAP\n"
_FORMAT_VERSION = 1
_HEAD = struct.Struct("<8sIIQ")  # magic, version, reserved flags, row count
_LITTLE = sys.byteorder == "little"


class _Files(MutableMapping[str, FileState]):
    """``Snapshot.files``: a dict-like view that makes FileState on access."""

    __slots__ = ("_snap",)

    def __init__(self, snap: Snapshot) -> None:
        self._snap = snap

    def __getitem__(self, path: str) -> FileState:
        state = self._snap.get(path)
        if state is None:
            raise KeyError(path)
        return state

    def __setitem__(self, path: str, state: FileState) -> None:
        self._snap.put(path, state)

    def __delitem__(self, path: str) -> None:
        if not self._snap.discard(path):
            raise KeyError(path)

    def __contains__(self, path: object) -> bool:
        return path in self._snap._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._snap._index)

    def __len__(self) -> int:
        return len(self._snap._index)

    def items(self) -> ItemsView[str, FileState]:
        """(path, FileState) pairs, made straight from the columns."""
        return _FileItems(self)


class _FileItems(ItemsView[str, FileState]):
    """Iterates the index directly instead of one lookup per key."""

    def __init__(self, files: _Files) -> None:
        super().__init__(files)
        self._snap = files._snap

    def __iter__(self) -> Iterator[tuple[str, FileState]]:
        state = self._snap._state
        for path, row in list(self._snap._index.items()):
            yield path, state(row)


class Snapshot:
    """Mutable path -> FileState map of one rootfs."""

    def __init__(self, files: Mapping[str, FileState] | None = None) -> None:
        self._index: dict[str, int] = {}
        self._cols: list[array[int]] = [array(tc) for tc in _TYPECODES]
        self._flags = bytearray()
        self._content = bytearray()
        self._xattrs = bytearray()
        # parent path -> child paths, built on the first recursive forget.
        self._children: dict[str, set[str]] | None = None
        if files:
            for path, state in files.items():
                self.put(path, state)

    # -- mutation ------------------------------------------------------------------

    def _store(
        self,
        path: str,
        values: tuple[int, int, int, int, int, int, int, int, int],
        content: str | None,
        xattrs: str | None,
    ) -> None:
        flags = 0
        digest = _NO_DIGEST
        if content is not None:
            flags |= _HAS_CONTENT
            digest = bytes.fromhex(content)
            if len(digest) != _DIGEST_LEN:
                raise ValueError(f"content of {path!r} is not a sha256 hex digest")
        xdigest = _NO_DIGEST
        if xattrs is not None:
            flags |= _XATTRS_RECORDED
            if xattrs:
                flags |= _HAS_XATTRS
                xdigest = bytes.fromhex(xattrs)
                if len(xdigest) != _DIGEST_LEN:
                    raise ValueError(f"xattrs of {path!r} is not a sha256 hex digest")
        row = self._index.get(path)
        if row is None:
            row = len(self._flags)
            for col, value in zip(self._cols, values, strict=True):
                col.append(value)
            self._flags.append(flags)
            self._content += digest
            self._xattrs += xdigest
            self._index[path] = row
            if self._children is not None and path:
                self._children.setdefault(path.rpartition("/")[0], set()).add(path)
        else:
            for col, value in zip(self._cols, values, strict=True):
                col[row] = value
            self._flags[row] = flags
            at = row * _DIGEST_LEN
            self._content[at : at + _DIGEST_LEN] = digest
            self._xattrs[at : at + _DIGEST_LEN] = xdigest

    def record(
        self,
        path: str,
        st: os.stat_result,
        content: str | None = None,
        *,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Remember the state of ``path`` (relative, '' for the root).

        ``content``: sha256 hex of a regular file's bytes (or a symlink's
        target).  ``xattrs``: the attributes the path now carries, when known;
        recording them lets ``diff`` tell an attribute change from a touch.
        Take ``st`` after the last change to the path (chown, chmod, xattrs,
        utime, and for a file that gains a hardlink, the link).
        """
        fingerprint = None if xattrs is None else xattr_fingerprint(xattrs) if xattrs else ""
        self._store(path, stat_fields(st), content, fingerprint)

    def record_plain(self, path: str, st: os.stat_result, content: bytes) -> None:
        """``record(path, st, content.hex(), xattrs={})`` for the applier's
        hot path: a node with no attributes and the raw sha256 ``content``
        of its bytes (a new path is appended to the columns directly)."""
        if len(content) != _DIGEST_LEN:
            raise ValueError(f"content of {path!r} is not a sha256 digest")
        index = self._index
        if path in index or self._children is not None:
            self._store(path, stat_fields(st), content.hex(), "")
            return
        index[path] = len(self._flags)
        mode, uid, gid, size, mtime, ctime, ino, nlink, rdev = self._cols
        mode.append(st.st_mode)
        uid.append(st.st_uid)
        gid.append(st.st_gid)
        size.append(st.st_size)
        mtime.append(st.st_mtime_ns)
        ctime.append(st.st_ctime_ns)
        ino.append(st.st_ino)
        nlink.append(st.st_nlink)
        rdev.append(st.st_rdev)
        self._flags.append(_HAS_CONTENT | _XATTRS_RECORDED)
        self._content += content
        self._xattrs += _NO_DIGEST

    def put(self, path: str, state: FileState) -> None:
        """Store a ready-made FileState for ``path``."""
        self._store(
            path,
            (
                state.mode,
                state.uid,
                state.gid,
                state.size,
                state.mtime_ns,
                state.ctime_ns,
                state.ino,
                state.nlink,
                state.rdev,
            ),
            state.content,
            state.xattrs,
        )

    def discard(self, path: str) -> bool:
        """Drop ``path`` alone (not its children); True when it was there."""
        if self._index.pop(path, None) is None:
            return False
        # The row stays allocated until the next dump; only the index forgets it.
        if self._children is not None and path:
            siblings = self._children.get(path.rpartition("/")[0])
            if siblings is not None:
                siblings.discard(path)
        return True

    def forget(self, path: str) -> None:
        """Drop ``path`` and everything below it.

        Forgetting a non-directory is O(1).  The first forget of a directory
        builds a parent -> children index (O(n) once); after that each forget
        costs only what it removes, so many whiteouts stay linear.
        """
        if path == "":
            self._index.clear()
            self._children = None
            return
        row = self._index.get(path)
        if row is not None and not stat.S_ISDIR(self._cols[0][row]):
            self.discard(path)
            return
        children = self._child_index()
        self.discard(path)
        pending = [path]
        while pending:
            below = children.pop(pending.pop(), None)
            if not below:
                continue
            for child in below:
                self._index.pop(child, None)
                pending.append(child)

    def _child_index(self) -> dict[str, set[str]]:
        if self._children is None:
            children: dict[str, set[str]] = {}
            for p in self._index:
                if p:
                    children.setdefault(p.rpartition("/")[0], set()).add(p)
            self._children = children
        return self._children

    # -- lookup --------------------------------------------------------------------

    def _state(self, row: int) -> FileState:
        flags = self._flags[row]
        at = row * _DIGEST_LEN
        content = self._content[at : at + _DIGEST_LEN].hex() if flags & _HAS_CONTENT else None
        xattrs: str | None = None
        if flags & _XATTRS_RECORDED:
            xattrs = self._xattrs[at : at + _DIGEST_LEN].hex() if flags & _HAS_XATTRS else ""
        c = self._cols
        return FileState(
            c[0][row], c[1][row], c[2][row], c[3][row], c[4][row], c[5][row], c[6][row],
            c[7][row], c[8][row], content, xattrs,
        )  # fmt: skip

    def get(self, path: str) -> FileState | None:
        """The recorded state of ``path``, or None."""
        row = self._index.get(path)
        return None if row is None else self._state(row)

    def same_stat(self, path: str, st: os.stat_result) -> int:
        """Fast check used by ``diff`` for every live path: -1 when ``path``
        is not recorded, 1 when type, mode, owner, size, rdev, mtime, ctime
        and inode are all unchanged (nothing can have changed), 0 otherwise."""
        return self.stat_matcher()(path, st)

    def stat_matcher(self) -> Callable[[str, os.stat_result], int]:
        """``same_stat`` as a closure over the columns, for hot loops (valid
        as long as the snapshot is not loaded over)."""
        index_get = self._index.get
        mode, uid, gid, size, mtime, ctime, ino, _nlink, rdev = self._cols

        def match(path: str, st: os.stat_result) -> int:
            row = index_get(path)
            if row is None:
                return -1
            # All of them, not just ctime and inode: ctime can be as coarse as
            # a timer tick, so a chmod right after recording may not move it.
            if (
                ctime[row] == st.st_ctime_ns
                and ino[row] == st.st_ino
                and mtime[row] == st.st_mtime_ns
                and mode[row] == st.st_mode
                and size[row] == st.st_size
                and uid[row] == st.st_uid
                and gid[row] == st.st_gid
                and rdev[row] == st.st_rdev
            ):
                return 1
            return 0

        return match

    @property
    def files(self) -> MutableMapping[str, FileState]:
        """Dict-like path -> FileState view (FileState values made on access)."""
        return _Files(self)

    def paths(self) -> Iterator[str]:
        """All recorded paths, in no particular order."""
        return iter(self._index)

    def with_inodes(self, inodes: Iterable[int]) -> list[tuple[str, FileState]]:
        """Recorded non-directories whose inode number is in ``inodes`` (a
        column scan: no FileState is made for the others)."""
        wanted = set(inodes)
        ino, mode = self._cols[6], self._cols[0]
        return [
            (p, self._state(row))
            for p, row in self._index.items()
            if ino[row] in wanted and not stat.S_ISDIR(mode[row])
        ]

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        if self._index.keys() != other._index.keys():
            return False
        return all(self._state(i) == other._state(other._index[p]) for p, i in self._index.items())

    __hash__ = None  # type: ignore[assignment]  # mutable

    # -- serialization --------------------------------------------------------------

    def dump(self, path: str) -> None:
        """Write the snapshot to ``path`` (atomically: temp file, fsync, rename).

        Format v1: a 24-byte head ``<8s I I Q>`` = magic ``OCISNAP\\n``,
        version 1, flags 0, row count N; then one zstd frame (level 3, content
        size declared) holding, in order: ``<Q>`` byte length of the path
        blob; the paths (UTF-8 with surrogateescape, NUL-separated, in
        recording order); nine little-endian 8-byte columns of N values (mode
        uid gid size mtime_ns ctime_ns ino nlink rdev; times and size signed);
        N flag bytes (1 content, 2 xattrs recorded, 4 has xattrs); N x 32 raw
        content digests; N x 32 raw xattr fingerprints (zeros where absent).
        """
        # The index lists paths in row order (a new path always takes the next
        # row), so without forgotten rows the columns are written as they are.
        order = list(self._index)
        parts: list[bytes] = []
        blob = "\0".join(order).encode("utf-8", "surrogateescape")
        parts.append(struct.pack("<Q", len(blob)))
        parts.append(blob)
        compact = len(order) == len(self._flags)
        rows = [] if compact else list(self._index.values())
        for tc, col in zip(_TYPECODES, self._cols, strict=True):
            packed = col if compact else array(tc, map(col.__getitem__, rows))
            if not _LITTLE:  # pragma: no cover - big-endian hosts
                packed = array(tc, packed)
                packed.byteswap()
            parts.append(packed.tobytes())
        parts.append(bytes(self._flags) if compact else bytes(map(self._flags.__getitem__, rows)))
        for digests in (self._content, self._xattrs):
            if compact:
                parts.append(bytes(digests))
                continue
            view = memoryview(digests)
            parts.append(b"".join(view[r * _DIGEST_LEN : (r + 1) * _DIGEST_LEN] for r in rows))
        import zstandard  # only snapshots and zstd layers need it

        data = _HEAD.pack(_MAGIC, _FORMAT_VERSION, 0, len(order)) + zstandard.ZstdCompressor(
            level=3
        ).compress(b"".join(parts))
        atomic_write(path, data)

    @classmethod
    def load(cls, path: str) -> Snapshot:
        """Read a snapshot written by ``dump``; InvalidDocumentError if it is
        not one (or of an unknown version)."""
        with open(path, "rb") as f:
            data = f.read()

        def bad(problem: str) -> InvalidDocumentError:
            return InvalidDocumentError(
                f"snapshot {path}",
                [problem],
                hint="recreate it (a commit with refresh rewrites it)",
            )

        if len(data) < _HEAD.size:
            raise bad("file too short")
        magic, version, _flags, count = _HEAD.unpack_from(data)
        if magic != _MAGIC:
            raise bad("not an oci-tools snapshot")
        if version != _FORMAT_VERSION:
            raise bad(f"unsupported snapshot version {version}")
        import zstandard

        frame = data[_HEAD.size :]
        # Each row is 137 fixed bytes plus its path (at most PATH_MAX): refuse
        # a frame that claims more before allocating for it.
        limit = 8 + count * (8 * len(_TYPECODES) + 1 + 2 * _DIGEST_LEN + 4096)
        try:
            declared = zstandard.frame_content_size(frame)
            if declared < 0 or declared > limit:
                raise bad("implausible data size")
            body = zstandard.ZstdDecompressor().decompress(frame, max_output_size=limit)
        except zstandard.ZstdError as exc:
            raise bad(f"corrupt data: {exc}") from None
        expected = 8 + count * (8 * len(_TYPECODES) + 1 + 2 * _DIGEST_LEN)
        if len(body) < 8:
            raise bad("truncated")
        (blob_len,) = struct.unpack_from("<Q", body)
        if len(body) != expected + blob_len:
            raise bad("truncated or over-long data")
        view = memoryview(body)
        at = 8 + blob_len
        blob = bytes(view[8:at])
        paths = blob.decode("utf-8", "surrogateescape").split("\0") if count else []
        if len(paths) != count:
            raise bad("path count does not match")
        snap = cls()
        snap._index = dict(zip(paths, range(count), strict=True))
        if len(snap._index) != count:
            raise bad("duplicate paths")
        cols: list[array[int]] = []
        for tc in _TYPECODES:
            col = array(tc)
            col.frombytes(view[at : at + 8 * count])
            if not _LITTLE:  # pragma: no cover - big-endian hosts
                col.byteswap()
            cols.append(col)
            at += 8 * count
        snap._cols = cols
        snap._flags = bytearray(view[at : at + count])
        at += count
        snap._content = bytearray(view[at : at + _DIGEST_LEN * count])
        at += _DIGEST_LEN * count
        snap._xattrs = bytearray(view[at : at + _DIGEST_LEN * count])
        return snap

    # -- building from a tree ---------------------------------------------------------

    @classmethod
    def walk(cls, root: str, *, hash_content: bool = False, xattrs: bool = False) -> Snapshot:
        """Record every path under ``root`` with lstat (one ``scan_tree``).

        With ``hash_content`` regular files are read and hashed and symlink
        targets digested, which is what ``diff`` needs to settle a file whose
        ctime or inode changed but nothing else.  With ``xattrs`` each path's
        attribute fingerprint is recorded too.
        """
        snap = cls()
        for rel, fd, dir_st, children in scan_tree(root):
            if rel == "":
                snap.record("", dir_st, xattrs=read_xattrs(fd, None) if xattrs else None)
            for name, st in children:
                content: str | None = None
                if hash_content:
                    if stat.S_ISREG(st.st_mode):
                        content = hash_file_at(fd, name)
                    elif stat.S_ISLNK(st.st_mode):
                        content = hash_link_at(fd, name)
                snap.record(
                    join(rel, name),
                    st,
                    content,
                    xattrs=read_xattrs(fd, name) if xattrs else None,
                )
        return snap


__all__ = [
    "DirListing",
    "FileState",
    "Snapshot",
    "hash_fd",
    "hash_file_at",
    "hash_link_at",
    "join",
    "layer_xattrs",
    "open_dir_at",
    "read_xattrs",
    "scan_tree",
    "tree_changed",
    "xattr_fingerprint",
]
