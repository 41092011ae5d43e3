"""Image signatures in the sigstore/cosign format (key-based).

Modules, lowest first: :mod:`keys` (ECDSA P-256 key pairs; cosign's
encrypted private-key PEM), :mod:`payload` (the "simple signing" payload,
parsed as strictly as containers/image does), :mod:`cosign` (the signature
image tagged ``sha256-<hex>.sig`` in a layout: sign, verify) and
:mod:`remote` (the same against a registry: fetch, verify, push).

What a verification checks, in this order (the order containers/image uses):
the signature over the exact payload bytes with the given public key, the
payload's strict shape, and that the payload names the manifest digest the
reference resolved to.  Nothing read from the signature image is trusted
before that.
"""
