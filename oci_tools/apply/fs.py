"""Confinement: directory fds inside the rootfs, and resolving paths in it.

The rule every filesystem operation of the applier serves: nothing outside
the rootfs is ever created, changed, removed or read, whatever the layer
(or a lower layer, or a concurrent writer) put in the tree.

How it is kept:

* No host path is ever built from a member name.  Every operation is
  relative to a directory fd (``dir_fd=``) obtained by walking the rootfs one
  component at a time with ``O_PATH|O_NOFOLLOW``: the kernel never follows a
  symlink on our behalf, so a symlinked component cannot lead it elsewhere.
* Symlinks met on the way are resolved here, as if the rootfs were ``/``:
  an absolute target restarts at the rootfs fd, ``..`` is clamped at the
  rootfs (``..`` of the root is the root), at most ``MAX_SYMLINK_HOPS`` hops.
  Only the canonical path (no symlinks, no ``..``) is cached.
* Cached fds are opened from canonical paths with ``O_DIRECTORY|O_NOFOLLOW``
  and re-checked with ``fstat``: if a directory was swapped for something
  else meanwhile, the open fails or we refuse instead of following it.
* Metadata goes through ``/proc/self/fd/N`` of an ``O_PATH`` fd
  (``proc_path``), which names that very inode without resolving any name
  again; this is why applying a layer needs ``/proc``.
"""

from __future__ import annotations

import errno
import os
import stat

from oci_tools.apply.options import ApplyOptions
from oci_tools.apply.state import ApplyState
from oci_tools.errors import OCIToolsError, UnsafeLayerError
from oci_tools.layer.paths import MAX_SYMLINK_HOPS
from oci_tools.layer.reader import CHUNK
from oci_tools.snapshot import Snapshot

#: Directory fds kept open between entries.
_FD_CACHE = 256
# O_NOFOLLOW everywhere: a symlink as the last component is opened as the
# link itself (O_PATH) or refused (O_DIRECTORY), never followed.
O_DIR_PATH = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
O_NODE_PATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
O_DIR_READ = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def proc_path(fd: int) -> str:
    """The /proc name of ``fd`` (see the module docstring)."""
    # /proc/self/fd/N of an O_PATH fd names exactly that inode: chmod, chown,
    # utime and setxattr through it act on the node without re-resolving any
    # name (the technique moby uses for fchmodat without following).
    return f"/proc/self/fd/{fd}"


def join_path(parent: str, name: str) -> str:
    """``parent/name`` for canonical paths (``""`` is the rootfs)."""
    return f"{parent}/{name}" if parent else name


class RootDirs(ApplyState):
    """The directory fd cache of one layer application, and in-root resolution.

    ``dirfd`` opens canonical paths (never through a symlink); ``resolve_dir``
    turns a member's lexical parent path into a canonical path and its fd,
    following symlinks only as if the rootfs were ``/``.
    """

    def __init__(self, rootfd: int, snapshot: Snapshot | None, opts: ApplyOptions) -> None:
        super().__init__(rootfd, snapshot, opts)
        # canonical dir path -> O_PATH fd (the root is kept apart, never closed)
        self._fds: dict[str, int] = {}
        # lexical dir path (as named in the tar) -> canonical path
        self._lex: dict[str, str] = {}
        if not os.path.exists(proc_path(rootfd)):
            raise OCIToolsError("applying a layer needs /proc mounted")
        if self.rootless:
            self._ensure_access(rootfd, os.fstat(rootfd), "")

    # -- fd cache ----------------------------------------------------------

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
            os.chmod(proc_path(fd), stat.S_IMODE(st.st_mode) | 0o700)
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
                # SECURITY: O_NOFOLLOW|O_DIRECTORY: if a component was replaced
                # by a symlink since it was resolved, the open fails (ELOOP or
                # ENOTDIR) rather than following it out of the rootfs.
                nfd = os.open(comp, O_DIR_PATH, dir_fd=pfd)
                cur = join_path(cur, comp)
                if self.rootless:
                    # O_DIRECTORY already refused anything but a directory;
                    # the stat is only needed for the rootless access fix-up
                    # (one syscall less per directory opened as root).
                    st = os.fstat(nfd)
                    if not stat.S_ISDIR(st.st_mode):  # pragma: no cover - O_DIRECTORY
                        os.close(nfd)
                        raise UnsafeLayerError(canon, "directory changed while applying")
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

    def remember_dir(self, lex: str, canon: str) -> None:
        """Note that the member path ``lex`` is the real directory ``canon``
        (a directory entry just made or found there): the members inside it
        then resolve their parent from the cache, not by opening and stating
        it once more.  A hit is still re-opened through ``dirfd``."""
        self._lex[lex] = canon

    def resolve_dir(self, lex: str, *, create: bool, entry: str) -> tuple[str, int] | None:
        """Resolve the lexical directory path ``lex`` inside the rootfs.

        Symlinks are followed as if the rootfs were ``/``.  Missing components
        are created 0755 when ``create``; otherwise None is returned (as it is
        for a non-directory component when not creating).
        """
        if not lex:
            return "", self.rootfd
        # Only canonical results are cached; a hit is re-opened through dirfd,
        # which refuses a path that stopped being a real directory.
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
                    # SECURITY: ``..`` is applied to the canonical path, never
                    # opened, and stops at the rootfs (``/..`` is ``/``).
                    if parts:
                        parts.pop()
                    continue
                pfd = self.dirfd(cur)
                child = join_path(cur, comp)
                # SECURITY: O_PATH|O_NOFOLLOW opens a symlink as the link
                # itself; it is resolved below, by us, inside the rootfs.
                try:
                    nfd = os.open(comp, O_NODE_PATH, dir_fd=pfd)
                except FileNotFoundError:
                    if not create:
                        return None
                    self.touch(cur, pfd)
                    os.mkdir(comp, 0o755, dir_fd=pfd)
                    self.new_dirs.add(child)
                    self.implied.add(child)
                    self.clean.add(child)
                    nfd = os.open(comp, O_NODE_PATH, dir_fd=pfd)
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
                        # SECURITY: an absolute target names a path in the
                        # rootfs, not on the host: restart at the rootfs.
                        parts = []
                    pending.extend(reversed(target.split("/")))
                    continue
                if not create:
                    return None
                raise UnsafeLayerError(entry, f"parent component {child!r} is not a directory")
            self._lex["/".join(comps[: j + 1])] = "/".join(parts)
        canon = "/".join(parts)
        return canon, self.dirfd(canon)


# ------------------------------------------------------------- reading in a root


def open_in_root(rootfd: int, path: str) -> int | None:
    """O_PATH fd of ``path`` resolved inside the root (every symlink, the last
    one included, resolved as if the root were ``/``); None when missing."""
    # ``stack`` holds the fds of the directories walked through, the root at
    # the bottom: ``..`` pops (never opens ``..``), an absolute link unwinds
    # to the root, so no step can climb above it.
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
            # SECURITY: O_NOFOLLOW: a symlink is opened as itself and resolved
            # here, inside the root, never by the kernel.
            try:
                fd = os.open(comp, O_NODE_PATH, dir_fd=stack[-1])
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
        fd = open_in_root(rootfd, path)
    finally:
        os.close(rootfd)
    if fd is None:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        # Re-open this very inode for reading (no name is looked up again).
        rfd = os.open(proc_path(fd), os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
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
