"""Symlink resolution inside a root, the way the kernel resolves a path in a
chroot: the root acts as ``/``, ``..`` stops at it, an absolute link target
restarts from it.

This is the pure algorithm; the caller says what each path prefix is (on
disk, or in a model of a tree built from layer indexes).  It is for reading
and for naming only: writes into a rootfs go through ``apply``, which
resolves with file descriptors so that nothing can be swapped underneath.
"""

from __future__ import annotations

from collections.abc import Callable

#: Symlinks followed while resolving one path (the kernel's ELOOP limit).
MAX_SYMLINK_HOPS = 40


def resolve_in_root(path: str, readlink: Callable[[str, bool], str | None]) -> str | None:
    """Resolve the root-relative ``path`` (``a/b/c``), every component followed,
    the last one included.

    ``readlink(prefix, more)`` is asked about each resolved prefix
    (``a``, ``a/b``...): it returns the link target when the prefix is a
    symlink and None otherwise; ``more`` tells whether components follow (so
    that a caller can insist on a directory there).  It may raise to stop the
    walk.  Returns the resolved root-relative path (``''`` for the root), or
    None after more than ``MAX_SYMLINK_HOPS`` links (a loop).
    """
    parts: list[str] = []
    pending = list(reversed(path.split("/")))
    hops = 0
    while pending:
        comp = pending.pop()
        if comp in ("", "."):
            continue
        if comp == "..":
            if parts:  # clamped at the root
                parts.pop()
            continue
        parts.append(comp)
        more = any(c not in ("", ".") for c in pending)
        target = readlink("/".join(parts), more)
        if target is None:
            continue
        hops += 1
        if hops > MAX_SYMLINK_HOPS:
            return None
        parts.pop()
        if target.startswith("/"):
            parts = []  # absolute targets restart at the root
        pending.extend(reversed(target.split("/")))
    return "/".join(parts)


__all__ = ["MAX_SYMLINK_HOPS", "resolve_in_root"]
