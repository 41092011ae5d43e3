"""CLI wiring for the registry commands (argparse only; logic in oci_tools.registry).

``pull``, ``push``, ``copy``, ``login``, ``logout`` and ``ls-tags``; the
remote form of ``inspect`` (``inspect docker://…``) is dispatched by the
argument's prefix in the layout commands' ``inspect``.  Progress goes to stderr, only on a
terminal and never with ``-q``; digests go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from oci_tools.cli._common import (
    Add,
    Console,
    add_format,
    add_network,
    open_or_init_layout,
    parse_platform,
    progress,
    registry_client,
)


def _platform_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="the index entry to follow (default: this host's platform)",
    )
    sp.add_argument(
        "--all-platforms", action="store_true", help="keep the whole index and every manifest"
    )


def _plat(a: argparse.Namespace) -> Any:
    from oci_tools.errors import UsageError

    if getattr(a, "all_platforms", False) and a.platform:
        raise UsageError("--platform and --all-platforms exclude each other")
    return parse_platform(a.platform)


def _remote(text: str) -> Any:
    from oci_tools.registry import parse_reference

    return parse_reference(text)


# ---------------------------------------------------------------- handlers


def cmd_pull(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import split_image_ref
    from oci_tools.registry.transfer import pull

    ref = _remote(a.source)
    plat = _plat(a)
    path, name = split_image_ref(a.image, default=None)
    with registry_client(a) as client:
        if a.verify_key:
            # Verified before anything lands; then pulled by the verified
            # digest, so a tag moved in between cannot slip in.
            from oci_tools.sign.keys import read_public_key
            from oci_tools.sign.remote import verify_remote

            digest, good = verify_remote(client, ref, read_public_key(a.verify_key))
            c.note(f"{len(good)} signature(s) verified for {digest}")
            name = name or ref.tag or str(digest)
            ref = ref.with_reference(tag=ref.tag, digest=digest)
        lay = open_or_init_layout(path)
        _, desc = pull(
            client,
            ref,
            lay,
            name,
            platform=plat,
            all_platforms=a.all_platforms,
            progress=progress(a, c),
        )
        if a.include_signatures:
            _fetch_signatures(client, ref, desc, lay, c)
    c.print(str(desc.digest))
    return 0


def _fetch_signatures(client: Any, ref: Any, desc: Any, lay: Any, c: Console) -> None:
    from oci_tools.sign.remote import fetch_signatures

    if not fetch_signatures(client, ref, desc.digest, lay):
        c.note(f"no signatures for {desc.digest} in {ref.name}")


def cmd_push(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import Layout, split_image_ref
    from oci_tools.registry.transfer import push

    path, ref = split_image_ref(a.image)
    assert ref is not None
    lay = Layout.open(path)
    dest = _remote(a.dest)
    if a.sign_by:
        # Signed for the destination's name (with its tag, as skopeo signs),
        # kept in the layout beside the image, pushed after it.
        from oci_tools.sign.cosign import sign_image
        from oci_tools.sign.keys import read_passphrase, read_private_key

        key = read_private_key(a.sign_by, read_passphrase)
        identity = dest.name + (f":{dest.tag}" if dest.tag else "")
        sign_image(lay, ref, key, identity)
    with registry_client(a) as client:
        dg = push(client, lay, ref, dest, progress=progress(a, c))
        if a.sign_by or a.include_signatures:
            from oci_tools.errors import SignatureError
            from oci_tools.sign.remote import push_signatures

            try:
                push_signatures(client, lay, dg, dest)
            except SignatureError:
                if a.sign_by:
                    raise
                c.note(f"no signatures for {dg} in {path}")
    c.print(str(dg))
    return 0


def cmd_copy(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.registry.copy import copy, parse_endpoint

    src, dst = parse_endpoint(a.source), parse_endpoint(a.dest)
    plat = _plat(a)
    with registry_client(a) as client:
        dg = copy(
            client,
            src,
            dst,
            platform=plat,
            all_platforms=a.all_platforms,
            progress=progress(a, c),
        )
        if a.include_signatures:
            from oci_tools.digest import Digest
            from oci_tools.sign.remote import copy_signatures

            if not copy_signatures(client, src, dst, Digest.parse(dg)):
                c.note(f"no signatures for {dg} at {src}")
    c.print(dg)
    return 0


def cmd_ls_tags(a: argparse.Namespace, c: Console) -> int:
    import json

    from oci_tools.registry import parse_reference
    from oci_tools.registry.transfer import list_tags

    ref = parse_reference(a.repository, default_tag=None)
    with registry_client(a) as client:
        tags = list_tags(client, ref)
    if a.format == "json":
        c.print(json.dumps({"Repository": ref.name, "Tags": tags}, indent=2))
    else:
        for t in tags:
            c.print(t)
    return 0


def cmd_login(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.errors import UsageError
    from oci_tools.registry import Credential
    from oci_tools.registry.auth import store
    from oci_tools.registry.transfer import login

    host = _host(a.host)
    user = a.username
    if a.password_stdin:
        if a.password is not None:
            raise UsageError("--password and --password-stdin exclude each other")
        secret = sys.stdin.readline().rstrip("\r\n")
    elif a.password is not None:
        secret = a.password
    elif sys.stdin.isatty():
        import getpass

        user = user or input("Username: ")
        secret = getpass.getpass("Password: ")
    else:
        raise UsageError("no password", hint="use --password-stdin (or -p)")
    if not user:
        raise UsageError("no user name", hint="use -u USER")
    cred = Credential(user, secret)
    a.creds = None
    with registry_client(a) as client:
        client.options.creds = cred
        login(client, host)
    path = store(host, cred, a.authfile)
    c.note(f"Login Succeeded (credentials saved in {path})")
    return 0


def cmd_logout(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.errors import NotFoundError
    from oci_tools.registry.auth import erase

    host = _host(a.host)
    if not erase(host, a.authfile):
        raise NotFoundError(f"not logged in to {host}")
    c.note(f"Removed login credentials for {host}")
    return 0


def _host(text: str) -> str:
    from oci_tools.errors import UsageError

    host = text.removeprefix("docker://").removeprefix("https://").removeprefix("http://")
    host = host.split("/", 1)[0]
    if not host:
        raise UsageError("no registry host given")
    return host


# ---------------------------------------------------------------- wiring


def _signatures_flag(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--include-signatures",
        action="store_true",
        help="also copy the image's cosign signatures (the sha256-<hex>.sig tag)",
    )


def register(add: Add) -> None:
    """Add this group's subcommands; ``add(name, handler, help, aliases=())``
    returns the subparser, and handlers are called as ``handler(ns, console)``."""
    sp = add("pull", cmd_pull, "copy an image from a registry into a layout")
    sp.add_argument("source", metavar="[docker://]HOST/REPO[:TAG|@DIGEST]")
    sp.add_argument("image", metavar="LAYOUT[:REF]", help="REF defaults to the tag")
    _platform_flags(sp)
    sp.add_argument(
        "--verify-key",
        metavar="PUB",
        help="refuse the image unless a signature verifies with this public key",
    )
    _signatures_flag(sp)
    add_network(sp)

    sp = add("push", cmd_push, "copy a layout image (or index) to a registry; prints its digest")
    sp.add_argument("image", metavar="LAYOUT[:REF]")
    sp.add_argument("dest", metavar="[docker://]HOST/REPO[:TAG]")
    sp.add_argument(
        "--sign-by",
        metavar="KEY",
        help="sign for the destination's name with this private key and push the signature",
    )
    _signatures_flag(sp)
    add_network(sp)

    sp = add(
        "copy",
        cmd_copy,
        "copy an image between docker://, oci:LAYOUT[:REF] and oci-archive:FILE",
    )
    sp.add_argument("source", metavar="SRC")
    sp.add_argument("dest", metavar="DST")
    _platform_flags(sp)
    _signatures_flag(sp)
    add_network(sp)

    sp = add("login", cmd_login, "check and save credentials for a registry (file mode 0600)")
    sp.add_argument("host", metavar="HOST[:PORT]")
    sp.add_argument("-u", "--username", metavar="USER")
    sp.add_argument("-p", "--password", metavar="PASS", help="prefer --password-stdin")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add_network(sp, jobs=False)

    sp = add("logout", cmd_logout, "remove saved credentials for a registry")
    sp.add_argument("host", metavar="HOST[:PORT]")
    sp.add_argument("--authfile", metavar="FILE")

    sp = add("ls-tags", cmd_ls_tags, "list the tags of a registry repository")
    sp.add_argument("repository", metavar="docker://HOST/REPO")
    add_format(sp)
    add_network(sp, jobs=False)
