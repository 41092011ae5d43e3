"""Layout commands: init, new, tag, rm, ls, inspect, gc, validate."""

from __future__ import annotations

import argparse
import os

from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_image,
    add_layout,
    add_platform,
    add_quiet,
    image_arg,
    open_layout,
    open_or_init_layout,
    parse_platform,
)
from oci_tools.errors import UsageError


def cmd_init(a: argparse.Namespace, c: Console) -> int:
    """``init``: an empty image layout."""
    from oci_tools.layout import Layout

    Layout.init(a.layout)
    c.print(a.layout)
    return 0


def cmd_new(a: argparse.Namespace, c: Console) -> int:
    """``new``: an empty image, tagged (the layout is created when missing)."""
    from oci_tools.layout import split_image_ref
    from oci_tools.mutate import new_image

    path, ref = split_image_ref(a.image)
    assert ref is not None  # split_image_ref defaults REF to "latest"
    desc = new_image(open_or_init_layout(path), ref, platform=parse_platform(a.platform))
    c.print(str(desc.digest))
    return 0


def cmd_tag(a: argparse.Namespace, c: Console) -> int:
    """``tag``: another ref for an image."""
    from oci_tools.layout import check_ref

    lay, ref, _ = image_arg(a.image)
    new = check_ref(a.new_ref)
    desc = lay.lookup(ref)
    lay.set_ref(new, desc)
    c.print(str(desc.digest))
    return 0


def cmd_rm(a: argparse.Namespace, c: Console) -> int:
    """``rm``: remove a ref (or, docker's ``rm [-f] CONTAINER``, a container)."""
    from oci_tools.layout import split_image_ref

    if not os.path.lexists(split_image_ref(a.image)[0]):
        from oci_tools.containers import Runtime, lookup

        ct = lookup(a.image)
        if ct is not None:
            Runtime().remove(ct, force=a.force)
            c.print(a.image)
            return 0
    if a.force:
        raise UsageError("-f/--force applies to removing a container, not a ref")
    lay, ref, _ = image_arg(a.image)
    desc = lay.remove_ref(ref)
    c.print(f"Untagged: {ref}@{desc.digest}")
    return 0


def cmd_ls(a: argparse.Namespace, c: Console) -> int:
    """``ls``: the refs of a layout."""
    from oci_tools.cli import tables

    refs = open_layout(a.layout).refs()
    if a.quiet:
        for name, _ in refs:
            c.print(name)
        return 0
    listing = tables.refs_listing(refs)
    c.out.write(listing.json() if a.format == "json" else listing.table())
    return 0


def cmd_inspect(a: argparse.Namespace, c: Console) -> int:
    """``inspect``: a manifest, config or index.json entry, as stored."""
    from oci_tools.image import Image

    lay, ref, plat = image_arg(a.image, a.platform)
    if a.index:
        raw = lay.read_blob(lay.lookup(ref))
    else:
        img = Image.load(lay, ref, plat)
        raw = img.config.raw if a.config else img.manifest.raw
    c.print(raw.decode("utf-8"))
    return 0


def cmd_gc(a: argparse.Namespace, c: Console) -> int:
    """``gc``: delete unreferenced blobs."""
    from oci_tools import render

    lay = open_layout(a.layout)
    freed = lay.gc()
    for dg, _size in freed:
        c.print(f"deleted {dg}")
    from oci_tools.snapshots import LayerStore

    for rec in LayerStore(lay).gc():  # extracted layer dirs no image needs any more
        c.print(f"deleted layer {rec.chain_id}")
    total = sum(s for _, s in freed)
    c.note(f"Total reclaimed space: {render.human_size(total, 4)} ({len(freed)} blobs)")
    return 0


def cmd_validate(a: argparse.Namespace, c: Console) -> int:
    """``validate``: layouts, or one document file with ``--media-type``."""
    from oci_tools.check import check_document_file, check_path

    if a.media_type and len(a.paths) != 1:
        raise UsageError("validate --media-type takes exactly one FILE")
    failed = 0
    for path in a.paths:
        if a.media_type:
            probs = check_document_file(path, a.media_type)
        else:
            probs = check_path(path, layers=not a.fast)
        for p in probs:
            c.print(f"FAIL: {path}: {p}")
        if not probs:
            c.print(f"PASS: {path}")
        failed += bool(probs)
    return 1 if failed else 0


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add("init", cmd_init, "create an empty image layout")
    add_layout(sp)

    sp = add("new", cmd_new, "create an empty image (no layers) and tag it")
    add_image(sp)
    add_platform(sp)

    sp = add("tag", cmd_tag, "give an image another ref")
    add_image(sp)
    sp.add_argument("new_ref", metavar="NEWREF")

    sp = add("rm", cmd_rm, "remove a ref (blobs stay until gc), or a container", aliases=["untag"])
    add_image(sp)
    sp.add_argument("-f", "--force", action="store_true", help="a running container: kill it first")

    sp = add("ls", cmd_ls, "list the refs of a layout with their digests", aliases=["list"])
    add_layout(sp)
    add_quiet(sp, "only ref names")
    add_format(sp)

    sp = add("inspect", cmd_inspect, "print an image's manifest (or config) JSON as stored")
    add_image(sp)
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--manifest", action="store_true", help="the manifest (default)")
    g.add_argument("--config", action="store_true", help="the image config")
    g.add_argument(
        "--index", action="store_true", help="the document index.json points at (may be an index)"
    )
    add_platform(sp)

    sp = add("gc", cmd_gc, "delete blobs no ref or bundle needs")
    add_layout(sp)

    sp = add(
        "validate", cmd_validate, "check a layout (every document and blob) or one document file"
    )
    sp.add_argument("paths", nargs="+", metavar="LAYOUT|FILE")
    sp.add_argument("--media-type", metavar="MT", help="validate FILE as this media type")
    sp.add_argument(
        "--fast", action="store_true", help="skip decompressing layers to check their diff_ids"
    )
