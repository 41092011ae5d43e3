"""``status`` (``ps``): a bundle's base image and its writable-layer size."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import stat

from oci_tools.errors import OCIToolsError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.records import record
from oci_tools.views.sizes import SizeCache


@record
class BundleStatus:
    """``docker ps -s`` for a bundle."""

    bundle: str
    image: str  # ref@short-id of the base image
    image_id: str
    command: str
    created: datetime.datetime  # when the bundle was unpacked
    rw: int  # bytes written since unpack (a hardlinked inode once, as Docker)
    virtual: int  # base image size (Docker's: regular-file bytes) + rw


def bundle_status(bundle: str) -> BundleStatus:
    """Base image and writable-layer size of a bundle."""
    from oci_tools.bundle import RECORD, BaseRecord, changes_of

    rec = BaseRecord.load(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    rw = 0
    from oci_tools.snapshots import content_size
    from oci_tools.snapshots.overlay import overlay_info

    # Docker's ChangesSize: lstat sizes of added or changed non-directories,
    # a hardlinked inode counted once.
    seen: set[tuple[int, int]] = set()
    ov = overlay_info(bundle)
    if ov is not None:  # an overlay bundle: its upper dir is its writable layer
        rw = content_size(os.path.join(bundle, str(ov.get("upper", "upper"))))
    for ch in changes_of(bundle) if ov is None else ():
        if ch.kind == "D":
            continue
        path = os.path.join(rootfs, ch.path.lstrip("/"))
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode):
            continue
        if st.st_nlink > 1:
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
        rw += st.st_size
    base_size = 0
    # The image id is the config digest (docker's); the manifest digest only
    # when the base image cannot be read any more.
    image_id = rec.manifest.digest
    with contextlib.suppress(OCIToolsError):
        lay = Layout.open(rec.layout)
        img = Image.from_descriptor(lay, rec.manifest)
        image_id = img.id
        sizes = SizeCache(lay)
        base_size = sum(sizes.content(d) for d in img.layers)
        sizes.save()
    cmd = ""
    with contextlib.suppress(OSError, ValueError), open(os.path.join(bundle, "config.json")) as f:
        cmd = " ".join(json.load(f)["process"]["args"])
    created = datetime.datetime.fromtimestamp(
        os.stat(os.path.join(bundle, RECORD)).st_mtime, datetime.UTC
    )
    name = f"{rec.ref}@{image_id.short}" if rec.ref else image_id.short
    return BundleStatus(bundle, name, str(image_id), f'"{cmd}"', created, rw, base_size + rw)


__all__ = ["BundleStatus", "bundle_status"]
