"""Layer commands: ``layers``, ``layer show``, ``layer extract``, ``efficiency``.

Handlers call one function of :mod:`oci_tools.views.layers` and print its
rows through :mod:`oci_tools.cli.tables` (names from layer tars are made
printable there, and here in the notes of ``layer extract``).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from oci_tools.cli._common import Add, Console, add_format, add_image, add_platform, image_arg

if TYPE_CHECKING:
    from oci_tools.image import Image
    from oci_tools.views.layers import Efficiency


def _load(a: argparse.Namespace) -> Image:
    from oci_tools.image import Image

    lay, ref, plat = image_arg(a.image, a.platform)
    return Image.load(lay, ref, plat)


def cmd_layers(a: argparse.Namespace, c: Console) -> int:
    """``layers``: one row per layer, bottom first."""
    from oci_tools.cli import tables
    from oci_tools.views.layers import analyze

    img = _load(a)
    reports = analyze(img).layers
    c.out.write(tables.layers_text(reports, img.config.diff_ids, a.format, no_trunc=a.no_trunc))
    return 0


def cmd_layer_show(a: argparse.Namespace, c: Console) -> int:
    """``layer show``: the entries of one layer with A/C/D markers."""
    from oci_tools.cli import tables
    from oci_tools.views.layers import change_tree, layer_report, select_layer

    img = _load(a)
    report = layer_report(img, select_layer(img, a.layer))
    if a.tree:
        c.out.write(tables.tree_text(change_tree(report.changes), a.format))
    else:
        c.out.write(tables.layer_changes_text(report.changes, a.format))
    return 0


def cmd_layer_extract(a: argparse.Namespace, c: Console) -> int:
    """``layer extract``: one layer's own files into a directory."""
    from oci_tools.cli import tables
    from oci_tools.views.layers import extract_layer, select_layer

    safe = tables.safe_text
    img = _load(a)
    i = select_layer(img, a.layer)
    res = extract_layer(img, i, a.dir, rootless=True if a.rootless else None)
    for s in res.skipped:
        c.note(f"warning: not applied: {safe(s)}")
    for cp in res.copies:
        c.note(f"copied /{safe(cp.path)}: a hardlink to /{safe(cp.target)} of layer {cp.layer}")
    for w in res.whiteouts:
        c.print(f"{w.kind} /{safe(w.path)}")
    n = len(res.whiteouts)
    c.note(
        f"extracted layer {i} ({res.entries} entries) into {a.dir}"
        + (f"; {n} whiteout{'s' if n != 1 else ''} not applied (listed on stdout)" if n else "")
    )
    return 0


def _gates(a: argparse.Namespace, e: Efficiency) -> list[tuple[bool, str]]:
    """dive's CI rules: (passed, report line) for every gate the flags give."""
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
    return gates


def cmd_efficiency(a: argparse.Namespace, c: Console) -> int:
    """``efficiency``: wasted bytes and score; every gate given is checked and
    reported, and any failure makes the exit status 1."""
    from oci_tools.cli import tables
    from oci_tools.views.layers import efficiency

    e = efficiency(_load(a))
    c.out.write(tables.efficiency_report(e, a.format, top=a.top))
    gates = _gates(a, e)
    for passed, text in gates:
        c.note(f"{'PASS' if passed else 'FAIL'}: {text}")
    return 0 if all(passed for passed, _ in gates) else 1


def _fraction(text: str) -> float:
    """``0.9`` or ``90%`` -> 0.9 (argparse type)."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction in 0..1 (or 0%..100%)")
    return value


def _size(text: str) -> int:
    """``20MB``, ``1GiB``, ``512`` -> bytes (argparse type)."""
    from oci_tools import render

    try:
        return render.parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _image_args(p: argparse.ArgumentParser, *, fmt: bool = True) -> None:
    add_image(p)
    if fmt:
        add_format(p)
    add_platform(p)


_LAYER_ARG = "layer number (0 = bottom, -1 = top) or layer digest (or a unique prefix)"


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add(
        "layers",
        cmd_layers,
        "list an image's layers, bottom first, with what each adds, changes and removes",
    )
    _image_args(sp)
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
    _image_args(p)
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
    _image_args(p, fmt=False)
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
    _image_args(sp)
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
