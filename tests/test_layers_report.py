"""``layers`` and ``layer show`` (list and tree, table and JSON, layer selection):
exact output on a built image."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from layer_views import LONG_STEP, SHOW, TREE, Built, ok, three_layer_image
from verify import assert_valid_layout

from oci_tools.errors import UsageError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.render import human_size
from oci_tools.views.layers import (
    OPAQUE,
    WHITEOUT,
    Change,
    analyze,
    change_tree,
    layer_report,
    select_layer,
)


@pytest.fixture
def img(tmp_path: Path) -> Built:
    return three_layer_image(tmp_path)


# ------------------------------------------------------------------- layers


def test_layers_table(img: Built) -> None:
    gz, zs, none = img.layers
    sizes = [human_size(len(lyr.blob)) for lyr in img.layers]
    ids = [lyr.digest[7:19] for lyr in img.layers]
    by1 = "/bin/sh -c apt-get update && apt-get install…"
    assert len(by1) == 45
    # SIZE is Docker's (regular-file bytes), then the blob and the tar sizes.
    expected = (
        "INDEX     LAYER          CREATED BY                                      SIZE      "
        "COMPRESSED   UNCOMPRESSED   ADDED     CHANGED   REMOVED   MEDIA TYPE\n"
        f"0         {ids[0]}   {'ADD rootfs.tar /':<48}10.5kB    {sizes[0]:<13}17.9kB         "
        "10        0         0         application/vnd.oci.image.layer.v1.tar+gzip\n"
        f"1         {ids[1]}   {by1:<48}4.01kB    {sizes[1]:<13}14.8kB         "
        "11        3         3         application/vnd.oci.image.layer.v1.tar+zstd\n"
        f"2         {ids[2]}   {'COPY config /app/config':<48}1.64kB    "
        "7.17kB       7.17kB         1         4         1         "
        "application/vnd.oci.image.layer.v1.tar\n"
    )
    assert ok("layers", img.ref) == expected
    assert len(none.tar) == 7168 and len(gz.tar) == 17920 and len(zs.tar) == 14848
    assert_valid_layout(str(img.path))


def test_layers_no_trunc_and_json(img: Built) -> None:
    out = ok("layers", img.ref, "--no-trunc")
    assert LONG_STEP in out and img.layers[1].digest in out
    rows = [json.loads(line) for line in ok("layers", img.ref, "--format", "json").splitlines()]
    l1 = img.layers[1]
    assert rows[1] == {
        "Index": 1,
        "Digest": l1.digest,
        "DiffID": l1.diff_id,
        "CreatedBy": LONG_STEP,
        "Size": "4.01kB",
        "SizeBytes": 4010,
        "CompressedSize": human_size(len(l1.blob)),
        "CompressedSizeBytes": len(l1.blob),
        "UncompressedSize": "14.8kB",
        "UncompressedSizeBytes": 14848,
        "Added": 11,
        "Changed": 3,
        "Removed": 3,
        "MediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
    }
    assert [(r["Index"], r["Added"], r["Changed"], r["Removed"]) for r in rows] == [
        (0, 10, 0, 0),
        (1, 11, 3, 3),
        (2, 1, 4, 1),
    ]


# ---------------------------------------------------------------- layer show


@pytest.mark.parametrize("n", [0, 1, 2])
def test_layer_show_listing_and_tree(img: Built, n: int) -> None:
    assert ok("layer", "show", img.ref, str(n)) == SHOW[n]
    assert ok("layer", "show", img.ref, str(n), "--tree") == TREE[n]


def test_layer_show_selects_by_digest_and_negative_index(img: Built) -> None:
    d1 = img.layers[1].digest
    assert ok("layer", "show", img.ref, d1) == SHOW[1]
    assert ok("layer", "show", img.ref, d1[7:19]) == SHOW[1]
    assert ok("layer", "show", img.ref, "-1") == SHOW[2]
    assert ok("layer", "show", img.ref, "-3") == SHOW[0]
    for bad in ("3", "-4", "zz", "sha256:" + "0" * 64):
        r = cli("layer", "show", img.ref, bad)
        assert r.code == 2 and r.out == "", (bad, r.err)
    assert cli("layer", img.ref).code == 2  # the subcommand is required


def test_layer_show_json(img: Built) -> None:
    out = ok("layer", "show", img.ref, "1", "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["Change"], r["Path"]) for r in rows] == [
        (line.split()[0], line.split()[5]) for line in SHOW[1].splitlines()[1:]
    ]
    assert rows[2] == {
        "Change": "A",
        "Type": "hardlink",
        "Mode": "0755",
        "Owner": "0:0",
        "Uid": 0,
        "Gid": 0,
        "Size": "0B",
        "SizeBytes": 0,
        "Path": "/app/bin-link",
        "Target": "/app/bin",
    }
    assert rows[3] == {
        "Change": "A",
        "Type": "file",
        "Mode": "0644",
        "Owner": "1000:1000",
        "Uid": 1000,
        "Gid": 1000,
        "Size": "1.5kB",
        "SizeBytes": 1500,
        "Path": "/app/config",
        "Target": "",
    }
    assert rows[9] == {
        "Change": "D",
        "Type": "dir",
        "Mode": "0755",
        "Owner": "0:0",
        "Uid": 0,
        "Gid": 0,
        "Size": "600B",
        "SizeBytes": 600,
        "Path": "/opt/d",
        "Target": "",
    }
    assert rows[13]["Mode"] == "1777"


def test_layer_show_tree_json(img: Built) -> None:
    out = ok("layer", "show", img.ref, "2", "--tree", "--format", "json")
    assert out.count("\n") == 1
    tree = json.loads(out)

    def shape(node: dict[str, Any]) -> Any:
        return (
            node["Change"],
            node["Name"],
            node["Path"],
            node["Type"],
            node["SizeBytes"],
            [shape(c) for c in node["Children"]],
        )

    assert shape(tree) == (
        "",
        "/",
        "/",
        "dir",
        1640,
        [
            (
                "C",
                "app",
                "/app",
                "dir",
                1600,
                [("C", "config", "/app/config", "file", 1600, [])],
            ),
            ("C", "etc", "/etc", "dir", 30, [("C", "hosts", "/etc/hosts", "file", 30, [])]),
            ("A", "new.txt", "/new.txt", "file", 10, []),
            ("D", "tmp", "/tmp", "dir", 1500, []),
        ],
    )
    assert tree["Size"] == "1.64kB" and tree["Mode"] == ""
    assert tree["Children"][3]["Mode"] == "1777"


# ----------------------------------------------------------- the report API


def test_analyze_and_layer_report(img: Built) -> None:
    image = Image.load(Layout.open(str(img.path)), "latest")
    a = analyze(image)
    assert [r.index for r in a.layers] == [0, 1, 2]
    assert [r.created_by for r in a.layers] == [
        "ADD rootfs.tar /",
        LONG_STEP,
        "COPY config /app/config",
    ]
    assert [(r.count("A"), r.count("C"), r.count("D")) for r in a.layers] == [
        (10, 0, 0),
        (11, 3, 3),
        (1, 4, 1),
    ]
    assert a.layer_bytes == [10520, 4010, 1640] and a.total_bytes == 16170
    one = layer_report(image, 1)
    assert one.changes == a.layers[1].changes
    assert one.descriptor == image.layers[1]
    assert [(w.kind, w.path) for w in one.whiteouts] == [(WHITEOUT, "etc/motd"), (OPAQUE, "opt")]


def test_select_layer(img: Built) -> None:
    image = Image.load(Layout.open(str(img.path)), "latest")
    d2 = img.layers[2].digest
    for text, want in [("0", 0), ("-1", 2), (d2, 2), (d2[7:11], 2), ("sha256:" + d2[7:15], 2)]:
        assert select_layer(image, text) == want, text
    for bad in ("3", "-4", "xyz", "abc", "sha512:" + d2[7:15]):
        with pytest.raises(UsageError):
            select_layer(image, bad)


def test_change_tree_totals() -> None:
    changes = [
        Change("A", "/a", "dir", 0o755, 0, 0, 0),
        Change("A", "/a/b", "reg", 0o644, 0, 0, 5),
        Change("C", "/a/c/d", "reg", 0o644, 0, 0, 7),
        Change("D", "/e", "dir", 0o755, 0, 0, 100),
    ]
    root = change_tree(changes)
    assert (root.name, root.path, root.change, root.size) == ("/", "/", None, 12)
    a, e = root.children
    assert (a.change, a.size, [k.name for k in a.children]) == (changes[0], 12, ["b", "c"])
    c = a.children[1]
    assert (c.path, c.change, c.size) == ("/a/c", None, 7)
    assert (c.children[0].change, c.children[0].size) == (changes[2], 7)
    assert (e.change, e.size, e.children) == (changes[3], 100, [])
