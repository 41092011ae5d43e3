"""The ``oci-tools`` command line: argparse wiring only.

Handlers parse arguments, call one library function and print its result.
One exception ladder maps errors to exit codes: UsageError 2, any other
OCIToolsError 1 (``oci-tools: error: ...`` plus ``hint: ...``), Ctrl-C 130,
a closed stdout pipe exits quietly.  Anything else is a bug and keeps its
traceback.  Heavy modules are imported inside handlers to keep start-up fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TextIO

from oci_tools import __version__
from oci_tools.errors import OCIToolsError, UsageError

Handler = Callable[[argparse.Namespace, "Console"], int]


class Console:
    """Where a command writes: data to ``out``, diagnostics to ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def print(self, text: str = "") -> None:
        self.out.write(text + "\n")

    def note(self, text: str) -> None:
        self.err.write(text + "\n")


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message}", hint=f"see: {self.prog} --help")


# ---------------------------------------------------------------------------
# helpers shared by handlers


def open_layout(path: str) -> Any:
    from oci_tools.layout import Layout

    return Layout.open(path)


def image_arg(text: str, platform: str | None = None) -> tuple[Any, str, Any]:
    """Parse ``LAYOUT[:REF]`` and open the layout: (layout, ref, platform)."""
    from oci_tools.layout import split_image_ref
    from oci_tools.model import Platform

    path, ref = split_image_ref(text)
    assert ref is not None
    plat = Platform.parse(platform) if platform else None
    return open_layout(path), ref, plat


def _platform(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="pick this platform when the ref is a multi-platform index",
    )


# ---------------------------------------------------------------------------
# foundation commands


def cmd_init(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import Layout

    Layout.init(a.layout)
    c.print(a.layout)
    return 0


def cmd_new(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.image import new_image
    from oci_tools.layout import Layout, split_image_ref
    from oci_tools.model import Platform

    path, ref = split_image_ref(a.image)
    assert ref is not None
    lay = Layout.open(path) if os.path.exists(path) else Layout.init(path)
    desc = new_image(lay, ref, platform=Platform.parse(a.platform) if a.platform else None)
    c.print(str(desc.digest))
    return 0


def cmd_tag(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import check_ref

    lay, ref, _ = image_arg(a.image)
    new = check_ref(a.new_ref)
    desc = lay.lookup(ref)
    lay.set_ref(new, desc)
    c.print(str(desc.digest))
    return 0


def cmd_rm(a: argparse.Namespace, c: Console) -> int:
    lay, ref, _ = image_arg(a.image)
    desc = lay.remove_ref(ref)
    c.print(f"Untagged: {ref}@{desc.digest}")
    return 0


def cmd_ls(a: argparse.Namespace, c: Console) -> int:
    from oci_tools import render

    lay = open_layout(a.layout)
    refs = lay.refs()
    if a.quiet:
        for name, _ in refs:
            c.print(name)
        return 0
    if a.format == "json":
        c.out.write(
            render.json_lines(
                [
                    {
                        "Ref": n,
                        "Digest": str(d.digest),
                        "MediaType": d.media_type,
                        "Size": str(d.size),
                    }
                    for n, d in refs
                ]
            )
        )
        return 0
    rows = [[n, str(d.digest), d.media_type] for n, d in refs]
    c.out.write(render.table(["REF", "DIGEST", "MEDIA TYPE"], rows))
    return 0


def cmd_inspect(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.image import Image

    lay, ref, plat = image_arg(a.image, a.platform)
    if a.index:
        desc = lay.lookup(ref)
        c.out.write(lay.read_blob(desc).decode("utf-8"))
        c.print()
        return 0
    img = Image.load(lay, ref, plat)
    raw = img.config.raw if a.config else img.manifest.raw
    c.out.write(raw.decode("utf-8"))
    c.print()
    return 0


def cmd_gc(a: argparse.Namespace, c: Console) -> int:
    from oci_tools import render

    lay = open_layout(a.layout)
    freed = lay.gc()
    for dg, _size in freed:
        c.print(f"deleted {dg}")
    total = sum(s for _, s in freed)
    c.note(f"Total reclaimed space: {render.human_size(total, 4)} ({len(freed)} blobs)")
    return 0


def cmd_validate(a: argparse.Namespace, c: Console) -> int:
    if a.media_type:
        from oci_tools.schema import problems

        if len(a.paths) != 1:
            raise UsageError("validate --media-type takes exactly one FILE")
        try:
            with open(a.paths[0], "rb") as f:
                raw = f.read(16 << 20)
        except OSError as e:
            raise OCIToolsError(f"cannot read {a.paths[0]}: {e.strerror}") from None
        probs = problems(a.media_type, raw)
        for p in probs:
            c.print(f"FAIL: {a.paths[0]}: {p}")
        if not probs:
            c.print(f"PASS: {a.paths[0]}")
        return 1 if probs else 0
    from oci_tools.check import check_layout

    failed = 0
    from oci_tools.layout import Layout

    for path in a.paths:
        try:
            lay = open_layout(path)
            probs = []
        except OCIToolsError as e:
            if not os.path.isdir(path):
                raise
            # Still list everything else that is wrong, not only the first.
            lay, probs = Layout(path), [str(e)]
        probs += [p for p in check_layout(lay, layers=not a.fast) if p not in probs]
        for p in probs:
            c.print(f"FAIL: {path}: {p}")
        if not probs:
            c.print(f"PASS: {path}")
        failed += bool(probs)
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# parser


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used to test --help of every command)."""
    p = _Parser(
        prog="oci-tools",
        description="Build, inspect, unpack and commit OCI images kept as image layouts on disk.",
    )
    p.add_argument("--version", action="version", version=f"oci-tools {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def add(name: str, handler: Handler, help_: str, aliases: Sequence[str] = ()) -> Any:
        sp = sub.add_parser(name, help=help_, description=help_, aliases=list(aliases))
        sp.set_defaults(handler=handler)
        return sp

    sp = add("init", cmd_init, "create an empty image layout")
    sp.add_argument("layout", metavar="LAYOUT")

    sp = add("new", cmd_new, "create an empty image (no layers) and tag it")
    sp.add_argument("image", metavar="LAYOUT:REF")
    _platform(sp)

    sp = add("tag", cmd_tag, "give an image another ref")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("new_ref", metavar="NEWREF")

    sp = add("rm", cmd_rm, "remove a ref (blobs stay until gc)", aliases=["untag"])
    sp.add_argument("image", metavar="LAYOUT:REF")

    sp = add("ls", cmd_ls, "list the refs of a layout with their digests", aliases=["list"])
    sp.add_argument("layout", metavar="LAYOUT")
    sp.add_argument("-q", "--quiet", action="store_true", help="only ref names")
    sp.add_argument("--format", choices=["table", "json"], default="table")

    sp = add("inspect", cmd_inspect, "print an image's manifest (or config) JSON as stored")
    sp.add_argument("image", metavar="LAYOUT:REF")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--manifest", action="store_true", help="the manifest (default)")
    g.add_argument("--config", action="store_true", help="the image config")
    g.add_argument(
        "--index", action="store_true", help="the document index.json points at (may be an index)"
    )
    _platform(sp)

    sp = add("gc", cmd_gc, "delete blobs no ref or bundle needs")
    sp.add_argument("layout", metavar="LAYOUT")

    sp = add(
        "validate", cmd_validate, "check a layout (every document and blob) or one document file"
    )
    sp.add_argument("paths", nargs="+", metavar="LAYOUT|FILE")
    sp.add_argument("--media-type", metavar="MT", help="validate FILE as this media type")
    sp.add_argument(
        "--fast", action="store_true", help="skip decompressing layers to check their diff_ids"
    )

    return p


def _normalize_argv(argv: list[str]) -> list[str]:
    """docker's pflag style ``--human=false`` -> argparse's ``--no-human``."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, _, val = arg.partition("=")
            if name in ("--human",) and val.lower() in ("true", "false", "1", "0"):
                out.append(name if val.lower() in ("true", "1") else "--no-" + name[2:])
                continue
        out.append(arg)
    return out


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    console = Console(out, err)
    args = _normalize_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        try:
            with contextlib.redirect_stdout(out):
                ns = build_parser().parse_args(args)
        except SystemExit as e:  # --help and --version
            return int(e.code or 0)
        handler: Handler = ns.handler
        return handler(ns, console)
    except OCIToolsError as e:
        err.write(f"oci-tools: error: {e}\n")
        if e.hint:
            err.write(f"hint: {e.hint}\n")
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth reporting.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as e:
        # Environment failures (permissions, full disk) are not bugs: one line.
        where = f": {e.filename}" if e.filename else ""
        err.write(f"oci-tools: error: {e.strerror or e}{where}\n")
        return 1
    except KeyboardInterrupt:
        err.write("oci-tools: interrupted\n")
        return 130


def run() -> NoReturn:
    """Console-script entry point."""
    sys.exit(main())


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True)
