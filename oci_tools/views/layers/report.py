"""Layer reports: what each layer of an image adds, changes and removes.

``analyze`` replays an image's layers (from their cached indexes) and gives
one LayerReport per layer; ``change_tree`` arranges a report's rows as the
tree of ``layer show --tree``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from oci_tools.errors import UsageError
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType
from oci_tools.spec.model import Descriptor
from oci_tools.views.layers.index import IndexEntry, LayerCache, layer_index
from oci_tools.views.layers.replay import (
    Change,
    Replay,
    Waste,
    ancestors,
    parent_dir,
    paused_gc,
)

_DIR = EntryType.DIR.value
_REG = EntryType.REG.value


@dataclass
class LayerReport:
    """One layer of an image and what it does relative to the layers below."""

    index: int
    descriptor: Descriptor
    created_by: str
    uncompressed_size: int
    changes: list[Change]  # sorted by path
    whiteouts: list[IndexEntry] = field(default_factory=list)  # as stored
    #: Docker's size: the layer's regular-file bytes (hardlinks carry none).
    content_size: int = 0

    def count(self, change: str) -> int:
        """Number of ``A``, ``C`` or ``D`` rows."""
        return sum(1 for c in self.changes if c.change == change)


@dataclass
class Analysis:
    """Every layer of an image replayed: per-layer reports and the waste."""

    image: Image
    layers: list[LayerReport]
    waste: list[Waste]
    layer_bytes: list[int]  # file content bytes per layer (every version)

    @property
    def total_bytes(self) -> int:
        """File content bytes in all layers."""
        return sum(self.layer_bytes)


def _created_by(image: Image) -> dict[int, str]:
    out: dict[int, str] = {}
    for h, li in image.config.layer_history():
        if li is not None:
            out[li] = h.created_by or ""
    return out


def analyze(image: Image, upto: int | None = None, cache: LayerCache | None = None) -> Analysis:
    """Replay layers ``0..upto`` (all by default) of ``image``.

    Each layer is streamed at most once, and not at all when its index is
    cached; only per-path metadata is held.
    """
    image.check_consistent()
    cache = cache or LayerCache(image.layout)
    last = len(image.layers) - 1 if upto is None else upto
    replay = Replay()
    created_by = _created_by(image)
    reports = []
    for li in range(last + 1):
        with paused_gc():
            index = layer_index(image, li, cache)
            rows, whiteouts = replay.layer(li, index)
        reports.append(
            LayerReport(
                li,
                image.layers[li],
                created_by.get(li, ""),
                index.uncompressed_size,
                rows,
                whiteouts,
                replay.layer_bytes[li],
            )
        )
    return Analysis(image, reports, replay.waste, replay.layer_bytes)


def select_layer(image: Image, text: str) -> int:
    """The layer index ``text`` names: ``N`` (0 is the bottom layer, -1 the
    top), or a blob digest (``sha256:...``, or a unique hex prefix of at least
    4 characters, with or without the algorithm)."""
    n = len(image.layers)
    try:
        i = int(text)
    except ValueError:
        pass
    else:
        if not -n <= i < n:
            raise UsageError(
                f"layer {i} out of range: the image has {n} layer{'s' if n != 1 else ''}",
                hint="layers are numbered from 0 (bottom); -1 is the top layer",
            )
        return i % n
    alg, colon, hexpart = text.rpartition(":")
    if len(hexpart) < 4 or not all(c in "0123456789abcdef" for c in hexpart):
        raise UsageError(f"{text!r} is neither a layer number nor a layer digest")
    hits = sorted(
        {
            i
            for i, d in enumerate(image.layers)
            if d.digest.encoded.startswith(hexpart) and (not colon or d.digest.algorithm == alg)
        }
    )
    if not hits:
        raise UsageError(
            f"no layer of the image has digest {text}",
            hint="see the LAYER column of: oci-tools layers",
        )
    digests = {str(image.layers[i].digest) for i in hits}
    if len(hits) > 1:
        what = "is shared by" if len(digests) == 1 else "matches"
        raise UsageError(
            f"{text} {what} layers {', '.join(map(str, hits))}", hint="give the layer number"
        )
    return hits[0]


def layer_report(image: Image, i: int, cache: LayerCache | None = None) -> LayerReport:
    """The report of layer ``i`` (layers below it are replayed, not above)."""
    return analyze(image, upto=i, cache=cache).layers[i]


# ------------------------------------------------------------------------ tree


@dataclass
class TreeNode:
    """A node of ``layer show --tree``.

    ``change`` is None for a directory the layer does not carry itself (only
    its contents).  ``size``: for a directory, the bytes this layer adds or
    changes below it; for a file its size; for a ``D`` row what it hides.
    """

    name: str
    path: str
    change: Change | None
    size: int = 0
    children: list[TreeNode] = field(default_factory=list)


def change_tree(changes: list[Change]) -> TreeNode:
    """Arrange sorted ``changes`` as a tree rooted at ``/`` with totals."""
    root = TreeNode("/", "/", None)
    nodes: dict[str, TreeNode] = {"": root}

    def get(path: str) -> TreeNode:
        node = nodes.get(path)
        if node is None:
            parent = get(parent_dir(path))
            node = TreeNode(path.rpartition("/")[2], "/" + path, None)
            parent.children.append(node)
            nodes[path] = node
        return node

    for ch in changes:
        node = get(ch.path[1:])
        node.change = ch
        if ch.change == "D" or ch.type != _DIR:
            node.size = ch.size
        if ch.change != "D" and ch.type == _REG and ch.size:
            for a in ancestors(ch.path[1:]):
                nodes[a].size += ch.size
    return root


__all__ = [
    "Analysis",
    "LayerReport",
    "TreeNode",
    "analyze",
    "change_tree",
    "layer_report",
    "select_layer",
]
