"""Whiteout names (AUFS format, as the image-spec defines them in layer.md).

``dir/.wh.NAME`` deletes ``dir/NAME`` from lower layers; ``dir/.wh..wh..opq``
hides every lower child of ``dir``.  Whiteout entries never reach the disk.
Names that look like whiteouts but name nothing (``.wh.``, ``.wh..``,
``.wh...``) or are other AUFS metadata (``.wh..wh.plnk`` and friends) are
refused: a careless applier would turn ``a/.wh..`` into "delete ``a``'s parent".
"""

from __future__ import annotations

import enum

from oci_tools.errors import UnsafeLayerError

#: Prefix of every whiteout file name.
WHITEOUT_PREFIX = ".wh."
#: Prefix of AUFS metadata names (only OPAQUE is valid in a layer).
WHITEOUT_META_PREFIX = ".wh..wh."
#: Basename of the opaque-directory marker.
OPAQUE = ".wh..wh..opq"


class WhiteoutKind(enum.Enum):
    """What a layer member name means."""

    NONE = "none"  # an ordinary path
    PLAIN = "plain"  # .wh.NAME: remove NAME from lower layers
    OPAQUE = "opaque"  # .wh..wh..opq: hide all lower children of the directory


def classify(name: str) -> tuple[WhiteoutKind, str]:
    """Classify a cleaned member name (``a/b/c``, no leading ``/``).

    Returns ``(NONE, name)``, ``(PLAIN, path to remove)`` or
    ``(OPAQUE, directory path)`` (``''`` is the root).  Raises
    UnsafeLayerError for an invalid whiteout, and for any name with a
    ``.wh.`` component above the last one (such a directory cannot exist).
    """
    if WHITEOUT_PREFIX not in name:
        return WhiteoutKind.NONE, name
    parent, _, base = name.rpartition("/")
    if parent and ("/" + parent).find("/" + WHITEOUT_PREFIX) >= 0:
        raise UnsafeLayerError(name, "a parent component is a whiteout name")
    if not base.startswith(WHITEOUT_PREFIX):
        return WhiteoutKind.NONE, name
    if base == OPAQUE:
        return WhiteoutKind.OPAQUE, parent
    if base.startswith(WHITEOUT_META_PREFIX):
        raise UnsafeLayerError(name, "AUFS metadata whiteouts are not supported")
    target = base[len(WHITEOUT_PREFIX) :]
    if target in ("", ".", ".."):
        raise UnsafeLayerError(name, "invalid whiteout (names no file in its directory)")
    return WhiteoutKind.PLAIN, f"{parent}/{target}" if parent else target


def whiteout_name(path: str) -> str:
    """The member name that deletes ``path`` (``a/b`` -> ``a/.wh.b``)."""
    parent, _, base = path.rpartition("/")
    if not base:
        raise ValueError("cannot white out the root")
    return f"{parent}/{WHITEOUT_PREFIX}{base}" if parent else WHITEOUT_PREFIX + base


def opaque_name(directory: str) -> str:
    """The opaque-marker member name of ``directory`` (``''`` is the root)."""
    return f"{directory}/{OPAQUE}" if directory else OPAQUE


__all__ = [
    "OPAQUE",
    "WHITEOUT_META_PREFIX",
    "WHITEOUT_PREFIX",
    "WhiteoutKind",
    "classify",
    "opaque_name",
    "whiteout_name",
]
