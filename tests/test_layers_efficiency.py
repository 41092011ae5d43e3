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
    # wasted: motd 1000 + opt/x 400 + opt/y 500 + opt/d/z 600 (layer 0, removed by 1),
    # app/config 1500 + tmp 700 + 800 (layer 1, by 2), etc/hosts 20 (layer 0, by 2)
    # total: layer 0 10520 + layer 1 4010 + layer 2 1640
    assert ok("efficiency", img.ref) == EFFICIENCY
    top2 = EFFICIENCY[: EFFICIENCY.index("1         800B")]
    assert ok("efficiency", img.ref, "--top", "2") == top2
    doc = json.loads(ok("efficiency", img.ref, "--format", "json", "-n", "1"))
    assert doc == {
        "Efficiency": "0.6586",
        "Wasted": "5.52kB",
        "WastedBytes": "5520",
        "Total": "16.2kB",
        "TotalBytes": "16170",
        "Layers": "3",
        "UserWasted": "0.9770",
        "UserBytes": "5650",
        "Files": [
            {
                "Path": "/app/config",
                "Count": "1",
                "Wasted": "1.5kB",
                "WastedBytes": "1500",
                "Layers": "1",
            }
        ],
    }
    assert f"{1 - 5520 / 16170:.4f}" == "0.6586"


@pytest.mark.parametrize(
    ("gate", "code"),
    [("0.65", 0), ("0.6586", 0), ("65%", 0), ("0", 0), ("0.66", 1), ("66%", 1), ("1", 1)],
)
def test_efficiency_gate(img: Built, gate: str, code: int) -> None:
    r = cli("efficiency", img.ref, "--lowest-efficiency", gate)
    assert r.code == code, r.err
    assert r.out == EFFICIENCY  # the report is printed either way
    verdict = "FAIL" if code else "PASS"
    shown = {"65%": "0.65", "66%": "0.66"}.get(gate, gate)
    assert r.err == (
        f"{verdict}: efficiency 0.6586 (5520 of 16170 bytes wasted), --lowest-efficiency {shown}\n"
    )


def test_efficiency_dive_style_gates(img: Built) -> None:
    """Every gate given is reported; any failure fails the run."""
    r = cli("efficiency", img.ref, "--highest-wasted-bytes", "5520", "--highest-user-wasted", "98%")
    assert r.code == 0, r.err
    assert r.err == (
        "PASS: wasted 5520 bytes, --highest-wasted-bytes 5520\n"
        "PASS: user wasted 0.9770 (5520 bytes wasted, 5650 added above the first layer), "
        "--highest-user-wasted 0.98\n"
    )
    r = cli(
        "efficiency",
        img.ref,
        "--lowest-efficiency",
        "0.5",
        "--highest-wasted-bytes",
        "5.5kB",
        "--highest-user-wasted",
        "0.98",
    )
    assert r.code == 1
    assert [line.split(":")[0] for line in r.err.splitlines()] == ["PASS", "FAIL", "PASS"]
    assert "--highest-wasted-bytes 5500" in r.err
    r = cli("efficiency", img.ref, "--highest-user-wasted", "0.97")
    assert r.code == 1 and r.err.startswith("FAIL: user wasted 0.9770")
    r = cli("efficiency", img.ref, "--highest-wasted-bytes", "5KiB")
    assert r.code == 1 and "--highest-wasted-bytes 5120" in r.err
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


def test_a_hardlinked_file_is_wasted_only_when_its_last_name_goes(tmp_path: Path) -> None:
    write_test_image(
        tmp_path / "lay",
        [
            make_layer([file("a", b"x" * 100), hardlink("b", "a"), file("c", b"y" * 10)]),
            make_layer([whiteout("a")]),  # b still holds the 100 bytes
            make_layer([whiteout("b"), file("c", b"z")]),  # now they are gone; c overwritten
        ],
    )
    ref = f"{tmp_path / 'lay'}:latest"
    doc = json.loads(ok("efficiency", ref, "--format", "json", "-n", "0"))
    assert doc["WastedBytes"] == "110" and doc["TotalBytes"] == "111"
    assert [(f["Path"], f["WastedBytes"], f["Layers"]) for f in doc["Files"]] == [
        ("/b", "100", "0"),
        ("/c", "10", "0"),
    ]
    # Layer 1 alone wastes nothing: the D row still shows what it removed.
    assert show_rows(tmp_path / "lay", 1) == [("D", "/a", "file", 100)]
    write_test_image(
        tmp_path / "two",
        [make_layer([file("a", b"x" * 100), hardlink("b", "a")]), make_layer([whiteout("a")])],
    )
    doc = json.loads(ok("efficiency", f"{tmp_path / 'two'}:latest", "--format", "json"))
    assert (doc["WastedBytes"], doc["Files"]) == ("0", [])
    # A link of a file to itself (apply leaves the file as it is) wastes nothing.
    write_test_image(
        tmp_path / "self", [make_layer([file("a", b"x" * 10)]), make_layer([hardlink("a", "a")])]
    )
    doc = json.loads(ok("efficiency", f"{tmp_path / 'self'}:latest", "--format", "json"))
    assert doc["WastedBytes"] == "0"
    assert show_rows(tmp_path / "self", 1) == [("C", "/a", "hardlink", 0)]


def test_efficiency_api(img: Built) -> None:
    eff = efficiency(Image.load(Layout.open(str(img.path)), "latest"))
    assert (eff.layers, eff.total_bytes, eff.wasted_bytes, eff.user_bytes) == (3, 16170, 5520, 5650)
    assert f"{eff.score:.4f}" == "0.6586" and f"{eff.user_wasted:.4f}" == "0.9770"
    assert eff.files[:2] == [
        WastedFile("/app/config", 1, 1500, (1,)),
        WastedFile("/etc/motd", 1, 1000, (0,)),
    ]
    assert [f.path for f in eff.files] == [line.split()[3] for line in EFFICIENCY.splitlines()[6:]]
    assert Efficiency(1, 0, 0, []).score == 1.0 and Efficiency(1, 0, 0, []).user_wasted == 0.0
