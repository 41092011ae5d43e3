"""Docker's content hashes of COPY/ADD sources: ``file:``, ``dir:``, ``multi:``.

The classic builder (moby 20.10, ``builder/dockerfile/copy.go`` and
``builder/remotecontext``) names what a COPY or ADD copies in the history row
(``COPY file:<hex> in /app ``).  The hex is derived from the build context as
the Docker CLI sends it, a tar whose every entry is summed with tarsum v1
(``pkg/tarsum``) on the daemon side:

- an entry's sum is the hex sha256 of ``name<n>mode<m>uid<u>gid<g>size<s>
  typeflag<t>linkname<l>uname<>gname<>devmajor<M>devminor<m>``, then its
  sorted xattrs as ``<key><value>``, then (regular files) the content.  The
  CLI writes the entries: names relative to the context root (directories
  end in ``/``), uid and gid 0, ``mode`` the permission bits with setuid,
  setgid and sticky but no file-type bits (``420`` for a 0644 file, as the
  20.10 CLI sends it: checked against dockerd), a second name of a
  hardlinked inode as a hardlink to the first name in walk order (no
  content), only the ``security.capability`` xattr; uname and gname empty;
  no mtime;
- the hash of a path follows its symlinks inside the context and takes the
  sum of where it lands; a path with no sum hashes as the path string;
- ``file:<sum>`` for a file source, ``dir:<hex>`` for a directory: the sha256
  of the hashes of every path below it (itself included, unless it is the
  context root), sorted as strings and joined by ``,``;
- ``multi:<hex>`` when one instruction has several sources (arguments or
  wildcard matches): the sha256 of their hashes joined by ``,`` in order.

Only what the CLI would send counts: ``.dockerignore`` applies, sockets are
skipped.  This module reads the context; it never writes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import stat
from dataclasses import dataclass

from oci_tools.build.context import resolve_in
from oci_tools.build.dockerignore import DockerIgnore
from oci_tools.errors import NotFoundError

_TYPEFLAG = {
    stat.S_IFREG: "0",
    stat.S_IFDIR: "5",
    stat.S_IFLNK: "2",
    stat.S_IFCHR: "3",
    stat.S_IFBLK: "4",
    stat.S_IFIFO: "6",
}
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class _Entry:
    """One path of the context tar: its lstat, or None for a directory the
    daemon only has because something below it is sent (no sum)."""

    st: os.stat_result | None
    hardlink_to: str = ""


def _go_sorted(names: list[str]) -> list[str]:
    """Names in Go's order (bytewise, as filepath.Walk sorts them)."""
    return sorted(names, key=lambda n: os.fsencode(n))


def hash_strings(prefix: str, items: list[str]) -> str:
    """``<prefix>:`` + hex sha256 of ``items`` joined by ``,`` (moby's hashStringSlice)."""
    joined = ",".join(items).encode("utf-8", "surrogateescape")
    return f"{prefix}:{hashlib.sha256(joined).hexdigest()}"


class ContextHasher:
    """Docker's hashes of the sources of COPY/ADD in one build context."""

    def __init__(self, root: str, ignore: DockerIgnore | None = None) -> None:
        self.root = os.path.abspath(root)
        self.ignore = ignore if ignore is not None else DockerIgnore.load(self.root)
        self._entries: dict[str, _Entry] | None = None
        self._order: list[str] = []
        self._sums: dict[str, str] = {}

    # -- the context as the CLI sends it ----------------------------------------------

    def _scan(self) -> dict[str, _Entry]:
        """Every path the CLI's tar holds, in its walk order, with the first
        name of each hardlinked inode."""
        if self._entries is not None:
            return self._entries
        entries: dict[str, _Entry] = {}
        first_name: dict[tuple[int, int], str] = {}

        def walk(rel_dir: str) -> None:
            host_dir = os.path.join(self.root, rel_dir) if rel_dir else self.root
            try:
                names = _go_sorted(os.listdir(host_dir))
            except OSError:
                return
            for name in names:
                rel = posixpath.join(rel_dir, name) if rel_dir else name
                try:
                    st = os.lstat(os.path.join(host_dir, name))
                except OSError:
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if self.ignore.ignored(rel):
                    # An excluded directory is still walked when a "!"
                    # pattern may bring something below it back; the daemon
                    # then has it (created on extraction) without a sum.
                    if is_dir and self.ignore.has_exceptions:
                        mark = len(entries)
                        entries[rel] = _Entry(None)
                        self._order.append(rel)
                        walk(rel)
                        if len(entries) == mark + 1:  # nothing came back below it
                            del entries[rel]
                            self._order.pop()
                    continue
                if stat.S_ISSOCK(st.st_mode):
                    continue
                link = ""
                if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
                    key = (st.st_dev, st.st_ino)
                    link = first_name.setdefault(key, rel)
                    link = "" if link == rel else link
                entries[rel] = _Entry(st, link)
                self._order.append(rel)
                if is_dir:
                    walk(rel)

        walk("")
        self._entries = entries
        return entries

    def entry_sum(self, rel: str) -> str | None:
        """The tarsum v1 of the context entry ``rel`` (None when the CLI sends
        no such entry)."""
        if rel in self._sums:
            return self._sums[rel]
        entry = self._scan().get(rel)
        if entry is None or entry.st is None:
            return None
        st = entry.st
        fmt = stat.S_IFMT(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
        name = rel + "/" if fmt == stat.S_IFDIR else rel
        host = os.path.join(self.root, rel)
        typeflag, size, linkname = _TYPEFLAG.get(fmt, "0"), 0, ""
        major = minor = 0
        if fmt == stat.S_IFREG:
            if entry.hardlink_to:
                typeflag, linkname = "1", entry.hardlink_to
            else:
                size = st.st_size
        elif fmt == stat.S_IFLNK:
            linkname = os.readlink(host)
        elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        h = hashlib.sha256()
        head = (
            f"name{name}mode{mode}uid0gid0size{size}typeflag{typeflag}linkname{linkname}"
            f"uname" + "gname" + f"devmajor{major}devminor{minor}"
        )
        h.update(head.encode("utf-8", "surrogateescape"))
        if fmt != stat.S_IFLNK:
            try:
                cap = os.getxattr(host, "security.capability", follow_symlinks=False)
            except OSError:
                cap = None
            if cap is not None:
                h.update(b"security.capability" + cap)
        if size:
            # Never through a symlink swapped in since the walk.
            fd = os.open(host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with open(fd, "rb", buffering=0) as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
        digest = h.hexdigest()
        self._sums[rel] = digest
        return digest

    # -- moby's Hash, calcCopyInfo and walkSource -------------------------------------

    def _resolved(self, path: str) -> str | None:
        """``path`` with its symlinks followed inside the context, relative
        to the root ("" for the root); None when a component is missing."""
        host = resolve_in(self.root, path)
        if host is None:
            return None
        rel = os.path.relpath(host, self.root)
        return "" if rel == "." else rel.replace(os.sep, "/")

    def path_hash(self, path: str) -> str:
        """Docker's ``Source.Hash(path)``: the sum of where ``path`` leads, or
        the path string itself when the context has no sum for it."""
        rel = self._resolved(path)
        found = self.entry_sum(rel) if rel else None
        return found if found is not None else path

    def _walk_below(self, rel_dir: str) -> list[str]:
        """The context paths at and below ``rel_dir`` ("" for the root, which
        itself is not listed), as moby's walkSource visits them."""
        self._scan()
        if not rel_dir:
            return list(self._order)
        prefix = rel_dir + "/"
        return [p for p in self._order if p == rel_dir or p.startswith(prefix)]

    def source_hash(self, path: str) -> str:
        """The hash of one source path without wildcards (moby's calcCopyInfo)."""
        clean = path.lstrip("/")
        while clean.startswith("./"):
            clean = clean[2:].lstrip("/")
        clean = clean or "."
        rel = self._resolved(clean)
        host = os.path.join(self.root, rel) if rel is not None else None
        if rel is None or host is None or not os.path.exists(host):
            raise NotFoundError(f"file not found in build context: {path}")
        if not os.path.isdir(host):
            return "file:" + self.path_hash(clean)
        subs = sorted(self.path_hash(p) for p in self._walk_below(rel))
        return hash_strings("dir", subs)

    def wildcard_matches(self, pattern: str) -> list[str]:
        """The context paths a wildcard source matches, in Docker's order."""
        clean = pattern.lstrip("/")
        while clean.startswith("./"):
            clean = clean[2:]
        return [p for p in self._walk_below("") if _go_match(clean, p)]

    def hash_sources(self, sources: list[str]) -> str:
        """The hash a COPY/ADD instruction shows for its source arguments."""
        infos: list[str] = []
        for src in sources:
            if any(c in src for c in "*?["):
                infos.extend(self.source_hash(p) for p in self.wildcard_matches(src))
            else:
                infos.append(self.source_hash(src))
        if len(infos) == 1:
            return infos[0]
        return hash_strings("multi", infos)


def _go_match(pattern: str, name: str) -> bool:
    """Go's filepath.Match: ``*`` and ``?`` never cross a ``/``."""
    pat_parts, name_parts = pattern.split("/"), name.split("/")
    if len(pat_parts) != len(name_parts):
        return False
    return all(
        fnmatch.fnmatchcase(n, p.replace("[^", "[!"))
        for p, n in zip(pat_parts, name_parts, strict=True)
    )


__all__ = ["ContextHasher", "hash_strings"]
