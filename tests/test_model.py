"""spec.model: documents parse, keep their exact bytes (so their digest is
the digest of what is stored) and round-trip through their JSON form."""

from __future__ import annotations

import json

import pytest

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    dump_json,
    with_ref,
)

LAYER = Digest.of_bytes(b"layer")
CONFIG = Digest.of_bytes(b"config")

# Odd spacing and key order on purpose: parsing must keep these bytes.
MANIFEST = (
    b'{ "schemaVersion":2,  "mediaType":"application/vnd.oci.image.manifest.v1+json",'
    b'"layers":[{"size":5,"digest":"' + str(LAYER).encode() + b'",'
    b'"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip"}],'
    b'"config":{"mediaType":"application/vnd.oci.image.config.v1+json",'
    b'"digest":"' + str(CONFIG).encode() + b'","size":6},'
    b'"annotations":{"a":"1"}}\n'
)


def test_manifest_parse_keeps_the_raw_bytes_and_their_digest() -> None:
    m = Manifest.parse(MANIFEST, mt.OCI_MANIFEST)
    assert m.raw == MANIFEST
    assert m.digest == Digest.of_bytes(MANIFEST)
    assert m.size == len(MANIFEST)
    assert m.config == Descriptor(mt.OCI_CONFIG, CONFIG, 6)
    assert [d.digest for d in m.layers] == [LAYER]
    assert m.annotations == {"a": "1"}
    d = m.descriptor(mt.OCI_MANIFEST)
    assert (d.digest, d.size) == (Digest.of_bytes(MANIFEST), len(MANIFEST))


def test_manifest_refuses_bad_documents() -> None:
    doc = json.loads(MANIFEST)
    for change, message in [
        ({"schemaVersion": 1}, "schemaVersion must be 2"),
        ({"layers": {}}, "layers must be an array"),
        ({"manifests": []}, "must not have 'manifests'"),
    ]:
        with pytest.raises(InvalidDocumentError, match=message):
            Manifest.parse(json.dumps({**doc, **change}).encode())
    with pytest.raises(InvalidDocumentError, match="does not match descriptor"):
        Manifest.parse(MANIFEST, mt.DOCKER_MANIFEST)
    with pytest.raises(InvalidDocumentError):
        Manifest.parse(b"[1, 2]")


def test_manifest_build_round_trips() -> None:
    cfg = Descriptor(mt.OCI_CONFIG, CONFIG, 6)
    layer = Descriptor(mt.OCI_LAYER_GZIP, LAYER, 5)
    m = Manifest.build(cfg, [layer], {"k": "v"})
    again = Manifest.parse(m.raw, mt.OCI_MANIFEST)
    assert again == m
    assert (again.config, again.layers, dict(again.annotations)) == (cfg, (layer,), {"k": "v"})


def test_descriptor_round_trips_with_platform_and_annotations() -> None:
    d = Descriptor(
        mt.OCI_MANIFEST,
        LAYER,
        42,
        annotations={"org.opencontainers.image.ref.name": "v1"},
        platform=Platform.parse("linux/arm64/v8"),
    )
    assert Descriptor.from_dict(d.to_dict()) == d
    assert with_ref(d, None).annotations == {}
    with pytest.raises(InvalidDocumentError, match="size must be a non-negative integer"):
        Descriptor.from_dict({**d.to_dict(), "size": -1})


def test_index_parse_and_build() -> None:
    m = Descriptor(mt.OCI_MANIFEST, LAYER, 5, platform=Platform.parse("linux/amd64"))
    idx = Index.build([m])
    again = Index.parse(idx.raw, mt.OCI_INDEX)
    assert list(again.manifests) == [m]
    assert again.digest == Digest.of_bytes(idx.raw)


def test_config_parse_reads_fields_and_keeps_bytes() -> None:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["A=1"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [str(LAYER)]},
        "history": [{"created_by": "x"}, {"created_by": "y", "empty_layer": True}],
    }
    raw = dump_json(doc)
    cfg = ImageConfig.parse(raw)
    assert cfg.raw == raw and cfg.digest == Digest.of_bytes(raw)
    assert (cfg.architecture, cfg.os, cfg.diff_ids) == ("amd64", "linux", (LAYER,))
    assert cfg.config["Env"] == ["A=1"]
    assert [n for _, n in cfg.layer_history()] == [0, None]
    assert ImageConfig.from_dict(cfg.as_dict()).raw == raw
    with pytest.raises(InvalidDocumentError, match=r"rootfs\.type must be 'layers'"):
        ImageConfig.parse(dump_json({**doc, "rootfs": {"type": "x", "diff_ids": []}}))


def test_as_dict_is_a_copy() -> None:
    m = Manifest.parse(MANIFEST)
    d = m.as_dict()
    d["layers"].clear()
    assert len(m.doc["layers"]) == 1


def test_merge_annotations_sets_and_removes_without_touching_the_input() -> None:
    from oci_tools.spec.model import merge_annotations

    cur = {"a": "1", "b": "2"}
    assert merge_annotations(cur, {"a": None, "c": "3", "zz": None}) == {"b": "2", "c": "3"}
    assert cur == {"a": "1", "b": "2"}
