"""Writing an image as an ``oci-archive`` or ``docker-archive`` tar (see the
package docstring for the formats)."""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any, BinaryIO

from oci_tools.archive.common import (
    BLOCK,
    CHUNK,
    FORMATS,
    RECORD,
    SIGNATURES,
    DiffIdReader,
    blob_path,
    image_name,
)
from oci_tools.compression import codec_for_media_type
from oci_tools.digest import Digest
from oci_tools.errors import (
    DigestMismatchError,
    InvalidDocumentError,
    OCIToolsError,
    UsageError,
)
from oci_tools.image import Image
from oci_tools.layout import LAYOUT_VERSION, Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    CONTAINERD_NAME,
    REF_NAME,
    Descriptor,
    Index,
    Platform,
    dump_json,
)


class _TarOut:
    """A minimal streaming tar writer with fixed metadata (root-owned, mtime 0).

    ``tarfile``'s "w" mode needs a seekable target (stdout may be a pipe);
    writing the few header fields ourselves keeps every byte deterministic
    and lets blob bytes go straight from the store's verifying reader to
    ``out``, with a short stream an error instead of a padded member.
    """

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self._written = 0

    def _write(self, data: bytes) -> None:
        self._out.write(data)
        self._written += len(data)

    def _header(self, name: str, kind: bytes, size: int, mode: int) -> None:
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.size = size
        ti.mode = mode
        ti.mtime = 0
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        self._write(ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def directory(self, name: str) -> None:
        """A directory entry (``name`` ends without ``/``)."""
        self._header(name + "/", tarfile.DIRTYPE, 0, 0o755)

    def file(self, name: str, data: bytes) -> None:
        """A regular file from memory."""
        self._header(name, tarfile.REGTYPE, len(data), 0o644)
        self._write(data)
        self._pad(len(data))

    def stream(self, name: str, size: int, read: Callable[[int], bytes], what: str) -> None:
        """A regular file of exactly ``size`` bytes taken from ``read``."""
        self._header(name, tarfile.REGTYPE, size, 0o644)
        left = size
        while left:
            chunk = read(min(CHUNK, left))
            if not chunk:
                raise DigestMismatchError(
                    f"size of {what}", expected=str(size), actual=str(size - left)
                )
            if len(chunk) > left:  # pragma: no cover - readers honour the limit
                raise DigestMismatchError(
                    f"size of {what}", expected=str(size), actual=f"more than {size}"
                )
            self._write(chunk)
            left -= len(chunk)
        self._pad(size)

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self._write(bytes(BLOCK - size % BLOCK))

    def close(self) -> None:
        """Write the end-of-archive blocks and pad to a whole record."""
        self._write(bytes(2 * BLOCK))
        if self._written % RECORD:
            self._write(bytes(RECORD - self._written % RECORD))


def _copy_blob(tar: _TarOut, layout: Layout, desc: Descriptor, name: str) -> None:
    """Stream one blob into the tar, verified: a mismatch raises after the
    bytes went out, which aborts the archive (a file target is discarded)."""
    r = layout.store.open(desc.digest, desc.size)
    try:
        tar.stream(name, desc.size, r.read, str(desc.digest))
        r.drain()
    finally:
        r.close()


def _uncompressed_size(layout: Layout, image: Image, i: int) -> int:
    """The layer's uncompressed size: the cached annotation (checked while
    streaming), or one decompression pass to count (which also verifies)."""
    known = image.uncompressed_size(i)
    if known is not None:
        return known
    desc = image.layers[i]
    rd = DiffIdReader(
        layout.store.open(desc.digest, desc.size),
        codec_for_media_type(desc.media_type),
        f"layer {desc.digest}",
    )
    try:
        while rd.read(CHUNK):
            pass
        rd.finish(image.config.diff_ids[i])
    finally:
        rd.raw.close()
    return rd.hasher.size


def _write_oci(
    tar: _TarOut, image: Image, ref: str, full_name: str, sig: Descriptor | None = None
) -> None:
    layout = image.layout
    mdesc = image.descriptor
    blobs: dict[Digest, Descriptor] = {mdesc.digest: mdesc}
    assert image.manifest.config is not None
    for d in (image.manifest.config, *image.layers):
        blobs.setdefault(d.digest, d)
    annotations = {CONTAINERD_NAME: full_name, REF_NAME: ref}
    if sig is not None:
        sm = layout.manifest(sig)
        for d in (sig, *([sm.config] if sm.config else []), *sm.layers):
            blobs.setdefault(d.digest, d)
        annotations[SIGNATURES] = str(sig.digest)
    algs = sorted({d.algorithm for d in blobs})
    tar.directory("blobs")
    for alg in algs:
        tar.directory(f"blobs/{alg}")
        for dg in sorted(d for d in blobs if d.algorithm == alg):
            _copy_blob(tar, layout, blobs[dg], blob_path(dg))
    entry = Descriptor(
        mdesc.media_type,
        mdesc.digest,
        mdesc.size,
        annotations,
        mdesc.platform,
    )
    tar.file("index.json", Index.build([entry]).raw)
    docker = [
        {
            "Config": blob_path(image.manifest.config.digest),
            "RepoTags": [full_name],
            "Layers": [blob_path(d.digest) for d in image.layers],
        }
    ]
    tar.file("manifest.json", _dump_json_list(docker))
    tar.file("oci-layout", dump_json({"imageLayoutVersion": LAYOUT_VERSION}))


def _write_docker(tar: _TarOut, image: Image, full_name: str) -> None:
    layout = image.layout
    config = image.manifest.config
    assert config is not None
    sizes: dict[Digest, tuple[int, int]] = {}  # diff_id -> (layer index, size)
    for i, diff_id in enumerate(image.config.diff_ids):
        if diff_id not in sizes:
            sizes[diff_id] = (i, _uncompressed_size(layout, image, i))
    cname = f"{config.digest.encoded}.json"
    config_bytes = layout.read_blob(config)
    members: list[tuple[str, Callable[[], None]]] = [(cname, lambda: tar.file(cname, config_bytes))]

    def layer_writer(diff_id: Digest, i: int, size: int) -> Callable[[], None]:
        def write() -> None:
            desc = image.layers[i]
            what = f"layer {desc.digest}"
            rd = DiffIdReader(
                layout.store.open(desc.digest, desc.size),
                codec_for_media_type(desc.media_type),
                what,
            )
            try:
                tar.directory(diff_id.encoded)
                tar.stream(f"{diff_id.encoded}/layer.tar", size, rd.read, what)
                rd.finish(diff_id)
            finally:
                rd.raw.close()

        return write

    for diff_id, (i, size) in sizes.items():
        members.append((f"{diff_id.encoded}/", layer_writer(diff_id, i, size)))
    repo, tag = full_name.rsplit(":", 1)
    docker = [
        {
            "Config": cname,
            "RepoTags": [full_name],
            "Layers": [f"{d.encoded}/layer.tar" for d in image.config.diff_ids],
        }
    ]
    manifest_json = _dump_json_list(docker)
    members.append(("manifest.json", lambda: tar.file("manifest.json", manifest_json)))
    if image.config.diff_ids:
        # The legacy map from repository and tag to the top layer's directory.
        top = image.config.diff_ids[-1].encoded
        repos = dump_json({repo: {tag: top}})
        members.append(("repositories", lambda: tar.file("repositories", repos)))
    for _, write in sorted(members, key=lambda m: m[0]):
        write()


def _dump_json_list(items: list[dict[str, Any]]) -> bytes:
    """Compact JSON of a top-level array (``manifest.json``)."""
    return b"[" + b",".join(dump_json(i) for i in items) + b"]"


@contextlib.contextmanager
def _open_target(dest: str) -> Iterator[IO[bytes]]:
    """A file to write the archive to: a temp file renamed over ``dest`` on
    success (so a failed export leaves no half archive), or ``dest`` itself
    when it is a device or FIFO (never replace ``/dev/null``)."""
    try:
        st = os.stat(dest)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise OCIToolsError(f"cannot write {dest}: {e.strerror}") from None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode):
            raise UsageError(f"{dest} is a directory", hint="give the archive's file name")
        with open(dest, "wb") as f:
            yield f
        return
    parent = os.path.dirname(os.path.abspath(dest))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", dir=parent)
    except OSError as e:
        raise OCIToolsError(f"cannot write {dest}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o644)
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def export_image(
    layout: Layout,
    ref: str,
    dest: str | BinaryIO,
    *,
    fmt: str = "oci-archive",
    platform: Platform | None = None,
    name: str | None = None,
    signatures: Callable[[Digest], Descriptor | None] | None = None,
) -> Descriptor:
    """Write image ``ref`` (one manifest: for an index, the one for
    ``platform``, default this host) as an archive to ``dest``, a path or a
    binary stream.  ``fmt`` is ``oci-archive`` (hybrid, default) or
    ``docker-archive``; ``name`` overrides the derived image name;
    ``signatures(digest)`` names the signature image of the exported
    manifest to carry along (None: there is none; oci-archive only).

    Returns the exported manifest's descriptor.  Every blob is verified while
    it streams out; on a mismatch the export fails and a path target is left
    as it was.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown archive format {fmt!r}", hint="choose " + " or ".join(FORMATS))
    image = Image.load(layout, ref, platform)
    image.check_consistent()
    full_name = image_name(layout.path, ref, name)
    mdesc = image.descriptor
    cfg = image.config
    # containerd matches platforms on index entries; an artifact has none.
    plat = mdesc.platform or (cfg.platform if cfg.os and cfg.architecture else None)
    clean = Descriptor(mdesc.media_type, mdesc.digest, mdesc.size, platform=plat)
    sig = None
    if signatures is not None:
        if fmt != "oci-archive":
            raise UsageError("signatures travel in an oci-archive only", hint="drop --format")
        sig = signatures(clean.digest)
        if sig is not None and sig.media_type not in mt.MANIFEST_TYPES:
            raise InvalidDocumentError(f"signatures of {clean.digest}", ["not an image manifest"])

    def write(out: IO[bytes]) -> None:
        tar = _TarOut(out)
        if fmt == "oci-archive":
            img = Image(layout, clean, image.manifest, image.config)
            _write_oci(tar, img, ref, full_name, sig)
        else:
            _write_docker(tar, image, full_name)
        tar.close()
        out.flush()

    if isinstance(dest, str):
        with _open_target(dest) as f:
            write(f)
    else:
        write(dest)
    return clean


# ---------------------------------------------------------------------------
# import
