"""Signatures on a registry, where cosign and containers/image keep them:
the manifest tagged ``sha256-<hex>.sig`` in the image's repository.

``verify_remote`` resolves the reference first (the manifest bytes are
hashed here, whatever the registry claims), then reads the signature
manifest and its payload blobs (each checked against its descriptor) and
verifies them against that digest.  ``fetch_signatures`` copies the
signature image into a layout; ``push_signatures`` merges the layout's
signatures with those already on the registry and pushes the result.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable

from oci_tools.digest import Digest
from oci_tools.errors import NotFoundError, RegistryError, SignatureError, UsageError
from oci_tools.layout import Layout
from oci_tools.registry.copy import Endpoint
from oci_tools.registry.reference import RemoteRef
from oci_tools.registry.remote import RemoteManifest, Repository
from oci_tools.registry.transfer import Client, copy_remote, pull, push
from oci_tools.sign.cosign import (
    SIMPLESIGNING,
    Verified,
    add_signature,
    signature_tag,
    verify_signatures,
)
from oci_tools.sign.keys import PublicKey
from oci_tools.sign.payload import MAX_PAYLOAD
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Manifest
from oci_tools.store import MemoryStore


def _missing(e: RegistryError) -> bool:
    return e.status == 404 or e.code in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def signature_manifest(repo: Repository, digest: Digest) -> Manifest | None:
    """The signature manifest of ``digest`` in ``repo``, None when there is
    none.  (Its bytes are not trusted: every payload is verified later.)"""
    try:
        got: RemoteManifest = repo.get_manifest(signature_tag(digest))
    except RegistryError as e:
        if _missing(e):
            return None
        raise
    if got.media_type not in mt.MANIFEST_TYPES:
        raise SignatureError(f"{signature_tag(digest)} is a {got.media_type}, not an image")
    return Manifest.parse(got.raw, got.media_type)


def _reader(repo: Repository) -> Callable[[Descriptor], bytes]:
    def read(d: Descriptor) -> bytes:
        if d.size > MAX_PAYLOAD:
            raise SignatureError(f"signature payload {d.digest}: {d.size} bytes is over the cap")
        mem = MemoryStore()
        w = mem.writer()
        try:
            repo.fetch_blob(d.digest, d.size, w)
            w.commit(d.digest, d.size)  # refuses bytes that do not match
        except BaseException:
            w.abort()
            raise
        return mem.blobs[d.digest]

    return read


def verify_remote(client: Client, ref: RemoteRef, key: PublicKey) -> tuple[Digest, list[Verified]]:
    """Verify the signatures of the registry image ``ref`` (its top-level
    manifest or index digest).  Returns (digest, verified payloads);
    SignatureError when none verifies."""
    repo = client.repository(ref)
    top = repo.get_manifest(ref.reference)  # digest computed on the bytes received
    sig = signature_manifest(repo, top.digest)
    if sig is None:
        raise SignatureError(
            f"no signature for {top.digest} ({ref})",
            hint=f"a signed image has the tag {signature_tag(top.digest)} in {ref.name}",
        )
    read = _reader(repo)
    good = verify_signatures(
        sig.layers,
        read,
        top.digest,
        key,
        where=f"{ref.name}:{signature_tag(top.digest)}",
    )
    return top.digest, good


def fetch_signatures(client: Client, ref: RemoteRef, digest: Digest, layout: Layout) -> bool:
    """Copy the signature image of ``digest`` from ``ref``'s repository into
    ``layout`` (tagged ``sha256-<hex>.sig``, merged with any signatures the
    layout holds).  False when the registry has none."""
    repo = client.repository(ref)
    sig = signature_manifest(repo, digest)
    if sig is None:
        return False
    tag = signature_tag(digest)
    try:
        layout.lookup(tag)
    except NotFoundError:
        # Nothing local: copy the signature image as it is (same digest).
        pull(client, ref.with_reference(tag=tag), layout, tag)
        return True
    _merge(layout, digest, sig, repo)
    return True


def _merge(layout: Layout, digest: Digest, sig: Manifest, repo: Repository) -> None:
    read = _reader(repo)
    for d in sig.layers:
        if d.media_type != SIMPLESIGNING or d.size > MAX_PAYLOAD:
            continue
        raw = read(d)
        add_signature(layout, digest, raw, dict(d.annotations))


def push_signatures(client: Client, layout: Layout, digest: Digest, dest: RemoteRef) -> Digest:
    """Push the layout's signatures of ``digest`` to ``dest``'s repository,
    keeping those already there (merged into the layout's signature image
    first).  Returns the pushed signature manifest digest; SignatureError
    when the layout has none."""
    tag = signature_tag(digest)
    try:
        layout.lookup(tag)
    except NotFoundError:
        raise SignatureError(f"no signature for {digest} in {layout.path}") from None
    repo = client.repository(dest)
    there = signature_manifest(repo, digest)
    if there is not None:
        _merge(layout, digest, there, repo)
    return push(client, layout, tag, dest.with_reference(tag=tag))


def copy_signatures(client: Client, src: Endpoint, dst: Endpoint, digest: Digest) -> bool:
    """Copy the signatures of ``digest`` along a ``copy SRC DST`` (registry
    and layout ends; merged with the signatures already at the destination,
    layout or registry).  False when the source
    has none; UsageError for an archive end."""
    tag = signature_tag(digest)
    if "oci-archive" in (src.kind, dst.kind):
        raise UsageError("--include-signatures works between docker:// and oci: only")
    if src.remote is not None:
        repo = client.repository(src.remote)
        if dst.remote is not None:
            if signature_manifest(repo, digest) is None:
                return False
            if signature_manifest(client.repository(dst.remote), digest) is None:
                # Nothing there yet: the signature image as it is (same digest).
                copy_remote(
                    client, src.remote.with_reference(tag=tag), dst.remote.with_reference(tag=tag)
                )
                return True
            # Both ends hold signatures: merge them (as push does) through a
            # scratch layout, so the destination's own signatures survive.
            with tempfile.TemporaryDirectory(prefix="oci-tools-sig-") as tmp:
                scratch = Layout.init(os.path.join(tmp, "sig"))
                fetch_signatures(client, src.remote, digest, scratch)
                push_signatures(client, scratch, digest, dst.remote)
            return True
        return fetch_signatures(client, src.remote, digest, Layout.open(dst.path))
    lay = Layout.open(src.path)
    try:
        lay.lookup(tag)
    except NotFoundError:
        return False
    if dst.remote is not None:
        push_signatures(client, lay, digest, dst.remote)
        return True
    out = Layout.open(dst.path)
    sig = Manifest.parse(lay.read_blob(lay.lookup(tag)), mt.OCI_MANIFEST)
    for d in sig.layers:
        if d.media_type == SIMPLESIGNING and d.size <= MAX_PAYLOAD:
            add_signature(out, digest, lay.read_blob(d), dict(d.annotations))
    return True


__all__ = [
    "copy_signatures",
    "fetch_signatures",
    "push_signatures",
    "signature_manifest",
    "verify_remote",
]
