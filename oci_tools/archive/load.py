"""Reading an ``oci-archive`` or ``docker-archive`` into a layout (``import``
is a keyword, hence the name)."""

from __future__ import annotations

import contextlib
import posixpath
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

from oci_tools.archive.common import (
    CHUNK,
    DOCUMENTS,
    SIGNATURES,
    DiffIdReader,
    blob_path,
    tag_of,
)
from oci_tools.digest import Digest, digest_problem
from oci_tools.errors import (
    DigestMismatchError,
    InvalidDocumentError,
    NotFoundError,
    OCIToolsError,
    UsageError,
)
from oci_tools.image import UNCOMPRESSED_SIZE
from oci_tools.layout import LAYOUT_VERSION, Layout, check_ref
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    CONTAINERD_NAME,
    REF_NAME,
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    with_ref,
)
from oci_tools.spec.schema import parse_json, validate
from oci_tools.store import MAX_DOCUMENT_SIZE, put_bytes, read_small


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
            if name in DOCUMENTS:
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
            names = [n for n in [tag_of(d.annotations[CONTAINERD_NAME])] if n]
        elif d.media_type in mt.MANIFEST_TYPES:
            m = layout.manifest(d)
            if m.config is not None:
                names = [t for t in map(tag_of, tags_by_config.get(m.config.digest, [])) if t]
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
    member = sp.members.get(blob_path(Digest.parse(value)))
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
        tags = [t for t in map(tag_of, entry.get("RepoTags") or []) if t]
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
    rd = DiffIdReader(layout.store.open(mem.digest, mem.size), mem.codec, f"layer {path}")
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
