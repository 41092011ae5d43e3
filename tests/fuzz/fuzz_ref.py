"""Fuzz the reference parsers: ``LAYOUT[:REF]`` splitting and ref-name
checks, digests (``sha256:...``, ``@digest`` forms), platforms, Docker-style
names, registry references (``[docker://]NAME[:TAG][@DIGEST]``) and
transport-prefixed endpoints; and resolving a fuzzed ref in a real (small)
layout.
Each must return or raise an error of ours."""

from __future__ import annotations

import contextlib
import os
import sys

sys.path[:0] = [os.path.dirname(__file__)]

from harness import instrumented, main  # noqa: E402

from oci_tools.errors import OCIToolsError  # noqa: E402

with instrumented():
    from oci_tools.archive import parse_name
    from oci_tools.digest import Digest
    from oci_tools.layout import Layout, check_ref, split_image_ref
    from oci_tools.mutate import new_image
    from oci_tools.registry.copy import parse_endpoint
    from oci_tools.registry.reference import parse_reference
    from oci_tools.spec.model import Platform

_layout: list[Layout] = []


def one_input(data: bytes) -> None:
    """Every parser on ``data`` (UTF-8 with undecodable bytes escaped)."""
    if not _layout:
        lay = Layout.init("lay")
        new_image(lay, "latest")
        _layout.append(lay)
    text = data.decode("utf-8", "surrogateescape")
    for parse in (Digest.parse, Platform.parse, check_ref, parse_name, parse_reference):
        try:
            parse(text)
        except OCIToolsError:
            continue
    for prefix in ("docker://", "oci:", "oci-archive:", ""):
        with contextlib.suppress(OCIToolsError):
            parse_endpoint(prefix + text)
    _, at, after_at = text.partition("@")
    if at:
        with contextlib.suppress(OCIToolsError):
            Digest.parse(after_at)
    for arg in (text, "lay:" + text, "lay@" + text):
        with contextlib.suppress(OCIToolsError):
            split_image_ref(arg)
    # LAYOUT@DIGEST splits at the last '@', so only some of these name "lay".
    path, ref = split_image_ref("lay:" + text) if text else ("lay", "latest")
    if path == "lay":
        _layout[0].resolve(ref or "latest")


def seeds() -> list[bytes]:
    """Refs, digests, platforms and names of the shapes people type."""
    return [
        b"latest",
        b"v1.2.3",
        b"app:v2",
        b"a/b:c@sha256:" + b"0" * 64,
        b"sha256:" + b"a" * 64,
        b"sha512:" + b"b" * 128,
        b"linux/arm64/v8",
        b"localhost:5000/ns/img:tag",
        b"registry.example/x/y",
        b"docker://localhost:5000/a/b:t@sha256:" + b"1" * 64,
        b"[::1]:5000/x",
        b"weird--ref__x..y",
        b"@",
        b":",
    ]


if __name__ == "__main__":
    main("ref", one_input, seeds())
