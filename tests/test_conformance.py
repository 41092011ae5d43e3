"""Every OCI image-spec test vector in testdata/conformance gets the expected verdict.

INDEX.tsv (copied unchanged from the shared vectors) names, per file, the media
type to validate it as and whether it must be accepted.  A document that is
not JSON must come out invalid, never crash.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from oci_tools.spec import mediatype as mt
from oci_tools.spec import schema

VECTORS = Path(__file__).resolve().parent.parent / "testdata" / "conformance"

# The four Docker v2.2 originals are listed in INDEX.tsv under the OCI media
# type, but upstream only validates them after rewriting their Docker media
# types to OCI ones, and the spec says a manifest's (index's) mediaType, when
# present, MUST be the OCI value.  So the faithful check is: the original bytes
# are valid *as the Docker type they declare* (and the converted copies in
# manifest/, image-index/, config/ are valid as OCI).
DOCKER_TYPE_FOR = {
    mt.OCI_INDEX: mt.DOCKER_MANIFEST_LIST,
    mt.OCI_MANIFEST: mt.DOCKER_MANIFEST,
    mt.OCI_CONFIG: mt.DOCKER_CONFIG,
}
DOCKER_ORIGINALS = "backcompat-docker-originals/"


def _rows() -> list[dict[str, str]]:
    with (VECTORS / "INDEX.tsv").open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


ROWS = _rows()


def _media_type(row: dict[str, str]) -> str:
    if row["file"].startswith(DOCKER_ORIGINALS):
        return DOCKER_TYPE_FOR[row["schema"]]
    return row["schema"]


def test_index_covers_every_vector_file() -> None:
    listed = {row["file"] for row in ROWS}
    on_disk = {
        p.relative_to(VECTORS).as_posix()
        for p in VECTORS.rglob("*")
        if p.is_file() and p.parent != VECTORS
    }
    assert listed == on_disk
    assert len(ROWS) == 62


@pytest.mark.parametrize("row", ROWS, ids=[row["file"] for row in ROWS])
def test_vector(row: dict[str, str]) -> None:
    raw = (VECTORS / row["file"]).read_bytes()
    found = schema.problems(_media_type(row), raw)
    if row["expected"] == "valid":
        assert found == [], row["reason"]
    else:
        assert row["expected"] == "invalid"
        assert found, f"accepted, but expected invalid: {row['reason']}"
        assert all(isinstance(p, str) and "\n" not in p for p in found)


@pytest.mark.parametrize(
    "row",
    [r for r in ROWS if r["file"].startswith(DOCKER_ORIGINALS)],
    ids=lambda r: r["file"],
)
def test_docker_original_under_oci_type(row: dict[str, str]) -> None:
    """Under the OCI type, the only complaint about a Docker original is its mediaType."""
    raw = (VECTORS / row["file"]).read_bytes()
    found = schema.problems(row["schema"], raw)
    if row["schema"] == mt.OCI_CONFIG:
        assert found == []  # configs carry no mediaType of their own
    else:
        assert len(found) == 1
        assert found[0].startswith("mediaType: ")
        assert row["schema"] in found[0]
