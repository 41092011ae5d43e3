"""The spec documents as immutable values that keep their raw bytes.

Every parsed document holds the exact bytes it came from (``raw``) and the
decoded JSON (``doc``); a digest is always computed over ``raw``, never over a
re-serialization.  Changes return new objects built by ``with_*``/``evolve``
helpers, which serialize once and keep those bytes.  This module knows JSON,
not files (L2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError
from oci_tools.records import field, record
from oci_tools.spec import mediatype as mt
from oci_tools.spec.schema import parse_json

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"


def dump_json(doc: Mapping[str, Any]) -> bytes:
    """Serialize a document the one way oci-tools writes JSON: compact, UTF-8,
    keys in the order the document has them (our builders fix that order)."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _need(cond: bool, what: str, problem: str) -> None:
    if not cond:
        raise InvalidDocumentError(what, [problem])


def _str_map(value: Any, what: str, field_name: str) -> dict[str, str]:
    if value is None:
        return {}
    _need(isinstance(value, dict), what, f"{field_name} must be an object")
    for k, v in value.items():
        _need(isinstance(v, str), what, f"{field_name}[{k!r}] must be a string")
    return dict(value)


@record
class Platform:
    """Where an image runs: ``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as given on the command line."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidDocumentError("platform", [f"{text!r} is not os/arch[/variant]"])
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Platform:
        """From a descriptor's or config's platform fields."""
        return cls(
            str(d.get("os", "")),
            str(d.get("architecture", "")),
            str(d.get("variant", "") or ""),
            str(d.get("os.version", "") or ""),
            tuple(d.get("os.features", None) or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in descriptors."""
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    def matches(self, other: Platform) -> bool:
        """True when ``other`` (a wanted platform) is satisfied by this one."""
        if (self.os, self.architecture) != (other.os, other.architecture):
            return False
        return not other.variant or self.variant == other.variant

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


@record
class Descriptor:
    """A content descriptor: media type, digest and size of a blob."""

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    data: str | None = None
    artifact_type: str | None = None

    @classmethod
    def from_dict(cls, d: Any, what: str = "descriptor") -> Descriptor:
        """Build from decoded JSON, checking the required fields."""
        _need(isinstance(d, dict), what, "must be an object")
        mtype = d.get("mediaType")
        _need(isinstance(mtype, str), what, "mediaType must be a string")
        size = d.get("size")
        _need(
            isinstance(size, int) and not isinstance(size, bool) and size >= 0,
            what,
            "size must be a non-negative integer",
        )
        dg = d.get("digest")
        _need(isinstance(dg, str), what, "digest must be a string")
        plat = d.get("platform")
        return cls(
            media_type=mtype,
            digest=Digest.parse(dg),
            size=size,
            annotations=_str_map(d.get("annotations"), what, "annotations"),
            platform=Platform.from_dict(plat) if isinstance(plat, dict) else None,
            urls=tuple(d.get("urls") or ()),
            data=d.get("data"),
            artifact_type=d.get("artifactType"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON form, fields in the spec's order."""
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.data is not None:
            out["data"] = self.data
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out

    def __repr__(self) -> str:
        ref = f" ref={self.ref_name!r}" if self.ref_name else ""
        plat = f" {self.platform}" if self.platform else ""
        return f"Descriptor({self.media_type} {self.digest.short} {self.size} B{plat}{ref})"

    @property
    def ref_name(self) -> str | None:
        """The ``org.opencontainers.image.ref.name`` annotation, if any."""
        return self.annotations.get(REF_NAME)

    def with_annotations(self, **changes: str | None) -> Descriptor:
        """A copy with annotations set (a value of None removes the key)."""
        ann = merge_annotations(self.annotations, changes)
        return Descriptor(
            self.media_type,
            self.digest,
            self.size,
            ann,
            self.platform,
            self.urls,
            self.data,
            self.artifact_type,
        )


def merge_annotations(
    current: Mapping[str, str], changes: Mapping[str, str | None]
) -> dict[str, str]:
    """``current`` with ``changes`` applied: a value sets its key, None removes it."""
    ann = dict(current)
    for k, v in changes.items():
        if v is None:
            ann.pop(k, None)
        else:
            ann[k] = v
    return ann


def with_ref(desc: Descriptor, ref: str | None) -> Descriptor:
    """``desc`` annotated with ref name ``ref`` (None removes it)."""
    kw: dict[str, str | None] = {REF_NAME: ref}
    return desc.with_annotations(**kw)


@record
class Document:
    """Common part of every JSON document: raw bytes + decoded JSON."""

    raw: bytes
    doc: Mapping[str, Any]

    @property
    def digest(self) -> Digest:
        """sha256 of the raw bytes."""
        return Digest.of_bytes(self.raw)

    @property
    def size(self) -> int:
        return len(self.raw)

    def descriptor(self, media_type: str, **extra: Any) -> Descriptor:
        """A descriptor pointing at these exact bytes."""
        return Descriptor(media_type, self.digest, len(self.raw), **extra)

    def as_dict(self) -> dict[str, Any]:
        """A deep, mutable copy of the decoded JSON (for building a changed copy)."""
        import copy  # building a changed copy, not reading (start-up)

        return copy.deepcopy(dict(self.doc))


@record
class Manifest(Document):
    """An image manifest (OCI or Docker v2.2)."""

    media_type: str = mt.OCI_MANIFEST
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)
    subject: Descriptor | None = None

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None) -> Manifest:
        """Parse manifest bytes (media type from the descriptor, if known)."""
        doc = parse_json(raw, "manifest")
        what = "manifest"
        _need(isinstance(doc, dict), what, "must be a JSON object")
        _need(doc.get("schemaVersion") == 2, what, "schemaVersion must be 2")
        _need("manifests" not in doc, what, "a manifest must not have 'manifests'")
        mtype = doc.get("mediaType") or media_type or mt.OCI_MANIFEST
        if media_type and doc.get("mediaType") and doc["mediaType"] != media_type:
            raise InvalidDocumentError(
                what, [f"mediaType {doc['mediaType']!r} does not match descriptor {media_type!r}"]
            )
        # isinstance first: a list or an object there is unhashable.
        _need(
            isinstance(mtype, str) and mtype in mt.MANIFEST_TYPES,
            what,
            f"mediaType {mtype!r} is not a manifest",
        )
        layers = doc.get("layers")
        _need(isinstance(layers, list), what, "layers must be an array")
        subj = doc.get("subject")
        return cls(
            raw=raw,
            doc=doc,
            media_type=mtype,
            config=Descriptor.from_dict(doc.get("config"), "manifest config"),
            layers=tuple(
                Descriptor.from_dict(d, f"manifest layers[{i}]") for i, d in enumerate(layers)
            ),
            annotations=_str_map(doc.get("annotations"), what, "annotations"),
            subject=Descriptor.from_dict(subj, "manifest subject") if subj else None,
        )

    @classmethod
    def build(
        cls,
        config: Descriptor,
        layers: list[Descriptor],
        annotations: Mapping[str, str] | None = None,
    ) -> Manifest:
        """A new OCI manifest (our fixed field order)."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "config": config.to_dict(),
            "layers": [d.to_dict() for d in layers],
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        return cls.parse(dump_json(doc), mt.OCI_MANIFEST)


@record
class Index(Document):
    """An image index (OCI) or manifest list (Docker); also ``index.json``."""

    media_type: str = mt.OCI_INDEX
    manifests: tuple[Descriptor, ...] = ()
    annotations: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: bytes, media_type: str | None = None, what: str = "index") -> Index:
        """Parse index bytes."""
        doc = parse_json(raw, what)
        _need(isinstance(doc, dict), what, "must be a JSON object")
        _need(doc.get("schemaVersion") == 2, what, "schemaVersion must be 2")
        _need(
            "config" not in doc and "layers" not in doc,
            what,
            "an index must not have 'config' or 'layers'",
        )
        mtype = doc.get("mediaType") or media_type or mt.OCI_INDEX
        _need(
            isinstance(mtype, str) and mtype in mt.INDEX_TYPES,
            what,
            f"mediaType {mtype!r} is not an index",
        )
        manifests = doc.get("manifests")
        _need(isinstance(manifests, list), what, "manifests must be an array")
        return cls(
            raw=raw,
            doc=doc,
            media_type=mtype,
            manifests=tuple(
                Descriptor.from_dict(d, f"{what} manifests[{i}]") for i, d in enumerate(manifests)
            ),
            annotations=_str_map(doc.get("annotations"), what, "annotations"),
        )

    @classmethod
    def build(
        cls, manifests: list[Descriptor], annotations: Mapping[str, str] | None = None
    ) -> Index:
        """A new OCI index."""
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_INDEX,
            "manifests": [d.to_dict() for d in manifests],
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        return cls.parse(dump_json(doc), mt.OCI_INDEX)


@record
class History:
    """One row of ``config.history``: a build step."""

    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    @classmethod
    def from_dict(cls, d: Any) -> History:
        _need(isinstance(d, dict), "config", "history entries must be objects")
        return cls(
            d.get("created"),
            d.get("created_by"),
            d.get("author"),
            d.get("comment"),
            bool(d.get("empty_layer", False)),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.created is not None:
            out["created"] = self.created
        if self.created_by is not None:
            out["created_by"] = self.created_by
        if self.author is not None:
            out["author"] = self.author
        if self.comment is not None:
            out["comment"] = self.comment
        if self.empty_layer:
            out["empty_layer"] = True
        return out


@record
class ImageConfig(Document):
    """An image configuration (OCI or Docker ``container.image.v1``)."""

    architecture: str = ""
    os: str = ""
    variant: str = ""
    created: str | None = None
    author: str | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[History, ...] = ()

    @classmethod
    def parse(cls, raw: bytes) -> ImageConfig:
        """Parse config bytes."""
        what = "config"
        doc = parse_json(raw, what)
        _need(isinstance(doc, dict), what, "must be a JSON object")
        rootfs = doc.get("rootfs")
        _need(isinstance(rootfs, dict), what, "rootfs must be an object")
        _need(rootfs.get("type") == "layers", what, "rootfs.type must be 'layers'")
        diff_ids = rootfs.get("diff_ids")
        _need(isinstance(diff_ids, list), what, "rootfs.diff_ids must be an array")
        hist = doc.get("history") or []
        _need(isinstance(hist, list), what, "history must be an array")
        conf = doc.get("config") or {}
        _need(isinstance(conf, dict), what, "config must be an object")
        return cls(
            raw=raw,
            doc=doc,
            architecture=str(doc.get("architecture") or ""),
            os=str(doc.get("os") or ""),
            variant=str(doc.get("variant") or ""),
            created=doc.get("created"),
            author=doc.get("author"),
            config=conf,
            diff_ids=tuple(Digest.parse(d) for d in diff_ids),
            history=tuple(History.from_dict(h) for h in hist),
        )

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ImageConfig:
        """Serialize ``doc`` and parse it back (so raw and doc agree)."""
        return cls.parse(dump_json(doc))

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def layer_history(self) -> list[tuple[History, int | None]]:
        """History rows paired with the index of the layer each made (None for
        empty_layer rows), oldest first."""
        out: list[tuple[History, int | None]] = []
        n = 0
        for h in self.history:
            if h.empty_layer:
                out.append((h, None))
            else:
                out.append((h, n if n < len(self.diff_ids) else None))
                n += 1
        return out


__all__ = [
    "CONTAINERD_NAME",
    "REF_NAME",
    "Descriptor",
    "Document",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "dump_json",
    "merge_annotations",
    "with_ref",
]
