"""Multi-platform index commands: ``index create|add|rm|annotate|inspect``.

What ``docker manifest`` and ``podman manifest`` do, on a layout: an index
ref lists one image manifest per platform; ``unpack``/``inspect`` pick the
host's entry, ``--platform`` another.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from oci_tools.cli._common import Add, Console, Parser, add_format, add_image, image_arg
from oci_tools.errors import UsageError

if TYPE_CHECKING:
    from oci_tools.image import Image
    from oci_tools.layout import Layout


def _images(lay: Layout, names: list[str]) -> list[Image]:
    """``REF`` (in ``lay``) or ``LAYOUT:REF`` (another layout), each one image."""
    from oci_tools.image import Image

    out = []
    for text in names:
        if ":" in text:
            other, ref, _ = image_arg(text)
            out.append(Image.load(other, ref))
        else:
            out.append(Image.load(lay, text))
    return out


def _kv(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--annotation {item!r} must be KEY=VALUE")
        out[k] = v
    return out


def _tag(lay: Layout, ref: str, to: str | None, desc: object, c: Console) -> int:
    from oci_tools.layout import check_ref
    from oci_tools.spec.model import Descriptor

    assert isinstance(desc, Descriptor)
    lay.set_ref(check_ref(to) if to else ref, desc)
    c.print(str(desc.digest))
    return 0


def cmd_create(a: argparse.Namespace, c: Console) -> int:
    """``index create``: a new index of images, tagged REF."""
    from oci_tools.errors import ClobberError, RefNotFoundError
    from oci_tools.layout import check_ref
    from oci_tools.surgery import create_index

    lay, ref, _ = image_arg(a.image)
    check_ref(ref)
    if not a.amend:
        try:
            lay.lookup(ref)
        except RefNotFoundError:
            pass
        else:
            raise ClobberError(f"ref {ref}", hint="--amend replaces it")
    desc = create_index(lay, _images(lay, a.images), annotations=_kv(a.annotation) or None)
    return _tag(lay, ref, None, desc, c)


def cmd_add(a: argparse.Namespace, c: Console) -> int:
    """``index add``: more images in an index."""
    from oci_tools.surgery import index_add

    lay, ref, _ = image_arg(a.image)
    return _tag(lay, ref, a.to, index_add(lay, ref, _images(lay, a.images)), c)


def cmd_rm(a: argparse.Namespace, c: Console) -> int:
    """``index rm``: entries out of an index."""
    from oci_tools.surgery import index_remove

    lay, ref, _ = image_arg(a.image)
    return _tag(lay, ref, a.to, index_remove(lay, ref, a.targets), c)


def cmd_annotate(a: argparse.Namespace, c: Console) -> int:
    """``index annotate``: an entry's platform, os.version, os.features, annotations."""
    from oci_tools.spec.model import Platform
    from oci_tools.surgery import index_annotate

    lay, ref, _ = image_arg(a.image)
    features = None
    if a.os_features is not None:
        features = [f for f in a.os_features.split(",") if f]
    if a.platform is None and a.os_version is None and features is None and not a.annotation:
        raise UsageError(
            "index annotate needs --platform, --os-version, --os-features or --annotation"
        )
    desc = index_annotate(
        lay,
        ref,
        a.target,
        platform=Platform.parse(a.platform) if a.platform else None,
        os_version=a.os_version,
        os_features=features,
        annotations=dict(_kv(a.annotation)),
    )
    return _tag(lay, ref, a.to, desc, c)


def cmd_inspect(a: argparse.Namespace, c: Console) -> int:
    """``index inspect``: the entries of an index (``--format raw``: its JSON)."""
    from oci_tools.cli import tables
    from oci_tools.surgery import load_index

    lay, ref, _ = image_arg(a.image)
    _, idx = load_index(lay, ref)
    if a.raw:
        c.print(idx.raw.decode("utf-8"))
        return 0
    listing = tables.index_listing(idx.manifests)
    c.out.write(listing.json() if a.format == "json" else listing.table())
    return 0


def register(add: Add) -> None:
    """Add the ``index`` command and its actions."""
    top = add("index", None, "make and edit multi-platform image indexes (docker manifest)")
    sub = top.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    sub.required = True

    sp = sub.add_parser("create", help="a new index of IMAGEs (REF or LAYOUT:REF), tagged REF")
    sp.set_defaults(handler=cmd_create)
    add_image(sp)
    sp.add_argument("images", nargs="+", metavar="IMAGE")
    sp.add_argument("--annotation", action="append", default=[], metavar="K=V")
    sp.add_argument("--amend", action="store_true", help="replace REF when it exists")

    sp = sub.add_parser("add", help="add IMAGEs to the index REF names")
    sp.set_defaults(handler=cmd_add)
    add_image(sp)
    sp.add_argument("images", nargs="+", metavar="IMAGE")
    sp.add_argument("--to", metavar="NEWREF")

    sp = sub.add_parser("rm", help="remove entries (by digest or os/arch[/variant])")
    sp.set_defaults(handler=cmd_rm)
    add_image(sp)
    sp.add_argument("targets", nargs="+", metavar="DIGEST|PLATFORM")
    sp.add_argument("--to", metavar="NEWREF")

    sp = sub.add_parser("annotate", help="set an entry's platform fields and annotations")
    sp.set_defaults(handler=cmd_annotate)
    add_image(sp)
    sp.add_argument("target", metavar="DIGEST|PLATFORM")
    sp.add_argument("--platform", metavar="OS/ARCH[/VARIANT]")
    sp.add_argument("--os-version", metavar="VERSION")
    sp.add_argument("--os-features", metavar="F1,F2")
    sp.add_argument("--annotation", action="append", default=[], metavar="K=V")
    sp.add_argument("--to", metavar="NEWREF")

    sp = sub.add_parser("inspect", help="list the entries of an index")
    sp.set_defaults(handler=cmd_inspect)
    add_image(sp)
    add_format(sp)
    sp.add_argument("--raw", action="store_true", help="the index JSON as stored")
