"""``history``: the build steps of an image, newest first, as docker shows them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from oci_tools.digest import Digest
from oci_tools.image import Image
from oci_tools.records import record, replace
from oci_tools.spec.model import History
from oci_tools.views.images import tagged_images
from oci_tools.views.sizes import SizeCache


@record
class HistoryRow:
    """One ``history`` row (newest first in output)."""

    id: str  # a digest string, or "<missing>"
    created: str | None
    created_by: str
    size: int  # Docker's size: the layer's regular-file bytes (views.sizes)
    comment: str
    empty_layer: bool
    uncompressed_size: int = 0  # the layer's tar stream
    compressed_size: int = 0  # the layer's blob as stored


def _state_key(history: Iterable[History], diff_ids: Iterable[Digest]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([r.to_dict() for r in history], sort_keys=True).encode())
    h.update(b"\0" + " ".join(str(d) for d in diff_ids).encode())
    return h.hexdigest()


def history_rows(image: Image, sizes: SizeCache | None = None) -> list[HistoryRow]:
    """``docker history`` rows for ``image``, newest first.

    The top row shows the image's id (its config digest, as ``docker
    history`` shows it); a row whose state (history and layers
    so far) is itself a tagged image in the layout shows that image's id;
    other rows show ``<missing>``.  ``size`` is Docker's (regular-file bytes).
    """
    sizes = sizes or SizeCache(image.layout)
    states: dict[str, str] = {}
    for _ref, other in tagged_images(image.layout):
        key = _state_key(other.config.history, other.config.diff_ids)
        states.setdefault(key, str(other.id))
    rows: list[HistoryRow] = []
    hist = image.config.history
    pairs = image.config.layer_history()
    layers_so_far = 0
    for k, (h, li) in enumerate(pairs):
        if li is not None:
            layers_so_far = li + 1
        key = _state_key(hist[: k + 1], image.config.diff_ids[:layers_so_far])
        desc = image.layers[li] if li is not None and li < len(image.layers) else None
        rows.append(
            HistoryRow(
                id=states.get(key, "<missing>"),
                created=h.created,
                created_by=h.created_by or "",
                size=sizes.content(desc) if desc is not None else 0,
                comment=h.comment or "",
                empty_layer=li is None,
                uncompressed_size=sizes.size(desc) if desc is not None else 0,
                compressed_size=desc.size if desc is not None else 0,
            )
        )
    rows.reverse()
    if rows:
        rows[0] = replace(rows[0], id=str(image.id))
    sizes.save()
    return rows


__all__ = ["HistoryRow", "history_rows"]
