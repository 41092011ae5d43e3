"""One module per command group, each with a ``register(add)`` for its
subcommands.  Command modules import only :mod:`oci_tools.cli._common` and
:mod:`oci_tools.cli.tables` from the CLI (never :mod:`oci_tools.cli.app`)."""
