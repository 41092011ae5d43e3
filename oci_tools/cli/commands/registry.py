"""CLI wiring for the registry commands (argparse only; logic in oci_tools.registry).

``pull``, ``push``, ``copy``, ``login``, ``logout``, ``ls-tags`` and the remote
form of ``inspect`` (``inspect docker://…``, dispatched from the layout
``inspect`` by the argument's prefix).  Progress goes to stderr, only on a
terminal and never with ``-q``; digests go to stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oci_tools.cli.app import Console
    from oci_tools.registry.transfer import Client


def _bool(text: str) -> bool:
    value = text.lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def _jobs(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 1 <= n <= 64:
        raise argparse.ArgumentTypeError("-j takes 1 to 64")
    return n


def network_flags(sp: argparse.ArgumentParser, *, jobs: bool = True) -> None:
    """The flags every network command takes."""
    sp.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    sp.add_argument(
        "--tls-verify",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="verify TLS certificates (false also allows a fall back to HTTP); plain HTTP is "
        "otherwise tried only for loopback registries and those named in "
        "$OCI_TOOLS_INSECURE_REGISTRIES",
    )
    sp.add_argument("--creds", metavar="USER:PASS", help="credentials (default: the auth files)")
    sp.add_argument(
        "--authfile",
        metavar="FILE",
        help="auth file to read (default $REGISTRY_AUTH_FILE, else containers' auth.json "
        "and Docker's config.json)",
    )
    sp.add_argument(
        "--retry-times",
        type=int,
        default=5,
        metavar="N",
        help="attempts per request on network errors and 429/5xx (default 5)",
    )
    if jobs:
        sp.add_argument(
            "-j", "--jobs", type=_jobs, default=4, metavar="N", help="blobs in parallel (4)"
        )
    sp.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def _platform_flags(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="the index entry to follow (default: this host's platform)",
    )
    sp.add_argument(
        "--all-platforms", action="store_true", help="keep the whole index and every manifest"
    )


def _client(a: argparse.Namespace) -> Client:
    from oci_tools.registry import Options, RetryPolicy, parse_creds
    from oci_tools.registry.transfer import Client

    opts = Options(
        plain_http=a.plain_http,
        tls_verify=a.tls_verify,
        creds=parse_creds(a.creds) if a.creds else None,
        authfile=a.authfile,
        retry=RetryPolicy(attempts=max(1, a.retry_times)),
        jobs=getattr(a, "jobs", 4),
    )
    return Client(opts)


def _progress(a: argparse.Namespace, c: Console) -> Callable[[str], None]:
    show = not a.quiet and c.err.isatty()

    def note(text: str) -> None:
        if show:
            c.note(text)

    return note


def _plat(a: argparse.Namespace) -> Any:
    from oci_tools.errors import UsageError
    from oci_tools.spec.model import Platform

    if getattr(a, "all_platforms", False) and a.platform:
        raise UsageError("--platform and --all-platforms exclude each other")
    return Platform.parse(a.platform) if a.platform else None


def _remote(text: str) -> Any:
    from oci_tools.registry import parse_reference

    return parse_reference(text)


# ---------------------------------------------------------------- handlers


def cmd_pull(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import Layout, split_image_ref
    from oci_tools.registry.copy import _open_or_init
    from oci_tools.registry.transfer import pull

    ref = _remote(a.source)
    plat = _plat(a)
    path, name = split_image_ref(a.image, default=None)
    lay: Layout = _open_or_init(path)
    with _client(a) as client:
        _, desc = pull(
            client,
            ref,
            lay,
            name,
            platform=plat,
            all_platforms=a.all_platforms,
            progress=_progress(a, c),
        )
    c.print(str(desc.digest))
    return 0


def cmd_push(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.layout import Layout, split_image_ref
    from oci_tools.registry.transfer import push

    path, ref = split_image_ref(a.image)
    assert ref is not None
    lay = Layout.open(path)
    dest = _remote(a.dest)
    with _client(a) as client:
        dg = push(client, lay, ref, dest, progress=_progress(a, c))
    c.print(str(dg))
    return 0


def cmd_copy(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.registry.copy import copy, parse_endpoint

    src, dst = parse_endpoint(a.source), parse_endpoint(a.dest)
    plat = _plat(a)
    with _client(a) as client:
        dg = copy(
            client,
            src,
            dst,
            platform=plat,
            all_platforms=a.all_platforms,
            progress=_progress(a, c),
        )
    c.print(dg)
    return 0


def cmd_ls_tags(a: argparse.Namespace, c: Console) -> int:
    import json

    from oci_tools.registry import parse_reference
    from oci_tools.registry.transfer import list_tags

    ref = parse_reference(a.repository, default_tag=None)
    with _client(a) as client:
        tags = list_tags(client, ref)
    if a.format == "json":
        c.print(json.dumps({"Repository": ref.name, "Tags": tags}, indent=2))
    else:
        for t in tags:
            c.print(t)
    return 0


def cmd_inspect_remote(a: argparse.Namespace, c: Console) -> int:
    """``inspect docker://…``: the remote manifest (``--raw``: the top
    document as stored), ``--config`` the config, else a summary."""
    import json

    from oci_tools.registry.transfer import inspect

    ref = _remote(a.image)
    plat = _plat(a)
    raw = getattr(a, "raw", False)
    with _client(a) as client:
        img = inspect(client, ref, platform=plat, raw=raw or getattr(a, "index", False))
    if raw or getattr(a, "index", False):
        c.out.write(img.top.raw.decode("utf-8"))
        c.print()
        return 0
    if getattr(a, "config", False):
        c.out.write((img.config or b"{}").decode("utf-8"))
        c.print()
        return 0
    if getattr(a, "manifest", False):
        c.out.write(img.manifest.raw.decode("utf-8"))
        c.print()
        return 0
    c.print(json.dumps(img.summary(ref.name), indent=4))
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
    with _client(a) as client:
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
    return "docker.io" if host == "index.docker.io" else host


# ---------------------------------------------------------------- wiring


def extend_inspect(sp: argparse.ArgumentParser) -> None:
    """Flags the layout ``inspect`` command takes for ``inspect docker://…``."""
    sp.add_argument(
        "--raw", action="store_true", help="docker://: the manifest or index exactly as stored"
    )
    network_flags(sp, jobs=False)


def register(add: Callable[..., Any]) -> None:
    """Add this group's subcommands; ``add(name, handler, help, aliases=())``
    returns the subparser, and handlers are called as ``handler(ns, console)``."""
    sp = add("pull", cmd_pull, "copy an image from a registry into a layout")
    sp.add_argument("source", metavar="[docker://]HOST/REPO[:TAG|@DIGEST]")
    sp.add_argument("image", metavar="LAYOUT[:REF]", help="REF defaults to the tag")
    _platform_flags(sp)
    network_flags(sp)

    sp = add("push", cmd_push, "copy a layout image (or index) to a registry; prints its digest")
    sp.add_argument("image", metavar="LAYOUT[:REF]")
    sp.add_argument("dest", metavar="[docker://]HOST/REPO[:TAG]")
    network_flags(sp)

    sp = add(
        "copy",
        cmd_copy,
        "copy an image between docker://, oci:LAYOUT[:REF] and oci-archive:FILE",
    )
    sp.add_argument("source", metavar="SRC")
    sp.add_argument("dest", metavar="DST")
    _platform_flags(sp)
    network_flags(sp)

    sp = add("login", cmd_login, "check and save credentials for a registry (file mode 0600)")
    sp.add_argument("host", metavar="HOST[:PORT]")
    sp.add_argument("-u", "--username", metavar="USER")
    sp.add_argument("-p", "--password", metavar="PASS", help="prefer --password-stdin")
    sp.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    network_flags(sp, jobs=False)

    sp = add("logout", cmd_logout, "remove saved credentials for a registry")
    sp.add_argument("host", metavar="HOST[:PORT]")
    sp.add_argument("--authfile", metavar="FILE")

    sp = add("ls-tags", cmd_ls_tags, "list the tags of a registry repository")
    sp.add_argument("repository", metavar="docker://HOST/REPO")
    sp.add_argument("--format", choices=["table", "json"], default="table")
    network_flags(sp, jobs=False)
