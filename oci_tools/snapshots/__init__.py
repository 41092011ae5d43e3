"""The host layer store: each layer extracted once, shared by every overlay mount.

Docker keeps ``/var/lib/docker/overlay2/<id>/diff``; we keep, inside the
layout's private area::

    <layout>/.oci-tools/layers/<chain-id hex>/diff         the layer's files
    <layout>/.oci-tools/layers/<chain-id hex>/layer.json   diff_id, parent, size

keyed by **chain id** (the layer's diff_id folded with every layer below it,
image-spec config.md), so two images that share a base share its layer dirs,
and the same diff on different bases stays apart (its whiteouts and hardlinks
mean different things on each).

Extraction goes through the one safe applier (:func:`oci_tools.apply.apply_layer`)
into a temp dir next to the store, which is renamed into place only when
complete: a crash leaves no half layer, and two processes extracting the
same layer both succeed (the loser's rename fails and its copy is dropped).

Whiteouts are stored as overlayfs reads them (kernel overlayfs.rst): the
applier runs with ``apply_whiteouts=False`` and reports every member through
``on_entry``; after the layer is applied, ``.wh.<name>`` becomes a 0:0 char
device ``<name>`` and ``.wh..wh..opq`` becomes ``trusted.overlay.opaque=y`` on
its directory.  A whiteout whose name this same layer also adds is dropped
(the layer's own entry hides the lower one anyway), except that a directory
both whited out and re-added becomes opaque, as in the OCI semantics.  The
applier itself is unchanged.

:func:`mount_overlay` stacks the dirs (top first in ``lowerdir=``) with an
upper/work pair; :func:`unmount` and :func:`is_mounted` clean up.  ``gc``
frees layer dirs no image reachable from the layout's index or gc roots
(bundles, containers) needs.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError, UnsafeLayerError
from oci_tools.fsutil import LAYERS, private_path, remove_tree, sync_dir, write_json
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.records import record
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Index, Manifest

if TYPE_CHECKING:
    # Extraction's (imported where a layer is extracted): mounting stored
    # layers, the common case, starts faster without the tar entry types.
    from oci_tools.layer.entry import TarEntry
    from oci_tools.layer.whiteout import WhiteoutKind

RECORD = "layer.json"
DIFF = "diff"
RECORD_VERSION = 1
OPAQUE_XATTR = "trusted.overlay.opaque"
#: A temp extraction dir older than this is a crash leftover (gc removes it).
STALE_SECONDS = 3600
_O_DIR = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def chain_ids(diff_ids: Sequence[Digest]) -> list[Digest]:
    """Chain ids of a layer stack (image-spec config.md ``ChainID``)."""
    out: list[Digest] = []
    for d in diff_ids:
        if not out:
            out.append(d)
        else:
            h = hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest()
            out.append(Digest("sha256", h))
    return out


def _dir_name(chain: Digest) -> str:
    return chain.encoded if chain.algorithm == "sha256" else f"{chain.algorithm}-{chain.encoded}"


@record
class LayerRecord:
    """One stored layer: where it is and what it holds."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int  # Docker's content bytes: st_size of non-directories, each inode once
    path: str  # the layer's directory (``diff`` is below it)

    @property
    def diff(self) -> str:
        """The directory overlayfs stacks."""
        return os.path.join(self.path, DIFF)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "chain_id": self.chain_id,
            "diff_id": self.diff_id,
            "parent": self.parent,
            "size": self.size,
        }


def content_size(root: str) -> int:
    """Docker's size of a directory tree (moby ``directory.Size``): the
    ``st_size`` of every non-directory, each inode counted once; whiteouts,
    devices and directories count 0, symlinks their target length."""
    seen: set[tuple[int, int]] = set()
    total = 0
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    stack.append(e.path)
                    continue
                if st.st_size <= 0:
                    continue
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1:
                    if key in seen:
                        continue
                    seen.add(key)
                total += st.st_size
    return total


class LayerStore:
    """The layer store of one layout (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.root = private_path(layout.path, LAYERS)

    def layer_dir(self, chain: Digest) -> str:
        """Directory of the layer with chain id ``chain`` (may not exist)."""
        return os.path.join(self.root, _dir_name(chain))

    def get(self, chain: Digest) -> LayerRecord | None:
        """The stored layer ``chain``, or None when it is not extracted."""
        path = self.layer_dir(chain)
        try:
            with open(os.path.join(path, RECORD), "rb") as f:
                d = json.loads(f.read(1 << 16))
            return LayerRecord(d["chain_id"], d["diff_id"], d.get("parent"), int(d["size"]), path)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def records(self) -> list[LayerRecord]:
        """Every stored layer."""
        out: list[LayerRecord] = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return out
        for n in names:
            if n.startswith("."):
                continue
            rec = self.get(Digest("sha256", n)) if "-" not in n else None
            if rec is not None:
                out.append(rec)
        return out

    def ensure(self, img: Image) -> list[LayerRecord]:
        """Extract every layer of ``img`` not stored yet; the records bottom first."""
        diff_ids = list(img.config.diff_ids)
        chains = chain_ids(diff_ids)
        out: list[LayerRecord] = []
        parent: LayerRecord | None = None
        for i, (ld, diff_id, chain) in enumerate(zip(img.layers, diff_ids, chains, strict=True)):
            rec = self.get(chain)
            if rec is None:
                try:
                    rec = self._extract(ld.digest, ld.size, ld.media_type, diff_id, chain, parent)
                except OCIToolsError as e:
                    e.message = f"layer {i} ({ld.digest.short}): {e.message}"
                    e.args = (e.message,)
                    raise
            out.append(rec)
            parent = rec
        return out

    def _extract(
        self,
        digest: Digest,
        size: int,
        media_type: str,
        diff_id: Digest,
        chain: Digest,
        parent: LayerRecord | None,
    ) -> LayerRecord:
        import tempfile

        from oci_tools.apply import ApplyOptions, apply_layer
        from oci_tools.compression import codec_for_media_type
        from oci_tools.layer.whiteout import WhiteoutKind, classify

        os.makedirs(self.root, mode=0o700, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=self.root)
        try:
            diff = os.path.join(tmp, DIFF)
            os.mkdir(diff, 0o755)
            whiteouts: list[tuple[WhiteoutKind, str]] = []
            missing: list[TarEntry] = []

            def on_entry(e: TarEntry) -> None:
                if ".wh." in e.name:
                    kind, target = classify(e.name)
                    if kind is not WhiteoutKind.NONE:
                        whiteouts.append((kind, target))

            opts = ApplyOptions(
                rootless=False,
                apply_whiteouts=False,
                on_entry=on_entry,
                on_missing_link=missing.append,
            )
            blob = self.layout.store.open(digest, size)
            try:
                apply_layer(
                    cast(BinaryIO, blob),
                    diff,
                    codec=codec_for_media_type(media_type),
                    diff_id=diff_id,
                    options=opts,
                )
            finally:
                blob.close()
            if missing:
                _copy_up_links(diff, missing, self._lowers(parent))
            _convert_whiteouts(diff, whiteouts)
            rec = LayerRecord(
                str(chain),
                str(diff_id),
                parent.chain_id if parent else None,
                content_size(diff),
                self.layer_dir(chain),
            )
            write_json(os.path.join(tmp, RECORD), rec.to_dict())
            os.chmod(tmp, 0o700)
            try:
                os.rename(tmp, rec.path)
            except OSError as e:
                if e.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
                # Someone else stored it first: theirs is as good as ours.
                remove_tree(tmp)
                got = self.get(chain)
                if got is None:
                    raise
                return got
            sync_dir(self.root)
            return rec
        except BaseException:
            with contextlib.suppress(OSError):
                if os.path.isdir(tmp):
                    remove_tree(tmp)
            raise

    def _lowers(self, top: LayerRecord | None) -> list[str]:
        """diff dirs from ``top`` down to the base layer."""
        out = []
        rec = top
        while rec is not None:
            out.append(rec.diff)
            rec = self.get(Digest.parse(rec.parent)) if rec.parent else None
        return out

    # -- gc --------------------------------------------------------------------

    def live_chain_ids(self) -> set[str]:
        """Chain ids of every image reachable from index.json and the gc roots."""
        lay = self.layout
        live: set[str] = set()
        stack = list(lay.index().manifests) + lay.extra_roots()
        seen: set[Digest] = set()
        while stack:
            d = stack.pop()
            if d.digest in seen or not lay.store.has(d.digest):
                continue
            seen.add(d.digest)
            try:
                if d.media_type in mt.INDEX_TYPES:
                    stack.extend(Index.parse(lay.read_blob(d), d.media_type).manifests)
                elif d.media_type in mt.MANIFEST_TYPES:
                    m = Manifest.parse(lay.read_blob(d), d.media_type)
                    if m.config is None or m.config.media_type not in mt.CONFIG_TYPES:
                        continue
                    cfg = lay.config(m)
                    live.update(str(c) for c in chain_ids(list(cfg.diff_ids)))
            except OCIToolsError:
                continue
        return live

    def gc(self, *, dry_run: bool = False) -> list[LayerRecord]:
        """Delete layer dirs no live image needs (and stale temp dirs); the
        records of those removed (``dry_run``: of those that would be)."""
        freed: list[LayerRecord] = []
        with self.layout.lock():
            live = self.live_chain_ids()
            for rec in self.records():
                if rec.chain_id not in live:
                    if is_busy(rec.diff):
                        continue
                    if dry_run:
                        freed.append(rec)
                        continue
                    # The record goes first: a half-deleted dir is never a layer.
                    os.unlink(os.path.join(rec.path, RECORD))
                    remove_tree(rec.path)
                    freed.append(rec)
            if dry_run:
                return freed
            now = time.time()
            with contextlib.suppress(FileNotFoundError):
                for n in os.listdir(self.root):
                    p = os.path.join(self.root, n)
                    if n.startswith(".tmp-") or (
                        not n.startswith(".") and not os.path.exists(os.path.join(p, RECORD))
                    ):
                        with contextlib.suppress(OSError):
                            if now - os.lstat(p).st_mtime > STALE_SECONDS:
                                remove_tree(p)
        return freed


# ------------------------------------------------------------ whiteouts, links


def _open_dir(rootfd: int, parts: Sequence[str], create: bool) -> int | None:
    """O_PATH fd of directory ``parts`` below ``rootfd``, never following a
    symlink; missing components are made 0755 when ``create``."""
    fd = os.dup(rootfd)
    try:
        for comp in parts:
            if comp in ("", "."):
                continue
            if comp == "..":
                raise UnsafeLayerError("/".join(parts), "'..' in a whiteout path")
            try:
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    os.close(fd)
                    return None
                os.mkdir(comp, 0o755, dir_fd=fd)
                nfd = os.open(comp, _O_DIR, dir_fd=fd)
            except (NotADirectoryError, OSError) as e:
                if isinstance(e, NotADirectoryError) or e.errno == errno.ELOOP:
                    os.close(fd)
                    return None
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def _convert_whiteouts(diff: str, whiteouts: list[tuple[WhiteoutKind, str]]) -> None:
    """Write the layer's OCI whiteouts in overlayfs form (module docstring)."""
    if not whiteouts:
        return
    from oci_tools.layer.whiteout import WhiteoutKind

    rootfd = os.open(diff, _O_DIR)
    try:
        for kind, target in whiteouts:
            parts = [p for p in target.split("/") if p not in ("", ".")]
            if kind is WhiteoutKind.OPAQUE:
                fd = _open_dir(rootfd, parts, create=True)
                if fd is not None:
                    try:
                        os.setxattr(_proc(fd), OPAQUE_XATTR, b"y")
                    finally:
                        os.close(fd)
                continue
            if not parts:
                continue
            pfd = _open_dir(rootfd, parts[:-1], create=True)
            if pfd is None:
                continue  # the parent is a symlink or file in this layer
            name = parts[-1]
            try:
                pst = os.fstat(pfd)
                try:
                    st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
                    os.chown(name, 0, 0, dir_fd=pfd, follow_symlinks=False)
                else:
                    if stat.S_ISDIR(st.st_mode):
                        # Deleted and re-added by this layer: hide the lower one.
                        dfd = os.open(name, _O_DIR, dir_fd=pfd)
                        try:
                            os.setxattr(_proc(dfd), OPAQUE_XATTR, b"y")
                        finally:
                            os.close(dfd)
                # Keep the parent's times as the layer set them.
                os.utime(_proc(pfd), ns=(pst.st_atime_ns, pst.st_mtime_ns))
            finally:
                os.close(pfd)
    finally:
        os.close(rootfd)


def _lower_file(lowers: list[str], path: str) -> tuple[int, os.stat_result] | None:
    """Read fd of the regular file ``path`` as the stack of lower diff dirs
    (top first) shows it: whiteouts hide, an opaque dir ends the search,
    symlinks are never followed."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        return None
    for lower in lowers:
        rootfd = os.open(lower, _O_DIR)
        try:
            pfd = _open_dir(rootfd, parts[:-1], create=False)
        finally:
            os.close(rootfd)
        if pfd is None:
            continue
        try:
            try:
                st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                opaque = False
                with contextlib.suppress(OSError):
                    opaque = os.getxattr(_proc(pfd), OPAQUE_XATTR) == b"y"
                if opaque:
                    return None
                continue
            if not stat.S_ISREG(st.st_mode):
                return None  # a whiteout, a directory, a symlink: not a file
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
            return fd, os.fstat(fd)
        finally:
            os.close(pfd)
    return None


def _copy_up_links(diff: str, links: list[TarEntry], lowers: list[str]) -> None:
    """A hardlink member whose target lives in a lower layer becomes a copy of
    that file in this layer (overlayfs cannot link across layers)."""
    rootfd = os.open(diff, _O_DIR)
    try:
        for link in links:
            found = _lower_file(lowers, link.linkname)
            if found is None:
                raise UnsafeLayerError(link.name, f"hardlink target {link.linkname!r} missing")
            src, st = found
            try:
                parts = link.name.split("/")
                pfd = _open_dir(rootfd, parts[:-1], create=True)
                if pfd is None:
                    raise UnsafeLayerError(link.name, "parent is not a directory")
                try:
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(parts[-1], dir_fd=pfd)
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                    dst = os.open(parts[-1], flags, 0o600, dir_fd=pfd)
                finally:
                    os.close(pfd)
                try:
                    while os.sendfile(dst, src, None, 1 << 20):
                        pass
                    os.fchown(dst, st.st_uid, st.st_gid)
                    os.fchmod(dst, stat.S_IMODE(st.st_mode))
                    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst)
            finally:
                os.close(src)
    finally:
        os.close(rootfd)


# ------------------------------------------------------------------ mounts

_libc: Any = None


def _lib() -> Any:
    global _libc
    if _libc is None:
        import ctypes

        try:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        except OSError:  # not glibc: ask (ctypes.util runs ldconfig or a compiler)
            import ctypes.util

            _libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return _libc


def _errno() -> int:
    import ctypes

    return ctypes.get_errno()


def overlay_supported() -> bool:
    """Whether this process can mount overlayfs (root and kernel support)."""
    if os.geteuid() != 0:
        return False
    try:
        with open("/proc/filesystems") as f:
            return any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        return False


def _escape(path: str) -> str:
    return path.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")


def mount_overlay(lowers: Sequence[str], upper: str, work: str, target: str) -> None:
    """Mount an overlay at ``target``: ``lowers`` top first, ``upper``/``work``
    writable.

    The options must fit one page.  When the lower paths are too long for
    that, the mount names them through short symlinks (``0``, ``1``, ...) in
    a temp dir beside ``upper``, with that dir as the working directory (moby
    keeps ``l/<short>`` links for the same reason); overlayfs resolves the
    paths when mounting, so the links are removed right after."""
    if not lowers:
        raise OCIToolsError("an overlay mount needs at least one lower layer")
    tail = f"upperdir={_escape(os.path.abspath(upper))},workdir={_escape(os.path.abspath(work))}"
    data = f"lowerdir={':'.join(_escape(p) for p in lowers)},{tail}"
    if len(data) < os.sysconf("SC_PAGE_SIZE") - 512:
        _mount(data, target)
        return
    import tempfile

    links = tempfile.mkdtemp(prefix=".lowers-", dir=os.path.dirname(os.path.abspath(upper)))
    old = os.getcwd()
    try:
        for i, p in enumerate(lowers):
            os.symlink(os.path.abspath(p), os.path.join(links, str(i)))
        data = f"lowerdir={':'.join(str(i) for i in range(len(lowers)))},{tail}"
        if len(data) >= os.sysconf("SC_PAGE_SIZE"):
            raise OCIToolsError(f"too many layers for one overlay mount ({len(lowers)})")
        os.chdir(links)  # the CLI is single-threaded here: no one else resolves paths
        _mount(data, target)
    finally:
        os.chdir(old)
        remove_tree(links)


def _mount(data: str, target: str) -> None:
    rc = _lib().mount(b"overlay", os.fsencode(target), b"overlay", 0, data.encode())
    if rc != 0:
        err = _errno()
        raise OCIToolsError(f"mounting overlay on {target}: {os.strerror(err)}")


MNT_DETACH = 2


def unmount(target: str) -> bool:
    """Unmount ``target`` if something is mounted there (lazily, so a busy
    mount still goes away); True if it was mounted."""
    if not is_mounted(target):
        return False
    rc = _lib().umount2(os.fsencode(target), MNT_DETACH)
    if rc != 0:
        err = _errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return False
        raise OCIToolsError(f"unmounting {target}: {os.strerror(err)}")
    return True


def _mountinfo() -> Iterator[tuple[str, str]]:
    """(mount point, options) of this mount namespace."""
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            fields = line.split()
            if len(fields) < 10:
                continue
            point = fields[4].decode("utf-8", "surrogateescape")
            point = (
                point.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\")
            )
            sep = fields.index(b"-")
            opts = (
                fields[sep + 3].decode("utf-8", "surrogateescape") if len(fields) > sep + 3 else ""
            )
            yield point, opts


def is_mounted(target: str) -> bool:
    """Whether ``target`` is a mount point."""
    t = os.path.realpath(target)
    return any(p == t for p, _ in _mountinfo())


def is_busy(diff: str) -> bool:
    """Whether some mount's options name the layer of ``diff`` (its chain-id
    directory name is unique enough to tell)."""
    name = os.path.basename(os.path.dirname(os.path.realpath(diff)))
    return any(name in opts for _p, opts in _mountinfo())


__all__ = [
    "LAYERS",
    "LayerRecord",
    "LayerStore",
    "chain_ids",
    "content_size",
    "is_mounted",
    "mount_overlay",
    "overlay_supported",
    "unmount",
]
