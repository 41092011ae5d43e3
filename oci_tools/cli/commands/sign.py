"""CLI wiring for signatures (argparse only; logic in oci_tools.sign).

``generate-key-pair``, ``sign`` and ``verify`` (a layout image, or a
registry image with ``docker://``).  Passphrases come from $COSIGN_PASSWORD
or a prompt on a terminal, as with cosign.
"""

from __future__ import annotations

import argparse
import json

from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_network,
    emit,
    image_arg,
    registry_client,
)


def _annotations(items: list[str] | None) -> dict[str, str]:
    from oci_tools.errors import UsageError

    out: dict[str, str] = {}
    for item in items or []:
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise UsageError(f"--annotation {item!r} is not KEY=VALUE")
        out[k] = v
    return out


def cmd_generate_key_pair(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.sign.keys import generate_key_pair, read_passphrase

    passphrase = None if a.pkcs8 else read_passphrase(confirm=True)
    files = generate_key_pair(a.output_key_prefix, passphrase=passphrase, force=a.force)
    c.note(f"Private key written to {files.private}")
    c.note(f"Public key written to {files.public}")
    return 0


def cmd_sign(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.registry import parse_reference
    from oci_tools.sign.cosign import sign_image
    from oci_tools.sign.keys import read_passphrase, read_private_key

    ident = parse_reference(a.identity, default_tag=None)  # HOST/REPO[:TAG]; a digest is not a name
    identity = ident.name + (f":{ident.tag}" if a.identity_tag and ident.tag else "")
    lay, ref, _ = image_arg(a.image)
    key = read_private_key(a.key, read_passphrase)
    done = sign_image(lay, ref, key, identity, annotations=_annotations(a.annotation))
    if not done.added:
        c.note(f"{done.digest} is already signed with this key for {identity}")
    c.print(done.tag)
    return 0


def cmd_verify(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.registry import is_remote, parse_reference
    from oci_tools.sign.keys import read_public_key

    key = read_public_key(a.key)
    if is_remote(a.image):
        from oci_tools.sign.remote import verify_remote

        with registry_client(a) as client:
            digest, good = verify_remote(client, parse_reference(a.image), key)
    else:
        from oci_tools.sign.cosign import verify_image

        lay, ref, _ = image_arg(a.image)
        digest, good = verify_image(lay, ref, key)
    c.note(f"Verification for {a.image} ({digest}): {len(good)} signature(s) verified")
    c.print(json.dumps([v.to_dict() for v in good], indent=2))
    return 0


def cmd_attach(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.sign.referrers import attach

    lay, ref, _ = image_arg(a.image)
    desc = attach(
        lay,
        ref,
        a.artifact_type,
        a.file,
        media_type=a.media_type,
        annotations=_annotations(a.annotation),
    )
    c.print(str(desc.digest))
    return 0


def cmd_referrers(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.cli.tables import referrers_listing
    from oci_tools.registry import is_remote, parse_reference
    from oci_tools.sign.referrers import referrers, remote_referrers

    if is_remote(a.image):
        with registry_client(a) as client:
            digest, found = remote_referrers(
                client, parse_reference(a.image), artifact_type=a.artifact_type
            )
    else:
        lay, ref, _ = image_arg(a.image)
        digest, found = referrers(lay, ref, artifact_type=a.artifact_type)
    c.note(f"{len(found)} referrer(s) of {digest}")
    emit(c, referrers_listing(found), a.format)
    return 0


def register(add: Add) -> None:
    """Add this group's subcommands; ``add(name, handler, help, aliases=())``
    returns the subparser, and handlers are called as ``handler(ns, console)``."""
    sp = add(
        "generate-key-pair",
        cmd_generate_key_pair,
        "write an ECDSA P-256 key pair (PREFIX.key encrypted as cosign does, PREFIX.pub)",
    )
    sp.add_argument("--output-key-prefix", default="cosign", metavar="PREFIX")
    sp.add_argument(
        "--pkcs8", action="store_true", help="write the private key as plain PKCS#8 PEM"
    )
    sp.add_argument("--force", action="store_true", help="replace existing key files")

    sp = add("sign", cmd_sign, "sign a layout image for a registry name (cosign's format)")
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("--key", required=True, metavar="KEY", help="private key file")
    sp.add_argument(
        "--identity",
        required=True,
        metavar="HOST/REPO[:TAG]",
        help="the name the signature vouches for (docker-reference)",
    )
    sp.add_argument(
        "--no-identity-tag",
        dest="identity_tag",
        action="store_false",
        help="sign the repository name only, as cosign does",
    )
    sp.add_argument(
        "-a", "--annotation", action="append", metavar="KEY=VALUE", help="into the payload"
    )

    sp = add(
        "verify",
        cmd_verify,
        "check an image's signatures with a public key; prints the verified payloads",
    )
    sp.add_argument("image", metavar="LAYOUT:REF|docker://HOST/REPO[:TAG|@DIGEST]")
    sp.add_argument("--key", required=True, metavar="PUB", help="public key file (PEM)")
    add_network(sp, jobs=False)

    sp = add(
        "attach",
        cmd_attach,
        "store a file as an OCI 1.1 artifact whose subject is the image; prints its digest",
    )
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("file", metavar="FILE")
    sp.add_argument("--artifact-type", required=True, metavar="TYPE", help="e.g. text/spdx")
    sp.add_argument(
        "--media-type",
        default="application/octet-stream",
        metavar="TYPE",
        help="the file's media type (default: application/octet-stream)",
    )
    sp.add_argument(
        "-a", "--annotation", action="append", metavar="KEY=VALUE", help="on the manifest"
    )

    sp = add("referrers", cmd_referrers, "list the artifacts whose subject is the image")
    sp.add_argument("image", metavar="LAYOUT:REF|docker://HOST/REPO[:TAG|@DIGEST]")
    sp.add_argument("--artifact-type", metavar="TYPE", help="only artifacts of this type")
    add_format(sp)
    add_network(sp, jobs=False)
