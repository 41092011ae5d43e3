"""The layering views people know from Docker: history, images, df, status.

Each view builds rows of plain data (dataclasses) from a layout's JSON
documents; it never formats them: the CLI's ``tables`` turns rows into
docker-formatted tables or JSON.  Layer sizes come from :class:`SizeCache`
(annotation, cache, or one decompression per layer ever).  The per-layer
views (``layers``, ``layer show``, ``efficiency``) live in
:mod:`oci_tools.views.layers`.
"""

from oci_tools.views.df import DiskUsage, LayerUse, disk_usage
from oci_tools.views.history import HistoryRow, history_rows
from oci_tools.views.images import ImageRow, image_rows, tagged_images
from oci_tools.views.sizes import SizeCache
from oci_tools.views.status import BundleStatus, bundle_status

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
