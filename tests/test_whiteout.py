"""layer.whiteout: the one definition of whiteout names and how a layer
member name is classified."""

from __future__ import annotations

import pytest

from oci_tools.errors import UnsafeLayerError
from oci_tools.layer.whiteout import (
    OPAQUE,
    WHITEOUT_META_PREFIX,
    WHITEOUT_PREFIX,
    WhiteoutKind,
    classify,
    opaque_name,
    whiteout_name,
)


def test_names_are_the_image_spec_ones() -> None:
    assert (WHITEOUT_PREFIX, WHITEOUT_META_PREFIX, OPAQUE) == (".wh.", ".wh..wh.", ".wh..wh..opq")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("etc/passwd", (WhiteoutKind.NONE, "etc/passwd")),
        ("a.wh.b", (WhiteoutKind.NONE, "a.wh.b")),
        ("etc/.wh.passwd", (WhiteoutKind.PLAIN, "etc/passwd")),
        (".wh.top", (WhiteoutKind.PLAIN, "top")),
        ("var/cache/.wh..wh..opq", (WhiteoutKind.OPAQUE, "var/cache")),
        (".wh..wh..opq", (WhiteoutKind.OPAQUE, "")),
    ],
)
def test_classify(name: str, expected: tuple[WhiteoutKind, str]) -> None:
    assert classify(name) == expected


@pytest.mark.parametrize(
    "name",
    ["a/.wh.", "a/.wh..", "a/.wh...", ".wh..wh.plnk", "a/.wh.x/b", ".wh.d/.wh.e"],
)
def test_invalid_whiteouts_are_refused(name: str) -> None:
    with pytest.raises(UnsafeLayerError):
        classify(name)


def test_name_builders_invert_classify() -> None:
    for path in ("a/b/c", "top"):
        assert classify(whiteout_name(path)) == (WhiteoutKind.PLAIN, path)
    for directory in ("a/b", ""):
        assert classify(opaque_name(directory)) == (WhiteoutKind.OPAQUE, directory)
    assert whiteout_name("a/b") == "a/.wh.b"
    with pytest.raises(ValueError, match="root"):
        whiteout_name("")
