"""CLI wiring for the layers commands (argparse only; logic lives below L7).

``layers``, ``layer show``, ``layer extract`` and ``efficiency``: handlers
parse arguments, call one function of ``oci_tools.views.layers`` and format its rows
with ``render`` (docker's table, size and JSON conventions).  Names taken from
layer tars are untrusted: every one is made printable before it reaches a
terminal (control characters and undecodable bytes are shown escaped).
"""

from __future__ import annotations

import argparse
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oci_tools.cli.app import Console
    from oci_tools.image import Image
    from oci_tools.views.layers import Change, Efficiency, LayerReport, TreeNode

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


# ------------------------------------------------------------------ formatting


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


def _change_json(ch: Change) -> dict[str, str]:
    from oci_tools import render

    return {
        "Change": ch.change,
        "Type": _type(ch.type),
        "Mode": f"{ch.mode:04o}",
        "Owner": f"{ch.uid}:{ch.gid}",
        "Uid": str(ch.uid),
        "Gid": str(ch.gid),
        "Size": render.human_size(ch.size),
        "SizeBytes": str(ch.size),
        "Path": json_text(ch.path),
        "Target": json_text(ch.target),
    }


def _change_row(ch: Change) -> list[str]:
    from oci_tools import render

    return [
        ch.change,
        _type(ch.type),
        _mode(ch.type, ch.mode),
        f"{ch.uid}:{ch.gid}",
        render.human_size(ch.size),
        safe_text(ch.path),
        safe_text(ch.target),
    ]


def _tree_name(node: TreeNode) -> str:
    ch = node.change
    name = safe_text(node.name)
    if ch is not None and ch.change != "D" and ch.target:
        arrow = "=>" if ch.type == "hardlink" else "->"
        name += f" {arrow} {safe_text(ch.target)}"
    return name


def tree_lines(root: TreeNode) -> list[list[str]]:
    """Table rows of a change tree, drawn with box characters."""
    from oci_tools import render

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
    from oci_tools import render

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
        SizeBytes=str(node.size),
        Children=[tree_json(c) for c in node.children],
    )
    return out


def _layer_json(r: LayerReport, diff_id: str) -> dict[str, str]:
    from oci_tools import render

    return {
        "Index": str(r.index),
        "Digest": str(r.descriptor.digest),
        "DiffID": diff_id,
        "CreatedBy": r.created_by,
        "Size": render.human_size(r.descriptor.size),
        "SizeBytes": str(r.descriptor.size),
        "UncompressedSize": render.human_size(r.uncompressed_size),
        "UncompressedSizeBytes": str(r.uncompressed_size),
        "Added": str(r.count("A")),
        "Changed": str(r.count("C")),
        "Removed": str(r.count("D")),
        "MediaType": r.descriptor.media_type,
    }


def _layer_row(r: LayerReport, no_trunc: bool) -> list[str]:
    from oci_tools import render

    digest = str(r.descriptor.digest)
    by = safe_text(r.created_by)
    return [
        str(r.index),
        digest if no_trunc else render.short_id(digest),
        by if no_trunc else render.truncate(by, 45),
        render.human_size(r.descriptor.size),
        render.human_size(r.uncompressed_size),
        str(r.count("A")),
        str(r.count("C")),
        str(r.count("D")),
        r.descriptor.media_type,
    ]


def efficiency_text(e: Efficiency, top: int) -> str:
    """The human report of ``efficiency``: summary lines, then the table of
    the largest wasted files (``top`` rows; 0 for all)."""
    from oci_tools import render

    files = e.files if top <= 0 else e.files[:top]
    head = (
        f"Efficiency:   {e.score * 100:.2f}%\n"
        f"Wasted:       {render.human_size(e.wasted_bytes)} ({e.wasted_bytes} bytes)\n"
        f"Total:        {render.human_size(e.total_bytes)} ({e.total_bytes} bytes of files "
        f"in {e.layers} layer{'s' if e.layers != 1 else ''})\n"
        f"User wasted:  {e.user_wasted * 100:.2f}% (of {render.human_size(e.user_bytes)} "
        "added above the first layer)\n\n"
    )
    rows = [
        [str(f.count), render.human_size(f.size), ",".join(map(str, f.layers)), safe_text(f.path)]
        for f in files
    ]
    return head + render.table(["COUNT", "WASTED", "LAYERS", "PATH"], rows)


def efficiency_json(e: Efficiency, top: int) -> dict[str, Any]:
    """The JSON form of ``efficiency`` (one object)."""
    from oci_tools import render

    files = e.files if top <= 0 else e.files[:top]
    return {
        "Efficiency": f"{e.score:.4f}",
        "Wasted": render.human_size(e.wasted_bytes),
        "WastedBytes": str(e.wasted_bytes),
        "Total": render.human_size(e.total_bytes),
        "TotalBytes": str(e.total_bytes),
        "Layers": str(e.layers),
        "UserWasted": f"{e.user_wasted:.4f}",
        "UserBytes": str(e.user_bytes),
        "Files": [
            {
                "Path": json_text(f.path),
                "Count": str(f.count),
                "Wasted": render.human_size(f.size),
                "WastedBytes": str(f.size),
                "Layers": ",".join(map(str, f.layers)),
            }
            for f in files
        ],
    }


def _fraction(text: str) -> float:
    """``0.9`` or ``90%`` -> 0.9 (argparse type)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in 0..1 (or 0%..100%)")
    return value


# ---------------------------------------------------------------------- handlers


def _load(a: argparse.Namespace) -> Image:
    from oci_tools.cli.app import image_arg
    from oci_tools.image import Image

    lay, ref, plat = image_arg(a.image, a.platform)
    return Image.load(lay, ref, plat)


def cmd_layers(a: argparse.Namespace, c: Console) -> int:
    """``layers``: one row per layer, bottom first."""
    from oci_tools import render
    from oci_tools.views.layers import analyze

    img = _load(a)
    reports = analyze(img).layers
    if a.format == "json":
        diff_ids = img.config.diff_ids
        c.out.write(render.json_lines([_layer_json(r, str(diff_ids[r.index])) for r in reports]))
        return 0
    head = [
        "INDEX",
        "LAYER",
        "CREATED BY",
        "SIZE",
        "UNCOMPRESSED",
        "ADDED",
        "CHANGED",
        "REMOVED",
        "MEDIA TYPE",
    ]
    c.out.write(render.table(head, [_layer_row(r, a.no_trunc) for r in reports]))
    return 0


def cmd_layer_show(a: argparse.Namespace, c: Console) -> int:
    """``layer show``: the entries of one layer with A/C/D markers."""
    from oci_tools import render
    from oci_tools.views.layers import change_tree, layer_report, select_layer

    img = _load(a)
    report = layer_report(img, select_layer(img, a.layer))
    if a.tree:
        root = change_tree(report.changes)
        if a.format == "json":
            c.out.write(render.json_lines([tree_json(root)]))
        else:
            c.out.write(render.table(["CHANGE", "MODE", "OWNER", "SIZE", "PATH"], tree_lines(root)))
    elif a.format == "json":
        c.out.write(render.json_lines([_change_json(ch) for ch in report.changes]))
    else:
        head = ["CHANGE", "TYPE", "MODE", "OWNER", "SIZE", "PATH", "TARGET"]
        c.out.write(render.table(head, [_change_row(ch) for ch in report.changes]))
    return 0


def cmd_layer_extract(a: argparse.Namespace, c: Console) -> int:
    """``layer extract``: one layer's own files into a directory."""
    from oci_tools.views.layers import extract_layer, select_layer

    img = _load(a)
    i = select_layer(img, a.layer)
    res = extract_layer(img, i, a.dir, rootless=True if a.rootless else None)
    for s in res.skipped:
        c.note(f"warning: not applied: {safe_text(s)}")
    for cp in res.copies:
        c.note(
            f"copied /{safe_text(cp.path)}: a hardlink to /{safe_text(cp.target)} of layer "
            f"{cp.layer}"
        )
    for w in res.whiteouts:
        c.print(f"{w.kind} /{safe_text(w.path)}")
    n = len(res.whiteouts)
    c.note(
        f"extracted layer {i} ({res.entries} entries) into {a.dir}"
        + (f"; {n} whiteout{'s' if n != 1 else ''} not applied (listed on stdout)" if n else "")
    )
    return 0


def cmd_efficiency(a: argparse.Namespace, c: Console) -> int:
    """``efficiency``: wasted bytes and score; CI gates like dive's rules."""
    from oci_tools import render
    from oci_tools.views.layers import efficiency

    e = efficiency(_load(a))
    if a.format == "json":
        c.out.write(render.json_lines([efficiency_json(e, a.top)]))
    else:
        c.out.write(efficiency_text(e, a.top))
    # dive's CI rules: every given gate is checked and reported; any failure
    # makes the exit status 1.
    gates: list[tuple[bool, str]] = []
    if a.lowest_efficiency is not None:
        gates.append(
            (
                e.score >= a.lowest_efficiency,
                f"efficiency {e.score:.4f} ({e.wasted_bytes} of {e.total_bytes} bytes wasted), "
                f"--lowest-efficiency {a.lowest_efficiency:g}",
            )
        )
    if a.highest_wasted_bytes is not None:
        gates.append(
            (
                e.wasted_bytes <= a.highest_wasted_bytes,
                f"wasted {e.wasted_bytes} bytes, --highest-wasted-bytes {a.highest_wasted_bytes}",
            )
        )
    if a.highest_user_wasted is not None:
        gates.append(
            (
                e.user_wasted <= a.highest_user_wasted,
                f"user wasted {e.user_wasted:.4f} ({e.wasted_bytes} bytes wasted, {e.user_bytes} "
                f"added above the first layer), --highest-user-wasted {a.highest_user_wasted:g}",
            )
        )
    for passed, text in gates:
        c.note(f"{'PASS' if passed else 'FAIL'}: {text}")
    return 0 if all(passed for passed, _ in gates) else 1


def _size(text: str) -> int:
    """``20MB``, ``1GiB``, ``512`` -> bytes (argparse type)."""
    from oci_tools import render

    try:
        return render.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ---------------------------------------------------------------------- parser


def _common(p: argparse.ArgumentParser, *, fmt: bool = True) -> None:
    p.add_argument("image", metavar="LAYOUT:REF")
    if fmt:
        p.add_argument("--format", choices=["table", "json"], default="table")
    p.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="pick this platform when the ref is a multi-platform index",
    )


_LAYER_ARG = "layer number (0 = bottom, -1 = top) or layer digest (or a unique prefix)"


def register(add: Callable[..., Any]) -> None:
    """Add this group's subcommands; ``add(name, handler, help, aliases=())``
    returns the subparser, and handlers are called as ``handler(ns, console)``
    (see ``oci_tools.cli.Console``: ``print``, ``note``, ``out``, ``err``)."""
    sp = add(
        "layers",
        cmd_layers,
        "list an image's layers, bottom first, with what each adds, changes and removes",
    )
    _common(sp)
    sp.add_argument("--no-trunc", action="store_true", help="full digests and CREATED BY")

    sp = add("layer", None, "show or extract one layer of an image")
    sub = sp.add_subparsers(dest="layer_command", metavar="SUBCOMMAND", parser_class=type(sp))
    sub.required = True
    p = sub.add_parser(
        "show",
        help="list one layer's entries: A added, C changed, D removed (whiteouts, and what "
        "opaque markers hide)",
        description="List one layer's entries relative to the layers below it: A added, "
        "C changed (a lower layer had the path), D removed. Paths are where entries land: a "
        "name through a symlink is followed inside the rootfs. With --tree, directory sizes are "
        "the bytes this layer adds below them; a D row shows the bytes it hides. "
        "'->' marks a symlink target, '=>' a hardlink's.",
    )
    p.set_defaults(handler=cmd_layer_show)
    _common(p)
    p.add_argument("layer", metavar="N|DIGEST", help=_LAYER_ARG)
    p.add_argument("--tree", action="store_true", help="print the entries as a tree")

    p = sub.add_parser(
        "extract",
        help="write one layer's own files into DIR (whiteouts listed, not applied)",
        description="Write one layer's own files into DIR (new or empty), with the same "
        "safety checks as unpack. Whiteouts are not applied: they are printed on stdout "
        "('whiteout PATH', 'opaque DIR'). A hardlink to a lower layer's file is written as a "
        "copy of that file. After an error nothing is left behind.",
    )
    p.set_defaults(handler=cmd_layer_extract)
    _common(p, fmt=False)
    p.add_argument("layer", metavar="N|DIGEST", help=_LAYER_ARG)
    p.add_argument("dir", metavar="DIR")
    p.add_argument(
        "--rootless",
        action="store_true",
        help="do not apply owners or create devices (default when not root)",
    )

    sp = add(
        "efficiency",
        cmd_efficiency,
        "bytes that later layers overwrite or delete, and an efficiency score",
    )
    _common(sp)
    sp.add_argument(
        "--lowest-efficiency",
        type=_fraction,
        metavar="X",
        help="exit 1 when the score (1 - wasted/total) is below X (0..1 or N%%)",
    )
    sp.add_argument(
        "--highest-wasted-bytes",
        type=_size,
        metavar="SIZE",
        help="exit 1 when more than SIZE bytes are wasted (512, 20MB, 1GiB)",
    )
    sp.add_argument(
        "--highest-user-wasted",
        type=_fraction,
        metavar="X",
        help="exit 1 when wasted bytes exceed X (0..1 or N%%) of the file bytes "
        "the layers above the first add",
    )
    sp.add_argument(
        "-n",
        "--top",
        type=int,
        default=10,
        metavar="N",
        help="list the N largest wasted files (default 10; 0 for all)",
    )
