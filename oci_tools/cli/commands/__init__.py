"""One module per command group; each imports only :mod:`oci_tools.cli._common`."""
