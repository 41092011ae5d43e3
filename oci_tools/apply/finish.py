"""What runs once all entries are applied: hardlink peers, directory modes and times.

Directory modes and times are deferred to the end so that creating children
does not disturb them and (rootless) a restrictive mode does not lock us out
of a directory we still have to write into.  Directories are finished in
post-order, keeping the fds of the first levels and checking every ``..``
on the way up from deeper ones.
"""

from __future__ import annotations

import errno
import os
import stat

from oci_tools.apply.fs import O_DIR_PATH, RootDirs, proc_path
from oci_tools.apply.nodes import clamp_ns
from oci_tools.errors import UnsafeLayerError
from oci_tools.snapshot import FileState

#: Directory levels whose fds the post-order walk keeps open (see _finish_dirs).
_KEEP_FDS = 64


class Finisher(RootDirs):
    """The final pass of one layer application."""

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
        proc = proc_path(fd)
        meta = self.dir_meta.get(path)
        mode: int | None
        times: tuple[int, int] | None
        if meta is not None:
            mode = meta[0]
            t = clamp_ns(meta[1])
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
        # The fd of each frame while it stays open: the first _KEEP_FDS levels
        # keep theirs, so going back up reuses it (no open of ``..``, no stat);
        # deeper levels close theirs (fds stay bounded) and go up through
        # ``..``, checked against the dev/ino noted when they were entered.
        fds = [self.rootfd]
        fd = self.rootfd
        try:
            while frames:
                path, _dev, _ino, todo = frames[-1]
                if todo:
                    child = todo.pop()
                    try:
                        cfd = os.open(child.rpartition("/")[2], O_DIR_PATH, dir_fd=fd)
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                            continue  # removed or replaced later in this layer
                        raise
                    # O_DIRECTORY: cfd is a directory.  Its dev/ino are only
                    # needed where its fd will be dropped (deep levels).
                    dev = ino = 0
                    if len(frames) >= _KEEP_FDS:
                        cst = os.fstat(cfd)
                        dev, ino = cst.st_dev, cst.st_ino
                    if len(frames) > _KEEP_FDS:
                        os.close(fd)
                        fds[-1] = -1
                    fd = cfd
                    frames.append((child, dev, ino, kids.get(child, [])))
                    fds.append(cfd)
                    continue
                if path in targets:
                    self._finish_dir(fd, path)
                frames.pop()
                fds.pop()
                if not frames:
                    break
                up = fds[-1]
                if up < 0:
                    up = os.open("..", O_DIR_PATH, dir_fd=fd)
                    ust = os.fstat(up)
                    if (ust.st_dev, ust.st_ino) != (frames[-1][1], frames[-1][2]):
                        os.close(up)
                        raise UnsafeLayerError(path, "directory moved while applying")
                    fds[-1] = up
                os.close(fd)
                fd = up
        finally:
            for open_fd in {fd, *fds} - {self.rootfd, -1}:
                os.close(open_fd)
