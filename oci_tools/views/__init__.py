"""The layering views people know from Docker: history, images, df, status.

Each view builds rows of plain data (dataclasses) from a layout's JSON
documents; it never formats them: the CLI's ``tables`` turns rows into
docker-formatted tables or JSON.  Layer sizes come from :class:`SizeCache`
(annotation, cache, or one decompression per layer ever).  The per-layer
views (``layers``, ``layer show``, ``efficiency``) live in
:mod:`oci_tools.views.layers`.

The names below are re-exported lazily (PEP 562), as in :mod:`oci_tools`: a
command imports only the view it shows (``images`` needs neither ``df`` nor
``status`` and what they import).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oci_tools.views.df import DiskUsage, LayerUse, disk_usage
    from oci_tools.views.history import HistoryRow, history_rows
    from oci_tools.views.images import ImageRow, image_rows, tagged_images
    from oci_tools.views.sizes import SizeCache
    from oci_tools.views.status import BundleStatus, bundle_status

#: name -> the module of this package that defines it.
_LAZY = {
    "DiskUsage": "df",
    "LayerUse": "df",
    "disk_usage": "df",
    "HistoryRow": "history",
    "history_rows": "history",
    "ImageRow": "images",
    "image_rows": "images",
    "tagged_images": "images",
    "SizeCache": "sizes",
    "BundleStatus": "status",
    "bundle_status": "status",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_tools.views' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"oci_tools.views.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BundleStatus",
    "DiskUsage",
    "HistoryRow",
    "ImageRow",
    "LayerUse",
    "SizeCache",
    "bundle_status",
    "disk_usage",
    "history_rows",
    "image_rows",
    "tagged_images",
]
