"""OCI 1.1 attachments: artifact manifests whose ``subject`` is an image,
and the referrers of an image.

``attach`` writes an image manifest with an ``artifactType``, the empty
config (``application/vnd.oci.empty.v1+json``, ``{}``), one layer (the
file) and ``subject`` = the image's descriptor.  A layout has no referrers
API, so the referrers of ``sha256:<hex>`` are listed the way the
distribution spec's fallback lists them on a registry without the API: an
image index tagged ``sha256-<hex>`` (one descriptor per referrer, with its
``artifactType`` and annotations).  ``remote_referrers`` asks a registry's
``/v2/<name>/referrers/<digest>`` first and falls back to that tag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError, NotFoundError, RegistryError, UsageError
from oci_tools.layout import Layout
from oci_tools.registry.reference import RemoteRef
from oci_tools.registry.transfer import Client
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Index, Manifest, dump_json
from oci_tools.store import put_bytes, put_stream

#: The config of an artifact with no config of its own (image-spec 1.1).
EMPTY_CONFIG = b"{}"
TITLE = "org.opencontainers.image.title"


def referrers_tag(digest: Digest) -> str:
    """``sha256-<hex>``: the fallback tag listing ``digest``'s referrers."""
    return f"{digest.algorithm}-{digest.encoded}"


def _check_type(artifact_type: str) -> None:
    # RFC 6838 type/subtype, as the spec asks of artifactType
    main, sep, sub = artifact_type.partition("/")
    if not sep or not main or not sub or any(c.isspace() for c in artifact_type):
        raise UsageError(f"artifact type {artifact_type!r} is not a media type (type/subtype)")


def attach(
    layout: Layout,
    ref: str,
    artifact_type: str,
    path: str,
    *,
    media_type: str = "application/octet-stream",
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Store ``path`` as an artifact whose subject is what ``ref`` names,
    and list it among that image's referrers.  Returns the artifact
    manifest's descriptor."""
    _check_type(artifact_type)
    _check_type(media_type)
    subject = layout.lookup(ref)
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below; streamed into the store)
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    with layout.lock():
        try:
            size = os.fstat(f.fileno()).st_size
            blob = put_stream(layout.store, f)
        finally:
            f.close()
        empty = put_bytes(layout.store, EMPTY_CONFIG)
        doc: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": mt.OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": mt.OCI_EMPTY, "digest": str(empty), "size": 2, "data": "e30="},
            "layers": [
                {
                    "mediaType": media_type,
                    "digest": str(blob),
                    "size": size,
                    "annotations": {TITLE: os.path.basename(path)},
                }
            ],
            "subject": Descriptor(subject.media_type, subject.digest, subject.size).to_dict(),
        }
        if annotations:
            doc["annotations"] = dict(annotations)
        raw = dump_json(doc)
        Manifest.parse(raw, mt.OCI_MANIFEST)  # our own output must parse
        dg = put_bytes(layout.store, raw)
        desc = Descriptor(
            mt.OCI_MANIFEST,
            dg,
            len(raw),
            dict(annotations or {}),
            artifact_type=artifact_type,
        )
        tag = referrers_tag(subject.digest)
        current = _layout_index(layout, tag)
        if all(d.digest != dg for d in current):
            index = Index.build([*current, desc])
            idx_dg = put_bytes(layout.store, index.raw)
            layout.set_ref(tag, Descriptor(mt.OCI_INDEX, idx_dg, len(index.raw)))
    return desc


def _layout_index(layout: Layout, tag: str) -> list[Descriptor]:
    try:
        d = layout.lookup(tag)
    except NotFoundError:
        return []
    if d.media_type not in mt.INDEX_TYPES:
        raise InvalidDocumentError(tag, [f"a referrers tag must be an index, not {d.media_type}"])
    return list(Index.parse(layout.read_blob(d), d.media_type).manifests)


def _filter(found: list[Descriptor], artifact_type: str | None) -> list[Descriptor]:
    if artifact_type is None:
        return found
    return [d for d in found if d.artifact_type == artifact_type]


def referrers(
    layout: Layout, ref: str, *, artifact_type: str | None = None
) -> tuple[Digest, list[Descriptor]]:
    """The referrers of what ``ref`` names in ``layout`` (its digest, the
    descriptors), optionally only those of ``artifact_type``."""
    digest = layout.lookup(ref).digest
    return digest, _filter(_layout_index(layout, referrers_tag(digest)), artifact_type)


def remote_referrers(
    client: Client, ref: RemoteRef, *, artifact_type: str | None = None
) -> tuple[Digest, list[Descriptor]]:
    """The referrers of a registry image: the referrers API, else the
    ``sha256-<hex>`` fallback tag (none when neither exists)."""
    repo = client.repository(ref)
    digest = repo.get_manifest(ref.reference).digest
    resp = repo.t.request(
        "GET",
        f"/v2/{repo.name}/referrers/{digest}",
        scope=repo.pull_scope,
        what=f"referrers of {ref.name}@{digest}",
        headers={"Accept": mt.OCI_INDEX},
        ok=(200, 400, 404, 405, 406),
        stream=True,
    )
    ctype = (resp.headers.get("Content-Type") or "").split(";")[0].strip()
    try:
        body = resp.read((4 << 20) + 1) if resp.status == 200 else b""
    finally:
        resp.release_conn()
    if resp.status == 200 and ctype == mt.OCI_INDEX:
        if len(body) > 4 << 20:
            raise RegistryError(f"referrers of {ref.name}@{digest}: answer over 4 MiB")
        return digest, _filter(list(Index.parse(body, mt.OCI_INDEX).manifests), artifact_type)
    try:
        got = repo.get_manifest(referrers_tag(digest))
    except RegistryError as e:
        if e.status == 404 or e.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
            return digest, []
        raise
    if got.media_type not in mt.INDEX_TYPES:
        return digest, []
    return digest, _filter(list(Index.parse(got.raw, got.media_type).manifests), artifact_type)


__all__ = [
    "EMPTY_CONFIG",
    "attach",
    "referrers",
    "referrers_tag",
    "remote_referrers",
]
