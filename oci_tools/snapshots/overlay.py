"""Overlay bundles: ``unpack --overlay`` and what commit/diff need of them.

An overlay bundle looks like a copy bundle to ``runc`` (``config.json`` +
``rootfs/``), but ``rootfs`` is an overlay mount: ``lowerdir`` = the image's
layer dirs from the layer store (top first), ``upperdir``/``workdir`` = the
bundle's own ``upper/`` and ``work/``.  Unpacking an image whose layers are
stored is O(1) in the image size: a mount and two small files.

The bundle record (``oci-tools.json``, written last as for copy bundles)
gets an ``overlay`` object naming the lower chain ids, so ``commit`` takes
its layer from ``upper/`` (overlay whiteouts become OCI ones) and ``diff``
lists the upper dir's changes.  The mount outlives the process: remove an
overlay bundle with :func:`release` (or ``umount BUNDLE/rootfs`` first).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from typing import TYPE_CHECKING, Any

from oci_tools.fsutil import empty_dir, remove_tree, write_json
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.snapshots import (
    OPAQUE_XATTR,
    LayerRecord,
    LayerStore,
    is_mounted,
    mount_overlay,
    unmount,
)

if TYPE_CHECKING:
    from oci_tools.diff import Change

UPPER = "upper"
WORK = "work"
ROOTFS = "rootfs"


def overlay_info(bundle: str) -> dict[str, Any] | None:
    """The ``overlay`` object of a bundle's record (None: a copy bundle)."""
    from oci_tools.bundle import RECORD

    try:
        with open(os.path.join(bundle, RECORD), "rb") as f:
            d = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return None
    ov = d.get("overlay") if isinstance(d, dict) else None
    return ov if isinstance(ov, dict) else None


def release(bundle: str) -> None:
    """Unmount an overlay bundle's rootfs (if mounted)."""
    unmount(os.path.join(bundle, ROOTFS))


def prepare_dirs(top: str) -> tuple[str, str, str]:
    """Create ``upper``, ``work`` and ``rootfs`` under ``top``."""
    paths = tuple(os.path.join(top, n) for n in (UPPER, WORK, ROOTFS))
    for p in paths:
        os.mkdir(p, 0o755)
    return paths  # type: ignore[return-value]


def mount_image(
    layout: Layout, img: Image, upper: str, work: str, target: str
) -> list[LayerRecord]:
    """Extract what is missing of ``img`` into the layer store and mount it
    at ``target`` with ``upper``/``work`` (the caller holds the layout lock)."""
    recs = LayerStore(layout).ensure(img)
    mount_overlay([r.diff for r in reversed(recs)], upper, work, target)
    return recs


def unpack_overlay(
    layout: Layout,
    img: Image,
    ref: str | None,
    bundle: str,
    *,
    force: bool = False,
) -> Image:
    """``unpack --overlay`` of ``img`` (in ``layout``, named ``ref``): a bundle
    whose rootfs is an overlay mount of the image's stored layers (the caller
    checked :func:`overlay_supported`)."""
    from oci_tools.bundle import RECORD, BaseRecord, new_bundle_id, register_root
    from oci_tools.errors import ClobberError
    from oci_tools.spec.runtime import runtime_config

    img.check_consistent()
    created_dir = False
    if os.path.lexists(bundle):
        if not os.path.isdir(bundle) or os.path.islink(bundle):
            raise ClobberError(bundle, hint="the bundle path exists and is not a directory")
        if os.listdir(bundle):
            if not force:
                raise ClobberError(bundle, hint="use --force to replace its contents")
            release(bundle)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(bundle, RECORD))
            empty_dir(bundle)
    else:
        os.makedirs(bundle)
        created_dir = True
    os.chmod(bundle, 0o700)
    rootfs = os.path.join(bundle, ROOTFS)
    try:
        upper, work, rootfs = prepare_dirs(bundle)
        with layout.lock():  # gc must not free a layer between extraction and the root
            recs = mount_image(layout, img, upper, work, rootfs)
            spec = runtime_config(img.config, lambda p: _read_in_root(rootfs, p))
            write_json(os.path.join(bundle, "config.json"), spec)
            rec = BaseRecord(
                os.path.abspath(layout.path), img.descriptor, ref, False, new_bundle_id()
            )
            register_root(layout, bundle, rec)
            doc = rec.to_dict()
            doc["overlay"] = {"upper": UPPER, "work": WORK, "lowers": [r.chain_id for r in recs]}
            write_json(os.path.join(bundle, RECORD), doc)
    except BaseException:
        with contextlib.suppress(OSError):
            unmount(rootfs)
            if created_dir:
                remove_tree(bundle)
            else:
                empty_dir(bundle)
        raise
    return img


def _read_in_root(rootfs: str, path: str) -> bytes | None:
    """A file of the mounted rootfs, read safely; runtime_config asks only
    when the image names a user or group (apply is imported only then)."""
    from oci_tools.apply import read_file_in_root

    return read_file_in_root(rootfs, path)


def lower_dirs(layout_path: str, chains: list[str]) -> list[str]:
    """diff dirs of stored layers by chain id, top first."""
    from oci_tools.digest import Digest

    store = LayerStore(Layout(layout_path))
    return [os.path.join(store.layer_dir(Digest.parse(c)), "diff") for c in reversed(chains)]


def _in_lowers(lowers: list[str], rel: str) -> bool:
    """Whether ``rel`` exists in the stacked lowers (top first)."""
    parts = rel.split("/")
    for lower in lowers:
        p = lower
        hidden = False
        for i, comp in enumerate(parts):
            p = os.path.join(p, comp)
            try:
                st = os.lstat(p)
            except OSError:
                break
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                hidden = True
                break
            if i == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                hidden = True
                break
            with contextlib.suppress(OSError):
                if os.getxattr(p, OPAQUE_XATTR, follow_symlinks=False) == b"y":
                    # Nothing below this dir comes from deeper layers.
                    rest = os.path.join(p, *parts[i + 1 :])
                    return os.path.lexists(rest)
        if hidden:
            return False
    return False


def upper_changes(upper: str, lowers: list[str]) -> list[Change]:
    """``docker diff`` of an overlay: what the upper dir holds, as A/C/D
    (moby's overlay changes: a whiteout is D, anything present in a lower
    layer is C, the rest A), in path order."""
    from oci_tools.diff import Change

    out: list[Change] = []
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        try:
            it = os.scandir(os.path.join(upper, rel_dir) if rel_dir else upper)
        except OSError:
            continue
        with it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            rel = f"{rel_dir}/{e.name}" if rel_dir else e.name
            st = e.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                out.append(Change("D", "/" + rel, False))
                continue
            out.append(Change("C" if _in_lowers(lowers, rel) else "A", "/" + rel, is_dir))
            if is_dir:
                stack.append(rel)
    out.sort(key=lambda c: c.path.split("/"))
    return out


def bundle_changes(bundle: str) -> list[Change]:
    """``diff`` of an overlay bundle."""
    from oci_tools.bundle import BaseRecord

    info = overlay_info(bundle)
    assert info is not None
    rec = BaseRecord.load(bundle)
    return upper_changes(
        os.path.join(bundle, str(info.get("upper", UPPER))),
        lower_dirs(rec.layout, list(info.get("lowers", []))),
    )


__all__ = [
    "bundle_changes",
    "is_mounted",
    "lower_dirs",
    "mount_image",
    "overlay_info",
    "prepare_dirs",
    "release",
    "unpack_overlay",
    "upper_changes",
]
