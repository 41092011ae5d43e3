"""What the layer store and the containers of a layout use (``df`` data rows).

Docker's ``system df`` has a ``Containers`` row (writable layers; reclaimable:
those of stopped containers); ``df`` adds it, and a ``Stored layers`` row for
the extracted layer dirs (``.oci-tools/layers``; reclaimable: those ``gc``
frees).  Presentation lives in the CLI (``cli.tables.df_containers``).
"""

from __future__ import annotations

import os

from oci_tools.containers import Runtime
from oci_tools.layout import Layout
from oci_tools.records import record
from oci_tools.snapshots import LayerRecord, LayerStore, content_size


@record
class ContainerUse:
    """One container of the layout and its writable layer's size."""

    id: str
    name: str
    image: str
    command: str
    created: str
    status: str  # running | paused | exited | created
    rw: int


@record
class StoreUsage:
    """The layout's containers and stored layers."""

    containers: list[ContainerUse]
    layers: list[tuple[LayerRecord, bool]]  # (record, needed by a live image)
    store_dir: str

    @property
    def running(self) -> int:
        return sum(1 for c in self.containers if c.status in ("running", "paused"))

    @property
    def rw_bytes(self) -> int:
        return sum(c.rw for c in self.containers)

    @property
    def idle_rw_bytes(self) -> int:
        return sum(c.rw for c in self.containers if c.status not in ("running", "paused"))

    @property
    def layer_bytes(self) -> int:
        return sum(r.size for r, _ in self.layers)

    @property
    def unused_layer_bytes(self) -> int:
        return sum(r.size for r, live in self.layers if not live)


def store_usage(layout: Layout, runtime: Runtime | None = None) -> StoreUsage:
    """Containers (of the state directory) whose image is in ``layout``, and
    the layout's stored layers."""
    store = LayerStore(layout)
    recs = store.records()
    live = store.live_chain_ids() if recs else set()
    rt = runtime or Runtime()
    here = os.path.abspath(layout.path)
    uses = []
    for c in rt.all():
        if c.layout != here:
            continue
        uses.append(
            ContainerUse(
                c.id,
                c.name,
                c.image,
                " ".join(c.args),
                c.created,
                rt.state(c).status,
                content_size(c.upper) if os.path.isdir(c.upper) else 0,
            )
        )
    return StoreUsage(uses, [(r, r.chain_id in live) for r in recs], store.root)


__all__ = ["ContainerUse", "StoreUsage", "store_usage"]
