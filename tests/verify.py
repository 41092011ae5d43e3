"""Post-condition check run after every test that writes a layout."""

from __future__ import annotations

from oci_tools.check import check_layout
from oci_tools.layout import Layout


def assert_valid_layout(path: str) -> None:
    """Schema-validate every document, re-hash every blob, read every layer."""
    problems = check_layout(Layout.open(str(path)), layers=True)
    assert problems == [], "layout problems:\n" + "\n".join(problems)
