"""Image archives: one tar file that docker, podman, containerd and skopeo load.

Two formats are written by :func:`export_image`:

``oci-archive`` (the default)
    The "hybrid" form ``docker save`` writes since Docker 25: an OCI image
    layout (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``) that also
    carries a Docker ``manifest.json`` whose ``Config`` and ``Layers`` are paths
    of those same blobs.  OCI readers (skopeo ``oci-archive:``, containerd,
    podman) use the layout; Docker-style readers use ``manifest.json``.  Blobs
    are written byte for byte, so the manifest digest is preserved.
``docker-archive``
    The classic ``docker save`` form: the config as ``<config-hex>.json``, each
    layer *uncompressed* as ``<diffid-hex>/layer.tar`` (decompressed while
    streaming and checked against the config's diff_id), ``manifest.json`` and
    ``repositories``.  The legacy v1 ``json``/``VERSION`` files are not
    written: every loader since Docker 1.10 reads ``manifest.json`` only.

Naming (what ``RepoTags``, ``repositories`` and ``io.containerd.image.name``
say; ``org.opencontainers.image.ref.name`` always holds the layout's ref
unchanged, so an export re-imports under the same ref):

* a ref that already is a Docker-style name (it contains ``/`` or ``:``, e.g.
  ``example.com/foo:v3`` or ``foo:v3``) is used as that name;
* a plain ref is a tag of a repository named after the layout directory:
  ref ``app`` of layout ``images/demo`` is ``localhost/demo:app``;
* a name without a registry gets ``localhost/`` (podman's convention for
  local images; never ``docker.io``, which would claim a Docker Hub origin).

``export_image(..., name=...)`` overrides the derived name.

Signatures (oci-archive only): ``export_image(..., signatures=...)`` is
asked for the signature image of the exported manifest; its blobs go into
``blobs/`` and its manifest digest into the :data:`SIGNATURES` annotation of
the image's ``index.json`` entry -- not as a second entry, because skopeo's
``oci-archive:FILE`` (no ref) and Docker-style loaders expect exactly one
image.  ``import_archive(..., signatures=...)`` checks the carried image is
complete and hands it over after the import.  How signature images are
named and merged is the sign package's business (oci_tools.sign.cosign),
not this module's.

:func:`import_archive` reads any of those forms, the classic archives written
by ``docker save``, ``podman save`` and ``skopeo copy ... docker-archive:``,
and plain tars of an OCI layout, from a file or a non-seekable stream (also
gzip/bzip2/xz-compressed tars).  Every regular member is streamed into the
layout's blob store as it goes by (content addressed, so nothing needs to be
held back); ``index.json``/``manifest.json`` decide at the end which blobs
are what.  Docker v2.2 images are converted to OCI: the config keeps its
exact bytes (so its digest, Docker's image id, is unchanged) under the OCI
config media type, layers are re-typed by their actual compression (sniffed,
not guessed from names), and a new OCI manifest is written.  All verification
happens before the single ``index.json`` update at the end: on any failure
``index.json`` is untouched and the blobs written so far are garbage for gc.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO, cast

from oci_tools.compression import codec_for_media_type
from oci_tools.digest import Digest, Hasher, VerifyingReader, digest_problem
from oci_tools.errors import (
    DigestMismatchError,
    InvalidDocumentError,
    NotFoundError,
    OCIToolsError,
    UnsafeLayerError,
    UsageError,
)
from oci_tools.image import UNCOMPRESSED_SIZE, Image
from oci_tools.layer.stream import open_layer_stream
from oci_tools.layout import LAYOUT_VERSION, Layout, check_ref
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    CONTAINERD_NAME,
    REF_NAME,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    dump_json,
    with_ref,
)
from oci_tools.spec.schema import parse_json, validate
from oci_tools.store import MAX_DOCUMENT_SIZE, put_bytes, read_small

#: Annotation on an oci-archive's index.json entry: the digest of the image's
#: signature manifest, carried in the archive's blobs.
SIGNATURES = "io.github.oci-tools.signatures"
#: The archive formats :func:`export_image` writes.
FORMATS = ("oci-archive", "docker-archive")
CHUNK = 1 << 20
_BLOCK = 512
#: tar's default record: the archive is padded to a multiple of this.
_RECORD = 20 * _BLOCK
#: Top-level archive members read as documents instead of stored as blobs.
_DOCUMENTS = ("index.json", "manifest.json", "oci-layout", "repositories")

_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]+)?"
)


# ---------------------------------------------------------------------------
# names


def parse_name(text: str) -> tuple[str, str] | None:
    """Split a Docker-style ``[registry/]path[:tag]`` into (repository, tag).

    The repository always has a registry part (``localhost`` when none is
    given) and the tag defaults to ``latest``.  Returns None when ``text`` is
    not such a name (digest references included).
    """
    if "@" in text or not text:
        return None
    name, tag = text, "latest"
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        name, tag = text[:colon], text[colon + 1 :]
    if not _TAG_RE.fullmatch(tag):
        return None
    parts = name.split("/")
    domain = "localhost"
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain = parts.pop(0)
        if not _DOMAIN_RE.fullmatch(domain):
            return None
    if not all(_COMPONENT_RE.fullmatch(p) for p in parts):
        return None
    repo = f"{domain}/{'/'.join(parts)}"
    if len(repo) > 255:
        return None
    return repo, tag


def image_name(layout_path: str, ref: str, name: str | None = None) -> str:
    """The full ``repository:tag`` an export of ``ref`` is loaded as (see the
    module docstring for the rules)."""
    if name is not None:
        parsed = parse_name(name)
        if parsed is None:
            raise UsageError(
                f"invalid image name {name!r}", hint="use [REGISTRY/]NAME[:TAG], lower-case"
            )
        return f"{parsed[0]}:{parsed[1]}"
    if "/" in ref or ":" in ref:
        parsed = parse_name(ref)
        if parsed is not None:
            return f"{parsed[0]}:{parsed[1]}"
    base = os.path.basename(os.path.abspath(layout_path)).lower()
    repo = re.sub(r"[^a-z0-9]+", "-", base).strip("-") or "image"
    # OCI ref names allow + @ : / which tags do not.
    tag = ref if _TAG_RE.fullmatch(ref) else re.sub(r"[^\w.-]", "-", ref)[:128]
    return f"localhost/{repo}:{tag}"


def _tag_of(name: str) -> str | None:
    """The tag part of a Docker-style name, as a usable ref; None if there is none."""
    parsed = parse_name(name)
    if parsed is None:
        return None
    return parsed[1]


# ---------------------------------------------------------------------------
# export


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
        if size % _BLOCK:
            self._write(bytes(_BLOCK - size % _BLOCK))

    def close(self) -> None:
        """Write the end-of-archive blocks and pad to a whole record."""
        self._write(bytes(2 * _BLOCK))
        if self._written % _RECORD:
            self._write(bytes(_RECORD - self._written % _RECORD))


def _blob_path(dg: Digest) -> str:
    return f"blobs/{dg.algorithm}/{dg.encoded}"


def _copy_blob(tar: _TarOut, layout: Layout, desc: Descriptor, name: str) -> None:
    """Stream one blob into the tar, verified: a mismatch raises after the
    bytes went out, which aborts the archive (a file target is discarded)."""
    r = layout.store.open(desc.digest, desc.size)
    try:
        tar.stream(name, desc.size, r.read, str(desc.digest))
        r.drain()
    finally:
        r.close()


class _DiffIdReader:
    """Decompressed layer bytes from the one bounded, hashing layer-stream
    opener (to check the diff_id; bomb limits apply)."""

    def __init__(self, raw: VerifyingReader, codec: str, what: str) -> None:
        self.raw = raw
        self.stream = open_layer_stream(cast(BinaryIO, raw), codec)
        self.what = what

    @property
    def hasher(self) -> Hasher:
        """Hash and size of the uncompressed bytes read so far."""
        return self.stream.hasher

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except UnsafeLayerError as e:
            if e.__cause__ is None:
                raise  # a bomb limit, not a damaged stream
            cause: BaseException = e.__cause__
        except OCIToolsError:
            raise
        except Exception as e:
            cause = e
        # A damaged stream: say so by digest when the blob was altered.
        self.raw.drain()
        raise InvalidDocumentError(self.what, [f"cannot decompress: {cause}"]) from None

    def finish(self, diff_id: Digest) -> None:
        """Check the stream is at its end, the blob digest and the diff_id."""
        size = self.hasher.size
        if self.read(1):
            raise DigestMismatchError(
                f"uncompressed size of {self.what}", expected=str(size), actual="more bytes"
            )
        self.raw.drain()
        got = self.hasher.digest()
        if got != diff_id:
            raise DigestMismatchError(
                f"diff_id of {self.what}", expected=str(diff_id), actual=str(got)
            )


def _uncompressed_size(layout: Layout, image: Image, i: int) -> int:
    """The layer's uncompressed size: the cached annotation (checked while
    streaming), or one decompression pass to count (which also verifies)."""
    known = image.uncompressed_size(i)
    if known is not None:
        return known
    desc = image.layers[i]
    rd = _DiffIdReader(
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
            _copy_blob(tar, layout, blobs[dg], _blob_path(dg))
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
            "Config": _blob_path(image.manifest.config.digest),
            "RepoTags": [full_name],
            "Layers": [_blob_path(d.digest) for d in image.layers],
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
            rd = _DiffIdReader(
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


@dataclass(frozen=True, slots=True)
class _Member:
    """A regular archive member now stored as a blob."""

    digest: Digest
    size: int
    codec: str  # sniffed from the first bytes: gzip, zstd or none


@dataclass
class _Spool:
    """What one pass over the archive left: blobs by member name, documents,
    and links between member names."""

    label: str
    members: dict[str, _Member] = field(default_factory=dict)
    documents: dict[str, bytes] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)

    def resolve(self, name: str, what: str) -> _Member:
        """The stored member ``name`` refers to, following links."""
        path = _norm(name)
        for _ in range(32):
            if path in self.members:
                return self.members[path]
            if path not in self.links:
                break
            path = self.links[path]
        raise InvalidDocumentError(
            f"archive {self.label}", [f"{what} {name!r} is not a file in the archive"]
        )


def _norm(name: str) -> str:
    """Member names as written by various tools (``./x``, ``/x``) -> ``x``."""
    return posixpath.normpath("/" + name).lstrip("/")


def _sniff(head: bytes) -> str:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    return "none"


def _expected_digest(name: str) -> Digest | None:
    """The digest a ``blobs/<alg>/<encoded>`` member must have."""
    parts = name.split("/")
    if len(parts) == 3 and parts[0] == "blobs" and digest_problem(f"{parts[1]}:{parts[2]}") is None:
        return Digest(parts[1], parts[2])
    return None


def _is_legacy_metadata(name: str) -> bool:
    """The v1 ``<id>/json`` and ``<id>/VERSION`` files: nothing reads them."""
    parts = name.split("/")
    return len(parts) == 2 and parts[1] in ("json", "VERSION")


def _spool(src: IO[bytes], layout: Layout, label: str) -> _Spool:
    sp = _Spool(label)
    try:
        tf = tarfile.open(fileobj=src, mode="r|*")  # noqa: SIM115 - closed below
    except tarfile.TarError as e:
        raise InvalidDocumentError(f"archive {label}", [f"not a tar archive ({e})"]) from None
    try:
        for m in tf:
            name = _norm(m.name)
            if m.issym():
                sp.links[name] = posixpath.normpath(
                    posixpath.join(posixpath.dirname(name), m.linkname)
                )
                continue
            if m.islnk():
                sp.links[name] = _norm(m.linkname)
                continue
            if not m.isreg() or _is_legacy_metadata(name):
                continue
            f = tf.extractfile(m)
            assert f is not None
            if name in _DOCUMENTS:
                if m.size > MAX_DOCUMENT_SIZE:
                    raise InvalidDocumentError(
                        f"archive {label}", [f"{name} is {m.size} bytes, too large"]
                    )
                sp.documents[name] = f.read()
                if len(sp.documents[name]) != m.size:
                    raise tarfile.ReadError("unexpected end of data")
                continue
            sp.members[name] = _store_member(layout, f, name, m.size)
    except (tarfile.TarError, EOFError) as e:
        raise InvalidDocumentError(
            f"archive {label}",
            [f"truncated or damaged ({e})"],
            hint="the archive is incomplete: nothing was tagged",
        ) from None
    except OSError as e:
        raise OCIToolsError(f"cannot import {label}: {e}") from None
    finally:
        tf.close()
    return sp


def _store_member(layout: Layout, f: IO[bytes], name: str, size: int) -> _Member:
    expected = _expected_digest(name)
    w = layout.store.writer()
    try:
        head = f.read(CHUNK)
        codec = _sniff(head)
        chunk = head
        while chunk:
            w.write(chunk)
            chunk = f.read(CHUNK)
        if w.size != size:
            raise tarfile.ReadError("unexpected end of data")
        try:
            dg = w.commit(expected, size)
        except DigestMismatchError as e:
            raise DigestMismatchError(
                f"archive member {name}",
                expected=e.expected,
                actual=e.actual,
                hint="the archive is damaged or was modified: nothing was tagged",
            ) from None
    except BaseException:
        w.abort()
        raise
    return _Member(dg, size, codec)


@dataclass(frozen=True, slots=True)
class _Found:
    """One image found in an archive: its index.json descriptor and names."""

    descriptor: Descriptor
    names: tuple[str, ...]
    signatures: Descriptor | None = None  # its signature image, carried along


def _oci_images(sp: _Spool, layout: Layout) -> list[_Found]:
    header = sp.documents.get("oci-layout")
    if header is not None:
        doc = parse_json(header, "oci-layout")
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if version != LAYOUT_VERSION:
            raise InvalidDocumentError(
                f"archive {sp.label}", [f"unsupported imageLayoutVersion {version!r}"]
            )
    index = Index.parse(sp.documents["index.json"], mt.OCI_INDEX, what="archive index.json")
    # Docker's manifest.json (hybrid archives) names images by config digest.
    tags_by_config: dict[Digest, list[str]] = {}
    for entry in _docker_entries(sp) if "manifest.json" in sp.documents else []:
        with contextlib.suppress(InvalidDocumentError):
            cfg = sp.resolve(str(entry.get("Config")), "Config")
            tags_by_config[cfg.digest] = [
                t for t in entry.get("RepoTags") or [] if isinstance(t, str)
            ]
    found: list[_Found] = []
    for d in index.manifests:
        _check_closure(layout, d, sp.label)
        names: list[str] = []
        if d.ref_name:
            names = [d.ref_name]
        elif d.annotations.get(CONTAINERD_NAME):
            names = [n for n in [_tag_of(d.annotations[CONTAINERD_NAME])] if n]
        elif d.media_type in mt.MANIFEST_TYPES:
            m = layout.manifest(d)
            if m.config is not None:
                names = [t for t in map(_tag_of, tags_by_config.get(m.config.digest, [])) if t]
        clean = d.with_annotations(**{REF_NAME: None, CONTAINERD_NAME: None, SIGNATURES: None})
        found.append(_Found(clean, tuple(names), _carried_signatures(sp, layout, d)))
    return found


def _carried_signatures(sp: _Spool, layout: Layout, d: Descriptor) -> Descriptor | None:
    """The signature image an export put beside ``d`` (see :data:`SIGNATURES`),
    checked complete; None when there is none."""
    value = d.annotations.get(SIGNATURES)
    if value is None:
        return None
    what = f"archive {sp.label}"
    if digest_problem(value) is not None:
        raise InvalidDocumentError(what, [f"{SIGNATURES} {value!r} is not a digest"])
    member = sp.members.get(_blob_path(Digest.parse(value)))
    if member is None:
        raise InvalidDocumentError(what, [f"signature manifest {value} is missing"])
    doc = parse_json(read_small(layout.store, member.digest, member.size), "signature manifest")
    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    if media_type not in mt.MANIFEST_TYPES:
        raise InvalidDocumentError(what, [f"signature {value} is not an image manifest"])
    sig = Descriptor(str(media_type), member.digest, member.size)
    _check_closure(layout, sig, sp.label)
    return sig


def _check_closure(layout: Layout, top: Descriptor, label: str) -> None:
    """Every blob reachable from ``top`` is present (from the archive or
    already in the layout) and every document on the way parses."""

    def visit(d: Descriptor, _where: str) -> bool:
        if not layout.store.has(d.digest):
            raise InvalidDocumentError(
                f"archive {label}",
                [f"blob {d.digest} ({d.media_type}) is missing"],
                hint="the archive is incomplete (truncated, or exported for one platform only)",
            )
        if layout.store.stat_size(d.digest) != d.size:
            raise DigestMismatchError(
                f"size of {d.digest}",
                expected=str(d.size),
                actual=str(layout.store.stat_size(d.digest)),
            )
        if d.media_type in mt.MANIFEST_TYPES:
            m = layout.manifest(d)
            if m.config is not None and m.config.media_type in mt.CONFIG_TYPES:
                layout.config(m)  # a config that does not parse is refused now
        return True

    layout.walk([(top, "archive")], visit)


def _docker_entries(sp: _Spool) -> list[dict[str, Any]]:
    doc = parse_json(sp.documents["manifest.json"], "manifest.json")
    what = f"archive {sp.label} manifest.json"
    if not isinstance(doc, list) or not all(isinstance(e, dict) for e in doc):
        raise InvalidDocumentError(what, ["must be an array of objects"])
    for i, e in enumerate(doc):
        if not isinstance(e.get("Config"), str) or not isinstance(e.get("Layers"), list):
            raise InvalidDocumentError(what, [f"[{i}] needs Config and Layers"])
    return doc


def _docker_images(sp: _Spool, layout: Layout) -> list[_Found]:
    found: list[_Found] = []
    for entry in _docker_entries(sp):
        cmem = sp.resolve(entry["Config"], "Config")
        raw = read_small(layout.store, cmem.digest, cmem.size)
        # Docker's config is structurally the OCI one: keep its bytes (and so
        # Docker's image id) and only re-type it; refuse what OCI would not.
        validate(mt.OCI_CONFIG, raw)
        config = ImageConfig.parse(raw)
        paths = entry["Layers"]
        if len(paths) != len(config.diff_ids):
            raise InvalidDocumentError(
                f"archive {sp.label}",
                [f"{entry['Config']}: {len(paths)} layers but {len(config.diff_ids)} diff_ids"],
            )
        layers = [
            _docker_layer(layout, sp.resolve(str(p), "layer"), diff_id, str(p))
            for p, diff_id in zip(paths, config.diff_ids, strict=True)
        ]
        manifest = Manifest.build(config.descriptor(mt.OCI_CONFIG), layers)
        put_bytes(layout.store, manifest.raw)
        mdesc = manifest.descriptor(mt.OCI_MANIFEST, platform=config.platform)
        tags = [t for t in map(_tag_of, entry.get("RepoTags") or []) if t]
        found.append(_Found(mdesc, tuple(dict.fromkeys(tags))))
    return found


def _docker_layer(layout: Layout, mem: _Member, diff_id: Digest, path: str) -> Descriptor:
    """The OCI descriptor of a Docker archive layer, its diff_id checked."""
    if mem.codec == "none":
        if mem.digest != diff_id:
            raise DigestMismatchError(
                f"layer {path}",
                expected=str(diff_id),
                actual=str(mem.digest),
                hint="the archive is damaged or was modified: nothing was tagged",
            )
        return Descriptor(mt.OCI_LAYER_TAR, mem.digest, mem.size)
    rd = _DiffIdReader(layout.store.open(mem.digest, mem.size), mem.codec, f"layer {path}")
    try:
        while rd.read(CHUNK):
            pass
        rd.finish(diff_id)
    finally:
        rd.raw.close()
    return Descriptor(
        mt.OCI_LAYER_FOR_CODEC[mem.codec],
        mem.digest,
        mem.size,
        {UNCOMPRESSED_SIZE: str(rd.hasher.size)},
    )


def _assign_refs(found: list[_Found], ref: str | None, label: str) -> list[tuple[str, Descriptor]]:
    if ref is not None:
        if len(found) != 1:
            raise UsageError(
                f"archive {label} holds {len(found)} images; a REF names only one",
                hint="import without :REF to use the archive's own names",
            )
        return [(ref, found[0].descriptor)]
    out: list[tuple[str, Descriptor]] = []
    owner: dict[str, Descriptor] = {}
    for i, f in enumerate(found):
        if not f.names:
            raise UsageError(
                f"image {i + 1} ({f.descriptor.digest}) in archive {label} has no name",
                hint="give it one: oci-tools import FILE LAYOUT:REF",
            )
        for n in f.names:
            check_ref(n)
            if n in owner and owner[n].digest != f.descriptor.digest:
                raise UsageError(
                    f"archive {label}: two images would both be tagged {n!r}",
                    hint="import them one by one from separate archives",
                )
            if n not in owner:
                owner[n] = f.descriptor
                out.append((n, f.descriptor))
    return out


def import_archive(
    src: str | BinaryIO,
    layout: Layout,
    ref: str | None = None,
    *,
    signatures: Callable[[Digest, Descriptor], None] | None = None,
) -> list[tuple[str, Descriptor]]:
    """Import every image of an oci-archive, docker-archive or hybrid tar
    (a path, or a stream read once from start to end) into ``layout``.

    With ``ref`` the archive must hold one image, tagged ``ref``; without,
    images keep their own names (``ref.name``; Docker ``RepoTags`` by their
    tag part).  Returns (ref, descriptor) per tag set, in archive order.
    ``index.json`` changes only once, after everything was verified.

    ``signatures(digest, signature_image)`` is called, after that change,
    for each signature image the archive carried (already stored and checked
    complete); without it they are left for gc.
    """
    if ref is not None:
        check_ref(ref)
    label = src if isinstance(src, str) else "(stream)"
    # Held from the first blob to the final tag so a concurrent gc cannot
    # sweep blobs that nothing references yet.
    with layout.lock():
        if isinstance(src, str):
            try:
                f = open(src, "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise NotFoundError(f"no such archive: {src}") from None
            except OSError as e:
                raise OCIToolsError(f"cannot read {src}: {e.strerror}") from None
            with f:
                sp = _spool(f, layout, label)
        else:
            sp = _spool(src, layout, label)
        if "index.json" in sp.documents:
            found = _oci_images(sp, layout)
        elif "manifest.json" in sp.documents:
            found = _docker_images(sp, layout)
        else:
            raise InvalidDocumentError(
                f"archive {label}",
                ["no index.json or manifest.json: not an oci-archive or docker-archive"],
                hint="a truncated archive may have lost them (they come last)",
            )
        result = _assign_refs(found, ref, label)
        names = {n for n, _ in result}

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            kept = [d for d in entries if d.ref_name not in names]
            return kept + [with_ref(d, n) for n, d in result]

        layout.update_index(change)
        if signatures is not None:
            # Still under the lock: a gc cannot sweep the carried blobs first.
            for item in found:
                if item.signatures is not None:
                    signatures(item.descriptor.digest, item.signatures)
    return result


__all__ = [
    "FORMATS",
    "export_image",
    "image_name",
    "import_archive",
    "parse_name",
]
