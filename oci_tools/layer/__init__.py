"""Tar layers: entries, whiteout names, a strict streaming reader and a
deterministic writer.  Takes streams only, never a store or a layout (L3)."""

from oci_tools.layer.entry import EntryType, TarEntry

__all__ = ["EntryType", "TarEntry"]
