"""Bundle commands: unpack, commit, diff, status, and config edits."""

from __future__ import annotations

import argparse
import json
import os

from oci_tools.cli import _common
from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_image,
    add_no_trunc,
    add_platform,
    add_quiet,
    image_arg,
    named,
    note_moved,
)
from oci_tools.errors import UsageError


def cmd_unpack(a: argparse.Namespace, c: Console) -> int:
    """``unpack``: an image into a runtime bundle."""
    lay, ref, plat = image_arg(a.image, a.platform)
    if a.rootfs_only:
        if a.overlay:
            raise UsageError("--rootfs-only and --overlay exclude each other")
        from oci_tools.image import Image
        from oci_tools.surgery import unpack_rootfs

        img = Image.load(lay, ref, plat)
        notes = unpack_rootfs(img, a.bundle, rootless=True if a.rootless else None, force=a.force)
        for s in notes:
            c.note(f"warning: not created (rootless): {s}")
        c.print(str(img.digest))
        return 0
    if a.overlay and not a.rootless:
        from oci_tools.image import Image
        from oci_tools.snapshots import overlay_supported
        from oci_tools.snapshots.overlay import unpack_overlay

        img = Image.load(lay, ref, plat)
        if overlay_supported() and img.layers:
            unpack_overlay(lay, img, ref, a.bundle, force=a.force)
            c.print(str(img.digest))
            return 0
    if a.overlay:
        c.note("note: overlay not available (needs root, overlayfs, layers): copied the layers")
    from oci_tools.bundle import unpack  # the copy: not needed by --overlay or --rootfs-only

    res = unpack(
        lay, ref, a.bundle, platform=plat, rootless=True if a.rootless else None, force=a.force
    )
    for s in res.skipped:
        c.note(f"warning: not created (rootless): {s}")
    c.print(str(res.image.digest))
    return 0


def cmd_commit(a: argparse.Namespace, c: Console) -> int:
    """``commit``: a bundle's changes as a new layer and image."""
    from oci_tools.bundle import CommitOptions, commit
    from oci_tools.compression import CODECS

    if a.compress not in (*CODECS, "auto"):
        raise UsageError(f"--compress {a.compress!r}: choose gzip, zstd, none or auto")
    lay, ref, _ = image_arg(a.image)
    if not os.path.lexists(a.bundle):  # docker's `commit CONTAINER`
        from oci_tools.containers import Runtime, lookup
        from oci_tools.containers import commit as commit_container

        ct = lookup(a.bundle)
        if ct is not None:
            d = commit_container(
                Runtime(), ct, lay, ref, message=a.message, author=a.author, changes=a.change
            )
            c.print(str(d.digest))
            return 0
    if a.change:
        raise UsageError("-c/--change applies to committing a container, not a bundle")
    if ref.startswith("@"):
        raise UsageError(
            f"commit tags its result: {a.image!r} names an image by digest, not a ref",
            hint="give LAYOUT:REF (the new image's ref)",
        )
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
    old = named(lay, ref)
    res = commit(a.bundle, lay, ref, opts)
    note_moved(c, ref, old, res.descriptor.digest)
    if res.empty and res.layer is None and not a.allow_empty:
        c.note("no changes: nothing committed")
    c.print(str(res.descriptor.digest))
    return 0


def cmd_diff(a: argparse.Namespace, c: Console) -> int:
    """``diff``: what changed in a bundle since unpack."""
    from oci_tools.bundle import changes_of
    from oci_tools.cli import tables

    if not os.path.lexists(a.bundle):  # docker's `diff CONTAINER`
        from oci_tools.containers import Runtime, lookup

        ct = lookup(a.bundle)
        if ct is not None:
            c.out.write(tables.changes_text(Runtime().changes(ct), a.format))
            return 0
    from oci_tools.snapshots.overlay import bundle_changes, overlay_info

    if overlay_info(a.bundle) is not None:
        c.out.write(tables.changes_text(bundle_changes(a.bundle), a.format))
        return 0
    c.out.write(tables.changes_text(changes_of(a.bundle), a.format))
    return 0


def cmd_status(a: argparse.Namespace, c: Console) -> int:
    """``status``: bundles with their base image and writable size."""
    from oci_tools.bundle import BaseRecord, find_bundles, relocate
    from oci_tools.cli import tables
    from oci_tools.layout import is_layout
    from oci_tools.views.status import bundle_status

    bundles = a.bundles
    if not bundles:
        bundles, layouts = find_bundles(".")
        where = ", ".join(layouts) if layouts else "none"
        c.note(f"bundles in the current directory and those whose base is in its layouts ({where})")
    for b in bundles:
        if is_layout(b):
            raise UsageError(
                f"{b} is an image layout; status wants a bundle (made by unpack)",
                hint=f"for the images of a layout: oci-tools images {b}",
            )
    rows = [bundle_status(b) for b in bundles]
    for b in bundles:
        if not relocate(b):
            rec = BaseRecord.load(b)
            c.note(
                f"warning: {b}: its base image {rec.manifest.digest} is gone from {rec.layout}"
                " (removed and collected by gc?); it cannot be committed: unpack again"
            )
    c.out.write(tables.status_text(rows, a.format, no_trunc=a.no_trunc, now=_common.now()))
    return 0


def _json_list(text: str | None, flag: str) -> list[str] | None:
    """A flag's JSON array of strings (None when the flag is not given)."""
    if text is None:
        return None
    try:
        v = json.loads(text)
    except ValueError:
        v = None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UsageError(f'{flag} takes a JSON array of strings, e.g. \'["sh", "-c"]\'')
    return v


def cmd_config(a: argparse.Namespace, c: Console) -> int:
    """``config``: edit an image's config (a new image, tagged REF or --to)."""
    from oci_tools.image import Image
    from oci_tools.layout import check_ref
    from oci_tools.mutate import ConfigEdit, edit_image

    lay, ref, plat = image_arg(a.image, a.platform)
    img = Image.load(lay, ref, plat)
    edit = ConfigEdit(
        env=tuple(a.env),
        unset_env=tuple(a.unset_env),
        entrypoint=_json_list(a.entrypoint, "--entrypoint"),
        clear_entrypoint=a.clear_entrypoint,
        cmd=_json_list(a.cmd, "--cmd"),
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
    # REF moves to the new image; an image named by digest or id has no ref
    # to move, so the result stays untagged unless --to names one.
    target = check_ref(a.to) if a.to else ref if named(lay, ref) else None
    old = named(lay, target)
    desc = edit_image(lay, img, edit, ref=target, created=a.created, created_by=a.created_by)
    if target is None:
        c.note(f"the new image is untagged; name it: oci-tools tag {lay.path}@{desc.digest} REF")
    else:
        note_moved(c, target, old, desc.digest)
    c.print(str(desc.digest))
    return 0


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add("unpack", cmd_unpack, "unpack an image into a runtime bundle (rootfs + config.json)")
    add_image(sp)
    sp.add_argument("bundle", metavar="BUNDLE")
    sp.add_argument(
        "--rootless",
        action="store_true",
        help="record owners and devices instead of applying them (default when not root)",
    )
    sp.add_argument("--force", action="store_true", help="replace a non-empty BUNDLE")
    sp.add_argument(
        "--rootfs-only",
        action="store_true",
        help="BUNDLE is just the tree (no rootfs/ level, config.json or commit record)",
    )
    sp.add_argument(
        "--overlay",
        action="store_true",
        help="mount the image's stored layers (overlayfs) instead of copying them; "
        "'umount BUNDLE/rootfs' before deleting the bundle",
    )
    add_platform(sp)
    add_quiet(sp, "no progress bars")

    sp = add(
        "commit", cmd_commit, "turn a bundle's changes since unpack into a new layer and image"
    )
    sp.add_argument("bundle", metavar="BUNDLE")
    add_image(sp)
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
    sp.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        metavar="INSTRUCTION",
        help="committing a container (BUNDLE is its name or id): CMD, ENTRYPOINT, ENV, "
        "WORKDIR, USER, EXPOSE or LABEL for the new config",
    )
    add_quiet(sp, "no progress bars")

    sp = add("diff", cmd_diff, "list what changed in a bundle since unpack (A/C/D lines)")
    sp.add_argument("bundle", metavar="BUNDLE")
    add_format(sp)

    sp = add("status", cmd_status, "bundles with their base image and rw (virtual) size")
    sp.add_argument(
        "bundles",
        nargs="*",
        metavar="BUNDLE",
        help="default: the bundles in the current directory and those of the layouts in it",
    )
    add_format(sp)
    add_no_trunc(sp)

    sp = add("config", cmd_config, "edit an image's config (adds an empty_layer history row)")
    add_image(sp)
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
    add_platform(sp)
