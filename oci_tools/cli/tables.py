"""Every human table and JSON rendering of the CLI's data, in docker's style.

The views return rows of plain data; this module turns them into text with
:mod:`oci_tools.render` (sizes, times, ids, aligned tables, JSON Lines).  It
computes nothing and reads nothing: callers pass the rows and ``now``.
Names taken from layer tars are untrusted: every one is made printable
(:func:`safe_text`) before it reaches a terminal, and exact but encodable
(:func:`json_text`) in JSON.
"""

from __future__ import annotations

import datetime
import stat
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from oci_tools import render
from oci_tools.records import record

if TYPE_CHECKING:
    from oci_tools.containers.usage import StoreUsage
    from oci_tools.diff import Change as BundleChange
    from oci_tools.spec.model import Descriptor
    from oci_tools.views import BundleStatus, DiskUsage, HistoryRow, ImageRow
    from oci_tools.views.layers import Change, Efficiency, LayerReport, TreeNode


# ------------------------------------------------------------------- listings


@record
class Listing:
    """Rows of strings with named columns: ``columns`` maps each table header
    to the row key it shows; JSON output carries every key of a row."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]  # docker's fields keep docker's strings; ours may be numbers

    def table(self) -> str:
        """docker's table layout."""
        return render.table(
            [h for h, _ in self.columns],
            [[str(r[k]) for _, k in self.columns] for r in self.rows],
        )

    def json(self) -> str:
        """One JSON object per row (docker's ``--format json``)."""
        return render.json_lines(self.rows)


def _when(value: str | None) -> datetime.datetime | None:
    if not value:
        return None
    try:
        return render.parse_time(value)
    except ValueError:
        return None


def _ident(value: str, full: bool) -> str:
    return value if full or value.startswith("<") else render.short_id(value)


# ---------------------------------------------------------------- layout refs


def refs_listing(refs: Iterable[tuple[str, Descriptor]]) -> Listing:
    """``ls``: REF DIGEST MEDIA TYPE (JSON adds the size)."""
    return Listing(
        [("REF", "Ref"), ("DIGEST", "Digest"), ("MEDIA TYPE", "MediaType")],
        [
            {"Ref": n, "Digest": str(d.digest), "MediaType": d.media_type, "Size": d.size}
            for n, d in refs
        ],
    )


# ---------------------------------------------------------- history, images, df


def history_listing(
    rows: list[HistoryRow], *, human: bool, no_trunc: bool, now: datetime.datetime
) -> Listing:
    """``docker history`` columns (``--human=false``: RFC 3339 times, bytes).
    SIZE is Docker's (regular-file bytes); JSON adds the layer's tar and blob
    sizes in bytes as ``UncompressedSize`` and ``CompressedSize``."""
    out = []
    for r in rows:
        ts = _when(r.created)
        out.append(
            {
                "ID": _ident(r.id, no_trunc),
                "CreatedSince": render.time_ago(ts, now),
                "CreatedAt": render.format_rfc3339(ts) if ts else "N/A",
                "CreatedBy": r.created_by if no_trunc else render.truncate(r.created_by, 45),
                "Size": render.human_size(r.size) if human else str(r.size),
                "Comment": r.comment,
                "UncompressedSize": r.uncompressed_size,
                "CompressedSize": r.compressed_size,
            }
        )
    created = ("CREATED", "CreatedSince") if human else ("CREATED AT", "CreatedAt")
    cols = [
        ("IMAGE", "ID"),
        created,
        ("CREATED BY", "CreatedBy"),
        ("SIZE", "Size"),
        ("COMMENT", "Comment"),
    ]
    return Listing(cols, out)


def _image_row(r: ImageRow, now: datetime.datetime, no_trunc: bool) -> dict[str, Any]:
    return {
        "Ref": r.ref,
        "Digest": r.digest,
        "ID": _ident(r.id, no_trunc),
        "CreatedAt": r.created or "",
        "CreatedSince": render.time_ago(_when(r.created), now),
        "Size": render.human_size(r.size),
        "SharedSize": render.human_size(r.shared, 4),
        "UniqueSize": render.human_size(r.unique, 4),
        "Layers": r.layers,
        "UncompressedSize": r.uncompressed_size,
        "CompressedSize": r.compressed_size,
    }


_IMAGE_COLUMNS = [
    ("IMAGE ID", "ID"),
    ("CREATED", "CreatedSince"),
    ("SIZE", "Size"),
    ("SHARED SIZE", "SharedSize"),
    ("UNIQUE SIZE", "UniqueSize"),
]


def images_listing(
    rows: list[ImageRow], *, digests: bool, no_trunc: bool, now: datetime.datetime
) -> Listing:
    """``images``: REF [DIGEST] IMAGE ID CREATED SIZE SHARED SIZE UNIQUE SIZE.

    IMAGE ID is the config digest and DIGEST the manifest digest (as classic
    ``docker images``); sizes are Docker's (regular-file bytes), JSON adds the
    tar and blob totals in bytes (``UncompressedSize``, ``CompressedSize``)."""
    cols = [("REF", "Ref")] + ([("DIGEST", "Digest")] if digests else []) + _IMAGE_COLUMNS
    return Listing(cols, [_image_row(r, now, no_trunc) for r in rows])


def df_listings(
    du: DiskUsage, now: datetime.datetime, *, verbose: bool = False
) -> list[tuple[str, Listing]]:
    """``df`` summary, then (with -v data) per-image and per-layer sections,
    each with its title ("" for the summary).  SIZE is Docker's (regular-file
    bytes of the distinct layers); RECLAIMABLE is what ``gc`` frees on disk
    (README: differences from Docker); JSON adds the on-disk bytes as
    ``CompressedSize``."""
    human_size = render.human_size
    pct = (100 * du.reclaimable // du.total_bytes) if du.total_bytes else 0
    summary = Listing(
        [
            ("TYPE", "Type"),
            ("TOTAL", "TotalCount"),
            ("ACTIVE", "Active"),
            ("SIZE", "Size"),
            ("RECLAIMABLE", "Reclaimable"),
        ],
        [
            {
                "Type": "Images",
                "TotalCount": str(du.images),
                "Active": str(du.active_images),
                "Size": human_size(du.content_bytes, 4),
                "Reclaimable": f"{human_size(du.reclaimable, 4)} ({pct}%)",
                "CompressedSize": du.image_bytes,
            },
            {
                "Type": "Layers",
                "TotalCount": str(du.layers),
                "Active": str(du.layers),
                "Size": human_size(du.content_bytes, 4),
                "Reclaimable": "0B (0%)",
                "CompressedSize": du.layer_bytes,
            },
        ],
    )
    out = [("", summary)]
    if verbose:
        images = Listing(
            [("REF", "Ref"), *_IMAGE_COLUMNS], [_image_row(r, now, False) for r in du.image_rows]
        )
        layers = Listing(
            [
                ("LAYER", "Layer"),
                ("SIZE", "Size"),
                ("COMPRESSED", "Compressed"),
                ("UNCOMPRESSED", "Uncompressed"),
                ("IMAGES", "Images"),
            ],
            [
                {
                    "Layer": render.short_id(u.digest),
                    "Digest": u.digest,
                    "Size": human_size(u.content),
                    "Compressed": human_size(u.size),
                    "Uncompressed": human_size(u.uncompressed),
                    "Images": u.images,
                    "CompressedSize": u.size,
                    "UncompressedSize": u.uncompressed,
                }
                for u in du.layer_uses
            ],
        )
        out += [("Images space usage:", images), ("Layers space usage:", layers)]
    return out


def df_text(sections: list[tuple[str, Listing]], fmt: str) -> str:
    """``df`` output: the sections as JSON Lines, or tables under their titles."""
    if fmt == "json":
        return "".join(listing.json() for _, listing in sections)
    return "".join(
        (f"\n{title}\n\n" if title else "") + listing.table() for title, listing in sections
    )


# ------------------------------------------------------------ bundles: diff, status


def changes_text(changes: Iterable[BundleChange], fmt: str) -> str:
    """``diff``: ``KIND PATH`` lines, or one JSON object per change."""
    if fmt == "json":
        return render.json_lines([{"Kind": ch.kind, "Path": ch.path} for ch in changes])
    return "".join(f"{ch.kind} {ch.path}\n" for ch in changes)


def _status_size(r: BundleStatus) -> str:
    return f"{render.human_size(r.rw)} (virtual {render.human_size(r.virtual)})"


def status_text(
    rows: Sequence[BundleStatus], fmt: str, *, no_trunc: bool, now: datetime.datetime
) -> str:
    """``status``: BUNDLE IMAGE COMMAND CREATED SIZE (docker ps -s), or JSON."""
    if fmt == "json":
        return render.json_lines(
            [
                {
                    "Bundle": r.bundle,
                    "Image": r.image,
                    "ImageID": r.image_id,
                    "Command": r.command,
                    "Size": _status_size(r),
                    "SizeRw": r.rw,
                    "SizeRootFs": r.virtual,
                }
                for r in rows
            ]
        )
    table = [
        [
            r.bundle,
            r.image,
            r.command if no_trunc else render.truncate(r.command, 20),
            render.time_ago(r.created, now),
            _status_size(r),
        ]
        for r in rows
    ]
    return render.table(["BUNDLE", "IMAGE", "COMMAND", "CREATED", "SIZE"], table)


# ----------------------------------------------------------------- layer views

_IFMT = {
    "reg": stat.S_IFREG,
    "hardlink": stat.S_IFREG,
    "symlink": stat.S_IFLNK,
    "char": stat.S_IFCHR,
    "block": stat.S_IFBLK,
    "dir": stat.S_IFDIR,
    "fifo": stat.S_IFIFO,
}
_TYPE_WORD = {"reg": "file"}
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def safe_text(text: str) -> str:
    """``text`` made safe for a terminal or a table cell: undecodable bytes
    (kept as surrogates) become ``\\xNN``, control characters ``\\n``,
    ``\\t``, ``\\x1b`` and so on."""
    raw = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if raw.isprintable():
        return raw
    return "".join(
        c
        if c.isprintable()
        else _ESCAPES.get(c, f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}")
        for c in raw
    )


def json_text(text: str) -> str:
    """``text`` for JSON output: exact, except that undecodable bytes (kept as
    surrogates, which UTF-8 cannot encode) become ``\\xNN``.  JSON escapes
    control characters itself."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _type(kind: str) -> str:
    return _TYPE_WORD.get(kind, kind)


def _mode(kind: str, mode: int) -> str:
    return stat.filemode(_IFMT.get(kind, 0) | mode)


def _layer_json(r: LayerReport, diff_id: str) -> dict[str, Any]:
    return {
        "Index": r.index,
        "Digest": str(r.descriptor.digest),
        "DiffID": diff_id,
        "CreatedBy": r.created_by,
        "Size": render.human_size(r.content_size),
        "SizeBytes": r.content_size,
        "CompressedSize": render.human_size(r.descriptor.size),
        "CompressedSizeBytes": r.descriptor.size,
        "UncompressedSize": render.human_size(r.uncompressed_size),
        "UncompressedSizeBytes": r.uncompressed_size,
        "Added": r.count("A"),
        "Changed": r.count("C"),
        "Removed": r.count("D"),
        "MediaType": r.descriptor.media_type,
    }


def _layer_row(r: LayerReport, no_trunc: bool) -> list[str]:
    digest = str(r.descriptor.digest)
    by = safe_text(r.created_by)
    return [
        str(r.index),
        digest if no_trunc else render.short_id(digest),
        by if no_trunc else render.truncate(by, 45),
        render.human_size(r.content_size),
        render.human_size(r.descriptor.size),
        render.human_size(r.uncompressed_size),
        str(r.count("A")),
        str(r.count("C")),
        str(r.count("D")),
        r.descriptor.media_type,
    ]


_LAYERS_HEAD = [
    "INDEX",
    "LAYER",
    "CREATED BY",
    "SIZE",
    "COMPRESSED",
    "UNCOMPRESSED",
    "ADDED",
    "CHANGED",
    "REMOVED",
    "MEDIA TYPE",
]


def layers_text(
    reports: Sequence[LayerReport], diff_ids: Sequence[object], fmt: str, *, no_trunc: bool
) -> str:
    """``layers``: one row per layer, bottom first (JSON adds the diff_id).
    SIZE is Docker's (regular-file bytes); COMPRESSED the blob, UNCOMPRESSED
    the tar stream."""
    if fmt == "json":
        return render.json_lines([_layer_json(r, str(diff_ids[r.index])) for r in reports])
    return render.table(_LAYERS_HEAD, [_layer_row(r, no_trunc) for r in reports])


def _change_json(ch: Change) -> dict[str, Any]:
    return {
        "Change": ch.change,
        "Type": _type(ch.type),
        "Mode": f"{ch.mode:04o}",
        "Owner": f"{ch.uid}:{ch.gid}",
        "Uid": ch.uid,
        "Gid": ch.gid,
        "Size": render.human_size(ch.size),
        "SizeBytes": ch.size,
        "Path": json_text(ch.path),
        "Target": json_text(ch.target),
    }


def _change_row(ch: Change) -> list[str]:
    return [
        ch.change,
        _type(ch.type),
        _mode(ch.type, ch.mode),
        f"{ch.uid}:{ch.gid}",
        render.human_size(ch.size),
        safe_text(ch.path),
        safe_text(ch.target),
    ]


def layer_changes_text(changes: Sequence[Change], fmt: str) -> str:
    """``layer show``: one row per entry with its A/C/D marker."""
    if fmt == "json":
        return render.json_lines([_change_json(ch) for ch in changes])
    head = ["CHANGE", "TYPE", "MODE", "OWNER", "SIZE", "PATH", "TARGET"]
    return render.table(head, [_change_row(ch) for ch in changes])


def _tree_name(node: TreeNode) -> str:
    ch = node.change
    name = safe_text(node.name)
    if ch is not None and ch.change != "D" and ch.target:
        arrow = "=>" if ch.type == "hardlink" else "->"
        name += f" {arrow} {safe_text(ch.target)}"
    return name


def tree_lines(root: TreeNode) -> list[list[str]]:
    """Table rows of a change tree, drawn with box characters."""

    def row(node: TreeNode, drawn: str) -> list[str]:
        ch = node.change
        if ch is None:
            return ["", "", "", render.human_size(node.size), drawn]
        return [
            ch.change,
            _mode(ch.type, ch.mode),
            f"{ch.uid}:{ch.gid}",
            render.human_size(node.size),
            drawn,
        ]

    rows = [row(root, "/")]
    stack: list[tuple[TreeNode, str, bool]] = [
        (c, "", i == len(root.children) - 1) for i, c in enumerate(root.children)
    ][::-1]
    while stack:
        node, indent, last = stack.pop()
        rows.append(row(node, indent + ("└── " if last else "├── ") + _tree_name(node)))
        inner = indent + ("    " if last else "│   ")
        kids = node.children
        stack.extend((c, inner, i == len(kids) - 1) for i, c in reversed(list(enumerate(kids))))
    return rows


def tree_json(node: TreeNode) -> dict[str, Any]:
    """The JSON form of a change tree (one nested object)."""
    ch = node.change
    out: dict[str, Any] = (
        _change_json(ch)
        if ch is not None
        else {
            "Change": "",
            "Type": "dir",
            "Mode": "",
            "Owner": "",
            "Uid": "",
            "Gid": "",
            "Target": "",
        }
    )
    out.update(
        Name=json_text(node.name),
        Path=json_text(node.path),
        Size=render.human_size(node.size),
        SizeBytes=node.size,
        Children=[tree_json(c) for c in node.children],
    )
    return out


def tree_text(root: TreeNode, fmt: str) -> str:
    """``layer show --tree``: the change tree as a table, or one JSON object."""
    if fmt == "json":
        return render.json_lines([tree_json(root)])
    return render.table(["CHANGE", "MODE", "OWNER", "SIZE", "PATH"], tree_lines(root))


def efficiency_text(e: Efficiency, top: int) -> str:
    """The human report of ``efficiency``: summary lines, then the table of
    the largest wasted files (``top`` rows; 0 for all)."""
    human_size = render.human_size
    files = e.files if top <= 0 else e.files[:top]
    head = (
        f"Efficiency:   {e.score * 100:.2f}%\n"
        f"Wasted:       {human_size(e.wasted_bytes)} ({e.wasted_bytes} bytes)\n"
        f"Total:        {human_size(e.total_bytes)} ({e.total_bytes} bytes of files "
        f"in {e.layers} layer{'s' if e.layers != 1 else ''})\n"
        f"User wasted:  {e.user_wasted * 100:.2f}% (of {human_size(e.user_bytes)} "
        "added above the first layer)\n\n"
    )
    rows = [
        [str(f.count), human_size(f.size), ",".join(map(str, f.layers)), safe_text(f.path)]
        for f in files
    ]
    return head + render.table(["COUNT", "WASTED", "LAYERS", "PATH"], rows)


def efficiency_json(e: Efficiency, top: int) -> dict[str, Any]:
    """The JSON form of ``efficiency`` (one object)."""
    human_size = render.human_size
    files = e.files if top <= 0 else e.files[:top]
    return {
        # Full precision: a .dive-ci threshold compares the exact value.
        "Efficiency": e.score,
        "Wasted": human_size(e.wasted_bytes),
        "WastedBytes": e.wasted_bytes,
        "Total": human_size(e.total_bytes),
        "TotalBytes": e.total_bytes,
        "Layers": e.layers,
        "UserWasted": e.user_wasted,
        "UserBytes": e.user_bytes,
        "Files": [
            {
                "Path": json_text(f.path),
                "Count": f.count,
                "Wasted": human_size(f.size),
                "WastedBytes": f.size,
                "Layers": list(f.layers),
            }
            for f in files
        ],
    }


def efficiency_report(e: Efficiency, fmt: str, *, top: int) -> str:
    """``efficiency``: the human report, or one JSON object."""
    if fmt == "json":
        return render.json_lines([efficiency_json(e, top)])
    return efficiency_text(e, top)


def index_listing(manifests: Iterable[Descriptor]) -> Listing:
    """``index inspect``: DIGEST PLATFORM OS VERSION SIZE MEDIA TYPE, one row
    per entry of an index (JSON adds os.features and annotations)."""
    import json

    rows = []
    for d in manifests:
        p = d.platform
        rows.append(
            {
                "Digest": str(d.digest),
                "Platform": str(p) if p else "-",
                "OSVersion": (p.os_version if p else "") or "-",
                "OSFeatures": ",".join(p.os_features) if p else "",
                "Size": str(d.size),
                "MediaType": d.media_type,
                "Annotations": json.dumps(dict(d.annotations), sort_keys=True),
            }
        )
    return Listing(
        [
            ("DIGEST", "Digest"),
            ("PLATFORM", "Platform"),
            ("OS VERSION", "OSVersion"),
            ("SIZE", "Size"),
            ("MEDIA TYPE", "MediaType"),
        ],
        rows,
    )


def referrers_listing(manifests: Iterable[Descriptor]) -> Listing:
    """``referrers``: DIGEST ARTIFACT TYPE SIZE, one row per referrer (JSON
    adds media type and annotations)."""
    import json

    rows = [
        {
            "Digest": str(d.digest),
            "ArtifactType": d.artifact_type or "-",
            "Size": str(d.size),
            "MediaType": d.media_type,
            "Annotations": json.dumps(dict(d.annotations), sort_keys=True),
        }
        for d in manifests
    ]
    return Listing(
        [("DIGEST", "Digest"), ("ARTIFACT TYPE", "ArtifactType"), ("SIZE", "Size")], rows
    )


__all__ = [
    "Listing",
    "changes_text",
    "df_listings",
    "df_text",
    "efficiency_json",
    "efficiency_report",
    "efficiency_text",
    "history_listing",
    "images_listing",
    "index_listing",
    "json_text",
    "layer_changes_text",
    "layers_text",
    "referrers_listing",
    "refs_listing",
    "safe_text",
    "status_text",
    "tree_json",
    "tree_lines",
    "tree_text",
]


# ------------------------------------------------------------ df: containers, stored layers


def df_containers(
    sections: list[tuple[str, Listing]],
    usage: StoreUsage,
    now: datetime.datetime,
    *,
    verbose: bool = False,
) -> list[tuple[str, Listing]]:
    """``sections`` (``df_listings``) with the Containers and Stored layers
    rows added to the summary, and (``verbose``) a section for each."""
    hs = render.human_size

    def pct(part: int, whole: int) -> str:
        return f"{100 * part // whole if whole else 0}%"

    rw, idle = usage.rw_bytes, usage.idle_rw_bytes
    total, unused = usage.layer_bytes, usage.unused_layer_bytes
    extra = [
        {
            "Type": "Containers",
            "TotalCount": str(len(usage.containers)),
            "Active": str(usage.running),
            "Size": hs(rw, 4),
            "Reclaimable": f"{hs(idle, 4)} ({pct(idle, rw)})",
        },
        {
            "Type": "Stored layers",
            "TotalCount": str(len(usage.layers)),
            "Active": str(sum(1 for _, live in usage.layers if live)),
            "Size": hs(total, 4),
            "Reclaimable": f"{hs(unused, 4)} ({pct(unused, total)})",
        },
    ]
    head, summary = sections[0]
    out = [(head, Listing(summary.columns, [*summary.rows, *extra])), *sections[1:]]
    if not verbose:
        return out
    containers = Listing(
        [
            ("CONTAINER ID", "ID"),
            ("IMAGE", "Image"),
            ("COMMAND", "Command"),
            ("SIZE", "Size"),
            ("CREATED", "RunningFor"),
            ("STATUS", "Status"),
            ("NAMES", "Names"),
        ],
        [
            {
                "ID": c.id[:12],
                "Image": c.image,
                "Command": '"' + render.truncate(c.command, 20) + '"',
                "Size": hs(c.rw),
                "SizeRw": c.rw,
                "RunningFor": render.time_ago(_when(c.created), now),
                "Status": c.status,
                "Names": c.name,
            }
            for c in usage.containers
        ],
    )
    layers = Listing(
        [("CHAIN ID", "ChainID"), ("DIFF ID", "DiffID"), ("SIZE", "Size")],
        [
            {
                "ChainID": render.short_id(r.chain_id),
                "DiffID": render.short_id(r.diff_id),
                "Size": hs(r.size),
                "Path": r.diff,
                "InUse": "true" if live else "false",
            }
            for r, live in usage.layers
        ],
    )
    out += [
        ("Containers space usage:", containers),
        (f"Stored layers ({usage.store_dir}):", layers),
    ]
    return out
