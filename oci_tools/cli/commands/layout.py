"""Layout commands: init, new, tag, rm, ls, inspect (also ``inspect docker://…``), gc,
validate."""

from __future__ import annotations

import argparse
import os

from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_image,
    add_layout,
    add_network,
    add_platform,
    add_quiet,
    image_arg,
    named,
    note_moved,
    open_layout,
    open_or_init_layout,
    parse_platform,
    registry_client,
)
from oci_tools.errors import ClobberError, UsageError


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

    path, ref = split_image_ref(a.image, creating=True)
    assert ref is not None  # split_image_ref defaults REF to "latest"
    lay = open_or_init_layout(path)
    old = named(lay, ref)
    try:
        desc = new_image(lay, ref, platform=parse_platform(a.platform), replace=a.force)
    except ClobberError as e:
        e.hint = f"{e.hint}; use --force to replace it (the old image stays until gc)"
        raise
    note_moved(c, ref, old, desc.digest)
    c.print(str(desc.digest))
    return 0


def cmd_tag(a: argparse.Namespace, c: Console) -> int:
    """``tag``: another ref for an image."""
    from oci_tools.layout import check_ref

    lay, ref, _ = image_arg(a.image)
    new = check_ref(a.new_ref)
    desc = lay.lookup(ref)
    note_moved(c, new, lay.put_ref(new, desc), desc.digest)
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

    if a.image.startswith("docker://"):
        return _inspect_remote(a, c)
    lay, ref, plat = image_arg(a.image, a.platform)
    if a.index:
        raw = lay.read_blob(lay.lookup(ref))
    else:
        img = Image.load(lay, ref, plat)
        raw = img.config.raw if a.config else img.manifest.raw
    c.print(raw.decode("utf-8"))
    return 0


def _inspect_remote(a: argparse.Namespace, c: Console) -> int:
    """``inspect docker://…``: a summary like skopeo's; ``--raw`` (or
    ``--index``) the top document as the registry stores it; ``--manifest``
    and ``--config`` the platform's manifest and its config."""
    import json

    from oci_tools.registry import parse_reference
    from oci_tools.registry.transfer import inspect

    ref = parse_reference(a.image)
    top_only = a.raw or a.index
    with registry_client(a) as client:
        img = inspect(client, ref, platform=parse_platform(a.platform), raw=top_only)
    if top_only:
        c.print(img.top.raw.decode("utf-8"))
    elif a.config:
        c.print((img.config or b"{}").decode("utf-8"))
    elif a.manifest:
        c.print(img.manifest.raw.decode("utf-8"))
    else:
        c.print(json.dumps(img.summary(ref.name), indent=4))
    return 0


def cmd_gc(a: argparse.Namespace, c: Console) -> int:
    """``gc``: delete unreferenced blobs."""
    from oci_tools import render

    lay = open_layout(a.layout)
    missing = lay.missing_roots()
    freed = lay.gc(dry_run=a.dry_run, prune_missing=a.prune_missing_bundles)
    verb = "would delete" if a.dry_run else "deleted"
    for dg, _size in freed:
        c.print(f"{verb} {dg}")
    from oci_tools.snapshots import LayerStore

    # extracted layer dirs no image needs any more
    for rec in LayerStore(lay).gc(dry_run=a.dry_run):
        c.print(f"{verb} layer {rec.chain_id}")
    for r in missing:
        what = "would forget" if a.dry_run else "forgot"
        if a.prune_missing_bundles:
            c.note(f"{what} the base {r.descriptor.digest} of missing bundle {r.owner}")
        else:
            c.note(f"kept {r.descriptor.digest}: base of a bundle not found at {r.owner}")
    if missing and not a.prune_missing_bundles:
        c.note(
            "hint: a bundle that was moved keeps its base (commit or status it at its new"
            " place); to free the bases of deleted bundles: gc --prune-missing-bundles"
        )
    total = sum(s for _, s in freed)
    label = "Reclaimable space (dry run)" if a.dry_run else "Total reclaimed space"
    c.note(f"{label}: {render.human_size(total, 4)} ({len(freed)} blobs)")
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
    sp.add_argument(
        "--force", action="store_true", help="replace REF when it already names an image"
    )

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
    add_image(sp, "LAYOUT:REF|docker://HOST/REPO[:TAG]")
    g = sp.add_mutually_exclusive_group()
    g.add_argument("--manifest", action="store_true", help="the manifest (default)")
    g.add_argument("--config", action="store_true", help="the image config")
    g.add_argument(
        "--index", action="store_true", help="the document index.json points at (may be an index)"
    )
    g.add_argument(
        "--raw", action="store_true", help="docker://: the manifest or index exactly as stored"
    )
    add_platform(sp)
    add_network(sp, jobs=False, quiet=False)

    sp = add("gc", cmd_gc, "delete blobs no ref or bundle needs")
    add_layout(sp)
    sp.add_argument(
        "-n", "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
    )
    sp.add_argument(
        "--prune-missing-bundles",
        action="store_true",
        help="also free the bases of bundles that can no longer be found (deleted bundles)",
    )

    sp = add(
        "validate", cmd_validate, "check a layout (every document and blob) or one document file"
    )
    sp.add_argument("paths", nargs="+", metavar="LAYOUT|FILE")
    sp.add_argument("--media-type", metavar="MT", help="validate FILE as this media type")
    sp.add_argument(
        "--fast", action="store_true", help="skip decompressing layers to check their diff_ids"
    )
    add_quiet(sp, "no progress bars")
