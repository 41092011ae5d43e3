"""resolve_in_root: the pure in-root symlink resolution shared by the layer
views and build's lookups."""

from __future__ import annotations

import pytest

from oci_tools.layer.paths import MAX_SYMLINK_HOPS, resolve_in_root

LINKS = {
    "lib": "usr/lib",
    "abs": "/usr",
    "up": "../../../usr",
    "usr/lib/self": ".",
    "loop": "loop",
    "a": "b",
    "b": "a",
    "usr/lib/sh": "../bin/sh",
}


def readlink(prefix: str, _more: bool) -> str | None:
    return LINKS.get(prefix)


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("", ""),
        ("lib/x", "usr/lib/x"),
        ("abs/lib/x", "usr/lib/x"),
        ("up/x", "usr/x"),  # '..' clamped at the root
        ("../../etc", "etc"),
        ("lib/self/self/x", "usr/lib/x"),
        ("lib/sh", "usr/bin/sh"),  # the last component is followed too
        ("./usr//lib/", "usr/lib"),
        ("lib/../x", "usr/x"),  # '..' after a link: the link's parent, as the kernel does
    ],
)
def test_resolution(path: str, want: str) -> None:
    assert resolve_in_root(path, readlink) == want


@pytest.mark.parametrize("path", ["loop", "loop/x", "a/x", "b"])
def test_loops_end_after_the_hop_limit(path: str) -> None:
    calls = []

    def counting(prefix: str, more: bool) -> str | None:
        calls.append(prefix)
        return readlink(prefix, more)

    assert resolve_in_root(path, counting) is None
    assert len(calls) == MAX_SYMLINK_HOPS + 1


def test_more_tells_whether_components_follow() -> None:
    seen: list[tuple[str, bool]] = []

    def record(prefix: str, more: bool) -> str | None:
        seen.append((prefix, more))
        return None

    assert resolve_in_root("a/b/./", record) == "a/b"
    assert seen == [("a", True), ("a/b", False)]


def test_readlink_may_stop_the_walk() -> None:
    def missing(prefix: str, _more: bool) -> str | None:
        raise FileNotFoundError(prefix)

    with pytest.raises(FileNotFoundError):
        resolve_in_root("x/y", missing)
