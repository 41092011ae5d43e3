"""``status`` (``ps``): a bundle's base image and its writable-layer size."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from dataclasses import dataclass

from oci_tools.errors import OCIToolsError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.views.sizes import SizeCache


@dataclass(frozen=True, slots=True)
class BundleStatus:
    """``docker ps -s`` for a bundle."""

    bundle: str
    image: str  # ref@short-id of the base image
    image_id: str
    command: str
    created: datetime.datetime  # when the bundle was unpacked
    rw: int  # bytes written since unpack
    virtual: int  # base image size + rw


def bundle_status(bundle: str) -> BundleStatus:
    """Base image and writable-layer size of a bundle."""
    from oci_tools.bundle import RECORD, BaseRecord, changes_of

    rec = BaseRecord.load(bundle)
    rootfs = os.path.join(bundle, "rootfs")
    rw = 0
    from oci_tools.snapshots import content_size
    from oci_tools.snapshots.overlay import overlay_info

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
        if not os.path.isdir(path) or os.path.islink(path):
            rw += st.st_size
    base_size = 0
    with contextlib.suppress(OCIToolsError):
        lay = Layout.open(rec.layout)
        img = Image.from_descriptor(lay, rec.manifest)
        sizes = SizeCache(lay)
        base_size = sum(sizes.size(d) for d in img.layers)
        sizes.save()
    cmd = ""
    with contextlib.suppress(OSError, ValueError), open(os.path.join(bundle, "config.json")) as f:
        cmd = " ".join(json.load(f)["process"]["args"])
    created = datetime.datetime.fromtimestamp(
        os.stat(os.path.join(bundle, RECORD)).st_mtime, datetime.UTC
    )
    ident = str(rec.manifest.digest)
    name = f"{rec.ref}@{rec.manifest.digest.short}" if rec.ref else rec.manifest.digest.short
    return BundleStatus(bundle, name, ident, f'"{cmd}"', created, rw, base_size + rw)


__all__ = ["BundleStatus", "bundle_status"]
