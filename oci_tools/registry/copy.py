"""``copy SRC DST`` between skopeo's transports.

* ``docker://HOST/REPO[:TAG|@DIGEST]`` — a registry;
* ``oci:LAYOUT[:REF]`` — an image layout (REF defaults to ``latest``);
* ``oci-archive:FILE`` — an archive written/read by :mod:`oci_tools.archive`.

An archive goes through a private temporary layout, removed afterwards: beside
the destination when it is a local file or layout (nothing is written outside
the target's directory), in ``$TMPDIR`` when the destination is a registry.
Registry → registry never touches the disk.
"""

from __future__ import annotations

import os

from oci_tools.errors import UsageError
from oci_tools.fsutil import remove_tree
from oci_tools.layout import DEFAULT_REF, Layout, split_image_ref
from oci_tools.records import record
from oci_tools.registry.reference import TRANSPORT, RemoteRef, parse_reference
from oci_tools.registry.transfer import Client, Progress, _quiet, copy_remote, pull, push
from oci_tools.spec.model import Platform

TRANSPORTS = ("docker://", "oci:", "oci-archive:")


@record
class Endpoint:
    """One side of a copy."""

    kind: str  # "docker", "oci" or "oci-archive"
    remote: RemoteRef | None = None
    path: str = ""
    ref: str | None = None

    def __str__(self) -> str:
        if self.remote is not None:
            return f"docker://{self.remote}"
        suffix = f":{self.ref}" if self.ref else ""
        return f"{self.kind}:{self.path}{suffix}"


def parse_endpoint(text: str) -> Endpoint:
    """Parse a transport-prefixed image name."""
    if text.startswith(TRANSPORT):
        return Endpoint("docker", remote=parse_reference(text))
    if text.startswith("oci-archive:"):
        path = text.removeprefix("oci-archive:")
        if not path:
            raise UsageError(f"no file in {text!r}", hint="use oci-archive:FILE")
        return Endpoint("oci-archive", path=path)
    if text.startswith("oci:"):
        path, ref = split_image_ref(text.removeprefix("oci:"), default=None)
        return Endpoint("oci", path=path, ref=ref)
    raise UsageError(
        f"unknown transport in {text!r}",
        hint="use docker://HOST/REPO[:TAG], oci:LAYOUT[:REF] or oci-archive:FILE",
    )


def _open_or_init(path: str) -> Layout:
    if os.path.isdir(path) and os.path.exists(os.path.join(path, "oci-layout")):
        return Layout.open(path)
    return Layout.init(path)


def copy(
    client: Client,
    src: Endpoint,
    dst: Endpoint,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    progress: Progress = _quiet,
) -> str:
    """Copy one image; returns the digest of what was written at ``dst``."""
    if src.kind == "docker" and dst.kind == "docker":
        assert src.remote is not None and dst.remote is not None
        dg = copy_remote(
            client,
            src.remote,
            dst.remote,
            platform=platform,
            all_platforms=all_platforms,
            progress=progress,
        )
        return str(dg)
    near = None
    if dst.kind != "docker":
        near = os.path.dirname(os.path.abspath(dst.path)) or "."
        os.makedirs(near, exist_ok=True)
    import tempfile  # not for registry -> registry

    work = tempfile.mkdtemp(prefix=".oci-tools-copy-", dir=near)
    try:
        # Bring the source into a layout (the user's own, or a private one).
        if src.kind == "oci":
            lay = Layout.open(src.path)
            ref = src.ref or DEFAULT_REF
        elif src.kind == "oci-archive":
            from oci_tools.archive import import_archive

            lay = Layout.init(os.path.join(work, "layout"))
            found = import_archive(src.path, lay)
            if len(found) != 1:
                raise UsageError(
                    f"{src.path} holds {len(found)} images", hint="copy needs exactly one"
                )
            ref = found[0][0]
        else:
            assert src.remote is not None
            if dst.kind == "oci":
                lay = _open_or_init(dst.path)
                name = dst.ref or src.remote.tag or DEFAULT_REF
                _, desc = pull(
                    client,
                    src.remote,
                    lay,
                    name,
                    platform=platform,
                    all_platforms=all_platforms,
                    progress=progress,
                )
                return str(desc.digest)
            lay = Layout.init(os.path.join(work, "layout"))
            ref = DEFAULT_REF
            pull(client, src.remote, lay, ref, platform=platform, progress=progress)
        # And from that layout to the destination.
        if dst.kind == "docker":
            assert dst.remote is not None
            return str(push(client, lay, ref, dst.remote, progress=progress))
        if dst.kind == "oci-archive":
            from oci_tools.archive import export_image

            return str(export_image(lay, ref, dst.path, platform=platform).digest)
        out = _open_or_init(dst.path)
        return _copy_layout(lay, ref, out, dst.ref or ref)
    finally:
        remove_tree(work)


def _copy_layout(src: Layout, ref: str, dst: Layout, name: str) -> str:
    """Copy every blob of image ``ref`` from one layout to another."""
    from oci_tools.store import put_stream

    desc = src.lookup(ref)
    with dst.lock():
        for dg in sorted(src.reachable([desc])):
            if dst.store.has(dg) or not src.store.has(dg):
                continue
            size = src.store.stat_size(dg)
            r = src.store.open(dg, size)
            try:
                put_stream(dst.store, r, dg, size)  # type: ignore[arg-type]
            finally:
                r.close()
        dst.set_ref(name, desc)
    return str(desc.digest)


__all__ = ["TRANSPORTS", "Endpoint", "copy", "parse_endpoint"]
