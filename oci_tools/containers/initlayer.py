"""A container's init layer: the mount points runc needs that the image lacks.

runc creates a missing mount point in the rootfs, which would put it in the
container's writable layer (``ps -s`` would never show ``0B``).  Docker keeps
them in a separate "-init" layer below the writable one; so do we: they are
planned against the mounted image and made in their own lower directory.
"""

from __future__ import annotations

import os
import stat
from typing import Any


def plan_init_layer(
    rootfs: str, mounts: list[dict[str, Any]]
) -> list[tuple[str, os.stat_result | None, bool]]:
    """The mount points the image (mounted at ``rootfs``) lacks: (path,
    metadata to copy or None, is a file), parents first.  No symlink of the
    image is followed: a path through one is left to runc."""
    dests = [str(m["destination"]).rstrip("/") for m in mounts]
    out: list[tuple[str, os.stat_result | None, bool]] = []
    planned: set[str] = set()
    for m, dest in zip(mounts, dests, strict=True):
        if not dest.startswith("/") or any(o != dest and dest.startswith(o + "/") for o in dests):
            continue  # inside another mount: runc creates it there
        parts = [p for p in dest.split("/") if p]
        if not parts or ".." in parts:
            continue
        for i in range(len(parts)):
            rel = "/".join(parts[: i + 1])
            last = i == len(parts) - 1
            try:
                st = os.lstat(os.path.join(rootfs, rel))
            except FileNotFoundError:
                if rel not in planned:
                    planned.add(rel)
                    src = str(m.get("source", ""))
                    is_file = last and m.get("type") == "bind" and os.path.isfile(src)
                    out.append((rel, None, is_file))
                continue
            if last:
                break
            if not stat.S_ISDIR(st.st_mode):
                break  # a symlink or file in the image: runc's business
            if rel not in planned:
                # An existing parent of a new mount point: copied with its metadata.
                planned.add(rel)
                out.append((rel, st, False))
    # Only parents that lead to something new are needed.
    new = [r for r, st, _ in out if st is None]
    return [e for e in out if e[1] is None or any(n.startswith(e[0] + "/") for n in new)]


def make_init_layer(init: str, plan: list[tuple[str, os.stat_result | None, bool]]) -> None:
    """Create the planned mount points in the init layer dir."""
    for rel, st, is_file in plan:
        target = os.path.join(init, rel)
        if is_file:
            with open(target, "a"):
                pass
            continue
        os.mkdir(target, 0o755)
        if st is not None:
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, stat.S_IMODE(st.st_mode))
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


__all__ = ["make_init_layer", "plan_init_layer"]
