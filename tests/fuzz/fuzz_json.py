"""Fuzz the JSON document parsers and the schema validator: any bytes as a
manifest, an index, an image config, an oci-layout file or a descriptor.
Every parser must return a value or raise an error of ours; ``problems``
must return a list of strings."""

from __future__ import annotations

import contextlib
import json
import os
import sys

sys.path[:0] = [os.path.dirname(__file__)]

from harness import instrumented, main, seed_files  # noqa: E402

with instrumented():
    from oci_tools.spec import mediatype as mt
    from oci_tools.spec import schema
    from oci_tools.spec.model import Descriptor, ImageConfig, Index, Manifest, Platform

from oci_tools.errors import OCIToolsError, UnsupportedMediaTypeError  # noqa: E402

MEDIA_TYPES = [
    mt.OCI_MANIFEST,
    mt.OCI_INDEX,
    mt.OCI_CONFIG,
    mt.OCI_DESCRIPTOR,
    mt.OCI_LAYOUT_HEADER,
    mt.DOCKER_MANIFEST,
    mt.DOCKER_MANIFEST_LIST,
    mt.DOCKER_CONFIG,
]


def one_input(data: bytes) -> None:
    """Parse and validate ``data`` every way a document is read."""
    for media_type in MEDIA_TYPES:
        try:
            found = schema.problems(media_type, data)
        except UnsupportedMediaTypeError:
            continue
        assert isinstance(found, list) and all(isinstance(p, str) for p in found), found
    # Each parser on its own: one refusing must not hide another's crash.
    for parse in (Manifest.parse, Index.parse, ImageConfig.parse):
        with contextlib.suppress(OCIToolsError):
            parse(data)
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return  # not JSON: the parsers above had to say so themselves
    with contextlib.suppress(OCIToolsError):
        Descriptor.from_dict(doc)
    if isinstance(doc, dict):
        Platform.from_dict(doc)


if __name__ == "__main__":
    main("json", one_input, seed_files("conformance/**/*.json", "conformance/**/*.txt"))
