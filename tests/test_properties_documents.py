"""Property: JSON documents with structure-aware damage.

Byte-level fuzzing (tests/fuzz/fuzz_json.py) rarely keeps a document's
shape; here every valid conformance vector (testdata/conformance) is damaged
where it matters: one value anywhere in it replaced by random JSON, or one
key removed.  Then:

- the schema validator returns a list of strings, and the model parsers
  (``Manifest``/``Index``/``ImageConfig``/``Descriptor``) return a value or
  raise an error of ours, nothing else;
- a document the validator finds no problem with parses with its model.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci_tools.errors import OCIToolsError
from oci_tools.spec import mediatype as mt
from oci_tools.spec import schema
from oci_tools.spec.model import Descriptor, ImageConfig, Index, Manifest

pytestmark = pytest.mark.fuzz

VECTORS = Path(__file__).parent.parent / "testdata" / "conformance"
with open(VECTORS / "INDEX.tsv", newline="") as _f:
    VALID = [
        (row["schema"], json.loads((VECTORS / row["file"]).read_bytes()))
        for row in csv.DictReader(_f, delimiter="\t")
        if row["expected"] == "valid" and row["file"].endswith(".json")
    ]

PARSERS: dict[str, Any] = {
    mt.OCI_MANIFEST: Manifest.parse,
    mt.OCI_INDEX: Index.parse,
    mt.OCI_CONFIG: ImageConfig.parse,
    mt.OCI_DESCRIPTOR: lambda raw: Descriptor.from_dict(json.loads(raw)),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["sha256:" + "a" * 64, "application/vnd.oci.image.layer.v1.tar", ""]),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=8), kids, max_size=3)
    ),
    max_leaves=8,
)


def _paths(doc: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*here, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*here, i))
    return out


def _damage(doc: Any, path: tuple[Any, ...], value: Any, delete: bool) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))  # a deep copy
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@given(data=st.data())
def test_damaged_documents_raise_only_our_errors(data: Any) -> None:
    media_type, doc = data.draw(st.sampled_from(VALID), label="vector")
    path = data.draw(st.sampled_from(_paths(doc)), label="path")
    value = data.draw(json_values, label="value")
    damaged = _damage(doc, path, value, data.draw(st.booleans(), label="delete"))
    raw = json.dumps(damaged).encode()
    found = schema.problems(media_type, raw)
    assert isinstance(found, list) and all(isinstance(p, str) for p in found)
    parse = PARSERS.get(media_type)
    if parse is None:
        return
    try:
        parse(raw)
    except OCIToolsError as e:
        if not found:
            pytest.fail(f"schema-valid {media_type} refused by its parser: {e}\n{raw!r}")
