"""dive's efficiency of an image: the bytes its layers ship but no container sees."""

from __future__ import annotations

from dataclasses import dataclass

from oci_tools.image import Image
from oci_tools.views.layers.index import LayerCache
from oci_tools.views.layers.replay import Waste, path_sort_key
from oci_tools.views.layers.report import analyze


@dataclass(frozen=True, slots=True)
class WastedFile:
    """A path whose earlier versions were overwritten or deleted."""

    path: str  # starts with /
    count: int  # versions wasted
    size: int  # their bytes
    layers: tuple[int, ...]  # the layers holding them


@dataclass(frozen=True, slots=True)
class Efficiency:
    """``dive``-style efficiency: ``score = 1 - wasted / total``.

    ``total`` counts the file bytes of every version of every file in every
    layer; ``wasted`` the bytes of versions a later layer (or a later member
    of the same layer) overwrote or deleted.  (dive scores the other way: it
    counts every copy of a path seen in more than one layer, the surviving
    one included.)
    """

    layers: int
    total_bytes: int
    wasted_bytes: int
    files: list[WastedFile]  # largest first
    user_bytes: int = 0  # file bytes of the layers above the first (the base)

    @property
    def score(self) -> float:
        """1.0 for an image that wastes nothing (or has no file bytes)."""
        return 1.0 - self.wasted_bytes / self.total_bytes if self.total_bytes else 1.0

    @property
    def user_wasted(self) -> float:
        """Wasted bytes relative to the bytes the layers above the base add
        (dive's ``highestUserWastedPercent`` measure); 0.0 when they add none."""
        return self.wasted_bytes / self.user_bytes if self.user_bytes else 0.0


def efficiency(image: Image, cache: LayerCache | None = None) -> Efficiency:
    """Wasted bytes and score of ``image``."""
    a = analyze(image, cache=cache)
    per: dict[str, list[Waste]] = {}
    for w in a.waste:
        per.setdefault(w.path, []).append(w)
    files = [
        WastedFile("/" + p, len(ws), sum(w.size for w in ws), tuple(sorted({w.layer for w in ws})))
        for p, ws in per.items()
    ]
    files.sort(key=lambda f: (-f.size, path_sort_key(f.path)))
    return Efficiency(
        len(image.layers),
        a.total_bytes,
        sum(w.size for w in a.waste),
        files,
        user_bytes=sum(a.layer_bytes[1:]),
    )


__all__ = ["Efficiency", "WastedFile", "efficiency"]
