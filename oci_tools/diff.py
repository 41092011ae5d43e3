"""Trees -> layer entries: what changed in a rootfs, as a deterministic layer.

Three sources of change, one emitter:

* ``diff_entries(root, base)``: a live tree against the Snapshot recorded when
  it was unpacked (the ``commit`` path);
* ``diff_trees(lower, upper)``: two directory trees (content compared where
  stat cannot decide);
* ``from_upper(upper)``: an overlayfs upper directory, already a change set.

How a live path is judged against its recorded FileState:

* Not recorded: added.  Recorded with another file type: replaced (the new
  entry replaces the old path when applied; a directory that became a file
  needs no child whiteouts).
* Changed when mode bits, owner, rdev (devices), size (non-directories) or the
  exact nanosecond mtime differ.
* When only ctime or inode differ (a file rewritten with the same size and its
  mtime restored, an xattr change, a copied tree), the recorded digests
  settle it: a regular file is re-hashed (only then is it read), a symlink's
  target digest compared, the xattr fingerprint compared; without a recorded
  digest the path counts as changed (and without a recorded xattr fingerprint,
  as changed when it carries any xattr a layer would keep).
* A directory whose inode changed while the root's did not was removed and
  recreated: it gets an opaque whiteout and all of its current contents.  When
  the root's inode differs from the snapshot (the tree was copied or
  restored), inode numbers prove nothing and this rule is off.

Layer rules:

* Deleted paths: one whiteout at the highest removed path, never for the
  children of a removed directory.  A directory (other than the root) whose
  recorded children, two or more, are all gone while it stays gets
  ``.wh..wh..opq`` instead of one whiteout per child (for a single child the
  plain whiteout is as short, and explicit whiteouts are what the spec
  prefers).  The root never gets an opaque marker: some appliers and overlay
  snapshotters do not honour it there.
* Every ancestor of an emitted path or whiteout is emitted too, with its
  current metadata.  The root itself (``./``) is only emitted when its own
  mode, owner or xattrs changed, never just because something below it did.
* Hardlinks are grouped by (st_dev, st_ino).  When any member of a group is
  in the layer, every member found in the tree is (an unchanged peer is
  included, so a link never points outside the layer); the first member in
  layer order carries the content, the others are hardlink entries to it.
* Entry order is depth-first, byte-wise by name within a directory, a
  directory before its contents, its opaque marker and whiteouts before its
  other children.
* Metadata: numeric uid/gid (or the owner from ``user.rootlesscontainers``,
  which itself is dropped), ``mode & 0o7777``, nanosecond mtime clamped to
  SOURCE_DATE_EPOCH when newer, xattrs except ``security.selinux``, overlay
  attributes and empty values.  Sockets are skipped (a socket that replaced a
  recorded path whites it out).  Any emitted name starting with ``.wh.`` is an
  error.
* Whiteout and opaque entries have one fixed header: regular file, size 0,
  mode 0644, uid/gid 0, mtime 0 (the epoch, whatever SOURCE_DATE_EPOCH is).

Only paths that changed (plus their parents and link peers) are read; the rest
of the cost is one lstat per path.  Files are opened relative to directory fds
with O_NOFOLLOW and checked against the walked inode, so a symlink swapped in
while diffing cannot make us archive a file outside the tree.
"""

from __future__ import annotations

import io
import os
import stat
from collections import OrderedDict
from collections.abc import Iterator
from typing import BinaryIO

from oci_tools.compression import Writable
from oci_tools.errors import OCIToolsError, UnsafeLayerError
from oci_tools.layer.entry import EntryType, TarEntry, make_entry
from oci_tools.layer.rootless import ROOTLESS_XATTR, decode_rootless
from oci_tools.layer.whiteout import WHITEOUT_PREFIX, opaque_name, whiteout_name
from oci_tools.layer.writer import LayerInfo, size_changed, write_layer
from oci_tools.records import field, record
from oci_tools.snapshot import (
    FileState,
    Snapshot,
    hash_fd,
    hash_link_at,
    join,
    layer_xattrs,
    open_dir_at,
    read_xattrs,
    scan_tree,
    tree_changed,
    xattr_fingerprint,
)

#: Mode of every whiteout and opaque-marker entry (they are empty regular files).
WHITEOUT_MODE = 0o644
_OVERLAY_NS = ("trusted.overlay.", "user.overlay.")
_NS = 1_000_000_000
_CHUNK = 1 << 20
#: Regular files up to this size are read whole when their entry is made.
_SMALL_FILE = 1 << 20
_OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

Entries = Iterator[tuple[TarEntry, BinaryIO | None]]

_ENTRY_TYPES = {
    stat.S_IFREG: EntryType.REG,
    stat.S_IFDIR: EntryType.DIR,
    stat.S_IFLNK: EntryType.SYMLINK,
    stat.S_IFCHR: EntryType.CHAR,
    stat.S_IFBLK: EntryType.BLOCK,
    stat.S_IFIFO: EntryType.FIFO,
}


@record
class Change:
    """One line of ``docker diff``: kind ``A`` (added), ``C`` (changed) or
    ``D`` (deleted), an absolute in-container path, and whether it is (or, for
    ``D``, was) a directory."""

    kind: str
    path: str
    is_dir: bool

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


def _open_content(dir_fd: int, name: str) -> int:
    """Open a file's content for reading (the one place diff reads data;
    tests count calls here to check that unchanged files are not read)."""
    return os.open(name, _OPEN_FILE, dir_fd=dir_fd)


def _open_checked(dir_fd: int, name: str, st: os.stat_result, rel: str) -> int:
    """Open the regular file that was walked as ``st``, or fail."""
    try:
        fd = _open_content(dir_fd, name)
    except OSError as exc:
        raise tree_changed("/" + rel, exc.strerror or str(exc)) from None
    now = os.fstat(fd)
    if (
        not stat.S_ISREG(now.st_mode)
        or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino)
        or now.st_size != st.st_size
    ):
        os.close(fd)
        raise tree_changed("/" + rel, "replaced or resized")
    return fd


def _digest_at(dir_fd: int, name: str, st: os.stat_result, rel: str) -> str:
    fd = _open_checked(dir_fd, name, st, rel)
    try:
        return hash_fd(fd)
    finally:
        os.close(fd)


def _parent(rel: str) -> str:
    return rel.rpartition("/")[0]


def _enc(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# Sort keys are flat bytes: each component is a rank byte then its name,
# components joined by NUL.  Names hold no NUL, so this orders exactly like
# comparing (rank, name) component by component (a parent before its
# children, NUL below any name byte) at a fraction of the cost of tuples.
_RANK_OPAQUE = b"\x01"
_RANK_WHITEOUT = b"\x02"
_RANK_ITEM = b"\x03"


def _key(rel: str) -> bytes:
    """Depth-first sort key: every component ranked as an ordinary entry, so
    that markers (opaque, then whiteouts) sort first in their directory."""
    if not rel:
        return b""
    return _RANK_ITEM + _enc(rel).replace(b"/", b"\x00" + _RANK_ITEM)


def _child_key(parent: str, rank: bytes, name: bytes) -> bytes:
    """The key of a marker ``name`` of rank ``rank`` inside ``parent``."""
    return (_key(parent) + b"\x00" if parent else b"") + rank + name


class _DirFds:
    """Directory fds of a tree by relative path: opened one component at a
    time with O_NOFOLLOW from the root; a small LRU keeps the hot chain."""

    def __init__(self, root: str, size: int = 64) -> None:
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def get(self, rel: str) -> int:
        if not rel:
            return self.root_fd
        fd = self._cache.get(rel)
        if fd is not None:
            self._cache.move_to_end(rel)
            return fd
        parent, _, name = rel.rpartition("/")
        fd = open_dir_at(self.get(parent), name, None, rel)
        self._cache[rel] = fd
        if len(self._cache) > self._size:
            os.close(self._cache.popitem(last=False)[1])
        return fd

    def close(self) -> None:
        for fd in self._cache.values():
            os.close(fd)
        self._cache.clear()
        os.close(self.root_fd)


# -- deciding -------------------------------------------------------------------

_SAME, _CHANGED, _REPLACED, _RECREATED = range(4)


class _Policy:
    """How to settle a path whose stat differs only in ctime/inode."""

    trust_inodes = True
    verify_content = False

    def ambiguous_changed(
        self, rel: str, b: FileState, st: os.stat_result, fd: int, name: str | None
    ) -> bool:
        raise NotImplementedError

    @staticmethod
    def xattrs_changed(b: FileState, fd: int, name: str | None) -> bool:
        live = layer_xattrs(read_xattrs(fd, name))
        if b.xattrs is None:
            return bool(live)
        return xattr_fingerprint(live) != b.xattrs

    def close(self) -> None:
        """Release what the policy holds open."""


class _SnapshotPolicy(_Policy):
    def __init__(self, verify_content: bool) -> None:
        self.verify_content = verify_content

    def ambiguous_changed(
        self, rel: str, b: FileState, st: os.stat_result, fd: int, name: str | None
    ) -> bool:
        if name is not None:
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFREG:
                if b.content is None or _digest_at(fd, name, st, rel) != b.content:
                    return True
            elif fmt == stat.S_IFLNK and (b.content is None or hash_link_at(fd, name) != b.content):
                return True
        return self.xattrs_changed(b, fd, name)


class _TreePolicy(_Policy):
    """Two trees: inodes never match, so stat equality leaves content open."""

    trust_inodes = False

    def __init__(self, lower_root: str, compare_content: bool) -> None:
        self.lower = _DirFds(lower_root)
        self.compare_content = compare_content

    def ambiguous_changed(
        self, rel: str, b: FileState, st: os.stat_result, fd: int, name: str | None
    ) -> bool:
        if name is not None:
            fmt = stat.S_IFMT(st.st_mode)
            lower_fd = self.lower.get(_parent(rel))
            if fmt == stat.S_IFREG:
                # A whole-second mtime may be a truncated one (tar, cp without
                # --preserve): then equal times prove nothing.
                if (self.compare_content or b.mtime_ns % _NS == 0) and not self._same_bytes(
                    rel, lower_fd, fd, name, b, st
                ):
                    return True
            elif fmt == stat.S_IFLNK and os.readlink(name, dir_fd=lower_fd) != os.readlink(
                name, dir_fd=fd
            ):
                return True
        return self.xattrs_changed(b, fd, name)

    @staticmethod
    def _same_bytes(
        rel: str, lower_fd: int, fd: int, name: str, b: FileState, st: os.stat_result
    ) -> bool:
        lower_st = os.stat(name, dir_fd=lower_fd, follow_symlinks=False)
        if lower_st.st_ino != b.ino:
            raise tree_changed("lower /" + rel, "replaced")
        a = _open_checked(lower_fd, name, lower_st, rel)
        try:
            c = _open_checked(fd, name, st, rel)
            try:
                while True:
                    x = os.read(a, _CHUNK)
                    y = os.read(c, _CHUNK)
                    if x != y:
                        return False
                    if not x:
                        return True
            finally:
                os.close(c)
        finally:
            os.close(a)

    def close(self) -> None:
        self.lower.close()


# -- planning -------------------------------------------------------------------


@record(frozen=False)
class _Plan:
    """Everything that goes into the layer, before ordering."""

    items: dict[str, tuple[str, os.stat_result]] = field(default_factory=dict)  # rel -> (A|C, st)
    whiteouts: set[str] = field(default_factory=set)  # deleted paths
    opaque: set[str] = field(default_factory=set)  # directories hiding all lower children
    deleted: list[tuple[str, bool]] = field(default_factory=list)  # docker-diff D rows
    dir_stats: dict[str, os.stat_result] = field(default_factory=dict)
    links: dict[tuple[int, int], list[tuple[str, os.stat_result]]] = field(default_factory=dict)

    def add(self, rel: str, st: os.stat_result, kind: str) -> None:
        if rel.rpartition("/")[2].startswith(WHITEOUT_PREFIX):
            raise UnsafeLayerError(
                "/" + rel,
                "names starting with .wh. cannot be stored in a layer",
                hint="rename or remove it: appliers would read it as a whiteout",
            )
        self.items[rel] = (kind, st)

    def link(self, rel: str, st: os.stat_result) -> None:
        if st.st_nlink > 1:
            self.links.setdefault((st.st_dev, st.st_ino), []).append((rel, st))

    def close_over(self, base: Snapshot | None) -> None:
        """Pull in hardlink peers, then every ancestor directory."""
        for members in self.links.values():
            if any(rel in self.items for rel, _ in members):
                for rel, st in members:
                    if rel not in self.items:
                        self.add(rel, st, "C" if base is not None and rel in base else "A")
        needed = [_parent(rel) for rel in self.items if rel]
        needed += [_parent(p) for p in self.whiteouts]
        needed += list(self.opaque)
        for d in needed:
            while d and d not in self.items:
                self.add(d, self.dir_stats[d], "C" if base is not None and d in base else "A")
                d = _parent(d)

    def records(self) -> list[tuple[bytes, int, str]]:
        """(sort key, what, rel) in layer order; what: 0 opaque, 1 whiteout, 2 item."""
        recs = [(_key(rel), 2, rel) for rel in self.items]
        for p in self.whiteouts:
            parent, _, name = p.rpartition("/")
            recs.append((_child_key(parent, _RANK_WHITEOUT, _enc(WHITEOUT_PREFIX + name)), 1, p))
        for d in self.opaque:
            recs.append((_child_key(d, _RANK_OPAQUE, b""), 0, d))
        recs.sort()
        return recs


class _Differ:
    """One walk of a live tree against a base snapshot."""

    def __init__(self, root: str, base: Snapshot, policy: _Policy) -> None:
        self.root = root
        self.base = base
        self.policy = policy
        self.plan = _Plan()
        self.seen: set[str] = set()
        self.compared: dict[str, int] = {}  # compared dir -> children found in base
        self.live_base_dirs: set[str] = set()  # live dirs that were dirs in base
        self.trust_inodes = False
        self.same_stat = base.stat_matcher()

    def run(self) -> _Plan:
        new_dirs: set[str] = set()
        for rel, fd, dst, children in scan_tree(self.root):
            self.plan.dir_stats[rel] = dst
            if rel == "":
                self._root(fd, dst)
            if rel in new_dirs:
                new_dirs.discard(rel)
                self._new_dir(rel, children, new_dirs)
            else:
                self._compare_dir(rel, fd, children, new_dirs)
        self._deletions()
        self.plan.close_over(self.base)
        return self.plan

    def _root(self, fd: int, st: os.stat_result) -> None:
        b = self.base.get("")
        if b is None or not b.is_dir:
            return
        self.seen.add("")
        self.live_base_dirs.add("")
        self.trust_inodes = self.policy.trust_inodes and b.ino == st.st_ino
        changed = (
            (b.mode ^ st.st_mode) & 0o7777
            or b.uid != st.st_uid
            or b.gid != st.st_gid
            or (
                (b.ctime_ns != st.st_ctime_ns or b.ino != st.st_ino)
                and self.policy.xattrs_changed(b, fd, None)
            )
        )
        if changed:
            self.plan.add("", st, "C")

    def _classify(self, rel: str, b: FileState, st: os.stat_result, fd: int, name: str) -> int:
        fmt = stat.S_IFMT(st.st_mode)
        if stat.S_IFMT(b.mode) != fmt:
            return _REPLACED
        if fmt == stat.S_IFDIR and self.trust_inodes and b.ino != st.st_ino:
            return _RECREATED
        if (b.mode ^ st.st_mode) & 0o7777 or b.uid != st.st_uid or b.gid != st.st_gid:
            return _CHANGED
        if fmt in (stat.S_IFCHR, stat.S_IFBLK) and b.rdev != st.st_rdev:
            return _CHANGED
        if b.mtime_ns != st.st_mtime_ns:
            return _CHANGED
        if fmt != stat.S_IFDIR and b.size != st.st_size:
            return _CHANGED
        verify = self.policy.verify_content and fmt == stat.S_IFREG
        if b.ctime_ns == st.st_ctime_ns and b.ino == st.st_ino and not verify:
            return _SAME  # e.g. only nlink or a directory's size moved
        if self.policy.ambiguous_changed(rel, b, st, fd, name):
            return _CHANGED
        return _SAME

    def _compare_dir(
        self, drel: str, fd: int, children: list[tuple[str, os.stat_result]], new_dirs: set[str]
    ) -> None:
        plan, seen, base, same_stat = self.plan, self.seen, self.base, self.same_stat
        verify = self.policy.verify_content
        prefix = drel + "/" if drel else ""
        matched = 0
        for name, st in children:
            fmt = stat.S_IFMT(st.st_mode)
            rel = prefix + name
            if fmt == stat.S_IFSOCK:
                # Not representable in a layer: a recorded socket stays as it
                # is; anything else recorded here counts as deleted.
                b = base.get(rel) if rel in base else None
                if b is not None and stat.S_ISSOCK(b.mode):
                    matched += 1
                    seen.add(rel)
                continue
            quick = same_stat(rel, st)
            if quick < 0:
                plan.add(rel, st, "A")
                if fmt == stat.S_IFDIR:
                    new_dirs.add(rel)
                else:
                    plan.link(rel, st)
                continue
            matched += 1
            seen.add(rel)
            if quick == 1 and not (verify and fmt == stat.S_IFREG):
                verdict = _SAME
            else:
                b = base.get(rel)
                assert b is not None
                verdict = self._classify(rel, b, st, fd, name)
            if verdict != _SAME:
                plan.add(rel, st, "C")
            if fmt == stat.S_IFDIR:
                if verdict in (_SAME, _CHANGED):
                    self.live_base_dirs.add(rel)
                else:
                    new_dirs.add(rel)
                    if verdict == _RECREATED:
                        self.live_base_dirs.add(rel)
                        plan.opaque.add(rel)
            elif st.st_nlink > 1:
                plan.link(rel, st)
        self.compared[drel] = matched

    def _new_dir(
        self, drel: str, children: list[tuple[str, os.stat_result]], new_dirs: set[str]
    ) -> None:
        """Everything below an added, replaced or recreated directory is emitted."""
        plan, base = self.plan, self.base
        for name, st in children:
            fmt = stat.S_IFMT(st.st_mode)
            if fmt == stat.S_IFSOCK:
                continue
            rel = join(drel, name)
            recorded = rel in base
            if recorded:
                # Only below a recreated directory: label it C and keep it out
                # of the docker-diff deletions.
                self.seen.add(rel)
            plan.add(rel, st, "C" if recorded else "A")
            if fmt == stat.S_IFDIR:
                new_dirs.add(rel)
                if recorded and (b := base.get(rel)) is not None and b.is_dir:
                    self.live_base_dirs.add(rel)
            else:
                plan.link(rel, st)

    def _deletions(self) -> None:
        if len(self.seen) == len(self.base):
            return
        plan = self.plan
        by_parent: dict[str, list[str]] = {}
        for p in set(self.base.paths()).difference(self.seen):
            parent = _parent(p)
            if parent not in self.live_base_dirs:
                continue  # below a removed or replaced path: covered higher up
            b = self.base.get(p)
            plan.deleted.append((p, b is not None and b.is_dir))
            if parent in self.compared:
                by_parent.setdefault(parent, []).append(p)
        for parent, gone in by_parent.items():
            # One marker instead of several whiteouts; for a single child the
            # explicit whiteout is as short and is what the spec prefers.
            if parent and self.compared[parent] == 0 and len(gone) > 1:
                plan.opaque.add(parent)
            else:
                plan.whiteouts.update(gone)


def _plan_upper(upper: str) -> _Plan:
    """An overlayfs upper dir is already a change set: convert its markers."""
    plan = _Plan()
    for drel, fd, dst, children in scan_tree(upper):
        plan.dir_stats[drel] = dst
        for name, st in children:
            fmt = stat.S_IFMT(st.st_mode)
            rel = join(drel, name)
            if fmt == stat.S_IFSOCK:
                continue
            if fmt == stat.S_IFCHR and st.st_rdev == 0:
                plan.whiteouts.add(rel)
                continue
            raw = read_xattrs(fd, name)
            for attr in raw:
                if attr.startswith(_OVERLAY_NS) and attr.endswith((".redirect", ".metacopy")):
                    raise UnsafeLayerError(
                        "/" + rel,
                        f"overlayfs {attr} found: the upper dir alone does not hold this change",
                        hint="diff the lower and merged trees instead (diff_trees), or mount "
                        "overlayfs with redirect_dir=off,metacopy=off",
                    )
            if (
                fmt == stat.S_IFREG
                and st.st_size == 0
                and any(f"{ns}whiteout" in raw for ns in _OVERLAY_NS)
            ):
                plan.whiteouts.add(rel)  # the newer "xattr whiteout" form
                continue
            plan.add(rel, st, "A")
            if fmt == stat.S_IFDIR:
                if any(raw.get(f"{ns}opaque") == b"y" for ns in _OVERLAY_NS):
                    plan.opaque.add(rel)
            else:
                plan.link(rel, st)
    plan.close_over(None)
    return plan


# -- emitting -------------------------------------------------------------------


def _emit(root: str, plan: _Plan, source_date_epoch: int | None, rootless: bool = False) -> Entries:
    clamp = None if source_date_epoch is None else source_date_epoch * _NS
    fds = _DirFds(root)
    try:
        first_of: dict[tuple[int, int], str] = {}
        for _, what, rel in plan.records():
            if what != 2:
                marker = opaque_name(rel) if what == 0 else whiteout_name(rel)
                yield TarEntry(marker, EntryType.REG, WHITEOUT_MODE, 0, 0, 0, 0), None
                continue
            _, st = plan.items[rel]
            parent, _, base_name = rel.rpartition("/")
            dfd = fds.get(parent)
            name: str | None = base_name if rel else None
            fmt = stat.S_IFMT(st.st_mode)
            content_fd: int | None = None
            if (
                fmt == stat.S_IFREG
                and name is not None
                and (st.st_nlink == 1 or (st.st_dev, st.st_ino) not in first_of)
            ):
                # Its content goes in the layer: open it now and read the
                # attributes through that fd (no path lookup through /proc).
                content_fd = _open_checked(dfd, name, st, rel)
            f: BinaryIO | None = None
            try:
                if content_fd is not None:
                    raw = read_xattrs(content_fd, None)
                    if st.st_size <= _SMALL_FILE:
                        # Read it whole now, one byte more than its size to
                        # tell a file that grew (a short read of a regular
                        # file is its end): one read, and the fd closes here.
                        data = os.read(content_fd, st.st_size + 1)
                        os.close(content_fd)
                        content_fd = None
                        if len(data) != st.st_size:
                            raise size_changed(rel, st.st_size, len(data))
                        f = io.BytesIO(data)
                    else:
                        f = io.FileIO(content_fd, "rb", closefd=True)
                        content_fd = None
                elif fmt == stat.S_IFDIR:
                    # Opened anyway to read its children next: use that fd.
                    raw = read_xattrs(fds.get(rel), None)
                else:
                    raw = read_xattrs(dfd, name)
                xattrs = layer_xattrs(raw)
                # In a rootless bundle the invoking user stands for container root;
                # other owners were recorded in user.rootlesscontainers at unpack.
                uid, gid = (0, 0) if rootless else (st.st_uid, st.st_gid)
                owner = xattrs.pop(ROOTLESS_XATTR, None)
                if owner is not None:
                    try:
                        ruid, rgid = decode_rootless(owner)
                    except ValueError as exc:
                        raise OCIToolsError(
                            f"/{rel}: malformed {ROOTLESS_XATTR} attribute ({exc})",
                            hint="fix or remove the attribute (setfattr -x)",
                        ) from None
                    uid = uid if ruid is None else ruid
                    gid = gid if rgid is None else rgid
                mtime = st.st_mtime_ns if clamp is None else min(st.st_mtime_ns, clamp)
                mode = st.st_mode & 0o7777
                if fmt != stat.S_IFDIR and st.st_nlink > 1:
                    ident = (st.st_dev, st.st_ino)
                    first = first_of.get(ident)
                    if first is not None:
                        yield (
                            TarEntry(rel, EntryType.HARDLINK, mode, uid, gid, 0, mtime, first),
                            None,
                        )
                        continue
                    first_of[ident] = rel
                etype = _ENTRY_TYPES[fmt]
                if f is not None:
                    entry = make_entry(
                        rel, etype, mode, uid, gid, st.st_size, mtime, "", 0, 0, xattrs
                    )
                    yield entry, f
                    continue
            finally:
                if content_fd is not None:
                    os.close(content_fd)
                if f is not None:
                    f.close()
            linkname = ""
            major = minor = 0
            if fmt == stat.S_IFLNK:
                assert name is not None
                linkname = os.readlink(name, dir_fd=dfd)
            elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
                major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield (
                TarEntry(rel, etype, mode, uid, gid, 0, mtime, linkname, major, minor, xattrs),
                None,
            )
    finally:
        fds.close()


# -- public API -------------------------------------------------------------------


def changes(root: str, base: Snapshot) -> list[Change]:
    """What changed under ``root`` since ``base`` (``docker diff``): added,
    changed (including parents of changes and pulled-in link peers) and
    deleted paths (the highest removed path only), in layer order."""
    plan = _Differ(root, base, _SnapshotPolicy(False)).run()
    rows = [
        (_key(rel), Change(kind, "/" + rel, stat.S_ISDIR(st.st_mode)))
        for rel, (kind, st) in plan.items.items()
    ]
    rows += [(_key(p), Change("D", "/" + p, is_dir)) for p, is_dir in plan.deleted]
    rows.sort(key=lambda r: r[0])
    return [c for _, c in rows]


def diff_entries(
    root: str,
    base: Snapshot,
    *,
    source_date_epoch: int | None = None,
    verify_content: bool = False,
    rootless: bool = False,
) -> Entries:
    """Layer entries (with open content streams) for what changed under
    ``root`` since ``base``.  The tree is walked when iteration starts; each
    content stream is valid until the next entry is requested.

    ``verify_content`` re-hashes every regular file that has a recorded
    digest, even when its stat is untouched (slow; for the paranoid).
    """
    policy = _SnapshotPolicy(verify_content)
    plan = _Differ(root, base, policy).run()
    yield from _emit(root, plan, source_date_epoch, rootless)


def diff_trees(
    lower_root: str,
    upper_root: str,
    *,
    source_date_epoch: int | None = None,
    compare_content: bool = False,
) -> Entries:
    """Layer entries turning the tree ``lower_root`` into ``upper_root``.

    A file whose type, mode, owner, size and mtime match is compared byte by
    byte when its mtime is a whole second (it may have been truncated) or when
    ``compare_content`` is set; otherwise it counts as unchanged.  Symlink
    targets and xattrs are always compared.
    """
    base = Snapshot.walk(lower_root, xattrs=True)
    policy = _TreePolicy(lower_root, compare_content)
    try:
        plan = _Differ(upper_root, base, policy).run()
    finally:
        policy.close()
    yield from _emit(upper_root, plan, source_date_epoch)


def from_upper(upper_dir: str, *, source_date_epoch: int | None = None) -> Entries:
    """Layer entries from an overlayfs upper directory: a 0:0 character device
    becomes a whiteout (so does a zero-size file with an ``overlay.whiteout``
    xattr), a directory with ``overlay.opaque=y`` (trusted or user namespace)
    gets an opaque marker.  Refused when any ``overlay.redirect`` or
    ``overlay.metacopy`` xattr is present: the upper dir is then incomplete."""
    plan = _plan_upper(upper_dir)
    yield from _emit(upper_dir, plan, source_date_epoch)


def write_diff(
    root: str,
    base: Snapshot,
    out: Writable,
    codec: str = "gzip",
    source_date_epoch: int | None = None,
    *,
    level: int | None = None,
    verify_content: bool = False,
    rootless: bool = False,
) -> LayerInfo:
    """Write the layer of what changed under ``root`` since ``base`` to ``out``.
    ``LayerInfo.entries == 0`` means nothing changed.  ``rootless``: the tree
    was unpacked rootless (owners: 0:0 unless ``user.rootlesscontainers``)."""
    return write_layer(
        diff_entries(
            root,
            base,
            source_date_epoch=source_date_epoch,
            verify_content=verify_content,
            rootless=rootless,
        ),
        out,
        codec,
        level=level,
    )


def write_upper(
    upper_dir: str,
    out: Writable,
    codec: str = "gzip",
    source_date_epoch: int | None = None,
    *,
    level: int | None = None,
) -> LayerInfo:
    """Write the layer held by an overlayfs upper directory to ``out``."""
    return write_layer(
        from_upper(upper_dir, source_date_epoch=source_date_epoch), out, codec, level=level
    )


__all__ = [
    "WHITEOUT_MODE",
    "Change",
    "Entries",
    "changes",
    "decode_rootless",
    "diff_entries",
    "diff_trees",
    "from_upper",
    "write_diff",
    "write_upper",
]
