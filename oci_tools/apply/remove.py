"""Removing nodes and subtrees, and applying whiteouts and opaque whiteouts.

Removal never follows a symlink and never recurses: ``rmtree`` walks down
with fds opened ``O_NOFOLLOW`` relative to the directory it is in, and going
back up checks that ``..`` is the very directory it came from, so a tree
rearranged under it cannot make it delete outside the rootfs.

Whiteouts remove only what lower layers left (``written``/``ancestors``/
``clean`` in ``ApplyState`` tell this layer's own nodes apart), whatever
their order relative to this layer's additions; a whiteout under a missing
parent does nothing.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

from oci_tools.apply.fs import O_DIR_PATH, O_DIR_READ, RootDirs, join_path, proc_path
from oci_tools.errors import UnsafeLayerError
from oci_tools.layer.entry import TarEntry
from oci_tools.layer.whiteout import WhiteoutKind


class Remover(RootDirs):
    """Removal and whiteouts of one layer application."""

    # -- removal -----------------------------------------------------------

    def _open_dir_rw(self, pfd: int, name: str) -> int:
        """Open a child directory for listing and removing its entries
        (rootless: grant owner rwx first; the directory is removed anyway)."""
        try:
            fd = os.open(name, O_DIR_READ, dir_fd=pfd)
        except PermissionError:
            if not self.rootless:
                raise
            pfd2 = os.open(name, O_DIR_PATH, dir_fd=pfd)
            try:
                st = os.fstat(pfd2)
                os.chmod(proc_path(pfd2), stat.S_IMODE(st.st_mode) | 0o700)
                # Re-open the very inode through its O_PATH fd, not by name.
                return os.open(proc_path(pfd2), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            finally:
                os.close(pfd2)
        if self.rootless:
            st = os.fstat(fd)
            if st.st_mode & 0o700 != 0o700:
                os.chmod(proc_path(fd), stat.S_IMODE(st.st_mode) | 0o700)
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
                        stack.append(
                            (self._list(fd), cst.st_dev, cst.st_ino, join_path(rel, cname))
                        )
                    else:
                        if track:
                            self._note_links(join_path(rel, cname))
                        os.unlink(cname, dir_fd=fd)
                    continue
                stack.pop()
                if not stack:
                    break
                up = os.open("..", O_DIR_READ, dir_fd=fd)
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
            lfd = os.open(".", O_DIR_READ, dir_fd=dfd)
            try:
                children = self._list(lfd)
            finally:
                os.close(lfd)
            for cname, is_dir in children:
                cp = join_path(d, cname)
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
        self.prune(pfd, pcanon, base, join_path(pcanon, base))
