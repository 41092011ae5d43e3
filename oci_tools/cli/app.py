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
    from oci_tools.spec.model import Platform

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
    from oci_tools.spec.model import Platform

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

    if a.image.startswith("docker://"):
        from oci_tools.cli.commands.registry import cmd_inspect_remote

        return cmd_inspect_remote(a, c)

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
        from oci_tools.spec.schema import problems

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
# bundles: unpack, commit, diff, status


def cmd_unpack(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.bundle import unpack

    lay, ref, plat = image_arg(a.image, a.platform)
    res = unpack(
        lay, ref, a.bundle, platform=plat, rootless=True if a.rootless else None, force=a.force
    )
    for s in res.skipped:
        c.note(f"warning: not created (rootless): {s}")
    c.print(str(res.image.id))
    return 0


def cmd_commit(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.bundle import CommitOptions, commit
    from oci_tools.compression import CODECS

    if a.compress not in (*CODECS, "auto"):
        raise UsageError(f"--compress {a.compress!r}: choose gzip, zstd, none or auto")
    lay, ref, _ = image_arg(a.image)
    opts = CommitOptions(
        compress=a.compress,
        created=a.created,
        created_by=a.created_by,
        author=a.author,
        comment=a.message,
        allow_empty=a.allow_empty,
        refresh=a.refresh,
        from_upper=a.from_upper,
    )
    res = commit(a.bundle, lay, ref, opts)
    if res.empty and res.layer is None and not a.allow_empty:
        c.note("no changes: nothing committed")
    c.print(str(res.descriptor.digest))
    return 0


def cmd_diff(a: argparse.Namespace, c: Console) -> int:
    from oci_tools import render
    from oci_tools.bundle import changes_of

    rows = changes_of(a.bundle)
    if a.format == "json":
        c.out.write(render.json_lines([{"Kind": ch.kind, "Path": ch.path} for ch in rows]))
    else:
        for ch in rows:
            c.print(f"{ch.kind} {ch.path}")
    return 0


def cmd_status(a: argparse.Namespace, c: Console) -> int:
    from oci_tools import render
    from oci_tools.views import bundle_status

    rows = [bundle_status(b) for b in a.bundles]
    if a.format == "json":
        c.out.write(render.json_lines([r.to_json() for r in rows]))
        return 0
    table = [
        [
            r.bundle,
            r.image,
            render.truncate(r.command, 20) if not a.no_trunc else r.command,
            render.time_ago(r.created, _now()),
            r.size_text(),
        ]
        for r in rows
    ]
    c.out.write(render.table(["BUNDLE", "IMAGE", "COMMAND", "CREATED", "SIZE"], table))
    return 0


# ---------------------------------------------------------------------------
# image config edits


def cmd_config(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.image import ConfigEdit, Image, edit_image
    from oci_tools.layout import check_ref

    lay, ref, plat = image_arg(a.image, a.platform)
    img = Image.load(lay, ref, plat)

    def jlist(text: str | None, flag: str) -> list[str] | None:
        if text is None:
            return None
        try:
            v = json.loads(text)
        except ValueError:
            v = None
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise UsageError(f'{flag} takes a JSON array of strings, e.g. \'["sh", "-c"]\'')
        return v

    edit = ConfigEdit(
        env=tuple(a.env),
        unset_env=tuple(a.unset_env),
        entrypoint=jlist(a.entrypoint, "--entrypoint"),
        clear_entrypoint=a.clear_entrypoint,
        cmd=jlist(a.cmd, "--cmd"),
        clear_cmd=a.clear_cmd,
        workdir=a.workdir,
        user=a.user,
        labels=tuple(a.label),
        expose=tuple(a.expose),
        volumes=tuple(a.volume),
        stop_signal=a.stop_signal,
        author=a.author,
        os=a.os,
        arch=a.arch,
    )
    target = check_ref(a.to) if a.to else ref
    desc = edit_image(lay, img, edit, ref=target, created=a.created, created_by=a.created_by)
    c.print(str(desc.digest))
    return 0


# ---------------------------------------------------------------------------
# views: history, images, df


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.UTC)


def _emit(c: Console, listing: Any, fmt: str, *, quiet: bool = False) -> None:
    """A listing as a table or JSON Lines; ``quiet``: only its IDs (docker -q)."""
    if quiet:
        for r in listing.rows:
            c.print(r["ID"])
        return
    c.out.write(listing.json() if fmt == "json" else listing.table())


def cmd_history(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.image import Image
    from oci_tools.views import SizeCache, history_listing, history_rows

    lay, ref, plat = image_arg(a.image, a.platform)
    rows = history_rows(Image.load(lay, ref, plat), SizeCache(lay))
    listing = history_listing(rows, human=a.human, no_trunc=a.no_trunc, now=_now())
    _emit(c, listing, a.format, quiet=a.quiet)
    return 0


def cmd_images(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.views import image_rows, images_listing

    lay = open_layout(a.layout)
    listing = images_listing(image_rows(lay), digests=a.digests, no_trunc=a.no_trunc, now=_now())
    _emit(c, listing, a.format, quiet=a.quiet)
    return 0


def cmd_df(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.views import df_listings, disk_usage

    du = disk_usage(open_layout(a.layout), verbose=a.verbose)
    sections = df_listings(du, _now(), verbose=a.verbose)
    if a.format == "json":
        for _title, listing in sections:
            c.out.write(listing.json())
        return 0
    for title, listing in sections:
        if title:
            c.print()
            c.print(title)
            c.print()
        c.out.write(listing.table())
    return 0


# ---------------------------------------------------------------------------
# archives: export, import


def cmd_export(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.archive import export_image

    lay, ref, plat = image_arg(a.image, a.platform)
    if a.file == "-":
        export_image(lay, ref, sys.stdout.buffer, fmt=a.format, platform=plat, name=a.name)
        return 0
    desc = export_image(lay, ref, a.file, fmt=a.format, platform=plat, name=a.name)
    c.print(str(desc.digest))
    return 0


def cmd_import(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.archive import import_archive
    from oci_tools.layout import Layout, split_image_ref

    path, ref = split_image_ref(a.image, default=None)
    lay = Layout.open(path) if os.path.exists(path) else Layout.init(path)
    src = sys.stdin.buffer if a.file == "-" else a.file
    for name, desc in import_archive(src, lay, ref):
        c.print(f"{name} {desc.digest}")
    return 0


# ---------------------------------------------------------------------------
# parser


class _Skipped:
    """Stands in for the subparser of a command that is not being run: its
    argument definitions are accepted and dropped.  (argparse spends ~1 ms
    per subparser on gettext lookups and terminal-size probes; building all
    of them cost more than a view command's own work.)"""

    def __getattr__(self, name: str) -> Any:
        return self._drop

    def _drop(self, *args: Any, **kwargs: Any) -> _Skipped:
        return self


def _command_word(args: Sequence[str]) -> str | None:
    """The subcommand the user typed: the first argument that is not an
    option (the top-level parser has no option taking a value)."""
    for arg in args:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser.  With ``command`` only that subcommand gets its
    arguments (faster start-up); None, or a command no one registers,
    builds the full parser (--help, usage errors, tests of every command)."""
    p = _Parser(
        prog="oci-tools",
        description="Build, inspect, unpack and commit OCI images kept as image layouts on disk.",
    )
    p.add_argument("--version", action="version", version=f"oci-tools {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    found = False

    def add(name: str, handler: Handler, help_: str, aliases: Sequence[str] = ()) -> Any:
        nonlocal found
        if command is not None:
            if command != name and command not in aliases:
                return _Skipped()
            found = True
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
    sp.add_argument("image", metavar="LAYOUT:REF|docker://HOST/REPO[:TAG]")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--manifest", action="store_true", help="the manifest (default)")
    g.add_argument("--config", action="store_true", help="the image config")
    g.add_argument(
        "--index", action="store_true", help="the document index.json points at (may be an index)"
    )
    _platform(sp)
    from oci_tools.cli.commands import registry as cli_registry

    cli_registry.extend_inspect(sp)

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

    sp = add("unpack", cmd_unpack, "unpack an image into a runtime bundle (rootfs + config.json)")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("bundle", metavar="BUNDLE")
    sp.add_argument(
        "--rootless",
        action="store_true",
        help="record owners and devices instead of applying them (default when not root)",
    )
    sp.add_argument("--force", action="store_true", help="replace a non-empty BUNDLE")
    _platform(sp)

    sp = add(
        "commit", cmd_commit, "turn a bundle's changes since unpack into a new layer and image"
    )
    sp.add_argument("bundle", metavar="BUNDLE")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("--compress", default="gzip", metavar="gzip|zstd|none|auto")
    sp.add_argument("--created", metavar="RFC3339")
    sp.add_argument("--created-by", default="oci-tools commit")
    sp.add_argument("--author")
    sp.add_argument("-m", "--message", help="history comment")
    sp.add_argument(
        "--allow-empty",
        action="store_true",
        help="with no changes, still add an empty_layer history row",
    )
    sp.add_argument(
        "--refresh",
        action="store_true",
        help="make the bundle's base the new image, so the next commit has only newer changes",
    )
    sp.add_argument(
        "--from-upper", metavar="DIR", help="take the changes from an overlayfs upper directory"
    )

    sp = add("diff", cmd_diff, "list what changed in a bundle since unpack (A/C/D lines)")
    sp.add_argument("bundle", metavar="BUNDLE")
    sp.add_argument("--format", choices=["table", "json"], default="table")

    sp = add(
        "status", cmd_status, "bundles with their base image and rw (virtual) size", aliases=["ps"]
    )
    sp.add_argument("bundles", nargs="+", metavar="BUNDLE")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    sp.add_argument("--no-trunc", action="store_true")

    sp = add("config", cmd_config, "edit an image's config (adds an empty_layer history row)")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("--to", metavar="NEWREF", help="tag the result NEWREF instead of moving REF")
    sp.add_argument("--env", action="append", default=[], metavar="K=V")
    sp.add_argument("--unset-env", action="append", default=[], metavar="K")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--entrypoint", metavar="JSON")
    g.add_argument("--clear-entrypoint", action="store_true")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--cmd", metavar="JSON")
    g.add_argument("--clear-cmd", action="store_true")
    sp.add_argument("--workdir", metavar="DIR")
    sp.add_argument("--user", metavar="USER[:GROUP]")
    sp.add_argument("--label", action="append", default=[], metavar="K=V")
    sp.add_argument("--expose", action="append", default=[], metavar="PORT[/PROTO]")
    sp.add_argument("--volume", action="append", default=[], metavar="PATH")
    sp.add_argument("--stop-signal", metavar="SIG")
    sp.add_argument("--author")
    sp.add_argument("--os")
    sp.add_argument("--arch")
    sp.add_argument("--created", metavar="RFC3339")
    sp.add_argument("--created-by")
    _platform(sp)

    sp = add("history", cmd_history, "show the build steps (layers) of an image, newest first")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument(
        "--human",
        "-H",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="relative times and SI sizes (--no-human or --human=false: RFC 3339, bytes)",
    )
    sp.add_argument("--no-trunc", action="store_true")
    sp.add_argument("-q", "--quiet", action="store_true", help="only ids")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    _platform(sp)

    sp = add("images", cmd_images, "list images with their total, shared and unique sizes")
    sp.add_argument("layout", metavar="LAYOUT")
    sp.add_argument("--digests", action="store_true")
    sp.add_argument("--no-trunc", action="store_true")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.add_argument("--format", choices=["table", "json"], default="table")

    sp = add("df", cmd_df, "disk usage of a layout: images, layers, what gc can reclaim")
    sp.add_argument("layout", metavar="LAYOUT")
    sp.add_argument("-v", "--verbose", action="store_true", help="per image and per layer")
    sp.add_argument("--format", choices=["table", "json"], default="table")

    sp = add(
        "export",
        cmd_export,
        "write an image as one archive file that docker, podman, containerd and skopeo load",
    )
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("file", metavar="FILE.tar", help="'-' for stdout")
    sp.add_argument("--format", choices=["oci-archive", "docker-archive"], default="oci-archive")
    sp.add_argument(
        "--name",
        metavar="NAME[:TAG]",
        help="image name for docker/podman/containerd (default localhost/<layout-dir>:<ref>)",
    )
    _platform(sp)

    sp = add(
        "import", cmd_import, "read an oci-archive or docker/podman save archive into a layout"
    )
    sp.add_argument("file", metavar="FILE.tar", help="'-' for stdin")
    sp.add_argument("image", metavar="LAYOUT[:REF]")

    # Command groups that live in their own modules (same level: wiring only).
    from oci_tools.cli.commands import build as cli_build
    from oci_tools.cli.commands import layers as cli_layers

    cli_layers.register(add)
    cli_build.register(add)
    cli_registry.register(add)

    if command is not None and not found:
        return build_parser()
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
                ns = build_parser(_command_word(args)).parse_args(args)
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
