"""View commands: history, images, df."""

from __future__ import annotations

import argparse

from oci_tools.cli import _common
from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_image,
    add_layout,
    add_no_trunc,
    add_platform,
    add_quiet,
    emit,
    image_arg,
    open_layout,
)


def cmd_history(a: argparse.Namespace, c: Console) -> int:
    """``history``: an image's build steps, newest first."""
    from oci_tools.cli import tables
    from oci_tools.image import Image
    from oci_tools.views.history import history_rows

    lay, ref, plat = image_arg(a.image, a.platform)
    rows = history_rows(Image.load(lay, ref, plat))
    listing = tables.history_listing(rows, human=a.human, no_trunc=a.no_trunc, now=_common.now())
    emit(c, listing, a.format, quiet=a.quiet)
    return 0


def cmd_images(a: argparse.Namespace, c: Console) -> int:
    """``images``: tagged images with total, shared and unique sizes."""
    from oci_tools.cli import tables
    from oci_tools.views.images import image_rows

    rows = image_rows(open_layout(a.layout))
    listing = tables.images_listing(rows, digests=a.digests, no_trunc=a.no_trunc, now=_common.now())
    emit(c, listing, a.format, quiet=a.quiet)
    return 0


def cmd_df(a: argparse.Namespace, c: Console) -> int:
    """``df``: disk usage of a layout."""
    from oci_tools.cli import tables
    from oci_tools.containers.usage import store_usage
    from oci_tools.views.df import disk_usage

    lay = open_layout(a.layout)
    du = disk_usage(lay, verbose=a.verbose)
    now = _common.now()
    sections = tables.df_listings(du, now, verbose=a.verbose)
    # The layout's containers and extracted layer dirs (oci_tools.snapshots).
    sections = tables.df_containers(sections, store_usage(lay), now, verbose=a.verbose)
    c.out.write(tables.df_text(sections, a.format))
    return 0


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add("history", cmd_history, "show the build steps (layers) of an image, newest first")
    add_image(sp)
    sp.add_argument(
        "--human",
        "-H",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="relative times and SI sizes (--no-human or --human=false: RFC 3339, bytes)",
    )
    add_no_trunc(sp)
    add_quiet(sp, "only ids")
    add_format(sp)
    add_platform(sp)

    sp = add("images", cmd_images, "list images with their total, shared and unique sizes")
    add_layout(sp)
    sp.add_argument("--digests", action="store_true")
    add_no_trunc(sp)
    add_quiet(sp)
    add_format(sp)

    sp = add("df", cmd_df, "disk usage of a layout: images, layers, what gc can reclaim")
    add_layout(sp)
    sp.add_argument("-v", "--verbose", action="store_true", help="per image and per layer")
    add_format(sp)
