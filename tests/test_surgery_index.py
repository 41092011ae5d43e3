"""Multi-platform indexes (``index create|add|rm|annotate|inspect``),
``annotate`` and ``label``; skopeo must pick our index's entries by arch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import directory, file, make_layer
from helpers import cli, need_tool, run
from verify import assert_valid_layout

from oci_tools.digest import Digest
from oci_tools.errors import NotFoundError, UsageError
from oci_tools.image import Image, Layer
from oci_tools.layout import Layout
from oci_tools.mutate import append_layer, empty_image, set_annotations, set_labels, write
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import History, Platform
from oci_tools.store import put_bytes
from oci_tools.surgery import create_index, index_annotate, index_remove, load_index

T0 = "2024-01-01T00:00:00Z"


def _arch_image(lay: Layout, arch: str, variant: str = "", ref: str | None = None) -> Image:
    built = make_layer([directory("etc"), file("etc/arch", arch.encode())], "gzip")
    put_bytes(lay.store, built.blob)
    layer = Layer.create(
        mt.OCI_LAYER_GZIP,
        Digest.parse(built.digest),
        len(built.blob),
        Digest.parse(built.diff_id),
        len(built.tar),
    )
    img = empty_image(lay, platform=Platform("linux", arch, variant), created=T0)
    img = append_layer(img, layer, history=History(created=T0, created_by=f"{arch} layer"))
    desc = write(lay, img)
    lay.set_ref(ref or arch, desc)
    return img


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    lay = Layout.init(str(tmp_path / "lay"))
    _arch_image(lay, "amd64")
    _arch_image(lay, "arm64", "v8")
    _arch_image(lay, "arm", "v7")
    return lay


def test_index_create_and_inspect(lay: Layout) -> None:
    r = cli("index", "create", f"{lay.path}:multi", "amd64", "arm64", "--annotation", "a=b")
    assert r.code == 0, r.err
    desc, idx = load_index(lay, "multi")
    assert r.out.strip() == str(desc.digest)
    assert [str(d.platform) for d in idx.manifests] == ["linux/amd64", "linux/arm64/v8"]
    assert idx.annotations == {"a": "b"}
    assert_valid_layout(lay.path)
    r = cli("index", "inspect", f"{lay.path}:multi")
    assert "linux/arm64/v8" in r.out and "PLATFORM" in r.out
    rows = [
        json.loads(x)
        for x in cli("index", "inspect", f"{lay.path}:multi", "--format", "json").out.splitlines()
    ]
    assert {x["Platform"] for x in rows} == {"linux/amd64", "linux/arm64/v8"}
    assert json.loads(cli("index", "inspect", f"{lay.path}:multi", "--raw").out) == json.loads(
        lay.read_blob(desc)
    )
    # unpack/inspect pick the entry for --platform
    got = Image.load(lay, "multi", Platform("linux", "arm64"))
    assert got.digest == Image.load(lay, "arm64").digest
    # the same images give the same index
    again = create_index(
        lay, [Image.load(lay, "amd64"), Image.load(lay, "arm64")], annotations={"a": "b"}
    )
    assert again.digest == desc.digest


def test_index_create_bad_input(lay: Layout) -> None:
    cli("index", "create", f"{lay.path}:multi", "amd64")
    r = cli("index", "create", f"{lay.path}:multi", "arm64")
    assert r.code == 1 and "refusing to overwrite" in r.err and "--amend" in r.err
    assert cli("index", "create", f"{lay.path}:multi", "arm64", "--amend").code == 0
    r = cli("index", "create", f"{lay.path}:m2", "amd64", "nope")
    assert r.code == 1 and "nope" in r.err
    _arch_image(lay, "amd64", ref="amd64b")  # same platform, same image: one entry
    # two different images for one platform are refused
    other = empty_image(lay, platform=Platform("linux", "amd64"))
    lay.set_ref("amd64c", write(lay, other))
    r = cli("index", "create", f"{lay.path}:m3", "amd64", "amd64c")
    assert r.code == 2 and "two images for platform linux/amd64" in r.err
    r = cli("index", "inspect", f"{lay.path}:amd64")
    assert r.code == 2 and "not an index" in r.err


def test_index_add_rm_annotate(lay: Layout) -> None:
    cli("index", "create", f"{lay.path}:multi", "amd64")
    assert cli("index", "add", f"{lay.path}:multi", "arm64", "arm").code == 0
    _, idx = load_index(lay, "multi")
    assert len(idx.manifests) == 3
    r = cli("index", "rm", f"{lay.path}:multi", "linux/arm/v7")
    assert r.code == 0, r.err
    _, idx = load_index(lay, "multi")
    assert [str(d.platform) for d in idx.manifests] == ["linux/amd64", "linux/arm64/v8"]
    arm64 = Image.load(lay, "arm64")
    r = cli(
        "index",
        "annotate",
        f"{lay.path}:multi",
        str(arm64.digest),
        "--platform",
        "linux/arm64/v9",
        "--os-version",
        "10.0.1",
        "--os-features",
        "win32k,x",
        "--annotation",
        "k=v",
    )
    assert r.code == 0, r.err
    _, idx = load_index(lay, "multi")
    d = idx.manifests[1]
    assert d.platform == Platform("linux", "arm64", "v9", "10.0.1", ("win32k", "x"))
    assert d.annotations == {"k": "v"}
    assert json.loads(lay.read_blob(lay.lookup("multi")))["manifests"][1]["platform"] == {
        "architecture": "arm64",
        "os": "linux",
        "variant": "v9",
        "os.version": "10.0.1",
        "os.features": ["win32k", "x"],
    }
    with pytest.raises(NotFoundError, match="no entry"):
        index_remove(lay, "multi", ["linux/s390x"])
    with pytest.raises(UsageError):
        index_annotate(
            lay,
            "multi",
            "linux/amd64",
            platform=Platform("linux", "arm64", "v9"),
            os_version="10.0.1",
            os_features=["win32k", "x"],
        )
    r = cli("index", "annotate", f"{lay.path}:multi", "linux/amd64")
    assert r.code == 2
    r = cli("index", "rm", f"{lay.path}:multi", "linux/amd64", "--to", "armonly")
    assert r.code == 0
    assert len(load_index(lay, "armonly")[1].manifests) == 1
    assert len(load_index(lay, "multi")[1].manifests) == 2


def test_skopeo_override_arch_selects_from_our_index(lay: Layout, tmp_path: Path) -> None:
    need_tool("skopeo")
    cli("index", "create", f"{lay.path}:multi", "amd64", "arm64", "arm")
    for arch, variant in (("arm64", "v8"), ("amd64", ""), ("arm", "v7")):
        out = tmp_path / f"out-{arch}"
        cmd = ["skopeo", "copy", "--override-os", "linux", "--override-arch", arch]
        if variant:
            cmd += ["--override-variant", variant]
        run(*cmd, f"oci:{lay.path}:multi", f"oci:{out}:x")
        got = Image.load(Layout.open(str(out)), "x")
        assert got.digest == Image.load(lay, arch).digest
        assert got.platform.architecture == arch


def test_annotate_and_label(lay: Layout) -> None:
    before = Image.load(lay, "amd64")
    r = cli("annotate", f"{lay.path}:amd64", "org.example.a=1", "b=2", "--to", "ann")
    assert r.code == 0, r.err
    ann = Image.load(lay, "ann")
    assert r.out.strip() == str(ann.digest) != str(before.digest)
    assert ann.manifest.annotations == {"org.example.a": "1", "b": "2"}
    assert ann.config.raw == before.config.raw  # only the manifest changed
    r = cli("annotate", f"{lay.path}:ann", "--rm", "b")
    assert Image.load(lay, "ann").manifest.annotations == {"org.example.a": "1"}
    assert cli("annotate", f"{lay.path}:ann").code == 2
    assert cli("annotate", f"{lay.path}:ann", "novalue").code == 2

    r = cli("label", f"{lay.path}:ann", "maintainer=me", "x=y")
    assert r.code == 0, r.err
    lab = Image.load(lay, "ann")
    assert lab.config.doc["config"]["Labels"] == {"maintainer": "me", "x": "y"}
    assert lab.manifest.annotations == {"org.example.a": "1"}  # kept
    assert lab.config.doc["history"] == before.config.doc["history"]
    assert cli("label", f"{lay.path}:ann", "--rm", "x").code == 0
    assert Image.load(lay, "ann").config.doc["config"]["Labels"] == {"maintainer": "me"}
    assert cli("label", f"{lay.path}:ann").code == 2

    cli("index", "create", f"{lay.path}:multi", "amd64")
    r = cli("annotate", f"{lay.path}:multi", "--index", "idx=1")
    assert r.code == 0, r.err
    assert load_index(lay, "multi")[1].annotations == {"idx": "1"}
    assert_valid_layout(lay.path)
    # the library functions return new values and leave the old one alone
    assert set_annotations(before, {"k": "v"}).digest != before.digest
    assert set_labels(before, {"k": "v"}).config.doc["config"]["Labels"] == {"k": "v"}
    assert "Labels" not in before.config.doc["config"]


def test_annotate_manifest_flag_and_index_rm(lay: Layout) -> None:
    r = cli("annotate", f"{lay.path}:amd64", "--manifest", "m=1", "n=2")
    assert r.code == 0, r.err
    assert Image.load(lay, "amd64").manifest.annotations == {"m": "1", "n": "2"}
    cli("index", "create", f"{lay.path}:multi", "amd64")
    assert cli("annotate", f"{lay.path}:multi", "--index", "i=1", "j=2").code == 0
    assert cli("annotate", f"{lay.path}:multi", "--on-index", "--rm", "i").code == 0
    assert load_index(lay, "multi")[1].annotations == {"j": "2"}
    r = cli("annotate", f"{lay.path}:amd64", "--index", "i=1")
    assert r.code == 2 and "not an index" in r.err
    r = cli("annotate", f"{lay.path}:amd64", "a=1", "--index", "i=1")
    assert r.code == 2 and "not both" in r.err
