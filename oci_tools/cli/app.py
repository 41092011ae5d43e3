"""The ``oci-tools`` entry point: parser assembly and the exception ladder.

One exception ladder maps errors to exit codes: UsageError 2, any other
OCIToolsError 1 (``oci-tools: error: ...`` plus ``hint: ...``), an
environment failure (OSError) 1 in one line, Ctrl-C 130, and a closed stdout
pipe exits quietly.  Anything else is a bug and keeps its traceback.

Each module of :mod:`oci_tools.cli.commands` registers its own subcommands.
Start-up stays light three ways: :data:`COMMANDS` names the one module that
registers each command word, so running a command imports only that module;
only the subparser of the command being run is built; and handlers import
heavy modules when they run.  ``--help``, a command word nobody registers
(for "did you mean") and no command at all build the full parser from every
module.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any, NoReturn, TextIO, cast

from oci_tools import __version__
from oci_tools.cli._common import Console, Handler, Parser
from oci_tools.errors import CorruptBlobError, OCIToolsError, UsageError

#: The command groups (modules of :mod:`oci_tools.cli.commands`), in the
#: order ``--help`` lists their commands.
GROUPS = (
    "layout",
    "bundle",
    "views",
    "archive",
    "layers",
    "build",
    "containers",
    "surgery",
    "index",
    "registry",
    "sign",
)

#: command word (aliases too) -> the group that registers it.  Running a
#: command imports only that group's module (importing all eleven cost more
#: than a view's own work).  A word missing here still runs, through the full
#: parser, only slower; tests/test_startup.py keeps this table equal to what
#: the groups register.
COMMANDS: dict[str, str] = {
    **dict.fromkeys(
        ("init", "new", "tag", "rm", "untag", "ls", "list", "inspect", "gc", "validate"), "layout"
    ),
    **dict.fromkeys(("unpack", "commit", "diff", "status", "config"), "bundle"),
    **dict.fromkeys(("history", "images", "df"), "views"),
    **dict.fromkeys(("export", "import"), "archive"),
    **dict.fromkeys(("layers", "layer", "efficiency"), "layers"),
    "build": "build",
    **dict.fromkeys(
        ("run", "ps", "stop", "start", "kill", "logs", "exec", "container"), "containers"
    ),
    **dict.fromkeys(("squash", "append", "rebase", "annotate", "label"), "surgery"),
    "index": "index",
    **dict.fromkeys(("pull", "push", "copy", "login", "logout", "ls-tags"), "registry"),
    **dict.fromkeys(("generate-key-pair", "sign", "verify", "attach", "referrers"), "sign"),
}


def group_module(group: str) -> ModuleType:
    """The command module of ``group`` (imported on first use)."""
    return importlib.import_module(f"oci_tools.cli.commands.{group}")


class SkippedParser:
    """Stands in for the subparser of a command that is not being run: its
    argument definitions are accepted and dropped.  (argparse spends ~1 ms
    per subparser on gettext lookups and terminal-size probes; building all
    of them cost more than a view command's own work.)"""

    def __getattr__(self, name: str) -> Any:
        return self._drop

    def _drop(self, *args: Any, **kwargs: Any) -> SkippedParser:
        return self


def command_word(args: Sequence[str]) -> str | None:
    """The subcommand the user typed: the first argument that is not an
    option (the top-level parser has no option taking a value)."""
    for arg in args:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser.  With ``command`` only that subcommand gets its
    arguments (faster start-up); None, or a command no one registers,
    builds the full parser (--help, usage errors, tests of every command)."""
    p = Parser(
        prog="oci-tools",
        description="Build, inspect, unpack and commit OCI images kept as image layouts on disk.",
    )
    p.add_argument("--version", action="version", version=f"oci-tools {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    found = False

    def add(
        name: str, handler: Handler | None, help_: str, aliases: Sequence[str] = ()
    ) -> argparse.ArgumentParser:
        nonlocal found
        if command is not None:
            if command != name and command not in aliases:
                return cast(argparse.ArgumentParser, SkippedParser())
            found = True
        sp = sub.add_parser(name, help=help_, description=help_, aliases=list(aliases))
        sp.set_defaults(handler=handler)
        return sp

    group = COMMANDS.get(command or "")
    for name in GROUPS if group is None else (group,):
        group_module(name).register(add)
    if command is not None and not found:
        return build_parser()
    return p


def _normalize_argv(argv: list[str]) -> list[str]:
    """docker's pflag style ``--human=false`` -> argparse's ``--no-human``."""
    out = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            name, _, val = arg.partition("=")
            if name in ("--human",) and val.lower() in ("true", "false", "1", "0"):
                out.append(name if val.lower() in ("true", "1") else "--no-" + name[2:])
                continue
        out.append(arg)
    return out


#: Commands whose work can be long enough to deserve progress bars.
PROGRESS_COMMANDS = frozenset(
    {"unpack", "commit", "export", "import", "validate", "layers", "layer", "efficiency", "build"}
)


def _shows_progress(ns: argparse.Namespace, err: TextIO) -> bool:
    """Progress goes to stderr, and only when it is a terminal and the user
    did not ask for quiet (never into a pipe, a file or a script's capture)."""
    if ns.command not in PROGRESS_COMMANDS or getattr(ns, "quiet", False):
        return False
    try:
        return err.isatty()
    except (AttributeError, ValueError):
        return False


def _layout_arg(ns: argparse.Namespace | None) -> str:
    """The layout a command was given (for advice in error messages)."""
    if ns is None:
        return ""
    if isinstance(getattr(ns, "layout", None), str):
        return str(ns.layout)
    image = getattr(ns, "image", None)
    if isinstance(image, str):
        from oci_tools.layout import split_image_ref

        try:
            return split_image_ref(image)[0]
        except OCIToolsError:
            return ""
    return ""


def main(
    argv: Sequence[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None
) -> int:
    """Run the CLI; returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    console = Console(out, err)
    ns: argparse.Namespace | None = None
    args = _normalize_argv(list(sys.argv[1:] if argv is None else argv))
    try:
        word = command_word(args)
        if word is None and args[:1] == ["--version"]:
            # What argparse's version action prints (it acts on the first
            # argument), without importing every command group first.
            out.write(f"oci-tools {__version__}\n")
            return 0
        try:
            with contextlib.redirect_stdout(out):
                ns = build_parser(word).parse_args(args)
        except SystemExit as e:  # --help and --version
            return int(e.code or 0)
        except UsageError as e:
            # argparse reports extra arguments from the top-level parser:
            # name the subcommand they were given to.
            if word and e.message.startswith("unrecognized arguments"):
                e.message = f"{word}: {e.message}"
                e.args = (e.message,)
                e.hint = f"see: oci-tools {word} --help"
            raise
        handler: Handler = ns.handler
        if _shows_progress(ns, err):
            from oci_tools import progress

            with progress.reporting(progress.TerminalReporter(err)):
                return handler(ns, console)
        return handler(ns, console)
    except CorruptBlobError as e:
        where = e.layout or _layout_arg(ns) or "LAYOUT"
        err.write(f"oci-tools: error: {e}: run oci-tools validate {where}\n")
        if e.hint:
            err.write(f"hint: {e.hint}\n")
        return e.exit_code
    except OCIToolsError as e:
        err.write(f"oci-tools: error: {e}\n")
        if e.hint:
            err.write(f"hint: {e.hint}\n")
        return e.exit_code
    except BrokenPipeError:
        # The reader went away (``| head``): not an error worth reporting.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
        except (OSError, ValueError):
            pass
        return 0
    except OSError as e:
        # Environment failures (permissions, full disk) are not bugs: one line.
        where = f": {e.filename}" if e.filename else ""
        err.write(f"oci-tools: error: {e.strerror or e}{where}\n")
        return 1
    except KeyboardInterrupt:
        err.write("oci-tools: interrupted\n")
        return 130


def run() -> NoReturn:
    """Console-script entry point."""
    code = main()
    # The process ends now: the interpreter's final garbage collection over
    # every imported module's objects (~15-25 ms once the registry client is
    # loaded) frees nothing the exit would not; frozen objects are skipped.
    import gc

    gc.freeze()
    sys.exit(code)


__all__ = [
    "COMMANDS",
    "GROUPS",
    "SkippedParser",
    "build_parser",
    "command_word",
    "group_module",
    "main",
    "run",
]
