"""Build command: ``build`` (progress on stdout like ``docker build``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING

from oci_tools.cli._common import (
    Add,
    Console,
    add_quiet,
    new_layout_guard,
    note_moved,
    open_layout,
    parse_platform,
)
from oci_tools.errors import UsageError

if TYPE_CHECKING:
    from oci_tools.spec.model import Descriptor


def _layout_and_refs(tags: Sequence[str]) -> tuple[str, tuple[str, ...]]:
    """The one layout every ``-t LAYOUT[:REF]`` names, and the refs."""
    from oci_tools.layout import split_image_ref

    path = ""
    refs: list[str] = []
    for t in tags:
        p, ref = split_image_ref(t, creating=True)
        if path and p != path:
            raise UsageError("every -t must name the same layout", hint=f"{path} vs {p}")
        path = p
        refs.append(str(ref))
    return path, tuple(refs)


def cmd_build(a: argparse.Namespace, c: Console) -> int:
    """``build``: an image from a Dockerfile; ``-q`` prints only its digest."""
    from oci_tools.build import BuildOptions, RunFailedError, build, parse_build_args

    path, refs = _layout_and_refs(a.tag)
    before = _refs_before(path)
    opts = BuildOptions(
        context=a.context,
        dockerfile=a.file,
        tags=refs,
        build_args=parse_build_args(a.build_arg),
        no_cache=a.no_cache,
        runtime=a.runtime,
        network=a.network,
        compress=a.compress,
        platform=parse_platform(a.platform),
    )

    def log(line: str) -> None:
        c.print(line)
        c.out.flush()

    def output(data: bytes) -> None:
        c.out.write(data.decode("utf-8", "replace"))
        c.out.flush()

    try:
        with new_layout_guard(path):
            res = build(
                path, opts, log=None if a.quiet else log, output=None if a.quiet else output
            )
    except RunFailedError as e:
        if a.quiet and e.output:  # nothing was streamed: show what the command said
            c.err.write(e.output.decode("utf-8", "replace"))
        raise
    for r in refs:
        note_moved(c, r, before.get(r), res.descriptor.digest)
    if a.quiet:
        c.print(str(res.descriptor.digest))
    return 0


def _refs_before(path: str) -> dict[str, Descriptor]:
    """The refs of the layout at ``path`` before the build (none when it is
    not a layout yet), to say which refs the build moves."""
    import os

    if not os.path.isfile(os.path.join(path, "oci-layout")):
        return {}
    return dict(open_layout(path).refs())


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add("build", cmd_build, "build an image from a Dockerfile (classic builder subset)")
    sp.add_argument("context", nargs="?", default=".", metavar="CONTEXT")
    sp.add_argument("-f", "--file", metavar="DOCKERFILE", help="default: CONTEXT/Dockerfile")
    sp.add_argument(
        "-t",
        "--tag",
        action="append",
        required=True,
        metavar="LAYOUT[:REF]",
        help="where to build and which ref to set (repeat for more refs, same layout)",
    )
    sp.add_argument("--no-cache", action="store_true", help="run every step, ignoring the cache")
    sp.add_argument("--build-arg", action="append", default=[], metavar="K[=V]")
    sp.add_argument(
        "--runtime",
        choices=["auto", "runc", "chroot", "none"],
        default="auto",
        help="how RUN executes (auto: runc, else chroot as root; none: RUN is an error)",
    )
    sp.add_argument(
        "--network", choices=["none", "host"], default="none", help="network of RUN steps"
    )
    sp.add_argument("--compress", default="gzip", metavar="gzip|zstd|none|auto")
    sp.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="the image's platform: FROM picks it from an index, the config says it (no emulation)",
    )
    add_quiet(sp, "print only the image digest")
