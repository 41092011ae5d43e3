"""CLI wiring for the layers commands (argparse only; logic lives below L7)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def register(add: Callable[..., Any]) -> None:
    """Add this group's subcommands; ``add(name, handler, help, aliases=())``
    returns the subparser, and handlers are called as ``handler(ns, console)``
    (see ``oci_tools.cli.Console``: ``print``, ``note``, ``out``, ``err``)."""
