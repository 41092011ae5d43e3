"""The public Python API: one call per job, the same argument order everywhere.

Every function takes the layout first, then the ref, then the other place
(a bundle, an archive, a build context); everything else is a keyword option
with a default.  Results are small typed values (dataclasses with short
reprs).  The CLI is a thin layer over the same library functions.

>>> import oci_tools
>>> lay = oci_tools.init_layout("./lay")                       # doctest: +SKIP
>>> oci_tools.unpack(lay, "app", "./bundle")                   # doctest: +SKIP
>>> oci_tools.commit(lay, "app:v2", "./bundle", comment="x")   # doctest: +SKIP

See docs/python-api.md for a worked example.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

from oci_tools.archive import export_image as _export_image
from oci_tools.archive import import_archive as _import_archive
from oci_tools.build import BuildOptions, BuildResult, build
from oci_tools.bundle import CommitOptions, CommitResult, UnpackResult
from oci_tools.bundle import commit as _commit
from oci_tools.bundle import unpack as _unpack
from oci_tools.check import check_layout
from oci_tools.image import Image, Layer
from oci_tools.layout import DEFAULT_REF, Layout
from oci_tools.spec.model import Descriptor, Platform
from oci_tools.views import (
    BundleStatus,
    DiskUsage,
    HistoryRow,
    ImageRow,
    bundle_status,
    disk_usage,
    history_rows,
    image_rows,
)


def _platform(platform: Platform | str | None) -> Platform | None:
    if platform is None or isinstance(platform, Platform):
        return platform
    return Platform.parse(platform)


def init_layout(path: str) -> Layout:
    """Create an empty OCI image layout at ``path`` (or open the one there)."""
    return Layout.init(path)


def open_layout(path: str) -> Layout:
    """Open the existing OCI image layout at ``path`` (InvalidLayoutError if it is none)."""
    return Layout.open(path)


def resolve(layout: Layout, ref: str = DEFAULT_REF) -> Descriptor:
    """The descriptor that ``ref`` names in ``layout`` (RefNotFoundError if none)."""
    return layout.lookup(ref)


def load_image(
    layout: Layout, ref: str = DEFAULT_REF, *, platform: Platform | str | None = None
) -> Image:
    """The image ``ref`` names, as a read-only value (an index is resolved to
    the host's platform, or ``platform``)."""
    return Image.load(layout, ref, _platform(platform))


def layers(image: Image) -> list[Layer]:
    """The image's layers, bottom first: descriptor (compressed blob), diff_id
    (uncompressed tar) and the sizes known for each."""
    return list(image.layer_values())


def unpack(
    layout: Layout,
    ref: str,
    bundle: str,
    *,
    platform: Platform | str | None = None,
    rootless: bool | None = None,
    force: bool = False,
) -> UnpackResult:
    """Unpack image ``ref`` into the runtime bundle directory ``bundle``
    (``rootfs/`` + ``config.json``, ready for runc)."""
    return _unpack(
        layout, ref, bundle, platform=_platform(platform), rootless=rootless, force=force
    )


def commit(
    layout: Layout,
    ref: str | None,
    bundle: str,
    *,
    comment: str | None = None,
    author: str | None = None,
    created: str | None = None,
    created_by: str = "oci-tools commit",
    compress: str = "gzip",
    allow_empty: bool = False,
) -> CommitResult:
    """Diff ``bundle``'s rootfs against the image it was unpacked from into a
    new layer, append a history row, write the image into ``layout`` and point
    ``ref`` at it (``ref=None``: write it untagged)."""
    opts = CommitOptions(
        compress=compress,
        created=created,
        created_by=created_by,
        author=author,
        comment=comment,
        allow_empty=allow_empty,
    )
    return _commit(bundle, layout, ref, opts)


def build_image(
    layout: Layout,
    context: str = ".",
    *,
    tags: Sequence[str] = (),
    dockerfile: str | None = None,
    build_args: Mapping[str, str | None] | None = None,
    no_cache: bool = False,
    runtime: str = "auto",
    network: str = "none",
    compress: str = "gzip",
    log: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the Dockerfile of ``context`` into ``layout``, as ``docker build``
    does, and tag the result with each of ``tags`` (refs of ``layout``)."""
    opts = BuildOptions(
        context=context,
        dockerfile=dockerfile,
        tags=tuple(tags),
        build_args=dict(build_args or {}),
        no_cache=no_cache,
        runtime=runtime,
        network=network,
        compress=compress,
    )
    return build(layout.path, opts, log=log)


def export_image(
    layout: Layout,
    ref: str,
    dest: str | BinaryIO,
    *,
    format: str = "oci-archive",
    platform: Platform | str | None = None,
) -> Descriptor:
    """Write image ``ref`` to ``dest`` as an ``oci-archive`` or ``docker-archive`` tar."""
    return _export_image(layout, ref, dest, fmt=format, platform=_platform(platform))


def import_archive(
    layout: Layout, ref: str | None, src: str | BinaryIO
) -> list[tuple[str, Descriptor]]:
    """Import every image of an oci-archive or docker-archive ``src`` into
    ``layout``; ``ref`` names it when the archive holds one image."""
    return _import_archive(src, layout, ref)


def validate(layout: Layout, *, layers: bool = True) -> list[str]:
    """Every problem found in ``layout`` (schemas, digests, sizes, references,
    and each layer's diff_id when ``layers``); empty when it is valid."""
    return check_layout(layout, layers=layers)


def history(image: Image) -> list[HistoryRow]:
    """``docker history`` of ``image`` as data, newest row first."""
    return history_rows(image)


def images(layout: Layout) -> list[ImageRow]:
    """``docker images`` of ``layout`` as data (sizes shared between images counted once)."""
    return image_rows(layout)


def df(layout: Layout, *, verbose: bool = False) -> DiskUsage:
    """``docker system df`` of ``layout`` as data."""
    return disk_usage(layout, verbose)


def status(bundle: str) -> BundleStatus:
    """Size of a bundle's changes over its base image (``docker ps -s``)."""
    return bundle_status(bundle)


__all__ = [
    "build_image",
    "commit",
    "df",
    "export_image",
    "history",
    "images",
    "import_archive",
    "init_layout",
    "layers",
    "load_image",
    "open_layout",
    "resolve",
    "status",
    "unpack",
    "validate",
]
