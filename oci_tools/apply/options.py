"""Options and result of applying a layer (``ApplyOptions``, ``ApplyResult``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from oci_tools.digest import Digest
from oci_tools.layer.entry import TarEntry
from oci_tools.layer.reader import DEFAULT_LIMITS, ReadLimits
from oci_tools.layer.stream import StreamLimits


def _default_rootless() -> bool:
    return os.geteuid() != 0


@dataclass
class ApplyOptions:
    """Policy and limits of ``apply_layer``.

    rootless:
        Do not chown, do not create devices, do not set ``security.capability``
        (each skipped item is noted in ``ApplyResult.skipped``), and give
        directories owner rwx while applying.  Defaults to "not running as root".
    max_ratio, ratio_grace_bytes:
        Refuse a stream once more than ``ratio_grace_bytes`` were decompressed
        and the uncompressed/compressed ratio exceeds ``max_ratio``.  Real
        layers stay far below 1000; gzip cannot exceed ~1032 (a layer made of
        nothing but zeros), zstd bombs reach 10^4..10^6.
    max_uncompressed_bytes:
        Absolute cap on the decompressed stream (None: no cap).
    check_free_space, min_free_bytes:
        Before writing a file, make sure the rootfs filesystem keeps at least
        ``min_free_bytes`` free afterwards (``statvfs``); refuse otherwise.
    max_entries:
        Cap on tar members (the per-layer bookkeeping grows with it).
    limits:
        Tar reader limits (extension header size and so on).
    on_entry:
        Called with every member (whiteouts included) before it is applied,
        so a caller can index the layer in the same pass (``layer extract``).
    apply_whiteouts:
        False leaves whiteouts and opaque markers unapplied (they are still
        validated and passed to ``on_entry``): extracting one layer on its own.
    on_missing_link:
        Called, instead of failing, with a hardlink member whose target does
        not exist in the rootfs; the member is then skipped.  Extracting one
        layer on its own: its hardlinks may point at lower layers' files.
    """

    rootless: bool = field(default_factory=_default_rootless)
    max_ratio: float = 1000.0
    ratio_grace_bytes: int = 16 << 20
    max_uncompressed_bytes: int | None = None
    check_free_space: bool = True
    min_free_bytes: int = 64 << 20
    max_entries: int = 2_000_000
    limits: ReadLimits = DEFAULT_LIMITS
    on_entry: Callable[[TarEntry], None] | None = None
    apply_whiteouts: bool = True
    on_missing_link: Callable[[TarEntry], None] | None = None

    def stream_limits(self) -> StreamLimits:
        """The bomb limits of these options, for :func:`open_layer_stream`."""
        return StreamLimits(
            max_ratio=self.max_ratio,
            ratio_grace_bytes=self.ratio_grace_bytes,
            max_uncompressed_bytes=self.max_uncompressed_bytes,
        )


@dataclass
class ApplyResult:
    """What ``apply_layer`` did.

    ``diff_id`` is the digest of the whole uncompressed stream (always
    computed, checked when one was given), ``uncompressed_size`` its length,
    ``compressed_size`` the bytes read from ``blob``, ``entries`` the tar
    members (whiteouts included), ``skipped`` one human-readable note per
    thing not applied (devices when rootless, refused xattrs, ...).
    """

    diff_id: Digest
    uncompressed_size: int
    compressed_size: int
    entries: int
    skipped: list[str] = field(default_factory=list)


__all__ = ["ApplyOptions", "ApplyResult"]
