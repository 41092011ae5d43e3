"""Signatures beside images in a layout, stored as cosign stores them.

The signatures of the image whose (top-level) manifest digest is
``sha256:<hex>`` live in an OCI image tagged ``sha256-<hex>.sig``: one layer
per signature, the layer blob being the payload
(``application/vnd.dev.cosign.simplesigning.v1+json``) and the base64
signature in its ``dev.cosignproject.cosign/signature`` annotation.  Signing
again appends a layer (an identical one is never added twice).

Verification trusts nothing from the signature image until checked: each
payload blob is read verified against its descriptor, its signature checked
with the public key over those exact bytes, the payload parsed strictly, and
its digest compared with the digest the reference resolved to *before* the
signature image was looked at.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oci_tools import mutate
from oci_tools.digest import Digest
from oci_tools.errors import NotFoundError, SignatureError
from oci_tools.image import Image, Layer
from oci_tools.layout import Layout
from oci_tools.sign.keys import PrivateKey, PublicKey, sign_bytes, verify_bytes
from oci_tools.sign.payload import MAX_PAYLOAD, Payload, parse_payload
from oci_tools.spec.model import Descriptor, Manifest
from oci_tools.store import put_bytes

#: The layer media type of a simple-signing payload.
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
#: The layer annotation holding the base64 signature.
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


def signature_tag(digest: Digest) -> str:
    """``sha256-<hex>.sig``: where the signatures of ``digest`` are tagged."""
    return f"{digest.algorithm}-{digest.encoded}.sig"


def _empty_config() -> dict[str, Any]:
    # What cosign's empty signature image carries: no platform, no layers yet.
    return {
        "architecture": "",
        "os": "",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
    }


@dataclass(frozen=True, slots=True)
class Signed:
    """What ``sign_image`` did: the image's digest, the payload signed, the
    signature image's descriptor and its tag, and whether a layer was added."""

    digest: Digest
    payload: Payload
    signature_image: Descriptor
    tag: str
    added: bool


def make_signature(key: PrivateKey, payload: Payload) -> tuple[bytes, str]:
    """The payload bytes and their base64 signature."""
    raw = payload.to_bytes()
    return raw, base64.b64encode(sign_bytes(key, raw)).decode("ascii")


def _same(d: Descriptor, digest: Digest, annotations: Mapping[str, str]) -> bool:
    return (
        d.media_type == SIMPLESIGNING
        and d.digest == digest
        and dict(d.annotations) == dict(annotations)
    )


def add_signature(
    layout: Layout,
    digest: Digest,
    payload_raw: bytes,
    annotations: Mapping[str, str],
    *,
    duplicate: Callable[[Descriptor, bytes], bool] | None = None,
) -> tuple[Descriptor, bool]:
    """Append one signature layer (payload blob + annotations) to the
    signature image of ``digest`` in ``layout`` (made when missing) and tag
    it, unless an identical layer, or one ``duplicate(layer, payload)``
    calls equivalent, is there.  Returns (signature image descriptor,
    whether a layer was added)."""
    tag = signature_tag(digest)
    with layout.lock():
        blob_digest = put_bytes(layout.store, payload_raw)
        try:
            current: Image | None = Image.load(layout, tag)
        except NotFoundError:
            current = None
        if current is not None:
            for d in current.layers:
                if _same(d, blob_digest, annotations) or (
                    duplicate is not None
                    and d.media_type == SIMPLESIGNING
                    and d.digest == blob_digest
                    and duplicate(d, payload_raw)
                ):
                    return current.descriptor, False
        base = current or mutate.assemble(layout, _empty_config(), [])
        layer = Layer(
            Descriptor(SIMPLESIGNING, blob_digest, len(payload_raw), dict(annotations)),
            blob_digest,  # the payload is not compressed: diff_id = digest
            len(payload_raw),
        )
        img = mutate.append_layer(base, layer)
        desc = mutate.write(layout, img)
        desc = Descriptor(desc.media_type, desc.digest, desc.size)  # no platform: not an image
        layout.set_ref(tag, desc)
    return desc, True


def sign_image(
    layout: Layout,
    ref: str,
    key: PrivateKey,
    identity: str,
    *,
    annotations: Mapping[str, str] | None = None,
) -> Signed:
    """Sign what ``ref`` names in ``layout`` (its top-level manifest or
    index digest, as cosign and skopeo sign) for the name ``identity``
    (``HOST/REPO[:TAG]``); ``annotations`` go into the payload's
    ``optional``."""
    desc = layout.lookup(ref)
    payload = Payload(identity, desc.digest, dict(annotations) if annotations else None)
    raw, sig = make_signature(key, payload)
    public = key.public_key()

    def same_signer(d: Descriptor, data: bytes) -> bool:
        # ECDSA signatures differ every time: like cosign's dupe detector, an
        # existing layer with the same payload that verifies with this key's
        # public half is the same signature.
        old = _b64_signature(d)
        return old is not None and verify_bytes(public, old, data)

    sig_desc, added = add_signature(
        layout, desc.digest, raw, {SIGNATURE_ANNOTATION: sig}, duplicate=same_signer
    )
    return Signed(desc.digest, payload, sig_desc, signature_tag(desc.digest), added)


def signature_image(layout: Layout, digest: Digest) -> Descriptor | None:
    """The signature image of ``digest`` in ``layout`` (bare descriptor),
    None when it has none."""
    try:
        desc = layout.lookup(signature_tag(digest))
    except NotFoundError:
        return None
    return Descriptor(desc.media_type, desc.digest, desc.size)


def adopt_signatures(layout: Layout, digest: Digest, sig: Descriptor) -> None:
    """Make ``sig``, a signature image whose blobs are already in ``layout``
    (carried by an archive), the signatures of ``digest``: tagged as it is
    when the layout has none, else its layers merged into the layout's
    (identical ones are not added twice)."""
    with layout.lock():
        current = signature_image(layout, digest)
        if current is None:
            layout.set_ref(signature_tag(digest), sig)
            return
        if current.digest == sig.digest:
            return
        for d in layout.manifest(sig).layers:
            if d.media_type == SIMPLESIGNING and d.size <= MAX_PAYLOAD:
                add_signature(layout, digest, layout.read_blob(d), dict(d.annotations))


# ---------------------------------------------------------------- verify


def _b64_signature(d: Descriptor) -> bytes | None:
    b64 = d.annotations.get(SIGNATURE_ANNOTATION)
    if not b64:
        return None
    try:
        return base64.b64decode(b64, validate=True)
    except (ValueError, binascii.Error):
        return None


@dataclass(frozen=True, slots=True)
class Verified:
    """One signature that verified: its payload as signed and parsed."""

    payload: Payload
    raw: bytes

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the payload document)."""
        return self.payload.to_dict()


def verify_signatures(
    layers: Sequence[Descriptor],
    read: Callable[[Descriptor], bytes],
    digest: Digest,
    key: PublicKey,
    *,
    where: str,
) -> list[Verified]:
    """Every signature layer that verifies with ``key`` and names
    ``digest``; SignatureError naming each rejection when none does.

    ``read`` returns a layer's bytes checked against its descriptor (digest
    and size); ``digest`` must come from resolving the reference, never from
    the signature image."""
    good: list[Verified] = []
    reasons: list[str] = []
    candidates = [d for d in layers if d.media_type == SIMPLESIGNING]
    if not candidates:
        raise SignatureError(f"no signature for {digest} in {where}")
    for i, d in enumerate(candidates, 1):
        sig = _b64_signature(d)
        if sig is None:
            reasons.append(f"#{i}: no base64 {SIGNATURE_ANNOTATION} annotation")
            continue
        if d.size > MAX_PAYLOAD:
            reasons.append(f"#{i}: payload of {d.size} bytes is over the cap")
            continue
        raw = read(d)
        if not verify_bytes(key, sig, raw):
            reasons.append(f"#{i}: the signature does not verify with this key")
            continue
        try:
            payload = parse_payload(raw)
        except SignatureError as e:
            reasons.append(f"#{i}: {e.message}")
            continue
        if payload.manifest_digest != digest:
            reasons.append(f"#{i}: the payload is for {payload.manifest_digest}, not {digest}")
            continue
        good.append(Verified(payload, raw))
    if not good:
        raise SignatureError(
            f"no valid signature for {digest} in {where}: " + "; ".join(reasons),
            hint="check the public key (--key) and that the image was signed after its last change",
        )
    return good


def verify_image(layout: Layout, ref: str, key: PublicKey) -> tuple[Digest, list[Verified]]:
    """Verify the signatures of what ``ref`` names in ``layout``.  Returns
    (the digest verified, the verified payloads); SignatureError when there
    is no signature or none verifies."""
    desc = layout.lookup(ref)  # resolved first: the only digest trusted
    tag = signature_tag(desc.digest)
    try:
        sig_desc = layout.lookup(tag)
    except NotFoundError:
        raise SignatureError(
            f"no signature for {desc.digest} ({ref}) in {layout.path}",
            hint=f"sign it with 'oci-tools sign'; signatures are kept as the ref {tag}",
        ) from None
    manifest = Manifest.parse(layout.read_blob(sig_desc), sig_desc.media_type)
    good = verify_signatures(
        manifest.layers,
        layout.read_blob,  # verified against digest and size while read
        desc.digest,
        key,
        where=f"{layout.path}:{tag}",
    )
    return desc.digest, good


__all__ = [
    "SIGNATURE_ANNOTATION",
    "SIMPLESIGNING",
    "Signed",
    "Verified",
    "add_signature",
    "adopt_signatures",
    "make_signature",
    "sign_image",
    "signature_image",
    "signature_tag",
    "verify_image",
    "verify_signatures",
]
