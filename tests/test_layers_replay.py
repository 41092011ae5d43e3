"""The replay's rules as ``layer show`` shows them: whiteouts in tar order,
opaque markers, paths resolved through symlinks as unpack resolves them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from builders import Member, directory, file, hardlink, make_layer, opaque, symlink, whiteout
from layer_views import ok, show_rows, write_test_image
from verify import assert_valid_layout

from oci_tools.digest import Digest
from oci_tools.views.layers import WHITEOUT, IndexEntry, LayerIndex
from oci_tools.views.layers.replay import Node, Replay


def test_replay_edge_cases(tmp_path: Path) -> None:
    lower = make_layer(
        [
            file("a", b"a" * 3),
            directory("d"),
            file("d/x", b"x" * 5),
            file("d/y", b"y" * 7),
            directory("e"),
            file("e/x", b"e" * 11),
            file("k", b"k"),
            file("root1", b"r"),
        ]
    )
    upper = make_layer(
        [
            file("a", b"A"),
            whiteout("a"),  # whiteout after a same-layer add: a is C
            whiteout("d"),
            file("d/z", b"z"),  # d goes first, then d/z makes a new d
            file("e", b"E" * 2),  # a file over a directory
            whiteout("e/x"),
            whiteout("nothere"),  # under a replaced dir / hiding nothing
            file("dup", b"1" * 100),
            file("dup", b"2" * 10),  # same layer, twice
            whiteout("k"),
            symlink("k", "a"),  # a file replaced by a symlink
        ]
    )
    write_test_image(tmp_path / "lay", [lower, upper])
    assert show_rows(tmp_path / "lay", 1) == [
        ("C", "/a", "file", 1),
        ("D", "/d", "dir", 12),
        ("A", "/d/z", "file", 1),
        ("A", "/dup", "file", 10),
        ("C", "/e", "file", 2),
        ("D", "/e/x", "file", 11),
        ("C", "/k", "symlink", 0),
    ]
    doc = json.loads(ok("efficiency", f"{tmp_path / 'lay'}:latest", "--format", "json", "-n", "0"))
    # dive's rules (efficiency): the whiteout of /nothere hides nothing in the
    # layers below, which ends dive's visit of this layer (names sorted: the
    # whiteouts of a, d, k come first), so only /a and /k are seen twice.
    assert {f["Path"]: f["WastedBytes"] for f in doc["Files"]} == {"/a": 3, "/k": 1}
    # lower: 3 + 5 + 7 + 11 + 1 + 1; upper: a, d/z, e, dup twice (whiteouts count 0)
    assert doc["TotalBytes"] == 28 + 1 + 1 + 2 + 100 + 10
    assert_valid_layout(str(tmp_path / "lay"))
    # What unpack makes of it: the rows are true of the rootfs.
    ok("unpack", f"{tmp_path / 'lay'}:latest", str(tmp_path / "b"))
    rootfs = tmp_path / "b/rootfs"
    assert sorted(os.listdir(rootfs / "d")) == ["z"]
    assert os.path.isfile(rootfs / "e") and os.readlink(rootfs / "k") == "a"
    assert (rootfs / "a").read_bytes() == b"A"


def test_opaque_root_and_nested_whiteouts(tmp_path: Path) -> None:
    l0 = make_layer([file("a", b"1"), directory("b"), directory("b/c"), file("b/c/f", b"22")])
    l1 = make_layer([opaque(""), file("n", b"3"), directory("b"), file("b/new", b"4")])
    l2 = make_layer([whiteout("b/new"), whiteout("b"), file("a", b"5")])
    write_test_image(tmp_path / "lay", [l0, l1, l2])
    # The root's opaque marker hides a and b/c; b is re-declared so it stays (C).
    assert show_rows(tmp_path / "lay", 1) == [
        ("D", "/a", "file", 1),
        ("C", "/b", "dir", 0),
        ("D", "/b/c", "dir", 2),
        ("A", "/b/new", "file", 1),
        ("A", "/n", "file", 1),
    ]
    # Whiteouts of b/new and of b: one D row for the topmost path.
    assert show_rows(tmp_path / "lay", 2) == [("A", "/a", "file", 1), ("D", "/b", "dir", 1)]
    out = ok("layers", f"{tmp_path / 'lay'}:latest", "--format", "json")
    assert [
        (r["Added"], r["Changed"], r["Removed"]) for r in map(json.loads, out.splitlines())
    ] == [(4, 0, 0), (2, 1, 2), (1, 0, 1)]


def test_show_follows_symlinks_as_unpack_does(tmp_path: Path) -> None:
    """Names through symlinks (lower layer, same layer, absolute, '..'
    clamped at the root) are shown where unpack puts them."""
    l0 = make_layer(
        [
            directory("usr"),
            directory("usr/lib"),
            file("usr/lib/a", b"a" * 10),
            file("usr/lib/b", b"b" * 7),
            symlink("lib", "usr/lib"),
            directory("etc"),
            symlink("etc/alt", "/usr/lib"),
        ]
    )
    l1 = make_layer(
        [
            file("lib/a", b"A" * 3),  # through a lower relative symlink: C /usr/lib/a
            whiteout("etc/alt/b"),  # through a lower absolute symlink: D /usr/lib/b
            symlink("s", "usr"),
            file("s/new", b"n"),  # a symlink of this very layer
            symlink("up", "../../usr"),
            file("up/z", b"z" * 2),  # '..' clamped at /
            hardlink("lib/h", "s/lib/a"),  # both names resolved
        ]
    )
    write_test_image(tmp_path / "lay", [l0, l1])
    rows = ok("layer", "show", f"{tmp_path / 'lay'}:latest", "1", "--format", "json")
    got = [
        (r["Change"], r["Path"], r["Type"], int(r["SizeBytes"]), r["Target"])
        for r in map(json.loads, rows.splitlines())
    ]
    assert got == [
        ("A", "/s", "symlink", 0, "usr"),
        ("A", "/up", "symlink", 0, "../../usr"),
        ("C", "/usr/lib/a", "file", 3, ""),
        ("D", "/usr/lib/b", "file", 7, ""),
        ("A", "/usr/lib/h", "hardlink", 0, "/usr/lib/a"),
        ("A", "/usr/new", "file", 1, ""),
        ("A", "/usr/z", "file", 2, ""),
    ]
    doc = json.loads(ok("efficiency", f"{tmp_path / 'lay'}:latest", "--format", "json"))
    # dive reads tar names as they are (no symlink is followed): no path of
    # this layer is a path of the one below.
    assert doc["Files"] == []
    # The same image unpacked: every A/C row exists there, the D row does not.
    bundle = tmp_path / "bundle"
    ok("unpack", f"{tmp_path / 'lay'}:latest", str(bundle))
    rootfs = bundle / "rootfs"
    for change, path, *_ in got:
        assert os.path.lexists(f"{rootfs}{path}") == (change != "D"), path
    assert (rootfs / "usr/lib/a").read_bytes() == b"AAA"
    assert os.stat(rootfs / "usr/lib/h").st_ino == os.stat(rootfs / "usr/lib/a").st_ino


@pytest.mark.parametrize(
    ("upper", "rows", "exists", "absent"),
    [
        # The whiteout first: the symlink is gone, lib/x makes a real lib/.
        (
            [whiteout("lib"), file("lib/x", b"1")],
            [("D", "/lib", "symlink"), ("A", "/lib/x", "file")],
            "lib/x",
            "usr/lib/x",
        ),
        # The file first: it lands through the symlink, then the link goes.
        (
            [file("lib/x", b"1"), whiteout("lib")],
            [("D", "/lib", "symlink"), ("A", "/usr/lib/x", "file")],
            "usr/lib/x",
            "lib",
        ),
    ],
)
def test_whiteout_of_a_symlink_in_tar_order(
    tmp_path: Path,
    upper: list[Member],
    rows: list[tuple[str, str, str]],
    exists: str,
    absent: str,
) -> None:
    lower = make_layer(
        [directory("usr"), directory("usr/lib"), file("usr/lib/a", b"a"), symlink("lib", "usr/lib")]
    )
    write_test_image(tmp_path / "lay", [lower, make_layer(upper)])
    assert [r[:3] for r in show_rows(tmp_path / "lay", 1)] == rows
    ok("unpack", f"{tmp_path / 'lay'}:latest", str(tmp_path / "b"))
    rootfs = tmp_path / "b/rootfs"
    assert (rootfs / exists).read_bytes() == b"1"
    assert not os.path.lexists(rootfs / absent)


def test_show_of_a_symlink_loop_names_the_member_as_stored(tmp_path: Path) -> None:
    write_test_image(
        tmp_path / "lay",
        [
            make_layer([symlink("loop", "loop"), symlink("p", "q"), symlink("q", "p")]),
            make_layer([file("loop/x", b"1"), file("p/y", b"2")]),
        ],
    )
    assert show_rows(tmp_path / "lay", 1) == [("A", "/loop/x", "file", 1), ("A", "/p/y", "file", 1)]


# ----------------------------------------------------------- the replay API


def _index(n: int, *entries: IndexEntry) -> LayerIndex:
    d = Digest.parse(f"sha256:{n:064x}")
    return LayerIndex(d, d, 0, entries)


def test_replay_gives_rows_waste_and_link_sources() -> None:
    replay = Replay()
    rows0, wh0 = replay.layer(
        0,
        _index(
            0,
            IndexEntry("d", "dir", 0o755),
            IndexEntry("d/f", "reg", size=10),
            IndexEntry("d/g", "reg", size=3),
            IndexEntry("h", "hardlink", linkname="d/f"),
        ),
    )
    assert [(c.change, c.path, c.size, c.target) for c in rows0] == [
        ("A", "/d", 0, ""),
        ("A", "/d/f", 10, ""),
        ("A", "/d/g", 3, ""),
        ("A", "/h", 0, "/d/f"),
    ]
    assert wh0 == [] and replay.link_sources == {(0, 3): (0, 1)}
    rows1, wh1 = replay.layer(
        1,
        _index(1, IndexEntry("d", WHITEOUT), IndexEntry("h", "reg", size=4)),
    )
    # d goes with its 13 bytes; f's bytes stay (h holds them) until h is replaced.
    assert [(c.change, c.path, c.type, c.size) for c in rows1] == [
        ("D", "/d", "dir", 13),
        ("C", "/h", "reg", 4),
    ]
    assert wh1 == [IndexEntry("d", WHITEOUT)]
    assert [(w.path, w.layer, w.size, w.by, w.how) for w in replay.waste] == [
        ("d/g", 0, 3, 1, "deleted"),
        ("h", 0, 10, 1, "overwritten"),
    ]
    assert replay.layer_bytes == [13, 4]
    assert sorted(replay.tree.nodes) == ["", "h"]
    assert replay.tree.nodes["h"] == Node("reg", 0o644, 0, 0, 4, 1, src=(1, 1))
