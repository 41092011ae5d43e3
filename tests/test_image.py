"""Image and Layer values: what they name, digest vs diff_id, short reprs."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from builders import file, make_layer

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError, UsageError
from oci_tools.image import UNCOMPRESSED_SIZE, Image, Layer, created_now
from oci_tools.layout import Layout
from oci_tools.mutate import append_layer, empty_image, write
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, Platform
from oci_tools.store import put_bytes

T0 = "2024-01-01T00:00:00Z"


def _put_layer(lay: Layout, name: str, codec: str = "gzip") -> Layer:
    built = make_layer([file(name, f"content of {name}\n".encode())], codec)
    put_bytes(lay.store, built.blob)
    return Layer.create(
        mt.OCI_LAYER_FOR_CODEC[codec],
        Digest.parse(built.digest),
        len(built.blob),
        Digest.parse(built.diff_id),
        len(built.tar),
    )


@pytest.fixture
def image(tmp_path: Path) -> Image:
    """A tagged image with a gzip layer and an uncompressed one."""
    lay = Layout.init(str(tmp_path / "lay"))
    img = empty_image(lay, platform=Platform("linux", "amd64"), created=T0)
    img = append_layer(img, _put_layer(lay, "a"), history=History(created=T0, created_by="a"))
    img = append_layer(img, _put_layer(lay, "b", "none"), history=History(created_by="b"))
    lay.set_ref("latest", write(lay, img))
    return Image.load(lay, "latest")


def test_layer_digest_names_the_blob_and_diff_id_the_tar(image: Image) -> None:
    raw = image.layout.read_blob
    for layer, desc in zip(image.layer_values(), image.layers, strict=True):
        assert layer.descriptor == desc and layer.digest == desc.digest
        blob = raw(desc)
        assert layer.digest == Digest.of_bytes(blob) and layer.size == len(blob)
    gz, plain = image.layer_values()
    assert gz.codec == "gzip" and gz.digest != gz.diff_id
    assert plain.codec == "none" and plain.digest == plain.diff_id
    assert [x.diff_id for x in image.layer_values()] == list(image.config.diff_ids)


def test_layer_sizes(image: Image) -> None:
    gz, plain = image.layer_values()
    # recorded at write time (annotation) for the compressed blob ...
    assert gz.uncompressed_size == int(gz.descriptor.annotations[UNCOMPRESSED_SIZE])
    assert gz.uncompressed_size is not None and gz.uncompressed_size > gz.size
    # ... and the blob itself when it is not compressed
    assert plain.uncompressed_size == plain.size
    assert image.uncompressed_size(0) == gz.uncompressed_size
    bare = Layer.from_descriptor(
        Descriptor(gz.media_type, gz.digest, gz.size), gz.diff_id
    )  # no annotation: unknown, not guessed
    assert bare.uncompressed_size is None
    assert image.layer(-1) == plain


def test_image_id_is_the_config_digest_and_digest_the_manifest(image: Image) -> None:
    assert image.manifest.config is not None
    assert image.id == Digest.of_bytes(image.config.raw) == image.manifest.config.digest
    assert image.digest == Digest.of_bytes(image.manifest.raw) == image.descriptor.digest
    assert image.id != image.digest
    assert image.platform == Platform("linux", "amd64")


def test_reprs_are_short(image: Image) -> None:
    r = repr(image)
    assert r.startswith("Image(") and len(r) < 120
    assert image.digest.short in r and image.id.short in r and "2 layers" in r
    assert "ref='latest'" in r and "linux/amd64" in r
    lr = repr(image.layer(0))
    assert lr.startswith("Layer(") and len(lr) < 100
    assert image.layer(0).digest.short in lr and image.layer(0).diff_id.short in lr


def test_values_are_immutable(image: Image) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.ref = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        image.layer(0).diff_id = image.layer(1).diff_id  # type: ignore[misc]
    assert isinstance(image.layers, tuple) and isinstance(image.layer_values(), tuple)


def test_inconsistent_image_is_reported(image: Image) -> None:
    broken = dataclasses.replace(image, manifest=dataclasses.replace(image.manifest, layers=()))
    with pytest.raises(InvalidDocumentError, match="0 layers but 2 diff_ids"):
        broken.layer_values()


def test_created_now_errors_speak_of_the_value_not_a_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(UsageError) as e:
        created_now("yesterday")
    assert "--" not in e.value.message and "RFC 3339" in e.value.message
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert created_now() == "2023-11-14T22:13:20Z"
    assert created_now(T0) == T0


def test_layout_blob_bytes_are_what_the_digests_name(image: Image) -> None:
    assert image.manifest.config is not None
    cfg = image.layout.read_blob(image.manifest.config)
    assert cfg == image.config.raw
    assert "sha256:" + hashlib.sha256(cfg).hexdigest() == str(image.id)
