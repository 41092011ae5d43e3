"""Archive commands: export, import."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from oci_tools.cli._common import (
    Add,
    Console,
    add_image,
    add_platform,
    add_quiet,
    image_arg,
    new_layout_guard,
    note_moved,
    open_or_init_layout,
)
from oci_tools.errors import UsageError

if TYPE_CHECKING:
    from oci_tools.digest import Digest
    from oci_tools.layout import Layout
    from oci_tools.spec.model import Descriptor


def cmd_export(a: argparse.Namespace, c: Console) -> int:
    """``export``: one image as an oci-archive or docker-archive (``-``: stdout)."""
    from oci_tools.archive import export_image

    if a.file == "-" and sys.stdout.isatty():
        raise UsageError(
            "refusing to write an archive to a terminal",
            hint="redirect stdout (> FILE.tar or | COMMAND), or give FILE.tar",
        )
    lay, ref, plat = image_arg(a.image, a.platform)
    if a.flat and a.include_signatures:
        raise UsageError("--flat writes no image: it cannot carry signatures")
    if a.flat:
        from oci_tools.image import Image
        from oci_tools.surgery import export_flat

        info = export_flat(
            Image.load(lay, ref, plat), sys.stdout.buffer if a.file == "-" else a.file
        )
        if a.file != "-":
            c.print(str(info.diff_id))
        return 0
    to_stdout = a.file == "-"
    desc = export_image(
        lay,
        ref,
        sys.stdout.buffer if to_stdout else a.file,
        fmt=a.format,
        platform=plat,
        name=a.name,
        signatures=_carry(lay, c) if a.include_signatures else None,
    )
    if not to_stdout:
        c.print(str(desc.digest))
    return 0


def cmd_import(a: argparse.Namespace, c: Console) -> int:
    """``import``: an archive's images into a layout (``-``: stdin)."""
    from oci_tools.archive import import_archive
    from oci_tools.layout import split_image_ref

    path, ref = split_image_ref(a.image, default=None, creating=True)
    src = sys.stdin.buffer if a.file == "-" else a.file
    with new_layout_guard(path):
        lay = open_or_init_layout(path)
        before = dict(lay.refs())
        imported = import_archive(src, lay, ref, signatures=_adopt(lay))
    for name, desc in imported:
        note_moved(c, name, before.get(name), desc.digest)
        c.print(f"{name} {desc.digest}")
    return 0


def _carry(lay: Layout, c: Console) -> Callable[[Digest], Descriptor | None]:
    """The signature image of an exported manifest, if the layout has one."""

    def carry(digest: Digest) -> Descriptor | None:
        from oci_tools.sign.cosign import signature_image

        found = signature_image(lay, digest)
        if found is None:
            c.note(f"no signatures for {digest} in {lay.path}")
        return found

    return carry


def _adopt(lay: Layout) -> Callable[[Digest, Descriptor], None]:
    """Keep the signature images an archive carried (tagged ``sha256-<hex>.sig``,
    merged with the layout's own)."""

    def adopt(digest: Digest, sig: Descriptor) -> None:
        from oci_tools.sign.cosign import adopt_signatures

        adopt_signatures(lay, digest, sig)

    return adopt


def register(add: Add) -> None:
    """Add this group's subcommands."""
    sp = add(
        "export",
        cmd_export,
        "write an image as one archive file that docker, podman, containerd and skopeo load",
    )
    add_image(sp)
    sp.add_argument("file", metavar="FILE.tar", help="'-' for stdout")
    sp.add_argument("--format", choices=["oci-archive", "docker-archive"], default="oci-archive")
    sp.add_argument(
        "--name",
        metavar="NAME[:TAG]",
        help="image name for docker/podman/containerd (default localhost/<layout-dir>:<ref>)",
    )
    sp.add_argument(
        "--flat",
        action="store_true",
        help="one plain tar of the image's final filesystem (whiteouts applied), not an archive",
    )
    sp.add_argument(
        "--include-signatures",
        action="store_true",
        help="carry the image's signatures (its sha256-<hex>.sig image) in the oci-archive",
    )
    add_platform(sp)
    add_quiet(sp, "no progress bars")

    sp = add(
        "import", cmd_import, "read an oci-archive or docker/podman save archive into a layout"
    )
    sp.add_argument("file", metavar="FILE.tar", help="'-' for stdin")
    add_image(sp, "LAYOUT[:REF]")
    add_quiet(sp, "no progress bars")
