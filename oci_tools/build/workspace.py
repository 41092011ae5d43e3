"""A build's workspace: its scratch directory under the layout's private area
and the one working bundle that file steps change."""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from typing import BinaryIO, cast

from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.build.context import (
    entry_name,
    resolve_in,
)
from oci_tools.bundle import RECORD, BaseRecord, unpack
from oci_tools.compression import Writable
from oci_tools.digest import Digest
from oci_tools.errors import OCIToolsError
from oci_tools.fsutil import BUILD, private_path, remove_tree, write_json
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.writer import write_layer
from oci_tools.layout import Layout


class WorkingBundle:
    """The build's scratch directory (``.oci-tools/build/b-PID-*``, removed
    when the build ends) and the one bundle in it that file steps change:
    unpacked once, at the first file step not found in the cache, then kept
    in step with the state being built."""

    def __init__(self, layout: Layout, *, rootless: bool) -> None:
        self.lay = layout
        self.rootless = rootless
        self.tmp: str | None = None
        #: The layers and the manifest the bundle's files and record match.
        self.bundle_layers: tuple[Digest, ...] | None = None
        self.bundle_base: Digest | None = None

    def workdir(self) -> str:
        """The build's scratch directory (made at first use)."""
        if self.tmp is None:
            parent = private_path(self.lay.path, BUILD)
            os.makedirs(parent, exist_ok=True)
            clean_stale(parent)
            self.tmp = tempfile.mkdtemp(prefix=f"b-{os.getpid()}-", dir=parent)
        return self.tmp

    def prepare(self, img: Image) -> str:
        """The bundle, holding the filesystem of state ``img`` and based on
        it (unpacked or re-based as needed)."""
        path = os.path.join(self.workdir(), "bundle")
        if self.bundle_layers != img.config.diff_ids:
            unpack(self.lay, img, path, rootless=self.rootless, force=True)
            self.bundle_layers = img.config.diff_ids
        elif self.bundle_base != img.descriptor.digest:
            # Same files, newer config (metadata steps ran since): re-point the
            # base record, keeping the snapshot (no walk of the rootfs needed).
            rec = BaseRecord.load(path)
            new = BaseRecord(rec.layout, img.descriptor, rec.ref, rec.rootless)
            write_json(os.path.join(path, RECORD), new.to_dict())
        self.bundle_base = img.descriptor.digest
        return path

    def apply_entries(
        self, rootfs: str, entries: Iterator[tuple[TarEntry, BinaryIO | None]]
    ) -> None:
        """Apply ``entries`` to the rootfs as a layer would be: every name
        resolves inside the rootfs, whatever symlinks it holds."""
        with tempfile.SpooledTemporaryFile(max_size=32 << 20, dir=self.workdir()) as spool:
            write_layer(entries, cast(Writable, spool), "none")
            spool.seek(0)
            apply_layer(
                cast(BinaryIO, spool),
                rootfs,
                codec="none",
                diff_id=None,
                options=ApplyOptions(rootless=self.rootless),
            )

    def mkdir(self, rootfs: str, path: str) -> None:
        """Create directory ``path`` (and missing parents) in the rootfs."""
        found = resolve_in(rootfs, path)
        if found is not None:
            if not os.path.isdir(found):
                raise OCIToolsError(f"{path} exists in the image and is not a directory")
            return
        entry = TarEntry(entry_name(path), EntryType.DIR, 0o755, 0, 0, 0, time.time_ns())
        self.apply_entries(rootfs, iter([(entry, None)]))

    def committed(self, img: Image) -> None:
        """The bundle's changes were committed (and refreshed) as ``img``."""
        self.bundle_layers = img.config.diff_ids
        self.bundle_base = img.descriptor.digest

    def remove(self) -> None:
        """Delete the scratch directory (the bundle with it), if made."""
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                remove_tree(self.tmp)


def clean_stale(parent: str) -> None:
    """Remove the working directories of builds whose process is gone."""
    for name in os.listdir(parent):
        m = re.fullmatch(r"b-(\d+)-.*", name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, someone else's
        with contextlib.suppress(OSError):
            remove_tree(os.path.join(parent, name))


__all__ = ["WorkingBundle", "clean_stale"]
