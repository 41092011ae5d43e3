"""dive's efficiency of an image, by dive's own definition, so a ``.dive-ci``
threshold means the same here (wagoodman/dive ``filetree/efficiency.go``,
``file_tree.go``, ``file_node.go``; ``image/analysis``).

dive builds one tree per layer from the tar headers: a node per member
(``path.Clean`` of its name), missing parents added with an empty payload
(size 0, not a directory), an opaque marker never added (its missing parents
are), a whiteout kept as a node with its prefixed name whose path is the
deleted path.  A node's size is its header's (0 for directories,
links and whiteouts).  Then, layer by layer, every *leaf* is visited
(children first, names sorted):

- a file counts its size; a whiteout counts what it hides in the stack of
  the layers below it (``StackTreeRange(0, i-1)``): everything below a
  directory, 0 for a file; a whiteout of a path missing there stops the
  visit of the rest of that layer (dive logs it and goes on);
- per path: the sizes add up (``cumulative``), the smallest is kept
  (``minimum``) and the visits are counted.

efficiency = Σ minimum / Σ cumulative (1.0 when nothing was counted); the
wasted bytes are the cumulative sizes of the paths seen more than once (the
first copy included); the total is the sum of every layer's header sizes,
the user bytes the same without the first layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from oci_tools.image import Image
from oci_tools.layer.whiteout import OPAQUE as OPAQUE_NAME
from oci_tools.layer.whiteout import WHITEOUT_META_PREFIX, WHITEOUT_PREFIX
from oci_tools.views.layers.index import OPAQUE, WHITEOUT, LayerCache, layer_index
from oci_tools.views.layers.replay import path_sort_key

_WH = WHITEOUT_PREFIX
_WH_OPQ = WHITEOUT_META_PREFIX


@dataclass(frozen=True, slots=True)
class WastedFile:
    """A path seen in more than one layer (dive's inefficient list)."""

    path: str  # starts with /
    count: int  # times seen
    size: int  # its cumulative bytes (every copy, the first included)
    layers: tuple[int, ...]  # the layers it was seen in


@dataclass(frozen=True, slots=True)
class Efficiency:
    """dive's analysis: ``score`` (its efficiency), the wasted bytes, the
    total and user bytes, and the paths seen more than once."""

    layers: int
    total_bytes: int
    wasted_bytes: int
    files: list[WastedFile]  # largest first
    user_bytes: int = 0  # header bytes of the layers above the first
    #: Σ minimum / Σ cumulative over every path (dive's efficiency).
    efficiency: float = 1.0

    @property
    def score(self) -> float:
        """dive's efficiency (1.0 for an image with no file bytes)."""
        return self.efficiency

    @property
    def user_wasted(self) -> float:
        """Wasted bytes relative to the bytes of the layers above the first
        (dive's ``wastedUserPercent``); 0.0 when they add none."""
        return self.wasted_bytes / self.user_bytes if self.user_bytes else 0.0


@dataclass(slots=True)
class _Node:
    """A dive file-tree node: header size and directory flag, children by name."""

    size: int = 0
    is_dir: bool = False
    children: dict[str, _Node] = field(default_factory=dict)

    def copy(self) -> _Node:
        return _Node(self.size, self.is_dir, {k: v.copy() for k, v in self.children.items()})


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c]


def _add(root: _Node, path: str, size: int, is_dir: bool) -> None:
    """dive's ``AddPath``: missing parents get an empty payload; a new
    component with the whiteout-metadata prefix stops the walk (never added)."""
    comps = _components(path)
    node = root
    for k, name in enumerate(comps):
        child = node.children.get(name)
        if child is None:
            if name.startswith(_WH_OPQ):
                return
            child = node.children[name] = _Node()
        node = child
        if k == len(comps) - 1:
            node.size, node.is_dir = size, is_dir


def _remove(root: _Node, path: str) -> None:
    comps = _components(path)
    node = root
    for name in comps[:-1]:
        nxt = node.children.get(name)
        if nxt is None:
            return
        node = nxt
    if comps:
        node.children.pop(comps[-1], None)


def _get(root: _Node, path: str) -> _Node | None:
    node: _Node | None = root
    for name in _components(path):
        node = node.children.get(name) if node is not None else None
    return node


def _visit(node: _Node, prefix: str) -> Iterator[tuple[str, str, _Node]]:
    """(path, name, node) of every node below ``node``, depth first, children
    before their parent, siblings by name (dive's VisitDepthChildFirst)."""
    for name in sorted(node.children):
        child = node.children[name]
        path = f"{prefix}/{name}"
        yield from _visit(child, path)
        yield path, name, child


def _key(path: str, name: str) -> str:
    """dive's ``Path()``: the whiteout prefix is dropped on the leaf only."""
    if name.startswith(_WH):
        return path[: len(path) - len(name)] + name[len(_WH) :]
    return path


def _stack(lower: _Node, upper: _Node) -> None:
    """dive's ``Stack``: every node of ``upper`` (parents after children)
    removes its path from ``lower`` if a whiteout, else is added there."""
    for path, name, node in _visit(upper, ""):
        if name.startswith(_WH):
            _remove(lower, _key(path, name))
        else:
            _add(lower, path, node.size, node.is_dir)


def _tree(image: Image, i: int, cache: LayerCache) -> tuple[_Node, int]:
    """Layer ``i`` as dive's tree, and its size (the sum of header sizes)."""
    root = _Node()
    total = 0
    for e in layer_index(image, i, cache).entries:
        total += e.size
        if not e.path:
            continue  # "." is skipped
        if e.kind == OPAQUE:
            _add(root, f"{e.path}/{OPAQUE_NAME}", 0, False)
        elif e.kind == WHITEOUT:
            parent, _, base = e.path.rpartition("/")
            _add(root, f"{parent}/{_WH}{base}", e.size, False)
        else:
            _add(root, e.path, e.size, e.kind == "dir")
    return root, total


def efficiency(image: Image, cache: LayerCache | None = None) -> Efficiency:
    """dive's efficiency, wasted bytes and user-wasted share of ``image``."""
    cache = cache or LayerCache(image.layout)
    trees: list[_Node] = []
    sizes: list[int] = []
    for i in range(len(image.layers)):
        tree, size = _tree(image, i, cache)
        trees.append(tree)
        sizes.append(size)
    cumulative: dict[str, int] = {}
    minimum: dict[str, int] = {}
    seen: dict[str, list[int]] = {}
    for i, tree in enumerate(trees):
        stacked: _Node | None = None
        for path, name, node in _visit(tree, ""):
            if node.children:
                continue  # leaves only
            key = _key(path, name)
            if name.startswith(_WH):
                if stacked is None:
                    stacked = trees[0].copy()
                    for lower in trees[:i]:
                        _stack(stacked, lower)
                hidden = _get(stacked, key)
                if hidden is None:
                    break  # dive: the error ends this layer's visit
                size = hidden.size + sum(n.size for _, _, n in _visit(hidden, ""))
                size = size if hidden.is_dir else 0
            else:
                size = node.size
            cumulative[key] = cumulative.get(key, 0) + size
            minimum[key] = min(minimum.get(key, size), size)
            seen.setdefault(key, []).append(i)
    total_cumulative = sum(cumulative.values())
    score = sum(minimum.values()) / total_cumulative if total_cumulative else 1.0
    files = [
        WastedFile(p, len(layers), cumulative[p], tuple(sorted(set(layers))))
        for p, layers in seen.items()
        if len(layers) > 1
    ]
    files.sort(key=lambda f: (-f.size, path_sort_key(f.path)))
    return Efficiency(
        len(image.layers),
        sum(sizes),
        sum(f.size for f in files),
        files,
        user_bytes=sum(sizes[1:]),
        efficiency=score,
    )


__all__ = ["Efficiency", "WastedFile", "efficiency"]
