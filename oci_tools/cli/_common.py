"""What every command module shares: the console, the raising parser, image
and layout arguments, flag groups and the emit helper.

Command modules import only this module and :mod:`oci_tools.cli.tables`
from the CLI.  Everything heavy is imported inside the functions that need
it, so that building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TextIO, cast

from oci_tools.errors import UsageError

if TYPE_CHECKING:
    import datetime

    from oci_tools.cli.tables import Listing
    from oci_tools.layout import Layout
    from oci_tools.registry.transfer import Client
    from oci_tools.spec.model import Descriptor, Platform


class Console:
    """Where a command writes: data to ``out``, diagnostics to ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.err = err

    def print(self, text: str = "") -> None:
        """One line of data on stdout."""
        self.out.write(text + "\n")

    def note(self, text: str) -> None:
        """One line of diagnostics on stderr."""
        self.err.write(text + "\n")


#: A command handler: parsed arguments and the console in, exit code out.
Handler = Callable[[argparse.Namespace, Console], int]


class Add(Protocol):
    """The callback a command module's ``register`` gets: adds one
    subcommand and returns its parser (a stand-in when that command is not
    the one being run, see ``oci_tools.cli.app.build_parser``)."""

    def __call__(
        self, name: str, handler: Handler | None, help_: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser: ...


def _help_width() -> int:
    """The width argparse wraps help to: ``shutil.get_terminal_size``'s
    columns (``$COLUMNS``, else stdout's terminal, else 80) less 2."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 80
    return columns - 2


class Parser(argparse.ArgumentParser):
    """argparse that raises UsageError instead of printing and exiting."""

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes a formatter for every add_argument (to check its
        # metavar), and one without a width imports shutil for the terminal
        # size: the same width here, without that import on every start.
        make: Any = self.formatter_class  # typeshed's protocol omits ``width``
        return cast(argparse.HelpFormatter, make(prog=self.prog, width=_help_width()))

    def error(self, message: str) -> NoReturn:
        # The ladder prints "oci-tools: error: "; a subcommand names itself
        # after it, and the hint points at that subcommand's --help.
        sub = self.prog.partition(" ")[2]
        m = _INVALID_COMMAND.match(message)
        if m and not sub:
            import difflib

            word = m.group(1)
            choices = re.findall(r"[\w-]+", m.group(2))
            near = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
            hint = f"did you mean {near[0]!r}? " if near else ""
            raise UsageError(f"unknown command {word!r}", hint=f"{hint}see: {self.prog} --help")
        raise UsageError(f"{sub}: {message}" if sub else message, hint=f"see: {self.prog} --help")


#: argparse's message for a subcommand it does not know.
_INVALID_COMMAND = re.compile(
    r"argument COMMAND: invalid choice: '?([^' ]*)'? \(choose from (.*)\)"
)


def now() -> datetime.datetime:
    """The clock the views' CREATED columns count from (tests replace it)."""
    import datetime

    return datetime.datetime.now(datetime.UTC)


# ---------------------------------------------------------------- arguments


def open_layout(path: str) -> Layout:
    """The layout at ``path`` (it must exist)."""
    from oci_tools.layout import Layout

    return Layout.open(path)


def open_or_init_layout(path: str) -> Layout:
    """The layout at ``path``, created when nothing is there yet (only inside
    an existing directory: a typo in a parent is an error, not a new tree)."""
    from oci_tools.layout import Layout

    if os.path.exists(path):
        return Layout.open(path)
    check_parent(path)
    return Layout.init(path)


def check_parent(path: str) -> None:
    """Refuse to create a layout at ``path`` unless its parent directory exists."""
    from oci_tools.errors import NotFoundError

    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise NotFoundError(
            f"cannot create layout {path}: no directory {parent}",
            hint="create the parent directory first, or check the path for a typo",
        )


@contextlib.contextmanager
def new_layout_guard(path: str) -> Iterator[None]:
    """Around a command that may create the layout at ``path``: when the
    command fails, a layout it created is removed again (no empty layout
    is left behind by a failed build or import)."""
    existed = os.path.lexists(path)
    if not existed:
        check_parent(path)
    try:
        yield
    except BaseException:
        if not existed and os.path.isdir(path):
            from oci_tools.fsutil import remove_tree

            with contextlib.suppress(OSError):
                remove_tree(path)
        raise


def parse_platform(text: str | None) -> Platform | None:
    """``--platform OS/ARCH[/VARIANT]`` as a Platform (None when not given)."""
    if not text:
        return None
    from oci_tools.spec.model import Platform

    return Platform.parse(text)


def image_arg(text: str, platform: str | None = None) -> tuple[Layout, str, Platform | None]:
    """Parse ``LAYOUT[:REF]`` and open the layout: (layout, ref, platform)."""
    from oci_tools.layout import split_image_ref

    path, ref = split_image_ref(text)
    assert ref is not None  # split_image_ref defaults REF to "latest"
    return open_layout(path), ref, parse_platform(platform)


def named(lay: Layout, ref: str | None) -> Descriptor | None:
    """What the ref name ``ref`` names now (None: no such ref name; digests
    and id prefixes are not names)."""
    found = None
    for name, desc in lay.refs() if ref else ():
        if name == ref:
            found = desc
    return found


def note_moved(c: Console, ref: str, old: Descriptor | None, new: object) -> None:
    """Say on stderr that ``ref`` moved from the image ``old`` to ``new`` (a
    digest), as docker says when a tag is taken from an image; nothing when
    the ref is new or did not change."""
    if old is not None and str(old.digest) != str(new):
        c.note(f"Untagged: {ref}@{old.digest}")
        c.note(f"Tagged: {ref}@{new}")


# --------------------------------------------------------------- flag groups


def add_image(p: argparse.ArgumentParser, metavar: str = "LAYOUT:REF") -> None:
    """The positional image argument."""
    p.add_argument("image", metavar=metavar)


def add_layout(p: argparse.ArgumentParser) -> None:
    """The positional layout argument."""
    p.add_argument("layout", metavar="LAYOUT")


def add_platform(p: argparse.ArgumentParser) -> None:
    """``--platform``: which image of a multi-platform index."""
    p.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="pick this platform when the ref is a multi-platform index",
    )


def add_format(p: argparse.ArgumentParser) -> None:
    """``--format table|json``."""
    p.add_argument("--format", choices=["table", "json"], default="table")


def add_quiet(p: argparse.ArgumentParser, help_: str | None = None) -> None:
    """``-q/--quiet``."""
    p.add_argument("-q", "--quiet", action="store_true", help=help_)


def add_no_trunc(p: argparse.ArgumentParser, help_: str | None = None) -> None:
    """``--no-trunc``: full ids and text."""
    p.add_argument("--no-trunc", action="store_true", help=help_)


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


def add_network(p: argparse.ArgumentParser, *, jobs: bool = True, quiet: bool = True) -> None:
    """The flags of every command that talks to a registry."""
    p.add_argument(
        "--plain-http", action="store_true", help="talk HTTP, not HTTPS, to the registry"
    )
    p.add_argument(
        "--tls-verify",
        type=_bool,
        nargs="?",
        const=True,
        default=True,
        metavar="BOOL",
        help="verify TLS certificates (false also allows a fall back to HTTP); without flags, "
        "plain HTTP is used only for loopback registries and, after HTTPS fails, for those "
        "named in $OCI_TOOLS_INSECURE_REGISTRIES",
    )
    p.add_argument("--creds", metavar="USER:PASS", help="credentials (default: the auth files)")
    p.add_argument(
        "--authfile",
        metavar="FILE",
        help="auth file to read (default $REGISTRY_AUTH_FILE, else containers' auth.json "
        "and Docker's config.json)",
    )
    p.add_argument(
        "--retry-times",
        type=int,
        default=5,
        metavar="N",
        help="attempts per request on network errors and 429/5xx (default 5)",
    )
    if jobs:
        p.add_argument(
            "-j", "--jobs", type=_jobs, default=4, metavar="N", help="blobs in parallel (4)"
        )
    if quiet:
        add_quiet(p, "no progress output")


def registry_client(a: argparse.Namespace) -> Client:
    """A registry client configured by :func:`add_network`'s flags."""
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


def progress(a: argparse.Namespace, c: Console) -> Callable[[str], None]:
    """Progress lines on stderr, only on a terminal and never with ``-q``."""
    show = not getattr(a, "quiet", False) and c.err.isatty()

    def note(text: str) -> None:
        if show:
            c.note(text)

    return note


# ------------------------------------------------------------------- output


def emit(c: Console, listing: Listing, fmt: str, *, quiet: bool = False) -> None:
    """A listing as a table or JSON Lines; ``quiet``: only its IDs (docker -q)."""
    if quiet:
        for r in listing.rows:
            c.print(r["ID"])
        return
    c.out.write(listing.json() if fmt == "json" else listing.table())


__all__ = [
    "Add",
    "Console",
    "Handler",
    "Parser",
    "add_format",
    "add_image",
    "add_layout",
    "add_network",
    "add_no_trunc",
    "add_platform",
    "add_quiet",
    "check_parent",
    "emit",
    "image_arg",
    "named",
    "new_layout_guard",
    "note_moved",
    "now",
    "open_layout",
    "open_or_init_layout",
    "parse_platform",
    "progress",
    "registry_client",
]
