"""``df`` rows for what the layer store and the containers of a layout use.

Docker's ``system df`` has a ``Containers`` row (writable layers; reclaimable:
those of stopped containers); we add it, and a ``Stored layers`` row for the
extracted layer dirs (``.oci-tools/layers``; reclaimable: those ``gc`` frees).
``df -v`` gets a section for each.
"""

from __future__ import annotations

import datetime
import os

from oci_tools.containers import Runtime
from oci_tools.layout import Layout
from oci_tools.snapshots import LayerStore, content_size
from oci_tools.views import Listing


def _pct(part: int, whole: int) -> str:
    return f"{100 * part // whole if whole else 0}%"


def extend_df(
    sections: list[tuple[str, Listing]],
    layout: Layout,
    now: datetime.datetime,
    *,
    verbose: bool = False,
) -> list[tuple[str, Listing]]:
    """``sections`` (``views.df_listings``) with the Containers and Stored
    layers rows added to the summary, and their sections with ``verbose``."""
    from oci_tools import render

    store = LayerStore(layout)
    recs = store.records()
    live = store.live_chain_ids() if recs else set()
    layer_bytes = sum(r.size for r in recs)
    dead = sum(r.size for r in recs if r.chain_id not in live)
    rt = Runtime()
    mine = [c for c in rt.all() if c.layout == os.path.abspath(layout.path)]
    rows = []
    total_rw = idle_rw = running = 0
    for c in mine:
        status = rt.state(c).status
        rw = content_size(c.upper) if os.path.isdir(c.upper) else 0
        total_rw += rw
        if status in ("running", "paused"):
            running += 1
        else:
            idle_rw += rw
        rows.append(
            {
                "ID": c.short_id,
                "Image": c.image,
                "Command": '"' + render.truncate(" ".join(c.args), 20) + '"',
                "Size": render.human_size(rw),
                "RunningFor": render.time_ago(render.parse_time(c.created), now),
                "Status": status,
                "Names": c.name,
            }
        )
    head, summary = sections[0]
    extra = [
        {
            "Type": "Containers",
            "TotalCount": str(len(mine)),
            "Active": str(running),
            "Size": render.human_size(total_rw, 4),
            "Reclaimable": f"{render.human_size(idle_rw, 4)} ({_pct(idle_rw, total_rw)})",
        },
        {
            "Type": "Stored layers",
            "TotalCount": str(len(recs)),
            "Active": str(len(recs) - sum(1 for r in recs if r.chain_id not in live)),
            "Size": render.human_size(layer_bytes, 4),
            "Reclaimable": f"{render.human_size(dead, 4)} ({_pct(dead, layer_bytes)})",
        },
    ]
    out = [(head, Listing(summary.columns, [*summary.rows, *extra])), *sections[1:]]
    if verbose:
        out.append(
            (
                "Containers space usage:",
                Listing(
                    [
                        ("CONTAINER ID", "ID"),
                        ("IMAGE", "Image"),
                        ("COMMAND", "Command"),
                        ("SIZE", "Size"),
                        ("CREATED", "RunningFor"),
                        ("STATUS", "Status"),
                        ("NAMES", "Names"),
                    ],
                    rows,
                ),
            )
        )
        out.append(
            (
                f"Stored layers ({store.root}):",
                Listing(
                    [("CHAIN ID", "ChainID"), ("DIFF ID", "DiffID"), ("SIZE", "Size")],
                    [
                        {
                            "ChainID": render.short_id(r.chain_id),
                            "DiffID": render.short_id(r.diff_id),
                            "Size": render.human_size(r.size),
                            "Path": r.diff,
                            "InUse": str(r.chain_id in live).lower(),
                        }
                        for r in recs
                    ],
                ),
            )
        )
    return out


__all__ = ["extend_df"]
