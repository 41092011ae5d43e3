"""``python -m oci_tools``: the command line."""

from oci_tools.cli.app import run

if __name__ == "__main__":
    run()
