"""``layer extract``: one layer's own files written into a new or empty
directory, whiteouts listed, lower hardlink targets copied, nothing left
behind on failure."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from builders import directory, file, hardlink, make_layer, symlink
from helpers import cli
from layer_views import Built, three_layer_image, write_test_image
from verify import assert_valid_layout

from oci_tools.errors import ClobberError
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.views.layers import WHITEOUT, ExtractResult, IndexEntry, LinkCopy, extract_layer


@pytest.fixture
def img(tmp_path: Path) -> Built:
    return three_layer_image(tmp_path)


# ------------------------------------------------------------- layer extract


def _tree(top: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in sorted(top.rglob("*")):
        st = os.lstat(p)
        rel = str(p.relative_to(top))
        if stat.S_ISLNK(st.st_mode):
            out[rel] = ("link", os.readlink(p))
        elif stat.S_ISDIR(st.st_mode):
            out[rel] = ("dir", oct(stat.S_IMODE(st.st_mode)))
        else:
            out[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), p.read_bytes()[:1], st.st_size)
    return out


def test_layer_extract_writes_only_that_layer(img: Built, tmp_path: Path) -> None:
    dest = tmp_path / "x1"
    r = cli("layer", "extract", img.ref, "1", str(dest))
    assert r.code == 0, r.err
    assert r.out == "whiteout /etc/motd\nopaque /opt\n"
    assert "extracted layer 1 (16 entries)" in r.err
    assert "2 whiteouts not applied" in r.err
    assert _tree(dest) == {
        "app": ("dir", "0o755"),
        "app/bin": ("file", "0o755", b"B", 900),
        "app/bin-link": ("file", "0o755", b"B", 900),
        "app/config": ("file", "0o644", b"c", 1500),
        "app/current": ("link", "config"),
        "etc": ("dir", "0o755"),
        "etc/localtime": ("link", "/usr/share/zoneinfo/UTC"),
        "opt": ("dir", "0o755"),
        "opt/new": ("file", "0o644", b"n", 60),
        "opt/y": ("file", "0o644", b"Y", 50),
        "tmp": ("dir", "0o1777"),
        "tmp/sub": ("dir", "0o755"),
        "tmp/sub/t2": ("file", "0o644", b"u", 800),
        "tmp/t1": ("file", "0o644", b"t", 700),
    }
    assert os.stat(dest / "app/bin").st_ino == os.stat(dest / "app/bin-link").st_ino
    if os.geteuid() == 0:
        assert os.stat(dest / "app/config").st_uid == 1000
    # Not empty any more: refused, nothing changed.
    before = _tree(dest)
    r = cli("layer", "extract", img.ref, "1", str(dest))
    assert r.code == 1 and "refusing to overwrite" in r.err
    assert _tree(dest) == before
    (tmp_path / "a-file").write_bytes(b"keep")
    r = cli("layer", "extract", img.ref, "1", str(tmp_path / "a-file"))
    assert r.code == 1 and r.err.startswith("oci-tools: error: refusing to overwrite")
    assert (tmp_path / "a-file").read_bytes() == b"keep"


def test_layer_extract_other_layers(img: Built, tmp_path: Path) -> None:
    r = cli("layer", "extract", img.ref, "0", str(tmp_path / "x0"))
    assert r.code == 0 and r.out == ""
    assert sorted(_tree(tmp_path / "x0")) == [
        "data",
        "data/big",
        "etc",
        "etc/hosts",
        "etc/motd",
        "opt",
        "opt/d",
        "opt/d/z",
        "opt/x",
        "opt/y",
    ]
    (tmp_path / "x2").mkdir()  # an existing empty directory is fine
    r = cli("layer", "extract", img.ref, img.layers[2].digest, str(tmp_path / "x2"))
    assert r.code == 0 and r.out == "whiteout /tmp\n"
    assert sorted(_tree(tmp_path / "x2")) == ["app", "app/config", "etc", "etc/hosts", "new.txt"]
    assert_valid_layout(str(img.path))


def test_layer_extract_rootless(img: Built, tmp_path: Path) -> None:
    r = cli("layer", "extract", img.ref, "1", str(tmp_path / "x"), "--rootless")
    assert r.code == 0, r.err
    assert os.stat(tmp_path / "x/app/config").st_uid == os.geteuid()


def _lower_links_image(path: Path) -> None:
    l0 = make_layer(
        [
            directory("usr"),
            directory("usr/bin"),
            file("usr/bin/tool", b"T" * 300, mode=0o750, uid=5, gid=6),
            file("usr/bin/other", b"O" * 40),
            symlink("ub", "/usr/./bin"),
        ]
    )
    l1 = make_layer(
        [
            directory("bin"),
            hardlink("bin/t2", "usr/bin/tool"),
            hardlink("bin/t3", "usr/bin/tool"),
            hardlink("bin/t4", "bin/t2"),  # a chain through this layer's own link
            hardlink("bin/t5", "ub/tool"),  # through a lower layer's symlink
            hardlink("bin/r", "usr/bin/other"),
            file("bin/r", b"own"),  # replaced later
            file("bin/plain", b"p"),
        ]
    )
    l2 = make_layer([hardlink("x", "bin/t2")])  # a chain down two layers
    write_test_image(path, [l0, l1, l2])


def test_extract_copies_hardlink_targets_from_lower_layers(tmp_path: Path) -> None:
    _lower_links_image(tmp_path / "lay")
    ref = f"{tmp_path / 'lay'}:latest"
    dest = tmp_path / "x1"
    r = cli("layer", "extract", ref, "1", str(dest))
    assert r.code == 0, r.err
    for name in ("t2", "t3", "t4", "t5"):
        assert f"copied /bin/{name}: a hardlink to /usr/bin/tool of layer 0" in r.err
    assert "/bin/r" not in r.err
    assert _tree(dest) == {
        "bin": ("dir", "0o755"),
        "bin/plain": ("file", "0o644", b"p", 1),
        "bin/r": ("file", "0o644", b"o", 3),
        "bin/t2": ("file", "0o750", b"T", 300),
        "bin/t3": ("file", "0o750", b"T", 300),
        "bin/t4": ("file", "0o750", b"T", 300),
        "bin/t5": ("file", "0o750", b"T", 300),
    }
    inodes = {os.stat(dest / "bin" / n).st_ino for n in ("t2", "t3", "t4", "t5")}
    assert len(inodes) == 1 and os.stat(dest / "bin/t2").st_nlink == 4
    if os.geteuid() == 0:
        assert (os.stat(dest / "bin/t2").st_uid, os.stat(dest / "bin/t2").st_gid) == (5, 6)
    # Two layers down: layer 2's link -> layer 1's link -> layer 0's file.
    r = cli("layer", "extract", ref, "2", str(tmp_path / "x2"))
    assert r.code == 0, r.err
    assert "copied /x: a hardlink to /usr/bin/tool of layer 0" in r.err
    assert _tree(tmp_path / "x2") == {"x": ("file", "0o750", b"T", 300)}
    assert_valid_layout(str(tmp_path / "lay"))


@pytest.mark.parametrize("existing", [False, True])
def test_failed_extract_leaves_nothing_behind(tmp_path: Path, existing: bool) -> None:
    write_test_image(
        tmp_path / "lay",
        [
            make_layer([file("a", b"1")]),
            make_layer(
                [
                    directory("d", mode=0o500),
                    file("d/f", b"2"),
                    file("g", b"3"),
                    hardlink("h", "nothere"),
                ]
            ),
        ],
    )
    dest = tmp_path / "dest"
    if existing:
        dest.mkdir()
    r = cli("layer", "extract", f"{tmp_path / 'lay'}:latest", "1", str(dest))
    assert r.code == 1
    assert r.err.count("\n") == 1 and "'nothere' missing" in r.err, r.err
    assert (os.listdir(dest) == []) if existing else not dest.exists()


def test_extract_layer_api(tmp_path: Path) -> None:
    _lower_links_image(tmp_path / "lay")
    image = Image.load(Layout.open(str(tmp_path / "lay")), "latest")
    res = extract_layer(image, 1, str(tmp_path / "x1"), rootless=True)
    assert (res.index, res.entries, res.whiteouts) == (1, 8, [])
    assert res.copies == [LinkCopy(f"bin/{n}", "usr/bin/tool", 0) for n in ("t2", "t3", "t4", "t5")]
    assert (tmp_path / "x1/bin/t5").read_bytes() == b"T" * 300
    with pytest.raises(ClobberError):
        extract_layer(image, 1, str(tmp_path / "x1"))
    img = three_layer_image(tmp_path / "three")
    res = extract_layer(
        Image.load(Layout.open(str(img.path)), "latest"), 2, str(tmp_path / "x2"), rootless=True
    )
    assert res == ExtractResult(2, 6, [IndexEntry("tmp", WHITEOUT)], [], [])
