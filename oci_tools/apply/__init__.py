"""Apply one layer (a compressed tar stream) onto a rootfs directory, safely.

One pass over the blob: the compressed bytes are counted, decompressed, hashed
(the diff_id) while the tar is parsed and applied, and everything after the tar
end-of-archive marker is drained so the diff_id covers every byte and a
VerifyingReader passed as ``blob`` reaches EOF and checks the blob digest.

Confinement (the rule every line here serves): every filesystem operation is
relative to a directory fd obtained by walking the rootfs one component at a
time with ``O_PATH|O_NOFOLLOW``.  Symlinks met on the way are resolved as if
the rootfs were ``/`` (absolute targets restart at the rootfs, ``..`` stops at
it, at most 40 hops).  The final component of an entry is never followed: it
is unlinked and recreated (directories merge), and metadata is applied through
an fd or with ``follow_symlinks=False``.  No host path is ever built from a
member name, and neither ``tarfile`` nor ``shutil.rmtree`` is used.

Semantics follow the image-spec (layer.md) with umoci as the reference where
tools differ: whiteouts remove only what lower layers left, whatever their
order relative to this layer's additions; a whiteout under a missing parent
does nothing; directory attributes are replaced on dir-over-dir; directory
times and modes are applied after all entries; parent directories keep their
times when children are created or removed.

If this raises, the rootfs is partially modified and must be thrown away (the
diff_id, for one, can only be checked once everything was applied).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

from oci_tools.compression import ReadAhead
from oci_tools.digest import Digest
from oci_tools.errors import (
    DigestMismatchError,
    OCIToolsError,
    SpecialFileError,
    UnsafeLayerError,
)
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.paths import MAX_SYMLINK_HOPS
from oci_tools.layer.reader import (
    CHUNK,
    DEFAULT_LIMITS,
    EntryContent,
    ReadLimits,
    iter_entries,
)
from oci_tools.layer.rootless import ROOTLESS_XATTR, encode_rootless
from oci_tools.layer.stream import STREAM_NAME, StreamLimits, open_layer_stream
from oci_tools.layer.whiteout import WHITEOUT_PREFIX, WhiteoutKind, classify
from oci_tools.snapshot import FileState, Snapshot

_STREAM = STREAM_NAME
#: Directory fds kept open between entries.
_FD_CACHE = 256
_O_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_O_NODE_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_O_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_EXCL|O_NOFOLLOW: never open (and so never truncate or write through) an
# existing node; the caller unlinks what is there and retries.
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_NOTES = 1000
_INT64 = 1 << 63


def _default_rootless() -> bool:
    return os.geteuid() != 0


@dataclass
class ApplyOptions:
    """Policy and limits of ``apply_layer``.

    rootless:
        Do not chown, do not create devices, do not set ``security.capability``
        (each skipped item is noted in ``ApplyResult.skipped``), and give
        directories owner rwx while applying.  Defaults to "not running as root".
    max_ratio, ratio_grace_bytes:
        Refuse a stream once more than ``ratio_grace_bytes`` were decompressed
        and the uncompressed/compressed ratio exceeds ``max_ratio``.  Real
        layers stay far below 1000; gzip cannot exceed ~1032 (a layer made of
        nothing but zeros), zstd bombs reach 10^4..10^6.
    max_uncompressed_bytes:
        Absolute cap on the decompressed stream (None: no cap).
    check_free_space, min_free_bytes:
        Before writing a file, make sure the rootfs filesystem keeps at least
        ``min_free_bytes`` free afterwards (``statvfs``); refuse otherwise.
    max_entries:
        Cap on tar members (the per-layer bookkeeping grows with it).
    limits:
        Tar reader limits (extension header size and so on).
    on_entry:
        Called with every member (whiteouts included) before it is applied,
        so a caller can index the layer in the same pass (``layer extract``).
    apply_whiteouts:
        False leaves whiteouts and opaque markers unapplied (they are still
        validated and passed to ``on_entry``): extracting one layer on its own.
    on_missing_link:
        Called, instead of failing, with a hardlink member whose target does
        not exist in the rootfs; the member is then skipped.  Extracting one
        layer on its own: its hardlinks may point at lower layers' files.
    """

    rootless: bool = field(default_factory=_default_rootless)
    max_ratio: float = 1000.0
    ratio_grace_bytes: int = 16 << 20
    max_uncompressed_bytes: int | None = None
    check_free_space: bool = True
    min_free_bytes: int = 64 << 20
    max_entries: int = 2_000_000
    limits: ReadLimits = DEFAULT_LIMITS
    on_entry: Callable[[TarEntry], None] | None = None
    apply_whiteouts: bool = True
    on_missing_link: Callable[[TarEntry], None] | None = None

    def stream_limits(self) -> StreamLimits:
        """The bomb limits of these options, for :func:`open_layer_stream`."""
        return StreamLimits(
            max_ratio=self.max_ratio,
            ratio_grace_bytes=self.ratio_grace_bytes,
            max_uncompressed_bytes=self.max_uncompressed_bytes,
        )


@dataclass
class ApplyResult:
    """What ``apply_layer`` did.

    ``diff_id`` is the digest of the whole uncompressed stream (always
    computed, checked when one was given), ``uncompressed_size`` its length,
    ``compressed_size`` the bytes read from ``blob``, ``entries`` the tar
    members (whiteouts included), ``skipped`` one human-readable note per
    thing not applied (devices when rootless, refused xattrs, ...).
    """

    diff_id: Digest
    uncompressed_size: int
    compressed_size: int
    entries: int
    skipped: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------- helpers


def _proc(fd: int) -> str:
    # /proc/self/fd/N of an O_PATH fd names exactly that inode: chmod, chown,
    # utime and setxattr through it act on the node without re-resolving any
    # name (the technique moby uses for fchmodat without following).
    return f"/proc/self/fd/{fd}"


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _clamp_ns(ns: int) -> int:
    return ns if -_INT64 <= ns < _INT64 else 0


def _xattr_policy(name: str, rootless: bool) -> str | None:
    """None when ``name`` may be applied, else why not."""
    if name.startswith("user."):
        return None
    if name == "security.capability":
        return "needs root" if rootless else None
    if name.startswith("system.posix_acl_"):
        return None
    if name.startswith("trusted."):
        # trusted.overlay.* would change overlayfs semantics of the rootfs.
        return "refused (trusted.* is for the host)"
    if name == "security.selinux":
        return "refused (labels come from the host policy)"
    return "refused (unsupported namespace)"


# ----------------------------------------------------------------------- applier


class _Applier:
    """State of one layer application (see the module docstring)."""

    def __init__(self, rootfd: int, snapshot: Snapshot | None, opts: ApplyOptions) -> None:
        self.rootfd = rootfd
        self.snap = snapshot
        self.opts = opts
        self.rootless = opts.rootless
        self.notes: list[str] = []
        self.notes_dropped = 0
        # canonical dir path -> O_PATH fd (the root is kept apart, never closed)
        self._fds: dict[str, int] = {}
        # lexical dir path (as named in the tar) -> canonical path
        self._lex: dict[str, str] = {}
        # paths (canonical) written by this layer, and all their ancestors
        self.written: set[str] = set()
        self.ancestors: set[str] = set()
        # directories known to hold nothing from lower layers
        self.clean: set[str] = set()
        # directories created by this layer (entry or implied) / implied only
        self.new_dirs: set[str] = set()
        self.implied: set[str] = set()
        # directory entries: canonical path -> (mode, mtime_ns), applied last
        self.dir_meta: dict[str, tuple[int, int]] = {}
        # directory entries: canonical path -> xattrs now on them (None: unknown)
        self.dir_xattrs: dict[str, dict[str, bytes] | None] = {}
        # directories whose children changed -> original (atime, mtime) or None
        self.touched: dict[str, tuple[int, int] | None] = {}
        # rootless: directories temporarily given u+rwx -> original mode
        self.tempmode: dict[str, int] = {}
        # inodes whose link count changed (their recorded peers need a re-stat)
        self.dirty_inos: set[int] = set()
        self._avail: int | None = None
        if not os.path.exists(_proc(rootfd)):
            raise OCIToolsError("applying a layer needs /proc mounted")
        if self.rootless:
            self._ensure_access(rootfd, os.fstat(rootfd), "")

    # -- bookkeeping -------------------------------------------------------

    def note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)
        else:
            self.notes_dropped += 1

    def mark_written(self, path: str) -> None:
        self.written.add(path)
        anc = self.ancestors
        parent = path
        while parent:
            parent = parent.rpartition("/")[0]
            if parent in anc:
                break
            anc.add(parent)

    def touch(self, dpath: str, dfd: int) -> None:
        """Remember ``dpath``'s times before its children change."""
        if dpath in self.touched:
            return
        if dpath in self.new_dirs:
            self.touched[dpath] = None
        else:
            st = os.fstat(dfd)
            self.touched[dpath] = (st.st_atime_ns, st.st_mtime_ns)

    def record(
        self,
        path: str,
        st: os.stat_result,
        content: str | None = None,
        xattrs: Mapping[str, bytes] | None = None,
    ) -> None:
        """Record the final state of a node this layer created or rewrote.

        ``xattrs`` are the attributes now on the node (None when unknown).
        """
        if self.snap is not None:
            self.snap.record(path, st, content, xattrs=xattrs)

    def rerecord(self, path: str, st: os.stat_result) -> None:
        """Record a new stat for a node whose content and xattrs this layer
        did not change (a restored parent, a hardlink peer)."""
        snap = self.snap
        if snap is None:
            return
        old = snap.get(path)
        if old is None:
            snap.record(path, st)
        else:
            snap.put(path, FileState.from_stat(st, old.content, old.xattrs))

    def forget(self, path: str) -> None:
        snap = self.snap
        if snap is not None and path in snap.files:
            snap.forget(path)

    def evict(self) -> None:
        """Close the least recently used cached fds beyond the cache size.

        Only called where no cached fd is held (between entries and between
        resolution steps), so an fd in use is never closed under its user.
        """
        fds = self._fds
        while len(fds) > _FD_CACHE:
            key = next(iter(fds))
            os.close(fds.pop(key))

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def invalidate(self, path: str) -> None:
        """A directory or symlink at ``path`` went away: drop what resolved through it."""
        self._lex.clear()
        prefix = path + "/"
        for key in [k for k in self._fds if k == path or k.startswith(prefix)]:
            os.close(self._fds.pop(key))

    def _ensure_access(self, fd: int, st: os.stat_result, canon: str) -> None:
        """Rootless: give a directory owner rwx while we work in it."""
        if not self.rootless or st.st_mode & 0o700 == 0o700 or canon in self.tempmode:
            return
        try:
            os.chmod(_proc(fd), stat.S_IMODE(st.st_mode) | 0o700)
        except PermissionError:
            return  # not ours: later operations fail with a clear EACCES
        self.tempmode[canon] = stat.S_IMODE(st.st_mode)

    # -- resolution --------------------------------------------------------

    def dirfd(self, canon: str) -> int:
        """O_PATH fd of a canonical directory path (real directories only)."""
        if not canon:
            return self.rootfd
        fds = self._fds
        fd = fds.pop(canon, None)
        if fd is not None:
            fds[canon] = fd  # least-recently-used order: re-insert at the end
            return fd
        parent, _, base = canon.rpartition("/")
        # Walk up to the nearest cached ancestor, then open down with
        # O_NOFOLLOW|O_DIRECTORY: a canonical path has no symlinks in it.
        todo = [base]
        while parent and parent not in self._fds:
            parent, _, base = parent.rpartition("/")
            todo.append(base)
        cur = parent
        pfd = self.dirfd(parent)
        owned = False
        try:
            while todo:
                comp = todo.pop()
                nfd = os.open(comp, _O_DIR_PATH, dir_fd=pfd)
                st = os.fstat(nfd)
                if not stat.S_ISDIR(st.st_mode):
                    os.close(nfd)
                    raise UnsafeLayerError(canon, "directory changed while applying")
                cur = _join(cur, comp)
                self._ensure_access(nfd, st, cur)
                if owned:
                    os.close(pfd)
                pfd, owned = nfd, True
        except BaseException:
            if owned:
                os.close(pfd)
            raise
        self._fds[canon] = pfd
        return pfd

    def try_dirfd(self, canon: str) -> int | None:
        """Like dirfd, None when the directory no longer exists."""
        try:
            return self.dirfd(canon)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise

    def resolve_dir(self, lex: str, *, create: bool, entry: str) -> tuple[str, int] | None:
        """Resolve the lexical directory path ``lex`` inside the rootfs.

        Symlinks are followed as if the rootfs were ``/``.  Missing components
        are created 0755 when ``create``; otherwise None is returned (as it is
        for a non-directory component when not creating).
        """
        if not lex:
            return "", self.rootfd
        canon = self._lex.get(lex)
        if canon is not None:
            fd = self.try_dirfd(canon)
            if fd is not None:
                return canon, fd
            self._lex.clear()
        comps = lex.split("/")
        # Longest lexical prefix already resolved.
        k = len(comps) - 1
        while k > 0 and "/".join(comps[:k]) not in self._lex:
            k -= 1
        start = self._lex["/".join(comps[:k])] if k > 0 else ""
        parts = start.split("/") if start else []
        hops = 0
        for j in range(k, len(comps)):
            pending = [comps[j]]
            while pending:
                self.evict()  # safe: no cached fd is held across iterations
                comp = pending.pop()
                if comp in ("", "."):
                    continue
                cur = "/".join(parts)
                if comp == "..":
                    if parts:  # clamped at the rootfs
                        parts.pop()
                    continue
                pfd = self.dirfd(cur)
                child = _join(cur, comp)
                try:
                    nfd = os.open(comp, _O_NODE_PATH, dir_fd=pfd)
                except FileNotFoundError:
                    if not create:
                        return None
                    self.touch(cur, pfd)
                    os.mkdir(comp, 0o755, dir_fd=pfd)
                    self.new_dirs.add(child)
                    self.implied.add(child)
                    self.clean.add(child)
                    nfd = os.open(comp, _O_NODE_PATH, dir_fd=pfd)
                st = os.fstat(nfd)
                mode = st.st_mode
                if stat.S_ISDIR(mode):
                    parts.append(comp)
                    old = self._fds.get(child)
                    if old is None:
                        self._ensure_access(nfd, st, child)
                        self._fds[child] = nfd
                    else:
                        os.close(nfd)
                    continue
                os.close(nfd)
                if stat.S_ISLNK(mode):
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise UnsafeLayerError(entry, "too many levels of symbolic links")
                    target = os.readlink(comp, dir_fd=pfd)
                    if target.startswith("/"):
                        parts = []  # absolute links restart at the rootfs
                    pending.extend(reversed(target.split("/")))
                    continue
                if not create:
                    return None
                raise UnsafeLayerError(entry, f"parent component {child!r} is not a directory")
            self._lex["/".join(comps[: j + 1])] = "/".join(parts)
        canon = "/".join(parts)
        return canon, self.dirfd(canon)

    # -- removal -----------------------------------------------------------

    def _open_dir_rw(self, pfd: int, name: str) -> int:
        """Open a child directory for listing and removing its entries
        (rootless: grant owner rwx first; the directory is removed anyway)."""
        try:
            fd = os.open(name, _O_DIR_READ, dir_fd=pfd)
        except PermissionError:
            if not self.rootless:
                raise
            pfd2 = os.open(name, _O_DIR_PATH, dir_fd=pfd)
            try:
                st = os.fstat(pfd2)
                os.chmod(_proc(pfd2), stat.S_IMODE(st.st_mode) | 0o700)
                # Re-open the very inode through its O_PATH fd, not by name.
                return os.open(_proc(pfd2), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            finally:
                os.close(pfd2)
        if self.rootless:
            st = os.fstat(fd)
            if st.st_mode & 0o700 != 0o700:
                os.chmod(_proc(fd), stat.S_IMODE(st.st_mode) | 0o700)
        return fd

    @staticmethod
    def _list(fd: int) -> list[tuple[str, bool]]:
        with os.scandir(fd) as it:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in it]

    def _note_links(self, path: str) -> None:
        snap = self.snap
        if snap is not None:
            fs = snap.files.get(path)
            if fs is not None and fs.nlink > 1 and not stat.S_ISDIR(fs.mode):
                self.dirty_inos.add(fs.ino)

    def rmtree(self, pfd: int, name: str, path: str) -> None:
        """Remove the directory ``name`` in ``pfd`` and everything below it.

        Iterative and fd-based: never follows a symlink, never recurses (deep
        trees), and keeps one directory fd open; going back up opens ``..``
        and checks it is the directory we came from.
        """
        fd = self._open_dir_rw(pfd, name)
        try:
            st = os.fstat(fd)
            stack: list[tuple[list[tuple[str, bool]], int, int, str]] = [
                (self._list(fd), st.st_dev, st.st_ino, path)
            ]
            track = self.snap is not None
            while stack:
                entries, _dev, _ino, rel = stack[-1]
                if entries:
                    cname, is_dir = entries.pop()
                    if is_dir:
                        cfd = self._open_dir_rw(fd, cname)
                        cst = os.fstat(cfd)
                        os.close(fd)
                        fd = cfd
                        stack.append((self._list(fd), cst.st_dev, cst.st_ino, _join(rel, cname)))
                    else:
                        if track:
                            self._note_links(_join(rel, cname))
                        os.unlink(cname, dir_fd=fd)
                    continue
                stack.pop()
                if not stack:
                    break
                up = os.open("..", _O_DIR_READ, dir_fd=fd)
                ust = os.fstat(up)
                if (ust.st_dev, ust.st_ino) != (stack[-1][1], stack[-1][2]):
                    os.close(up)
                    raise UnsafeLayerError(path, "directory moved during removal")
                os.close(fd)
                fd = up
                os.rmdir(rel.rpartition("/")[2], dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=pfd)

    def remove_node(self, pfd: int, name: str, path: str, st: os.stat_result) -> None:
        """Remove an existing node (any type) at ``name`` in ``pfd``."""
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self.rmtree(pfd, name, path)
        else:
            if st.st_nlink > 1:
                self.dirty_inos.add(st.st_ino)
            os.unlink(name, dir_fd=pfd)
        if stat.S_ISDIR(mode) or stat.S_ISLNK(mode):
            self.invalidate(path)
        self.forget(path)

    def make(self, create: Callable[[], None], pfd: int, name: str, path: str) -> None:
        """Create a node with ``create``; if something is there, unlink it first."""
        try:
            create()
            return
        except FileExistsError:
            pass
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        self.remove_node(pfd, name, path, st)
        create()

    # -- whiteouts ---------------------------------------------------------

    def prune(self, pfd: int, pcanon: str, name: str, path: str) -> None:
        """Plain whiteout: remove lower-layer content at ``path``; keep ours."""
        if path in self.clean:
            return
        try:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if path not in self.written and path not in self.ancestors:
            self.touch(pcanon, pfd)
            self.remove_node(pfd, name, path, st)
            return
        if stat.S_ISDIR(st.st_mode):
            self.prune_children(path)

    def prune_children(self, dpath: str) -> None:
        """Opaque: remove every lower-layer node below ``dpath``; keep ours."""
        todo = [dpath]
        while todo:
            self.evict()
            d = todo.pop()
            if d in self.clean:
                continue
            dfd = self.try_dirfd(d)
            if dfd is None:
                continue
            lfd = os.open(".", _O_DIR_READ, dir_fd=dfd)
            try:
                children = self._list(lfd)
            finally:
                os.close(lfd)
            for cname, is_dir in children:
                cp = _join(d, cname)
                if cp in self.written or cp in self.ancestors:
                    if is_dir and cp not in self.clean:
                        todo.append(cp)
                    continue
                dfd = self.dirfd(d)
                self.touch(d, dfd)
                st = os.stat(cname, dir_fd=dfd, follow_symlinks=False)
                self.remove_node(dfd, cname, cp, st)
            self.clean.add(d)

    def whiteout(self, entry: TarEntry, kind: WhiteoutKind, target: str) -> None:
        if kind is WhiteoutKind.OPAQUE:
            got = self.resolve_dir(target, create=False, entry=entry.name)
            if got is not None:
                self.prune_children(got[0])
            return
        lex_parent, _, base = target.rpartition("/")
        got = self.resolve_dir(lex_parent, create=False, entry=entry.name)
        if got is None:
            return  # whiteout under a missing parent: nothing to hide
        pcanon, pfd = got
        self.prune(pfd, pcanon, base, _join(pcanon, base))

    # -- metadata ----------------------------------------------------------

    def wanted_xattrs(self, entry: TarEntry) -> Mapping[str, bytes]:
        """The attributes a node of ``entry`` should carry.

        A layer's own ``user.rootlesscontainers`` is dropped (only our unpack
        may claim an owner that way); a rootless unpack adds one recording an
        owner it could not apply, so a rootless commit restores it.
        """
        xa: Mapping[str, bytes] = entry.xattrs
        if ROOTLESS_XATTR in xa:
            xa = {k: v for k, v in xa.items() if k != ROOTLESS_XATTR}
        if self.rootless and (entry.uid or entry.gid):
            xa = {**xa, ROOTLESS_XATTR: encode_rootless(entry.uid, entry.gid)}
        return xa

    def xattrs(
        self, target: int | str, entry: TarEntry, path: str, *, clear: bool
    ) -> dict[str, bytes] | None:
        """Replace (``clear``) or set the extended attributes of a node.

        ``target`` is an fd of a regular file or the /proc path of an O_PATH
        fd: neither follows a symlink.  Returns the attributes now on the
        node as far as known (None when an old one could not be removed).
        """
        known = True
        if clear:
            try:
                names = os.listxattr(target)
            except OSError:
                names = []
            wanted = self.wanted_xattrs(entry)
            for xname in names:
                if xname == "security.selinux" or xname in wanted:
                    continue
                try:
                    os.removexattr(target, xname)
                except OSError:
                    known = False
                    self.note(f"{path}: could not remove xattr {xname}")
        applied: dict[str, bytes] = {}
        for xname, value in self.wanted_xattrs(entry).items():
            why = None if xname == ROOTLESS_XATTR else _xattr_policy(xname, self.rootless)
            if why is not None:
                self.note(f"{path}: xattr {xname} not applied: {why}")
                continue
            try:
                os.setxattr(target, xname, value)
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.ENOTSUP, errno.EACCES, errno.EINVAL):
                    self.note(f"{path}: xattr {xname} not applied: {exc.strerror}")
                else:
                    raise
            else:
                applied[xname] = value
        return applied if known else None

    def node_meta(self, pfd: int, name: str, path: str, entry: TarEntry, ifmt: int) -> None:
        """Owner, xattrs, mode, times of a FIFO or device node, then record it."""
        nfd = os.open(name, _O_NODE_PATH, dir_fd=pfd)
        try:
            st = os.fstat(nfd)
            if stat.S_IFMT(st.st_mode) != ifmt:
                raise UnsafeLayerError(entry.name, "node changed type while applying")
            proc = _proc(nfd)
            if not self.rootless:
                os.chown(proc, entry.uid, entry.gid)
            applied = (
                self.xattrs(proc, entry, path, clear=False) if self.wanted_xattrs(entry) else {}
            )
            os.chmod(proc, entry.mode)  # after chown, which clears setuid bits
            t = _clamp_ns(entry.mtime_ns)
            os.utime(proc, ns=(t, t))
            if self.snap is not None:
                self.record(path, os.fstat(nfd), None, applied)
        finally:
            os.close(nfd)

    # -- entries -----------------------------------------------------------

    def apply(self, entry: TarEntry, content: EntryContent) -> None:
        name = entry.name
        if WHITEOUT_PREFIX in name:
            kind, target = classify(name)
            if kind is not WhiteoutKind.NONE:
                if self.opts.apply_whiteouts:
                    self.whiteout(entry, kind, target)
                return
        if not name:
            self.directory(entry, "", self.rootfd, "", root=True)
            return
        lex_parent, _, base = name.rpartition("/")
        got = self.resolve_dir(lex_parent, create=True, entry=name)
        assert got is not None
        pcanon, pfd = got
        path = _join(pcanon, base)
        self.touch(pcanon, pfd)
        etype = entry.type
        if etype is EntryType.REG:
            self.regular(entry, content, pfd, base, path)
        elif etype is EntryType.DIR:
            self.directory(entry, pcanon, pfd, base)
        elif etype is EntryType.SYMLINK:
            self.symlink(entry, pfd, base, path)
        elif etype is EntryType.HARDLINK:
            self.hardlink(entry, pfd, base, path)
        elif etype is EntryType.FIFO:
            self.special(entry, pfd, base, path, stat.S_IFIFO)
        elif etype is EntryType.CHAR:
            self.special(entry, pfd, base, path, stat.S_IFCHR)
        elif etype is EntryType.BLOCK:
            self.special(entry, pfd, base, path, stat.S_IFBLK)
        else:  # pragma: no cover - the reader yields only the types above
            raise SpecialFileError(name, f"unsupported type {etype.value}")

    def _space(self, entry: TarEntry) -> None:
        opts = self.opts
        size = entry.size
        if not opts.check_free_space or size == 0:
            return
        if self._avail is None or size > self._avail - opts.min_free_bytes:
            sv = os.fstatvfs(self.rootfd)
            self._avail = sv.f_bavail * sv.f_frsize
            if size > self._avail - opts.min_free_bytes:
                raise UnsafeLayerError(
                    entry.name,
                    f"{size} bytes do not fit: {self._avail} free on the rootfs "
                    f"filesystem and {opts.min_free_bytes} must stay free",
                )
        self._avail -= size

    def regular(
        self, entry: TarEntry, content: EntryContent, pfd: int, name: str, path: str
    ) -> None:
        self._space(entry)
        mode = entry.mode
        wanted = self.wanted_xattrs(entry)
        # With a snapshot (unpack), the file is created with its final
        # permission bits and owner fix-ups happen only when the final fstat
        # shows they are needed: most files skip fchown and fchmod.  Never
        # with setuid/setgid/sticky bits: those come from fchmod, after chown.
        quick = self.snap is not None and not wanted
        create_mode = mode & 0o777 if quick else 0o600
        try:
            fd = os.open(name, _O_NEW_FILE, create_mode, dir_fd=pfd)
        except FileExistsError:
            st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            self.remove_node(pfd, name, path, st)
            fd = os.open(name, _O_NEW_FILE, create_mode, dir_fd=pfd)
        try:
            h = hashlib.sha256() if self.snap is not None else None
            write = os.write
            for mv in content.chunks():
                if h is not None:
                    h.update(mv)
                n = write(fd, mv)
                while n < len(mv):
                    mv = mv[n:]
                    n = write(fd, mv)
            t = _clamp_ns(entry.mtime_ns)
            if quick:
                os.utime(fd, ns=(t, t))
                st = os.fstat(fd)
                owner_ok = self.rootless or (st.st_uid, st.st_gid) == (entry.uid, entry.gid)
                if not owner_ok or stat.S_IMODE(st.st_mode) != mode:
                    if not owner_ok:
                        os.fchown(fd, entry.uid, entry.gid)
                    os.fchmod(fd, mode)  # after chown (it clears setuid/setgid)
                    st = os.fstat(fd)
                assert h is not None
                self.record(path, st, h.hexdigest(), {})
            else:
                if not self.rootless:
                    os.fchown(fd, entry.uid, entry.gid)
                applied = self.xattrs(fd, entry, path, clear=False) if wanted else {}
                os.fchmod(fd, mode)  # after chown (it clears setuid/setgid)
                os.utime(fd, ns=(t, t))
                if h is not None:
                    self.record(path, os.fstat(fd), h.hexdigest(), applied)
        finally:
            os.close(fd)
        self.mark_written(path)

    def directory(
        self, entry: TarEntry, pcanon: str, pfd: int, name: str, *, root: bool = False
    ) -> None:
        path = _join(pcanon, name) if not root else ""
        new = False
        if not root:
            try:
                os.mkdir(name, 0o700, dir_fd=pfd)
                new = True
            except FileExistsError:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):
                    self.remove_node(pfd, name, path, st)
                    os.mkdir(name, 0o700, dir_fd=pfd)
                    new = True
        if new:
            self.new_dirs.add(path)
            self.clean.add(path)
        dfd = self.dirfd(path)
        proc = _proc(dfd)
        if not self.rootless:
            os.chown(proc, entry.uid, entry.gid)
        applied: dict[str, bytes] | None = {}
        if self.wanted_xattrs(entry) or not new:
            # dir over dir: the entry's attributes replace the old ones.
            applied = self.xattrs(proc, entry, path, clear=not new)
        self.dir_xattrs[path] = applied
        # Mode and times are applied after all entries (see finish).
        self.dir_meta[path] = (entry.mode, entry.mtime_ns)
        self.implied.discard(path)
        self.mark_written(path)

    def symlink(self, entry: TarEntry, pfd: int, name: str, path: str) -> None:
        target = entry.linkname  # stored verbatim; resolved in-root when used

        def create() -> None:
            os.symlink(target, name, dir_fd=pfd)

        self.make(create, pfd, name, path)
        if not self.rootless:
            os.chown(name, entry.uid, entry.gid, dir_fd=pfd, follow_symlinks=False)
        if entry.xattrs:
            self.note(f"{path}: xattrs on a symlink not applied")
        t = _clamp_ns(entry.mtime_ns)
        os.utime(name, ns=(t, t), dir_fd=pfd, follow_symlinks=False)
        if self.snap is not None:
            digest = hashlib.sha256(target.encode("utf-8", "surrogateescape")).hexdigest()
            self.record(path, os.stat(name, dir_fd=pfd, follow_symlinks=False), digest, {})
        self.mark_written(path)

    def hardlink(self, entry: TarEntry, pfd: int, name: str, path: str) -> None:
        tlex, _, tbase = entry.linkname.rpartition("/")
        pfd = os.dup(pfd)  # resolving the target may evict the cached fd
        try:
            got = self.resolve_dir(tlex, create=False, entry=entry.name)
            tst = None
            if got is not None:
                tcanon, tpfd = got
                tpath = _join(tcanon, tbase)
                # The final component is never followed: a link to a symlink
                # links the symlink itself.
                with contextlib.suppress(FileNotFoundError):
                    tst = os.stat(tbase, dir_fd=tpfd, follow_symlinks=False)
            if tst is None:
                if self.opts.on_missing_link is not None:
                    self.opts.on_missing_link(entry)
                    return
                raise UnsafeLayerError(entry.name, f"hardlink target {entry.linkname!r} missing")
            if stat.S_ISDIR(tst.st_mode):
                raise UnsafeLayerError(entry.name, "hardlink to a directory")
            tpfd = os.dup(tpfd)
            try:
                try:
                    cur = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    cur = None
                if cur is not None and (cur.st_dev, cur.st_ino) == (tst.st_dev, tst.st_ino):
                    pass  # already this very inode (a link to itself or a repeat)
                else:
                    if cur is not None:
                        if stat.S_ISDIR(cur.st_mode) and tpath.startswith(path + "/"):
                            # Replacing the directory would delete the target first.
                            raise UnsafeLayerError(
                                entry.name,
                                f"hardlink target {entry.linkname!r} is inside the directory "
                                "the link replaces",
                            )
                        self.remove_node(pfd, name, path, cur)
                    os.link(tbase, name, src_dir_fd=tpfd, dst_dir_fd=pfd, follow_symlinks=False)
                if self.snap is not None:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                    old = self.snap.get(tpath)
                    if old is not None and old.ino == st.st_ino:
                        # Same inode: same content and attributes as the target.
                        self.snap.put(path, FileState.from_stat(st, old.content, old.xattrs))
                    else:
                        self.record(path, st)
                    self.dirty_inos.add(st.st_ino)
            finally:
                os.close(tpfd)
        finally:
            os.close(pfd)
        self.mark_written(path)

    def special(self, entry: TarEntry, pfd: int, name: str, path: str, ifmt: int) -> None:
        if ifmt != stat.S_IFIFO and self.rootless:
            # Remove what a lower layer had there (the entry replaces it) but
            # do not create a device node we cannot create.
            try:
                st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                self.remove_node(pfd, name, path, st)
            kind = "char" if ifmt == stat.S_IFCHR else "block"
            self.note(
                f"{path}: {kind} device {entry.devmajor}:{entry.devminor} not created (rootless)"
            )
            self.mark_written(path)
            return
        if ifmt == stat.S_IFIFO:

            def create() -> None:
                os.mkfifo(name, 0o600, dir_fd=pfd)
        else:
            dev = os.makedev(entry.devmajor, entry.devminor)

            def create() -> None:
                os.mknod(name, ifmt | 0o600, dev, dir_fd=pfd)

        self.make(create, pfd, name, path)
        self.node_meta(pfd, name, path, entry, ifmt)
        self.mark_written(path)

    # -- end of layer ------------------------------------------------------

    def finish(self) -> None:
        """Re-record hardlink peers, then apply directory modes and times."""
        snap = self.snap
        if snap is not None and self.dirty_inos:
            # Every recorded path of an inode whose link count changed (links
            # made or removed by this layer) gets a fresh lstat: one pass over
            # the records, only in layers that touch hardlinks.
            dirty = self.dirty_inos
            peers = [
                (p, fs)
                for p, fs in snap.files.items()
                if fs.ino in dirty and not stat.S_ISDIR(fs.mode)
            ]
            for p, fs in peers:
                self.evict()
                parent, _, base = p.rpartition("/")
                pfd = self.try_dirfd(parent)
                if pfd is None:
                    continue
                try:
                    st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if st.st_ino == fs.ino:
                    snap.put(p, FileState.from_stat(st, fs.content, fs.xattrs))
        targets = set(self.dir_meta) | set(self.touched) | self.implied | set(self.tempmode)
        if targets:
            self._finish_dirs(targets)

    def _finish_dir(self, fd: int, path: str) -> None:
        proc = _proc(fd)
        meta = self.dir_meta.get(path)
        mode: int | None
        times: tuple[int, int] | None
        if meta is not None:
            mode = meta[0]
            t = _clamp_ns(meta[1])
            times = (t, t)
        else:
            mode = 0o755 if path in self.implied else self.tempmode.get(path)
            times = self.touched.get(path)
        if mode is not None:
            os.chmod(proc, mode)
        if times is not None:
            os.utime(proc, ns=times)
        if self.snap is not None:
            st = os.fstat(fd)
            if path in self.dir_xattrs:
                self.record(path, st, None, self.dir_xattrs[path])
            elif path in self.implied:
                self.record(path, st, None, {})
            else:
                self.rerecord(path, st)

    def _finish_dirs(self, targets: set[str]) -> None:
        """Apply final modes and times to ``targets`` in post-order.

        Children are finished before their parent, so a parent's restrictive
        mode (000 included) is set last and everything below stays reachable
        when rootless.  One iterative walk over the affected directories,
        holding one fd: going up opens ``..`` and checks it is the directory
        we came from (no re-resolution from the root for each directory,
        which made deep trees quadratic).
        """
        kids: dict[str, list[str]] = {}
        seen: set[str] = {""}
        for p in targets:
            while p not in seen:
                seen.add(p)
                parent = p.rpartition("/")[0]
                kids.setdefault(parent, []).append(p)
                p = parent
        rst = os.fstat(self.rootfd)
        frames: list[tuple[str, int, int, list[str]]] = [
            ("", rst.st_dev, rst.st_ino, kids.get("", []))
        ]
        fd = self.rootfd
        try:
            while frames:
                path, _dev, _ino, todo = frames[-1]
                if todo:
                    child = todo.pop()
                    try:
                        cfd = os.open(child.rpartition("/")[2], _O_DIR_PATH, dir_fd=fd)
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                            continue  # removed or replaced later in this layer
                        raise
                    cst = os.fstat(cfd)
                    if not stat.S_ISDIR(cst.st_mode):
                        os.close(cfd)
                        continue
                    if fd != self.rootfd:
                        os.close(fd)
                    fd = cfd
                    frames.append((child, cst.st_dev, cst.st_ino, kids.get(child, [])))
                    continue
                if path in targets:
                    self._finish_dir(fd, path)
                frames.pop()
                if not frames:
                    break
                if len(frames) == 1:
                    up = self.rootfd
                else:
                    up = os.open("..", _O_DIR_PATH, dir_fd=fd)
                    ust = os.fstat(up)
                    if (ust.st_dev, ust.st_ino) != (frames[-1][1], frames[-1][2]):
                        os.close(up)
                        raise UnsafeLayerError(path, "directory moved while applying")
                os.close(fd)
                fd = up
        finally:
            if fd != self.rootfd:
                os.close(fd)


# ------------------------------------------------------------- reading in a root


def _open_in_root(rootfd: int, path: str) -> int | None:
    """O_PATH fd of ``path`` resolved inside the root (every symlink, the last
    one included, resolved as if the root were ``/``); None when missing."""
    stack = [rootfd]
    pending = list(reversed(path.split("/")))
    hops = 0
    try:
        while pending:
            comp = pending.pop()
            if comp in ("", "."):
                continue
            if comp == "..":
                if len(stack) > 1:  # clamped at the root
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(comp, _O_NODE_PATH, dir_fd=stack[-1])
            except (FileNotFoundError, NotADirectoryError):
                return None
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink(comp, dir_fd=stack[-1])
                finally:
                    os.close(fd)
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise UnsafeLayerError(path, "too many levels of symbolic links")
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                pending.extend(reversed(target.split("/")))
                continue
            stack.append(fd)
            if pending and not stat.S_ISDIR(mode):
                return None
        return stack.pop() if len(stack) > 1 else None
    finally:
        while len(stack) > 1:
            os.close(stack.pop())


def read_file_in_root(rootfs: str, path: str, *, max_bytes: int = 4 << 20) -> bytes | None:
    """Contents of the regular file ``path`` inside ``rootfs`` (e.g.
    ``/etc/passwd``), with symlinks resolved as if ``rootfs`` were ``/``.

    Returns None when the path does not exist or is not a regular file (a
    FIFO or device is never opened).  A file larger than ``max_bytes`` raises
    UnsafeLayerError.  Nothing outside ``rootfs`` is ever read.
    """
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = _open_in_root(rootfd, path)
    finally:
        os.close(rootfd)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # Re-open this very inode for reading (no name is looked up again).
        rfd = os.open(_proc(fd), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    finally:
        os.close(fd)
    try:
        parts = []
        total = 0
        while True:
            data = os.read(rfd, min(CHUNK, max_bytes + 1 - total))
            if not data:
                break
            parts.append(data)
            total += len(data)
            if total > max_bytes:
                raise UnsafeLayerError(path, f"file larger than {max_bytes} bytes")
        return b"".join(parts)
    finally:
        os.close(rfd)


# --------------------------------------------------------------------------- API


def apply_layer(
    blob: BinaryIO,
    rootfs: str,
    *,
    codec: str,
    diff_id: Digest | None,
    snapshot: Snapshot | None = None,
    options: ApplyOptions | None = None,
) -> ApplyResult:
    """Apply the layer read from ``blob`` (compressed with ``codec``) onto ``rootfs``.

    ``blob`` is read to EOF (a VerifyingReader checks the blob digest there).
    The uncompressed stream is hashed as it is applied; when ``diff_id`` is
    given and differs, DigestMismatchError is raised after the layer was
    applied.  With ``snapshot``, the final lstat of every path this layer
    created or changed is recorded in it (and removed paths are forgotten), so
    that it matches the tree without a second walk.

    Raises UnsafeLayerError (or a subclass) for a hostile or malformed layer,
    DigestMismatchError, UnsupportedMediaTypeError for an unknown codec, and
    OSError for filesystem failures.  After any error the rootfs is partially
    applied and must be discarded.
    """
    opts = options if options is not None else ApplyOptions()
    algorithm = diff_id.algorithm if diff_id is not None and diff_id.computable else "sha256"
    tee = open_layer_stream(blob, codec, algorithm, opts.stream_limits())
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    # Reading, decompressing, hashing and the bomb checks run on a second
    # thread, a few MiB ahead of the applier (the codecs release the GIL).
    ahead = ReadAhead(tee.read, chunk=CHUNK)

    def end_of_stream() -> None:
        # Everything after the end-of-archive marker is part of the diff_id,
        # and the blob must reach EOF for its digest to be verified.
        ahead.drain()  # the worker is done with the counter once this returns
        tee.counter.drain()

    try:
        entries, skipped = _run(
            rootfd, iter_entries(ahead, opts.limits), snapshot, opts, end_of_stream
        )
    finally:
        ahead.close()  # before the caller closes ``blob``
        os.close(rootfd)
    actual = tee.hasher.digest()
    if diff_id is not None and actual != diff_id:
        raise DigestMismatchError("diff_id of layer", expected=str(diff_id), actual=str(actual))
    return ApplyResult(
        diff_id=actual,
        uncompressed_size=tee.hasher.size,
        compressed_size=tee.counter.count,
        entries=entries,
        skipped=skipped,
    )


def _run(
    rootfd: int,
    members: Iterable[tuple[TarEntry, EntryContent]],
    snapshot: Snapshot | None,
    opts: ApplyOptions,
    before_finish: Callable[[], None] | None = None,
) -> tuple[int, list[str]]:
    """Apply ``members`` in order; returns (members seen, skipped notes)."""
    entries = 0
    applier = _Applier(rootfd, snapshot, opts)
    try:
        for entry, content in members:
            entries += 1
            if entries > opts.max_entries:
                raise UnsafeLayerError(entry.name, f"more than {opts.max_entries} entries")
            if opts.on_entry is not None:
                opts.on_entry(entry)
            applier.evict()
            applier.apply(entry, content)
        if before_finish is not None:
            before_finish()
        applier.finish()
    finally:
        applier.close()
    skipped = list(applier.notes)
    if applier.notes_dropped:
        skipped.append(f"... and {applier.notes_dropped} more")
    return entries, skipped


def apply_members(
    members: Iterable[tuple[TarEntry, EntryContent]],
    rootfs: str,
    *,
    options: ApplyOptions | None = None,
) -> list[str]:
    """Apply already-parsed tar ``members`` onto ``rootfs``, with the same
    rules as ``apply_layer`` (confinement, links, whiteouts, metadata).

    For members that do not come from one layer stream: ``layer extract``
    copies a lower layer's file to where a hardlink of its layer points at it.
    Returns the notes of what was not applied.
    """
    opts = options if options is not None else ApplyOptions()
    rootfd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return _run(rootfd, members, None, opts)[1]
    finally:
        os.close(rootfd)


__all__ = [
    "MAX_SYMLINK_HOPS",
    "ApplyOptions",
    "ApplyResult",
    "apply_layer",
    "apply_members",
    "read_file_in_root",
]
