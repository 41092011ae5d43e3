"""``efficiency``: dive's score and wasted files, its gates, and how waste is
counted (a hardlinked file's bytes go with its last name)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from builders import directory, file, hardlink, make_layer, whiteout
from helpers import cli
from layer_views import EFFICIENCY, Built, ok, show_rows, three_layer_image, write_test_image

from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.views.layers import Efficiency, WastedFile, efficiency


@pytest.fixture
def img(tmp_path: Path) -> Built:
    return three_layer_image(tmp_path)


def test_efficiency_report(img: Built) -> None:
    # dive's rules: a path seen in two layers wastes all its copies: app/config
    # 1500 + 1600, etc/motd 1000 + 0 (its whiteout hides a file: 0), opt/y
    # 500 + 50 (the opaque marker is not a node), etc/hosts 20 + 30; deleting
    # /tmp is one visit of /tmp (1500 bytes), not a waste.
    # total: layer 0 10520 + layer 1 4010 + layer 2 1640
    assert ok("efficiency", img.ref) == EFFICIENCY
    top2 = EFFICIENCY[: EFFICIENCY.index("2         550B")]
    assert ok("efficiency", img.ref, "--top", "2") == top2
    doc = json.loads(ok("efficiency", img.ref, "--format", "json", "-n", "1"))
    assert doc == {
        "Efficiency": 0.822863610639502,
        "Wasted": "4.7kB",
        "WastedBytes": 4700,
        "Total": "16.2kB",
        "TotalBytes": 16170,
        "Layers": 3,
        "UserWasted": 0.831858407079646,
        "UserBytes": 5650,
        "Files": [
            {
                "Path": "/app/config",
                "Count": 2,
                "Wasted": "3.1kB",
                "WastedBytes": 3100,
                "Layers": [1, 2],
            }
        ],
    }
    assert 4700 / 5650 == 0.831858407079646


@pytest.mark.parametrize(
    ("gate", "code"),
    [("0.82", 0), ("0.8228", 0), ("82%", 0), ("0", 0), ("0.83", 1), ("83%", 1), ("1", 1)],
)
def test_efficiency_gate(img: Built, gate: str, code: int) -> None:
    r = cli("efficiency", img.ref, "--lowest-efficiency", gate)
    assert r.code == code, r.err
    assert r.out == EFFICIENCY  # the report is printed either way
    verdict = "FAIL" if code else "PASS"
    shown = {"82%": "0.82", "83%": "0.83"}.get(gate, gate)
    assert r.err == (
        f"{verdict}: efficiency 0.8229 (4700 of 16170 bytes wasted), --lowest-efficiency {shown}\n"
    )


def test_efficiency_dive_style_gates(img: Built) -> None:
    """Every gate given is reported; any failure fails the run."""
    r = cli("efficiency", img.ref, "--highest-wasted-bytes", "4700", "--highest-user-wasted", "84%")
    assert r.code == 0, r.err
    assert r.err == (
        "PASS: wasted 4700 bytes, --highest-wasted-bytes 4700\n"
        "PASS: user wasted 0.8319 (4700 bytes wasted, 5650 added above the first layer), "
        "--highest-user-wasted 0.84\n"
    )
    r = cli(
        "efficiency",
        img.ref,
        "--lowest-efficiency",
        "0.5",
        "--highest-wasted-bytes",
        "4.6kB",
        "--highest-user-wasted",
        "0.84",
    )
    assert r.code == 1
    assert [line.split(":")[0] for line in r.err.splitlines()] == ["PASS", "FAIL", "PASS"]
    assert "--highest-wasted-bytes 4600" in r.err
    r = cli("efficiency", img.ref, "--highest-user-wasted", "0.83")
    assert r.code == 1 and r.err.startswith("FAIL: user wasted 0.8319")
    r = cli("efficiency", img.ref, "--highest-wasted-bytes", "4KiB")
    assert r.code == 1 and "--highest-wasted-bytes 4096" in r.err
    r = cli("efficiency", img.ref, "--highest-wasted-bytes", "5 parsecs")
    assert r.code == 2 and "'5 parsecs' is not a size" in r.err


@pytest.mark.parametrize("gate", ["1.5", "-0.1", "abc", "101%"])
def test_efficiency_gate_rejects_bad_values(img: Built, gate: str) -> None:
    r = cli("efficiency", img.ref, "--lowest-efficiency", gate)
    assert r.code == 2 and "fraction" in r.err


def test_efficiency_of_a_clean_image(tmp_path: Path) -> None:
    write_test_image(tmp_path / "lay", [make_layer([file("a", b"1" * 10)])])
    r = cli("efficiency", f"{tmp_path / 'lay'}:latest", "--lowest-efficiency", "1")
    assert r.code == 0 and r.out.startswith("Efficiency:   100.00%\nWasted:       0B (0 bytes)")
    write_test_image(tmp_path / "empty", [make_layer([directory("d")])])
    r = cli("efficiency", f"{tmp_path / 'empty'}:latest", "--lowest-efficiency", "1")
    assert r.code == 0 and "100.00%" in r.out


def test_hardlinks_and_whiteouts_count_as_dive_reads_them(tmp_path: Path) -> None:
    """dive sizes nodes by their tar headers: a hardlink is 0 bytes, the
    whiteout of a file 0, and every copy of a path seen twice is waste."""
    write_test_image(
        tmp_path / "lay",
        [
            make_layer([file("a", b"x" * 100), hardlink("b", "a"), file("c", b"y" * 10)]),
            make_layer([whiteout("a")]),
            make_layer([whiteout("b"), file("c", b"z")]),
        ],
    )
    ref = f"{tmp_path / 'lay'}:latest"
    doc = json.loads(ok("efficiency", ref, "--format", "json", "-n", "0"))
    assert doc["WastedBytes"] == 111 and doc["TotalBytes"] == 111
    assert [(f["Path"], f["WastedBytes"], f["Layers"]) for f in doc["Files"]] == [
        ("/a", 100, [0, 1]),
        ("/c", 11, [0, 2]),
        ("/b", 0, [0, 2]),
    ]
    # The layer view still shows what the whiteout removed.
    assert show_rows(tmp_path / "lay", 1) == [("D", "/a", "file", 100)]
    # A link of a file to itself: dive sees /a twice (10 + 0 bytes).
    write_test_image(
        tmp_path / "self", [make_layer([file("a", b"x" * 10)]), make_layer([hardlink("a", "a")])]
    )
    doc = json.loads(ok("efficiency", f"{tmp_path / 'self'}:latest", "--format", "json"))
    assert doc["WastedBytes"] == 10
    assert show_rows(tmp_path / "self", 1) == [("C", "/a", "hardlink", 0)]


def test_a_whiteout_of_a_directory_counts_what_it_hides(tmp_path: Path) -> None:
    write_test_image(
        tmp_path / "lay",
        [
            make_layer([directory("d"), file("d/x", b"x" * 30), file("d/y", b"y" * 20)]),
            make_layer([whiteout("d")]),
            make_layer([whiteout("gone"), file("after", b"a" * 5)]),  # missing: rest skipped
        ],
    )
    e = efficiency(Image.load(Layout.open(str(tmp_path / "lay")), "latest"))
    # /d is a leaf only in layer 1 (50 bytes hidden, seen once): no waste.
    assert (e.total_bytes, e.wasted_bytes, e.files) == (55, 0, [])
    # /after follows the failed whiteout in name order: dive never counts it.
    assert e.score == (30 + 20 + 50) / (30 + 20 + 50)


def test_efficiency_api(img: Built) -> None:
    eff = efficiency(Image.load(Layout.open(str(img.path)), "latest"))
    assert (eff.layers, eff.total_bytes, eff.wasted_bytes, eff.user_bytes) == (3, 16170, 4700, 5650)
    assert f"{eff.score:.4f}" == "0.8229" and f"{eff.user_wasted:.4f}" == "0.8319"
    assert eff.files[:2] == [
        WastedFile("/app/config", 2, 3100, (1, 2)),
        WastedFile("/etc/motd", 2, 1000, (0, 1)),
    ]
    assert [f.path for f in eff.files] == [line.split()[3] for line in EFFICIENCY.splitlines()[6:]]
    assert Efficiency(1, 0, 0, []).score == 1.0 and Efficiency(1, 0, 0, []).user_wasted == 0.0


DIVE = Path(__file__).resolve().parent.parent / "testdata/dive/test-docker-image.layers.json"


def test_efficiency_equals_dives_own_test_image(tmp_path: Path) -> None:
    """Issue 15 #11: dive's test image (rebuilt from its member headers, see
    testdata/README.md) gives exactly the numbers dive's tests expect."""
    doc = json.loads(DIVE.read_text())
    layers = []
    for rows in doc["layers"]:
        members = []
        for name, flag, size, link, mode in rows:
            if flag == "5":
                members.append(directory(name, mode=mode))
            elif flag == "1":
                members.append(hardlink(name, link, mode=mode))
            else:
                assert flag == "0", flag
                members.append(file(name, b"\0" * size, mode=mode))
        layers.append(make_layer(members))
    write_test_image(tmp_path / "lay", layers)
    e = efficiency(Image.load(Layout.open(str(tmp_path / "lay")), "latest"))
    want = doc["expected"]
    assert e.score == want["efficiency"]
    assert e.total_bytes == want["sizeBytes"]
    assert e.user_bytes == want["userSizeBytes"]
    assert e.wasted_bytes == want["wastedBytes"]
    assert e.user_wasted == want["wastedUserPercent"]
    out = json.loads(ok("efficiency", f"{tmp_path / 'lay'}:latest", "--format", "json"))
    assert float(out["Efficiency"]) == want["efficiency"]
    assert float(out["UserWasted"]) == want["wastedUserPercent"]
