"""Creating each kind of node a layer holds, with its owner, mode, times and xattrs.

Every creator gets the parent's directory fd and the final name: the final
component is never followed.  A node in the way is unlinked (a directory
merges) and the new one created with ``O_EXCL``/``mkdir``/``symlink``/
``mknod``, so nothing is ever written through an existing link.  Metadata is
set through the new node's fd or its ``/proc`` name (``proc_path``), or with
``follow_symlinks=False``.

Rootless: no chown (the owner goes into ``user.rootlesscontainers``), no
devices, no ``security.capability``; each is noted in ``ApplyResult.skipped``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Mapping

from oci_tools.apply.fs import O_NODE_PATH, join_path, proc_path
from oci_tools.apply.remove import Remover
from oci_tools.errors import UnsafeLayerError
from oci_tools.layer.entry import TarEntry
from oci_tools.layer.reader import EntryContent
from oci_tools.layer.rootless import ROOTLESS_XATTR, encode_rootless
from oci_tools.snapshot import FileState

# O_EXCL|O_NOFOLLOW: never open (and so never truncate or write through) an
# existing node; the caller unlinks what is there and retries.
_O_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_INT64 = 1 << 63


def clamp_ns(ns: int) -> int:
    """``ns`` when it fits a signed 64-bit time, else 0 (the epoch)."""
    return ns if -_INT64 <= ns < _INT64 else 0


def xattr_policy(name: str, rootless: bool) -> str | None:
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


class NodeWriter(Remover):
    """The per-type node creators of one layer application."""

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
            why = None if xname == ROOTLESS_XATTR else xattr_policy(xname, self.rootless)
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
        nfd = os.open(name, O_NODE_PATH, dir_fd=pfd)
        try:
            st = os.fstat(nfd)
            if stat.S_IFMT(st.st_mode) != ifmt:
                raise UnsafeLayerError(entry.name, "node changed type while applying")
            proc = proc_path(nfd)
            if not self.rootless:
                os.chown(proc, entry.uid, entry.gid)
            applied = (
                self.xattrs(proc, entry, path, clear=False) if self.wanted_xattrs(entry) else {}
            )
            os.chmod(proc, entry.mode)  # after chown, which clears setuid bits
            t = clamp_ns(entry.mtime_ns)
            os.utime(proc, ns=(t, t))
            if self.snap is not None:
                self.record(path, os.fstat(nfd), None, applied)
        finally:
            os.close(nfd)

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
            whole = content.buffered()  # most small files: one slice, one write
            for mv in content.chunks() if whole is None else (whole,):
                if h is not None:
                    h.update(mv)
                if not mv:
                    continue
                n = write(fd, mv)
                while n < len(mv):
                    mv = mv[n:]
                    n = write(fd, mv)
            t = clamp_ns(entry.mtime_ns)
            if quick:
                os.utime(fd, ns=(t, t))
                st = os.fstat(fd)
                owner_ok = self.rootless or (st.st_uid == entry.uid and st.st_gid == entry.gid)
                if not owner_ok or st.st_mode & 0o7777 != mode:
                    if not owner_ok:
                        os.fchown(fd, entry.uid, entry.gid)
                    os.fchmod(fd, mode)  # after chown (it clears setuid/setgid)
                    st = os.fstat(fd)
                assert h is not None and self.snap is not None
                self.snap.record_plain(path, st, h.digest())
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
        path = join_path(pcanon, name) if not root else ""
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
        proc = proc_path(dfd)
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
        if not root and name not in (".", "..") and entry.name.rpartition("/")[2] == name:
            # entry.name is its lexical parent (resolved to ``pcanon``) plus
            # ``name``, a real directory now: it resolves to ``path``.
            self.remember_dir(entry.name, path)

    def symlink(self, entry: TarEntry, pfd: int, name: str, path: str) -> None:
        target = entry.linkname  # stored verbatim; resolved in-root when used

        def create() -> None:
            os.symlink(target, name, dir_fd=pfd)

        self.make(create, pfd, name, path)
        if not self.rootless:
            os.chown(name, entry.uid, entry.gid, dir_fd=pfd, follow_symlinks=False)
        if entry.xattrs:
            self.note(f"{path}: xattrs on a symlink not applied")
        t = clamp_ns(entry.mtime_ns)
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
                tpath = join_path(tcanon, tbase)
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
