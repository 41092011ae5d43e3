"""The cosign "simple signing" payload, written as cosign writes it and
parsed as strictly as containers/image parses it.

``{"critical": {"identity": {"docker-reference": REF},
"image": {"docker-manifest-digest": DIGEST}, "type": TYPE}, "optional": OBJ|null}``

The parser refuses duplicate keys, unknown or missing fields, a wrong
``type`` and a digest that is not a digest: a payload that skopeo would
refuse is refused here too.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError, SignatureError

#: ``critical.type`` of a cosign container image signature.
SIGNATURE_TYPE = "cosign container image signature"
#: Payloads larger than this are not read (containers/image's signature cap).
MAX_PAYLOAD = 4 << 20


@dataclass(frozen=True, slots=True)
class Payload:
    """What a signature claims: the image's name and its manifest digest."""

    docker_reference: str
    manifest_digest: Digest
    optional: Mapping[str, Any] | None = field(default=None)

    def to_bytes(self) -> bytes:
        """The payload in cosign's field order (``optional`` null when empty)."""
        doc = {
            "critical": {
                "identity": {"docker-reference": self.docker_reference},
                "image": {"docker-manifest-digest": str(self.manifest_digest)},
                "type": SIGNATURE_TYPE,
            },
            "optional": dict(self.optional) if self.optional else None,
        }
        return json.dumps(doc, separators=(",", ":")).encode()

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``verify`` output."""
        return json.loads(self.to_bytes())  # type: ignore[no-any-return]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise SignatureError(f"signature payload: duplicate key {k!r}")
        out[k] = v
    return out


def _exact(obj: Any, keys: set[str], where: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise SignatureError(f"signature payload: {where} is not an object")
    if set(obj) != keys:
        extra = sorted(set(obj) - keys)
        missing = sorted(keys - set(obj))
        raise SignatureError(
            f"signature payload: {where} has unexpected fields {extra} / lacks {missing}"
        )
    return obj


def parse_payload(raw: bytes) -> Payload:
    """The payload in ``raw``; SignatureError for anything containers/image
    would refuse."""
    try:
        doc = json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError:  # (a duplicate key raises SignatureError, not ValueError)
        raise SignatureError("signature payload is not JSON") from None
    top = _exact(doc, {"critical", "optional"}, "the payload")
    crit = _exact(top["critical"], {"identity", "image", "type"}, "critical")
    if crit["type"] != SIGNATURE_TYPE:
        raise SignatureError(f"signature payload: unexpected type {crit['type']!r}")
    image = _exact(crit["image"], {"docker-manifest-digest"}, "critical.image")
    ident = _exact(crit["identity"], {"docker-reference"}, "critical.identity")
    dg, ref = image["docker-manifest-digest"], ident["docker-reference"]
    if not isinstance(dg, str) or not isinstance(ref, str):
        raise SignatureError("signature payload: digest and reference must be strings")
    try:
        digest = Digest.parse(dg)
    except OCIToolsError:
        digest = None
    if digest is None or digest.algorithm not in ("sha256", "sha384", "sha512"):
        raise SignatureError(f"signature payload: {dg!r} is not a digest")
    opt = top["optional"]
    if opt is not None and not isinstance(opt, dict):
        raise SignatureError("signature payload: optional is not an object")
    return Payload(ref, digest, opt)


__all__ = ["MAX_PAYLOAD", "SIGNATURE_TYPE", "Payload", "parse_payload"]
