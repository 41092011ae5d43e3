"""Filesystem primitives every writer shares.

* :func:`atomic_writer` / :func:`atomic_write` / :func:`write_json` — the one
  way a file is replaced: a temp file in the same directory, written,
  fsynced, renamed over the target, the directory fsynced.  A crash at any
  point leaves either the old file or the new one, never a torn one.
* :func:`remove_tree` / :func:`empty_dir` — deleting trees that a layer may
  have made hostile to ``shutil.rmtree`` (mode-000 directories).
* :func:`private_path` — the layout's private area (``.oci-tools/``): its
  sub-directories are named here and nowhere else.
* :func:`temp_prefix` / :func:`remove_abandoned` — temp files carry their
  writer's pid, so the next writer can remove those of a process that was
  killed (SIGKILL, power loss) instead of leaving them until gc.

Imports nothing from oci_tools: every package may use it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
from collections.abc import Iterator
from typing import IO, Any

#: The layout's private directory (temp files, caches, gc roots, build work).
PRIVATE_DIR = ".oci-tools"
#: Sub-directories of :data:`PRIVATE_DIR`.
TMP = "tmp"
CACHE = "cache"
ROOTS = "roots"
BUILD = "build"
LOCK = "lock"
#: The layer store (one extracted dir per chain id) and containers' writable layers.
LAYERS = "layers"
CONTAINERS = "containers"


def private_path(layout_root: str, *parts: str) -> str:
    """``layout_root/.oci-tools/<parts...>`` (nothing is created)."""
    return os.path.join(layout_root, PRIVATE_DIR, *parts)


def sync_dir(path: str) -> None:
    """fsync a directory so a rename in it survives a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(
    path: str, *, mode: int = 0o644, sync: bool = True, buffering: int = -1
) -> Iterator[IO[bytes]]:
    """Yield a binary file that replaces ``path`` when the block ends cleanly.

    The temp file lives beside ``path`` (same filesystem, so the rename is
    atomic) and is removed if the block raises.  ``sync=False`` is for caches,
    whose loss costs only a recomputation.
    """
    parent = os.path.dirname(os.path.abspath(path))
    fd, tmp = make_temp(parent, temp_prefix(f".{os.path.basename(path)}"))
    try:
        with os.fdopen(fd, "wb", buffering=buffering) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), mode)
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if sync:
        sync_dir(parent)


def make_temp(parent: str, prefix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(prefix=prefix, dir=parent)``: a new file (0600,
    exclusive create, no symlink followed) with a random suffix; the
    tempfile module (random, shutil, ...) costs more to import than a small
    command's whole write."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", parent)


def temp_prefix(name: str) -> str:
    """``name.<pid>.``: the prefix of a temp file this process writes (see
    :func:`remove_abandoned`)."""
    return f"{name}.{os.getpid()}."


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return pid > 0


def remove_abandoned(directory: str, name: str) -> list[str]:
    """Remove the temp files ``name.<pid>.*`` (:func:`temp_prefix`) in
    ``directory`` whose writer is gone; returns what was removed.

    A file counts as abandoned only when its pid does not exist here AND no
    process holds an ``flock`` on it: writers that lock their temp file (the
    blob writer does) are safe even from a process in another pid namespace
    sharing the directory.  Without the lock, such a writer's rename fails
    (an OSError), it never corrupts anything.
    """
    pattern = re.compile(re.escape(name) + r"\.(\d+)\.")
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return removed
    for n in names:
        m = pattern.match(n)
        if m is None or pid_alive(int(m.group(1))):
            continue
        p = os.path.join(directory, n)
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.unlink(p)
            removed.append(n)
        except OSError:
            pass  # locked: a live writer we cannot see
        finally:
            os.close(fd)
    return removed


def atomic_write(path: str, data: bytes, *, mode: int = 0o644, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` (see :func:`atomic_writer`)."""
    with atomic_writer(path, mode=mode, sync=sync) as f:
        f.write(data)


def write_json(path: str, doc: Any, *, indent: int | None = 2, sync: bool = True) -> None:
    """Replace ``path`` with ``doc`` as JSON (indented and newline-terminated
    by default; ``indent=None`` writes it compact)."""
    if indent is None:
        text = json.dumps(doc, separators=(",", ":"))
    else:
        text = json.dumps(doc, indent=indent) + "\n"
    atomic_write(path, text.encode(), sync=sync)


def remove_tree(path: str) -> None:
    """Delete a tree, including mode-000 directories it holds (opened up
    first, never through a symlink)."""
    import shutil  # only removals need it (start-up of read-only commands)

    for root, dirs, _files in os.walk(path):
        for d in dirs:
            p = os.path.join(root, d)
            if not os.path.islink(p):
                with contextlib.suppress(OSError):
                    os.chmod(p, 0o700)
    shutil.rmtree(path)


def empty_dir(path: str) -> None:
    """Delete everything inside directory ``path`` (as :func:`remove_tree`),
    keeping ``path`` itself."""
    for name in os.listdir(path):
        p = os.path.join(path, name)
        if os.path.isdir(p) and not os.path.islink(p):
            remove_tree(p)
        else:
            os.unlink(p)
