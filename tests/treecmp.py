"""Compare two directory trees: content and metadata, as a dict per path."""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Any


def tree_state(root: str, *, mtimes: bool = True, root_meta: bool = False) -> dict[str, Any]:
    """path -> (type, mode, uid, gid, size, mtime_ns, target/digest, xattrs, link group)."""
    out: dict[str, Any] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files) + ([""] if dirpath == root and root_meta else []):
            p = os.path.join(dirpath, name) if name else dirpath
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            extra: Any = None
            if stat.S_ISLNK(st.st_mode):
                extra = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    extra = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                extra = (os.major(st.st_rdev), os.minor(st.st_rdev))
            try:
                xattrs = {
                    k: os.getxattr(p, k, follow_symlinks=False)
                    for k in sorted(os.listxattr(p, follow_symlinks=False))
                }
            except OSError:
                xattrs = {}
            group = None
            if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
                group = inodes.setdefault(st.st_ino, rel)
            out[rel] = (
                kind,
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_size if not stat.S_ISDIR(st.st_mode) else 0,
                st.st_mtime_ns if mtimes and not stat.S_ISLNK(st.st_mode) else 0,
                extra,
                xattrs,
                group,
            )
    return out


def assert_same_tree(a: str, b: str, **kw: Any) -> None:
    sa, sb = tree_state(a, **kw), tree_state(b, **kw)
    only_a = sorted(set(sa) - set(sb))
    only_b = sorted(set(sb) - set(sa))
    diff = [p for p in sorted(set(sa) & set(sb)) if sa[p] != sb[p]]
    msgs = [f"only in first: {only_a}", f"only in second: {only_b}"]
    msgs += [f"{p}: {sa[p]} != {sb[p]}" for p in diff[:20]]
    assert not (only_a or only_b or diff), "\n".join(msgs)
