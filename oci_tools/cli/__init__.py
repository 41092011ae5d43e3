"""The ``oci-tools`` command line (see :mod:`oci_tools.cli.app`)."""

from oci_tools.cli.app import build_parser, main, run

__all__ = ["build_parser", "main", "run"]
