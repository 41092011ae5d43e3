"""oci-tools: build, inspect, unpack and commit OCI images kept as image layouts.

The public API, re-exported here (loaded on first use, so ``import oci_tools``
stays cheap for the command line):

* layouts and refs: :func:`init_layout`, :func:`open_layout`, :func:`resolve`
* images as values: :func:`load_image`, :func:`layers`, :class:`Image`,
  :class:`Layer`; changing one: the :mod:`oci_tools.mutate` module
* bundles: :func:`unpack`, :func:`commit`
* building: :func:`build_image`
* archives: :func:`export_image`, :func:`import_archive`
* checking: :func:`validate`
* the views as data: :func:`history`, :func:`images`, :func:`df`, :func:`status`
* every error: :class:`OCIToolsError` and its subclasses

Arguments come in one order everywhere — layout, ref, then the other place
(bundle, archive, build context) — and options are keywords.  See
docs/python-api.md for a worked example and docs/architecture.md for the house.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from oci_tools.errors import (
    BlobNotFoundError,
    BuildError,
    ClobberError,
    CorruptBlobError,
    DigestMismatchError,
    InvalidDocumentError,
    InvalidLayoutError,
    LinkEscapeError,
    NotFoundError,
    OCIToolsError,
    PathEscapeError,
    RefNotFoundError,
    RunFailedError,
    SpecialFileError,
    UnsafeLayerError,
    UnsupportedMediaTypeError,
    UsageError,
)

if TYPE_CHECKING:
    from oci_tools.api import (
        build_image,
        commit,
        df,
        export_image,
        history,
        images,
        import_archive,
        init_layout,
        layers,
        load_image,
        open_layout,
        resolve,
        status,
        unpack,
        validate,
    )
    from oci_tools.bundle import CommitResult, UnpackResult
    from oci_tools.digest import Digest
    from oci_tools.image import Image, Layer
    from oci_tools.layout import Layout
    from oci_tools.spec.model import Descriptor, Platform

__version__ = "0.1.0"

#: name -> module that defines it (imported on first access: PEP 562).
_LAZY = {
    **{
        n: "oci_tools.api"
        for n in (
            "build_image",
            "commit",
            "df",
            "export_image",
            "history",
            "images",
            "import_archive",
            "init_layout",
            "layers",
            "load_image",
            "open_layout",
            "resolve",
            "status",
            "unpack",
            "validate",
        )
    },
    "CommitResult": "oci_tools.bundle",
    "UnpackResult": "oci_tools.bundle",
    "Digest": "oci_tools.digest",
    "Image": "oci_tools.image",
    "Layer": "oci_tools.image",
    "Layout": "oci_tools.layout",
    "Descriptor": "oci_tools.spec.model",
    "Platform": "oci_tools.spec.model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'oci_tools' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "BlobNotFoundError",
    "BuildError",
    "ClobberError",
    "CommitResult",
    "CorruptBlobError",
    "Descriptor",
    "Digest",
    "DigestMismatchError",
    "Image",
    "InvalidDocumentError",
    "InvalidLayoutError",
    "Layer",
    "Layout",
    "LinkEscapeError",
    "NotFoundError",
    "OCIToolsError",
    "PathEscapeError",
    "Platform",
    "RefNotFoundError",
    "RunFailedError",
    "SpecialFileError",
    "UnpackResult",
    "UnsafeLayerError",
    "UnsupportedMediaTypeError",
    "UsageError",
    "__version__",
    "build_image",
    "commit",
    "df",
    "export_image",
    "history",
    "images",
    "import_archive",
    "init_layout",
    "layers",
    "load_image",
    "open_layout",
    "resolve",
    "status",
    "unpack",
    "validate",
]
