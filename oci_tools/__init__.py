"""oci-tools: build, inspect, unpack and commit OCI images kept as image layouts.

The public Python API is re-exported here; submodules are organised in layers
(see DESIGN.md) and may be imported directly too.
"""

from oci_tools.errors import (
    BlobNotFoundError,
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
    SpecialFileError,
    UnsafeLayerError,
    UnsupportedMediaTypeError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "BlobNotFoundError",
    "ClobberError",
    "CorruptBlobError",
    "DigestMismatchError",
    "InvalidDocumentError",
    "InvalidLayoutError",
    "LinkEscapeError",
    "NotFoundError",
    "OCIToolsError",
    "PathEscapeError",
    "RefNotFoundError",
    "SpecialFileError",
    "UnsafeLayerError",
    "UnsupportedMediaTypeError",
    "UsageError",
    "__version__",
]
