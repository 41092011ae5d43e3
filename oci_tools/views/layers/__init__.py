"""Per-layer views of an image: what each layer adds, changes, removes and wastes.

The commands ``layers``, ``layer show``, ``layer extract`` and ``efficiency``
are built from one cached *index* per layer (the metadata of every member,
never content).  The modules, each importing only those before it:

- ``index``: IndexEntry, LayerIndex, their cache, streaming a layer into one;
- ``replay``: the indexes applied in order to a model of the merged tree
  (paths resolved as ``apply`` resolves them), giving Change and Waste rows;
- ``report``: LayerReport per layer (``analyze``), layer selection, the tree;
- ``efficiency``: dive's score and wasted files;
- ``extract``: one layer's own files written into a directory.
"""

from __future__ import annotations

from oci_tools.views.layers.efficiency import Efficiency, WastedFile, efficiency
from oci_tools.views.layers.extract import ExtractResult, LinkCopy, extract_layer
from oci_tools.views.layers.index import (
    CACHE_VERSION,
    OPAQUE,
    WHITEOUT,
    IndexEntry,
    LayerCache,
    LayerIndex,
    layer_index,
    read_index,
)
from oci_tools.views.layers.replay import Change, Waste
from oci_tools.views.layers.report import (
    Analysis,
    LayerReport,
    TreeNode,
    analyze,
    change_tree,
    layer_report,
    select_layer,
)

__all__ = [
    "CACHE_VERSION",
    "OPAQUE",
    "WHITEOUT",
    "Analysis",
    "Change",
    "Efficiency",
    "ExtractResult",
    "IndexEntry",
    "LayerCache",
    "LayerIndex",
    "LayerReport",
    "LinkCopy",
    "TreeNode",
    "Waste",
    "WastedFile",
    "analyze",
    "change_tree",
    "efficiency",
    "extract_layer",
    "layer_index",
    "layer_report",
    "read_index",
    "select_layer",
]
