"""check.check_layout: a valid layout has no problems; a corrupt blob, a
missing blob, a bad document and a wrong diff_id are each reported."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

from oci_tools.check import check_layout
from oci_tools.digest import Digest
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, ImageConfig, Manifest
from oci_tools.store import put_bytes


def _tar(text: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        ti = tarfile.TarInfo("hello.txt")
        ti.size = len(text)
        tf.addfile(ti, io.BytesIO(text))
    return buf.getvalue()


def _layout(tmp_path: Path, diff_id: Digest | None = None) -> tuple[Layout, Manifest]:
    lay = Layout.init(str(tmp_path / "lay"))
    tar = _tar(b"hello")
    layer = gzip.compress(tar, mtime=0)
    ldesc = Descriptor(mt.OCI_LAYER_GZIP, put_bytes(lay.store, layer), len(layer))
    cfg = ImageConfig.from_dict(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {
                "type": "layers",
                "diff_ids": [str(diff_id or Digest.of_bytes(tar))],
            },
        }
    )
    put_bytes(lay.store, cfg.raw)
    m = Manifest.build(cfg.descriptor(mt.OCI_CONFIG), [ldesc])
    put_bytes(lay.store, m.raw)
    lay.set_ref("app", m.descriptor(mt.OCI_MANIFEST))
    return lay, m


def _overwrite(lay: Layout, dg: Digest, data: bytes) -> None:
    path = lay.store.path_of(dg)
    os.chmod(path, 0o644)
    Path(path).write_bytes(data)


def test_a_valid_layout_has_no_problems(tmp_path: Path) -> None:
    lay, _ = _layout(tmp_path)
    assert check_layout(lay) == []


def test_a_corrupt_blob_is_found(tmp_path: Path) -> None:
    lay, m = _layout(tmp_path)
    layer = m.layers[0]
    raw = bytearray(Path(lay.store.path_of(layer.digest)).read_bytes())
    raw[-9] ^= 0xFF  # still decompresses; the blob no longer matches its name
    _overwrite(lay, layer.digest, bytes(raw))
    problems = check_layout(lay)
    actual = Digest.of_bytes(bytes(raw))
    assert f"blobs/sha256/{layer.digest.encoded}: content hashes to {actual}" in problems


def test_a_missing_blob_is_found(tmp_path: Path) -> None:
    lay, m = _layout(tmp_path)
    os.unlink(lay.store.path_of(m.layers[0].digest))
    problems = check_layout(lay)
    assert problems == [f"{m.digest} layers[0]: blob {m.layers[0].digest} is missing"]


def test_a_bad_document_is_found(tmp_path: Path) -> None:
    lay, _ = _layout(tmp_path)
    bad = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}).encode()
    desc = Descriptor(mt.OCI_MANIFEST, put_bytes(lay.store, bad), len(bad))
    lay.set_ref("bad", desc)
    problems = check_layout(lay)
    assert problems and all(
        p.startswith(f"index.json manifests[1] ({desc.digest}): ") for p in problems
    )


def test_a_wrong_size_is_found(tmp_path: Path) -> None:
    lay, m = _layout(tmp_path)
    lay.set_ref("app", Descriptor(mt.OCI_MANIFEST, m.digest, m.size + 1))
    assert check_layout(lay) == [
        f"index.json manifests[0]: descriptor size {m.size + 1} but blob {m.digest} "
        f"has {m.size} bytes"
    ]


def test_a_wrong_diff_id_is_found_only_when_layers_are_checked(tmp_path: Path) -> None:
    wrong = Digest.of_bytes(b"something else")
    lay, m = _layout(tmp_path, diff_id=wrong)
    assert check_layout(lay, layers=False) == []
    [problem] = check_layout(lay)
    assert problem.startswith(f"{m.digest} layers[0]: uncompressed content hashes to ")
    assert problem.endswith(f"config says {wrong}")


def test_a_layer_that_does_not_decompress_is_reported(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    junk = b"\x1f\x8b" + b"not really gzip" * 10
    ldesc = Descriptor(mt.OCI_LAYER_GZIP, put_bytes(lay.store, junk), len(junk))
    cfg = ImageConfig.from_dict(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of_bytes(b""))]},
        }
    )
    put_bytes(lay.store, cfg.raw)
    m = Manifest.build(cfg.descriptor(mt.OCI_CONFIG), [ldesc])
    put_bytes(lay.store, m.raw)
    lay.set_ref("x", m.descriptor(mt.OCI_MANIFEST))
    [problem] = check_layout(lay)
    assert problem.startswith(f"{m.digest} layers[0]: cannot decompress: ")


def test_stray_files_are_reported(tmp_path: Path) -> None:
    lay, _ = _layout(tmp_path)
    Path(lay.path, "blobs", "sha256", "not-a-digest").write_bytes(b"x")
    assert check_layout(lay) == ["blobs/sha256/not-a-digest: file name is not a valid digest"]
