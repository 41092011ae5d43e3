"""The build context: the sources COPY and ADD name, their content hashes
(what a cache key covers), and the tar entries that copy them.

Nothing here writes into a rootfs: the builder applies the entries as a
layer (``apply.apply_layer``), so every name resolves inside the rootfs.
"""

from __future__ import annotations

import bz2
import dataclasses
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, cast

from oci_tools.build.dockerignore import DockerIgnore, pattern_regex
from oci_tools.compression import decompressor
from oci_tools.errors import NotFoundError, OCIToolsError
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.paths import resolve_in_root
from oci_tools.layer.reader import iter_entries

_GLOB_CHARS = re.compile(r"[*?\[]")


# ---------------------------------------------------------------------------
# paths inside a root (the build context, or the rootfs for lookups)


def resolve_in(root: str, path: str) -> str | None:
    """Host path of ``path`` inside directory ``root``, every symlink (the last
    one included) resolved as if ``root`` were ``/`` (``..`` stops at it);
    None when a component is missing or not a directory.

    For reading only: writes into a rootfs always go through ``apply``.
    """

    def readlink(prefix: str, more: bool) -> str | None:
        host = os.path.join(root, prefix)
        st = os.lstat(host)
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(host)
        if more and not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(host)
        return None

    try:
        rel = resolve_in_root(path, readlink)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if rel is None:
        raise OCIToolsError(f"{path}: too many levels of symbolic links")
    return os.path.join(root, rel) if rel else root


def entry_name(path: str) -> str:
    """A container path as a layer entry name: no leading ``/``."""
    return posixpath.normpath("/" + path).lstrip("/")


# ---------------------------------------------------------------------------
# the build context: sources of COPY and ADD


@dataclass(frozen=True, slots=True)
class Item:
    """One path to copy: ``rel`` is its name below the copied source."""

    rel: str
    host: str
    kind: EntryType
    mode: int
    size: int
    mtime_ns: int
    link: str = ""
    digest: str = ""


@dataclass(frozen=True, slots=True)
class Source:
    """A resolved COPY/ADD source: a file or a directory with what it holds."""

    name: str
    is_dir: bool
    items: tuple[Item, ...]
    archive: str | None = None  # ADD: the codec of a local tar archive

    def hash(self) -> str:
        h = hashlib.sha256()
        for it in self.items:
            rec = [it.rel, it.kind.value, f"{it.mode:o}", str(it.size), it.digest or it.link]
            h.update(json.dumps(rec, ensure_ascii=False).encode("utf-8", "surrogateescape"))
            h.update(b"\n")
        if self.archive:
            h.update(b"archive\n")
        return h.hexdigest()


class BuildContext:
    """The build context directory and its .dockerignore."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise NotFoundError(f"build context {root} is not a directory")
        self.root = os.path.abspath(root)
        self.ignore = DockerIgnore.load(self.root)

    def sources(self, pattern: str, keyword: str) -> list[Source]:
        """The sources named by one COPY/ADD argument (wildcards expanded)."""
        clean = posixpath.normpath(pattern)
        if clean == ".." or clean.startswith("../"):
            raise OCIToolsError(f"forbidden path outside the build context: {pattern}")
        clean = clean.lstrip("/") or "."
        if clean == ".":
            clean = ""
        if _GLOB_CHARS.search(clean):
            rx = pattern_regex(clean)
            names = [rel for rel in self._walk_names() if rx.match(rel)]
            if not names:
                raise NotFoundError(f"{keyword}: no source files were specified by {pattern!r}")
            return [self._source(n, pattern) for n in names]
        return [self._source(clean, pattern)]

    def _walk_names(self) -> Iterator[str]:
        stack = [""]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(self.root, d)), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                rel = posixpath.join(d, e.name) if d else e.name
                if self.ignore.ignored(rel):
                    continue
                yield rel
                if e.is_dir(follow_symlinks=False):
                    stack.append(rel)

    def _source(self, rel: str, shown: str) -> Source:
        host = resolve_in(self.root, rel)
        if host is None or self.ignore.ignored(rel):
            raise NotFoundError(
                f"file not found in build context or excluded by .dockerignore: {shown}",
                hint=f"the context is {self.root}",
            )
        st = os.stat(host)
        name = posixpath.basename(rel) or posixpath.basename(self.root)
        if stat.S_ISDIR(st.st_mode):
            top = Item("", host, EntryType.DIR, st.st_mode & 0o7777, 0, st.st_mtime_ns)
            return Source(name, True, (top, *self._tree(host, rel)))
        return Source(name, False, (self._item("", host, st, rel),))

    def _tree(self, host_dir: str, rel_dir: str) -> Iterator[Item]:
        """Every kept path below a source directory, depth first, sorted."""
        stack: list[tuple[str, str, str]] = [(host_dir, rel_dir, "")]
        while stack:
            hdir, cdir, sub = stack.pop()
            kids = sorted(os.scandir(hdir), key=lambda e: e.name)
            dirs: list[tuple[str, str, str]] = []
            for e in kids:
                crel = posixpath.join(cdir, e.name) if cdir else e.name
                srel = posixpath.join(sub, e.name) if sub else e.name
                is_dir = e.is_dir(follow_symlinks=False)
                if self.ignore.ignored(crel):
                    # An excluded directory is only entered when a "!" pattern
                    # could bring something below it back.
                    if is_dir and self.ignore.has_exceptions:
                        dirs.append((e.path, crel, srel))
                    continue
                st = e.stat(follow_symlinks=False)
                if stat.S_ISSOCK(st.st_mode):
                    continue
                yield self._item(srel, e.path, st, crel)
                if is_dir:
                    dirs.append((e.path, crel, srel))
            stack.extend(reversed(dirs))

    @staticmethod
    def _item(rel: str, host: str, st: os.stat_result, shown: str) -> Item:
        mode, mtime = st.st_mode & 0o7777, st.st_mtime_ns
        if stat.S_ISREG(st.st_mode):
            return Item(rel, host, EntryType.REG, mode, st.st_size, mtime, digest=hash_file(host))
        if stat.S_ISDIR(st.st_mode):
            return Item(rel, host, EntryType.DIR, mode, 0, mtime)
        if stat.S_ISLNK(st.st_mode):
            return Item(rel, host, EntryType.SYMLINK, mode, 0, mtime, link=os.readlink(host))
        raise OCIToolsError(f"cannot copy {shown}: not a regular file, directory or symlink")


def hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def archive_codec(path: str) -> str | None:
    """The compression of ``path`` if it is a tar archive (ADD unpacks those),
    None otherwise: sniffed from the bytes, as Docker does, not the name."""
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0)
        codec = (
            "gzip"
            if magic.startswith(b"\x1f\x8b")
            else "bzip2"
            if magic.startswith(b"BZh")
            else "xz"
            if magic.startswith(b"\xfd7zXZ\x00")
            else "zstd"
            if magic.startswith(b"\x28\xb5\x2f\xfd")
            else "none"
        )
        try:
            head = open_archive(codec, cast(BinaryIO, f)).read(512)
        except Exception:  # not decompressible: an ordinary file
            return None
    return codec if len(head) == 512 and head[257:262] == b"ustar" else None


def open_archive(codec: str, raw: BinaryIO) -> BinaryIO:
    if codec == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(raw))
    if codec == "xz":
        return cast(BinaryIO, lzma.LZMAFile(raw))
    return decompressor(codec, raw)


# ---------------------------------------------------------------------------
# the tar entries that copy sources into a rootfs


def copy_entries(
    rootfs: str,
    sources: Sequence[Source],
    dest: str,
    into_dir: bool,
    uid: int,
    gid: int,
) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
    """The entries that copy ``sources`` to container path ``dest`` of
    ``rootfs``, owned by ``uid:gid`` (``into_dir``: ``dest`` names a
    directory to copy into, not the copy's own name)."""
    found = resolve_in(rootfs, dest)
    dest_is_dir = found is not None and os.path.isdir(found)
    # Hardlinked files stay hardlinked in the copy, as Docker's CopyWithTar
    # keeps them: the second name of an inode becomes a link to the first.
    first_name: dict[tuple[int, int], str] = {}
    for src in sources:
        if src.archive is not None:
            yield from archive_entries(src.items[0].host, src.archive, entry_name(dest))
            continue
        if src.is_dir:
            base = entry_name(dest)
            items = src.items if not dest_is_dir else src.items[1:]
        else:
            base = (
                entry_name(posixpath.join(dest, src.name))
                if into_dir or dest_is_dir
                else entry_name(dest)
            )
            items = src.items
        for it in items:
            name = posixpath.join(base, it.rel) if it.rel else base
            if it.kind is EntryType.REG and name:
                try:
                    st = os.lstat(it.host)
                except OSError:
                    st = None
                if st is not None and st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    if key in first_name and not any(c.startswith(".wh.") for c in name.split("/")):
                        link = TarEntry(
                            name,
                            EntryType.HARDLINK,
                            it.mode,
                            uid,
                            gid,
                            0,
                            it.mtime_ns,
                            first_name[key],
                        )
                        yield link, None
                        continue
                    first_name[key] = name
            yield from _copy_entry(it, name, uid, gid)


def with_mode(src: Source, mode: int) -> Source:
    """``--chmod``: files and directories get ``mode``; symlinks keep theirs."""
    items = tuple(
        dataclasses.replace(it, mode=mode) if it.kind in (EntryType.REG, EntryType.DIR) else it
        for it in src.items
    )
    return dataclasses.replace(src, items=items)


def _copy_entry(
    it: Item, name: str, uid: int, gid: int
) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
    if any(c.startswith(".wh.") for c in name.split("/")):
        raise OCIToolsError(f"cannot copy {it.host}: names starting with .wh. mark whiteouts")
    if not name:
        return  # the rootfs itself: its attributes are the image's, not the source's
    if it.kind is not EntryType.REG:
        yield TarEntry(name, it.kind, it.mode, uid, gid, 0, it.mtime_ns, it.link), None
        return
    fd = os.open(it.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    f = io.FileIO(fd, "rb", closefd=True)
    try:
        if os.fstat(fd).st_size != it.size:
            raise OCIToolsError(f"{it.host} changed while building; build again")
        yield (
            TarEntry(name, EntryType.REG, it.mode, uid, gid, it.size, it.mtime_ns),
            cast(BinaryIO, f),
        )
    finally:
        f.close()


def archive_entries(path: str, codec: str, dest: str) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
    """The members of a local tar archive, moved below ``dest`` (ADD)."""
    with open(path, "rb") as f:
        stream = open_archive(codec, cast(BinaryIO, f))
        for e, content in iter_entries(stream):
            if not e.name:
                continue
            if any(c.startswith(".wh.") for c in e.name.split("/")):
                raise OCIToolsError(
                    f"archive {path}: member {e.name!r} is a whiteout name, which ADD refuses"
                )
            name = posixpath.join(dest, e.name) if dest else e.name
            link = e.linkname
            if e.type is EntryType.HARDLINK:
                link = posixpath.join(dest, link) if dest else link
            # Only regular files carry content: a directory, link or device
            # entry handed on with a (zero-length) reader is refused by the
            # layer writer (``tar -czf`` archives are full of directories).
            data = cast(BinaryIO, content) if e.type is EntryType.REG else None
            yield dataclasses.replace(e, name=name, linkname=link), data


__all__ = [
    "BuildContext",
    "Item",
    "Source",
    "archive_codec",
    "archive_entries",
    "copy_entries",
    "entry_name",
    "hash_file",
    "open_archive",
    "resolve_in",
    "with_mode",
]
