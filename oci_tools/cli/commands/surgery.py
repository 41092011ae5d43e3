"""Image surgery commands: squash, append, rebase, annotate, label.

Each loads an image, derives a new one through ``oci_tools.surgery`` or
``oci_tools.mutate``, writes it and tags it (``--to NEWREF``, else REF
moves); the new manifest digest is printed.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from oci_tools.cli._common import Add, Console, add_image, add_platform, image_arg
from oci_tools.errors import UsageError

if TYPE_CHECKING:
    from oci_tools.image import Image
    from oci_tools.layout import Layout


def _save(lay: Layout, img: Image, ref: str, to: str | None) -> str:
    """Write ``img`` into ``lay`` and tag it ``to`` (else ``ref``)."""
    from oci_tools.layout import check_ref
    from oci_tools.mutate import write
    from oci_tools.spec import mediatype as mt

    if not to and lay.lookup(ref).media_type in mt.INDEX_TYPES:
        # Moving REF would replace a whole multi-platform index by one image.
        raise UsageError(
            f"{ref} names an index: the result is one image",
            hint="tag it elsewhere with --to NEWREF (or edit the index with 'index add')",
        )
    target = check_ref(to) if to else ref
    with lay.lock():
        desc = write(lay, img)
        lay.set_ref(target, desc)
    return str(desc.digest)


def _add_to(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--to", metavar="NEWREF", help="tag the result NEWREF instead of moving REF")


def _kv(items: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"{flag} {item!r} must be KEY=VALUE")
        out[k] = v
    return out


def cmd_squash(a: argparse.Namespace, c: Console) -> int:
    """``squash``: merge layers N..top into one."""
    from oci_tools.image import Image
    from oci_tools.surgery import squash

    lay, ref, plat = image_arg(a.image, a.platform)
    img = Image.load(lay, ref, plat)
    if a.compress not in (None, "gzip", "zstd", "none"):
        raise UsageError(f"--compress {a.compress!r}: choose gzip, zstd or none")
    res = squash(img, start=a.start, codec=a.compress, comment=a.message)
    c.note(f"squashed {res.merged} layer{'s' if res.merged != 1 else ''} into {res.layer.digest}")
    c.print(_save(lay, res.image, ref, a.to))
    return 0


def cmd_append(a: argparse.Namespace, c: Console) -> int:
    """``append``: layers from tar files on top of an image."""
    from oci_tools.image import Image
    from oci_tools.surgery import append

    if a.compress not in ("gzip", "zstd", "none"):
        raise UsageError(f"--compress {a.compress!r}: choose gzip, zstd or none")
    lay, ref, plat = image_arg(a.image, a.platform)
    img = Image.load(lay, ref, plat)
    new = append(img, a.tarballs, codec=a.compress, comment=a.message, created=a.created)
    c.print(_save(lay, new, ref, a.to))
    return 0


def _load_other(text: str, lay: Layout, plat: object) -> tuple[Image, str]:
    """An image named ``REF`` (in ``lay``) or ``LAYOUT:REF``; and its name."""
    from oci_tools.image import Image
    from oci_tools.spec.model import Platform

    p = plat if isinstance(plat, Platform) else None
    if ":" in text:
        other, ref, _ = image_arg(text)
        return Image.load(other, ref, p), text
    return Image.load(lay, text, p), text


def cmd_rebase(a: argparse.Namespace, c: Console) -> int:
    """``rebase``: move an image's own layers from one base onto another."""
    from oci_tools.errors import NotFoundError
    from oci_tools.image import Image
    from oci_tools.surgery import base_of, image_by_digest, rebase

    lay, ref, plat = image_arg(a.image, a.platform)
    img = Image.load(lay, ref, plat)
    recorded_digest, recorded_name = base_of(img)
    if a.old_base:
        old, _ = _load_other(a.old_base, lay, plat)
    elif recorded_digest is not None:
        if not lay.store.has(recorded_digest):
            raise NotFoundError(
                f"the recorded base {recorded_digest} of {ref} is not in {lay.path}",
                hint="name it with --old-base",
            )
        old = image_by_digest(lay, recorded_digest)
    else:
        raise UsageError(
            f"{ref} records no base image (org.opencontainers.image.base.digest)",
            hint="name the old base with --old-base",
        )
    new_name = a.new_base or recorded_name
    if not new_name:
        raise UsageError("rebase needs --new-base (the image records no base name)")
    new, name = _load_other(new_name, lay, plat)
    out = rebase(img, old, new, new_base_name=name)
    c.print(_save(lay, out, ref, a.to))
    return 0


def cmd_annotate(a: argparse.Namespace, c: Console) -> int:
    """``annotate``: manifest (or index) annotations."""
    from oci_tools.image import Image
    from oci_tools.mutate import set_annotations

    if a.index_pairs and (a.pairs or a.manifest_pairs):
        raise UsageError("annotate changes the manifest or the index, not both at once")
    lay, ref, plat = image_arg(a.image, a.platform)
    items = a.index_pairs or [*a.pairs, *a.manifest_pairs]
    changes: dict[str, str | None] = dict(_kv(items, "annotation"))
    for k in a.remove:
        changes[k] = None
    if not changes:
        raise UsageError("annotate needs KEY=VALUE items or --rm KEY")
    if a.index_pairs or a.on_index:
        from oci_tools.layout import check_ref
        from oci_tools.surgery import annotate_index

        desc = annotate_index(lay, ref, changes)
        lay.set_ref(check_ref(a.to) if a.to else ref, desc)
        c.print(str(desc.digest))
        return 0
    img = Image.load(lay, ref, plat)
    c.print(_save(lay, set_annotations(img, changes), ref, a.to))
    return 0


def cmd_label(a: argparse.Namespace, c: Console) -> int:
    """``label``: config labels."""
    from oci_tools.image import Image
    from oci_tools.mutate import set_labels

    lay, ref, plat = image_arg(a.image, a.platform)
    labels = _kv(a.pairs, "label")
    if not labels and not a.remove:
        raise UsageError("label needs KEY=VALUE items or --rm KEY")
    img = Image.load(lay, ref, plat)
    c.print(_save(lay, set_labels(img, labels, remove=a.remove), ref, a.to))
    return 0


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add("squash", cmd_squash, "merge an image's layers (from N to the top) into one layer")
    add_image(sp)
    _add_to(sp)
    sp.add_argument(
        "--from",
        dest="start",
        type=int,
        default=0,
        metavar="N",
        help="first layer to merge (0 = all; lower layers stay as they are)",
    )
    sp.add_argument("--compress", metavar="gzip|zstd|none", help="default: the top layer's")
    sp.add_argument("-m", "--message", help="comment of the squashed layer's history row")
    add_platform(sp)

    sp = add("append", cmd_append, "add layers from tar files (plain, gzip or zstd) to an image")
    add_image(sp)
    sp.add_argument("tarballs", nargs="+", metavar="TARBALL")
    _add_to(sp)
    sp.add_argument("-m", "--message", help="comment of the new history rows")
    sp.add_argument(
        "--compress", default="gzip", metavar="gzip|zstd|none", help="for plain tar files"
    )
    sp.add_argument("--created", metavar="RFC3339")
    add_platform(sp)

    sp = add("rebase", cmd_rebase, "put an image's own layers on another base image")
    add_image(sp)
    sp.add_argument(
        "--old-base",
        metavar="[LAYOUT:]REF",
        help="the base it was built on (default: its base.digest annotation)",
    )
    sp.add_argument(
        "--new-base",
        metavar="[LAYOUT:]REF",
        help="the base to put it on (default: its base.name annotation)",
    )
    _add_to(sp)
    add_platform(sp)

    sp = add("annotate", cmd_annotate, "set or remove manifest (or index) annotations")
    add_image(sp)
    sp.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    sp.add_argument("--rm", dest="remove", action="append", default=[], metavar="KEY")
    sp.add_argument(
        "--manifest",
        dest="manifest_pairs",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="annotations of the image manifest (the default for bare KEY=VALUE items)",
    )
    sp.add_argument(
        "--index",
        dest="index_pairs",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="annotations of the index REF names",
    )
    sp.add_argument("--on-index", action="store_true", help="--rm acts on the index REF names")
    _add_to(sp)
    add_platform(sp)

    sp = add("label", cmd_label, "set or remove config labels (a new image, no history row)")
    add_image(sp)
    sp.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    sp.add_argument("--rm", dest="remove", action="append", default=[], metavar="KEY")
    _add_to(sp)
    add_platform(sp)
