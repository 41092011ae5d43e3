"""The per-layer index cache: each layer is streamed once (verified), cached by
digest, a bad cache file is a miss, a bad layer is never cached."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from builders import Layer, file, make_layer
from helpers import cli
from layer_views import EFFICIENCY, SHOW, TREE, Built, ok, three_layer_image, write_test_image

import oci_tools.layer.stream
from oci_tools.digest import Digest
from oci_tools.errors import UnsafeLayerError
from oci_tools.image import Image
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layout import Layout
from oci_tools.views.layers import (
    CACHE_VERSION,
    OPAQUE,
    WHITEOUT,
    IndexEntry,
    LayerCache,
    LayerIndex,
    layer_index,
    read_index,
)


@pytest.fixture
def img(tmp_path: Path) -> Built:
    return three_layer_image(tmp_path)


def count_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count every layer stream opened (all go through layer.stream)."""
    calls: list[str] = []
    real = oci_tools.layer.stream.decompressor

    def counting(codec: str, raw: Any) -> Any:
        calls.append(codec)
        return real(codec, raw)

    monkeypatch.setattr(oci_tools.layer.stream, "decompressor", counting)
    return calls


def test_each_layer_is_streamed_once_then_cached(
    img: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_streams(monkeypatch)
    first = ok("layers", img.ref)
    assert calls == ["gzip", "zstd", "none"]
    cache = img.path / ".oci-tools" / "cache" / "layers" / "sha256"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        lyr.digest[7:] + ".json" for lyr in img.layers
    )
    calls.clear()
    assert ok("layers", img.ref) == first
    for n in range(3):
        assert ok("layer", "show", img.ref, str(n)) == SHOW[n]
        assert ok("layer", "show", img.ref, str(n), "--tree") == TREE[n]
    assert ok("efficiency", img.ref) == EFFICIENCY
    assert calls == []
    # The cache answers even when the blobs are gone.
    for lyr in img.layers:
        os.unlink(img.path / "blobs" / "sha256" / lyr.digest[7:])
    assert ok("efficiency", img.ref) == EFFICIENCY
    assert calls == []


def test_show_streams_only_the_layers_it_needs(img: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_streams(monkeypatch)
    assert ok("layer", "show", img.ref, "1") == SHOW[1]
    assert calls == ["gzip", "zstd"]
    calls.clear()
    assert ok("layers", img.ref).count("\n") == 4
    assert calls == ["none"]


def test_extract_indexes_in_the_same_pass(
    img: Built, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = count_streams(monkeypatch)
    ok("layer", "extract", img.ref, "1", str(tmp_path / "x"))
    assert calls == ["zstd"]
    calls.clear()
    assert ok("layer", "show", img.ref, "1") == SHOW[1]
    assert calls == ["gzip"]  # layer 0 only: layer 1 was indexed while extracting
    calls.clear()
    ok("layer", "extract", img.ref, "1", str(tmp_path / "y"))  # writing files needs the data
    assert calls == ["zstd"]


def test_a_bad_cache_file_is_a_miss(img: Built, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ok("layers", img.ref)
    cache = LayerCache(Layout.open(str(img.path)))
    paths = [cache.path_for(Digest.parse(lyr.digest)) for lyr in img.layers]
    Path(paths[0]).write_text("{not json")
    Path(paths[1]).write_text(json.dumps({"version": 999}))
    doc = json.loads(Path(paths[2]).read_text())
    doc["entries"][0][2] = -1
    Path(paths[2]).write_text(json.dumps(doc))
    calls = count_streams(monkeypatch)
    assert ok("layers", img.ref) == first
    assert calls == ["gzip", "zstd", "none"]
    calls.clear()
    assert ok("layers", img.ref) == first and calls == []  # rewritten


def test_diff_id_mismatch_is_refused_and_not_cached(tmp_path: Path) -> None:
    good, other = make_layer([file("a", b"1")]), make_layer([file("b", b"2")])
    bad = Layer(good.tar, good.blob, good.codec, good.digest, other.diff_id)
    write_test_image(tmp_path / "lay", [bad])
    r = cli("layers", f"{tmp_path / 'lay'}:latest")
    assert r.code == 1 and "diff_id" in r.err
    assert not (tmp_path / "lay" / ".oci-tools" / "cache" / "layers").exists()


def test_a_corrupt_blob_is_refused_and_not_cached(img: Built, tmp_path: Path) -> None:
    blob = img.path / "blobs" / "sha256" / img.layers[2].digest[7:]  # uncompressed tar
    data = bytearray(blob.read_bytes())
    data[1100] ^= 0x01  # inside app/config's content (headers at 0 and 512)
    blob.write_bytes(bytes(data))
    r = cli("layers", img.ref)
    assert r.code == 1 and f"content of {img.layers[2].digest}: expected" in r.err, r.err
    cache = LayerCache(Layout.open(str(img.path)))
    assert cache.get(Digest.parse(img.layers[2].digest)) is None
    assert cache.get(Digest.parse(img.layers[0].digest)) is not None
    r = cli("layer", "extract", img.ref, "2", str(tmp_path / "x"))
    assert r.code == 1


# ------------------------------------------------------------ the index API


def test_index_entries_name_whiteouts_by_what_they_remove() -> None:
    entries = [
        TarEntry("etc/.wh.motd", EntryType.REG),
        TarEntry("opt/.wh..wh..opq", EntryType.REG),
        TarEntry(".wh..wh..opq", EntryType.REG),
        TarEntry("usr/bin/tool", EntryType.REG, mode=0o755, uid=5, gid=6, size=300),
        TarEntry("usr/bin/t2", EntryType.HARDLINK, linkname="usr/bin/tool"),
    ]
    assert [IndexEntry.from_tar(e) for e in entries] == [
        IndexEntry("etc/motd", WHITEOUT, 0o644),
        IndexEntry("opt", OPAQUE, 0o644),
        IndexEntry("", OPAQUE, 0o644),
        IndexEntry("usr/bin/tool", "reg", 0o755, 5, 6, 300),
        IndexEntry("usr/bin/t2", "hardlink", linkname="usr/bin/tool"),
    ]
    with pytest.raises(UnsafeLayerError):
        IndexEntry.from_tar(TarEntry("a/.wh..", EntryType.REG))


def test_layer_index_round_trips_its_cached_form() -> None:
    d = Digest.parse("sha256:" + "a" * 64)
    index = LayerIndex(
        d,
        Digest.parse("sha256:" + "b" * 64),
        2048,
        (IndexEntry("a", "dir", 0o755), IndexEntry("a/b", WHITEOUT), IndexEntry("s", "symlink")),
    )
    doc = json.loads(json.dumps(index.to_json()))
    assert doc["version"] == CACHE_VERSION
    assert LayerIndex.from_json(doc) == index
    for bad in (
        {**doc, "version": CACHE_VERSION + 1},
        {**doc, "uncompressed_size": -1},
        {**doc, "entries": [["a", "no-such-kind", 0, 0, 0, 0, ""]]},
        {**doc, "entries": [["a", "reg", 0, 0, 0, -5, ""]]},
    ):
        with pytest.raises(ValueError):
            LayerIndex.from_json(bad)


def test_layer_index_streams_once_then_reads_the_cache(
    img: Built, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = Image.load(Layout.open(str(img.path)), "latest")
    calls = count_streams(monkeypatch)
    first = [layer_index(image, i) for i in range(3)]
    assert calls == ["gzip", "zstd", "none"]
    assert [str(x.diff_id) for x in first] == [lyr.diff_id for lyr in img.layers]
    assert [x.uncompressed_size for x in first] == [len(lyr.tar) for lyr in img.layers]
    paths = [e.path for e in first[2].entries]
    assert paths == ["app", "app/config", "tmp", "etc", "etc/hosts", "new.txt"]
    assert [layer_index(image, i) for i in range(3)] == first and len(calls) == 3
    assert read_index(image.layout, image.layers[1], None) == first[1] and len(calls) == 4
