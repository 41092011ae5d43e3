"""layers, layer show, layer extract, efficiency: exact rows on a built image,
the per-layer cache, replay edge cases, and hostile layers."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from builders import (
    Layer,
    Member,
    base256,
    build_tar,
    chardev,
    compress,
    corrupt_checksum,
    directory,
    file,
    hardlink,
    make_layer,
    opaque,
    sha256_digest,
    symlink,
    whiteout,
)
from helpers import canary_state, cli
from verify import assert_valid_layout

import oci_tools.layer.stream
import oci_tools.views.layers
from oci_tools.digest import Digest
from oci_tools.fsutil import remove_tree
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.mutate import empty_config, write_image
from oci_tools.render import human_size
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Platform
from oci_tools.store import put_bytes
from oci_tools.views.layers import LayerCache

LONG_STEP = "/bin/sh -c apt-get update && apt-get install -y some-long-package-name"


def write_test_image(
    path: Path, layers: Sequence[Layer], created_by: Sequence[str] | None = None
) -> None:
    """A layout with image ``latest`` made of ``layers`` (one history row each)."""
    lay = Layout.open(str(path)) if path.exists() else Layout.init(str(path))
    descs = []
    for lyr in layers:
        put_bytes(lay.store, lyr.blob)
        media_type = mt.OCI_LAYER_FOR_CODEC[lyr.codec]
        descs.append(Descriptor(media_type, Digest.parse(lyr.digest), len(lyr.blob)))
    cfg = empty_config(Platform("linux", "amd64"), "2024-01-01T00:00:00Z")
    cfg["rootfs"]["diff_ids"] = [lyr.diff_id for lyr in layers]
    steps = created_by or [f"step {i}" for i in range(len(layers))]
    cfg["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": s} for s in steps]
    write_image(lay, cfg, descs, ref="latest")


def three_layers() -> list[Layer]:
    """Layer 0: files and directories.  Layer 1: a file later overwritten, a
    directory later deleted, an opaque replacement of /opt, a hardlink, two
    symlinks, a plain whiteout.  Layer 2: overwrites, deletes, adds."""
    l0 = make_layer(
        [
            directory("etc"),
            file("etc/hosts", b"h" * 20),
            file("etc/motd", b"m" * 1000),
            directory("data"),
            file("data/big", b"b" * 8000),
            directory("opt"),
            file("opt/x", b"x" * 400),
            file("opt/y", b"y" * 500),
            directory("opt/d"),
            file("opt/d/z", b"z" * 600),
        ],
        "gzip",
    )
    l1 = make_layer(
        [
            directory("etc"),
            symlink("etc/localtime", "/usr/share/zoneinfo/UTC"),
            whiteout("etc/motd"),
            directory("app"),
            file("app/config", b"c" * 1500, uid=1000, gid=1000),
            file("app/bin", b"B" * 900, mode=0o755),
            hardlink("app/bin-link", "app/bin", mode=0o755),
            symlink("app/current", "config"),
            directory("tmp", mode=0o1777),
            file("tmp/t1", b"t" * 700),
            directory("tmp/sub"),
            file("tmp/sub/t2", b"u" * 800),
            directory("opt"),
            opaque("opt"),
            file("opt/y", b"Y" * 50),
            file("opt/new", b"n" * 60),
        ],
        "zstd",
    )
    l2 = make_layer(
        [
            directory("app"),
            file("app/config", b"C" * 1600),
            whiteout("tmp"),
            directory("etc"),
            file("etc/hosts", b"H" * 30),
            file("new.txt", b"N" * 10),
        ],
        "none",
    )
    return [l0, l1, l2]


@dataclass
class Built:
    path: Path
    layers: list[Layer]

    @property
    def ref(self) -> str:
        return f"{self.path}:latest"


@pytest.fixture
def img(tmp_path: Path) -> Built:
    layers = three_layers()
    path = tmp_path / "lay"
    write_test_image(path, layers, ["ADD rootfs.tar /", LONG_STEP, "COPY config /app/config"])
    # An empty_layer row between layers 1 and 2: CREATED BY must skip it.
    lay = Layout.open(str(path))
    image = Image.load(lay, "latest")
    doc = image.config.as_dict()
    doc["history"].insert(2, {"created_by": "ENV X=1", "empty_layer": True})
    write_image(lay, doc, list(image.layers), ref="latest")
    return Built(path, layers)


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


# ------------------------------------------------------------------- layers


def test_layers_table(img: Built) -> None:
    gz, zs, none = img.layers
    sizes = [human_size(len(lyr.blob)) for lyr in img.layers]
    ids = [lyr.digest[7:19] for lyr in img.layers]
    by1 = "/bin/sh -c apt-get update && apt-get install…"
    assert len(by1) == 45
    expected = (
        "INDEX     LAYER          CREATED BY                                      SIZE      "
        "UNCOMPRESSED   ADDED     CHANGED   REMOVED   MEDIA TYPE\n"
        f"0         {ids[0]}   {'ADD rootfs.tar /':<48}{sizes[0]:<10}17.9kB         "
        "10        0         0         application/vnd.oci.image.layer.v1.tar+gzip\n"
        f"1         {ids[1]}   {by1:<48}{sizes[1]:<10}14.8kB         "
        "11        3         3         application/vnd.oci.image.layer.v1.tar+zstd\n"
        f"2         {ids[2]}   {'COPY config /app/config':<48}7.17kB    7.17kB         "
        "1         4         1         application/vnd.oci.image.layer.v1.tar\n"
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
        "Index": "1",
        "Digest": l1.digest,
        "DiffID": l1.diff_id,
        "CreatedBy": LONG_STEP,
        "Size": human_size(len(l1.blob)),
        "SizeBytes": str(len(l1.blob)),
        "UncompressedSize": "14.8kB",
        "UncompressedSizeBytes": "14848",
        "Added": "11",
        "Changed": "3",
        "Removed": "3",
        "MediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
    }
    assert [(r["Index"], r["Added"], r["Changed"], r["Removed"]) for r in rows] == [
        ("0", "10", "0", "0"),
        ("1", "11", "3", "3"),
        ("2", "1", "4", "1"),
    ]


# ---------------------------------------------------------------- layer show


def exact(text: str) -> str:
    """Expected output; ``|`` marks the end of a line that ends in padding."""
    return text.replace("|\n", "\n")


SHOW = {
    0: """\
CHANGE    TYPE      MODE         OWNER     SIZE      PATH         TARGET
A         dir       drwxr-xr-x   0:0       0B        /data        |
A         file      -rw-r--r--   0:0       8kB       /data/big    |
A         dir       drwxr-xr-x   0:0       0B        /etc         |
A         file      -rw-r--r--   0:0       20B       /etc/hosts   |
A         file      -rw-r--r--   0:0       1kB       /etc/motd    |
A         dir       drwxr-xr-x   0:0       0B        /opt         |
A         dir       drwxr-xr-x   0:0       0B        /opt/d       |
A         file      -rw-r--r--   0:0       600B      /opt/d/z     |
A         file      -rw-r--r--   0:0       400B      /opt/x       |
A         file      -rw-r--r--   0:0       500B      /opt/y       |
""",
    1: """\
CHANGE    TYPE       MODE         OWNER       SIZE      PATH             TARGET
A         dir        drwxr-xr-x   0:0         0B        /app             |
A         file       -rwxr-xr-x   0:0         900B      /app/bin         |
A         hardlink   -rwxr-xr-x   0:0         0B        /app/bin-link    /app/bin
A         file       -rw-r--r--   1000:1000   1.5kB     /app/config      |
A         symlink    lrwxrwxrwx   0:0         0B        /app/current     config
C         dir        drwxr-xr-x   0:0         0B        /etc             |
A         symlink    lrwxrwxrwx   0:0         0B        /etc/localtime   /usr/share/zoneinfo/UTC
D         file       -rw-r--r--   0:0         1kB       /etc/motd        |
C         dir        drwxr-xr-x   0:0         0B        /opt             |
D         dir        drwxr-xr-x   0:0         600B      /opt/d           |
A         file       -rw-r--r--   0:0         60B       /opt/new         |
D         file       -rw-r--r--   0:0         400B      /opt/x           |
C         file       -rw-r--r--   0:0         50B       /opt/y           |
A         dir        drwxrwxrwt   0:0         0B        /tmp             |
A         dir        drwxr-xr-x   0:0         0B        /tmp/sub         |
A         file       -rw-r--r--   0:0         800B      /tmp/sub/t2      |
A         file       -rw-r--r--   0:0         700B      /tmp/t1          |
""",
    2: """\
CHANGE    TYPE      MODE         OWNER     SIZE      PATH          TARGET
C         dir       drwxr-xr-x   0:0       0B        /app          |
C         file      -rw-r--r--   0:0       1.6kB     /app/config   |
C         dir       drwxr-xr-x   0:0       0B        /etc          |
C         file      -rw-r--r--   0:0       30B       /etc/hosts    |
A         file      -rw-r--r--   0:0       10B       /new.txt      |
D         dir       drwxrwxrwt   0:0       1.5kB     /tmp          |
""",
}
SHOW = {n: exact(text) for n, text in SHOW.items()}

TREE = {
    0: """\
CHANGE    MODE         OWNER     SIZE      PATH
                                 10.5kB    /
A         drwxr-xr-x   0:0       8kB       ├── data
A         -rw-r--r--   0:0       8kB       │   └── big
A         drwxr-xr-x   0:0       1.02kB    ├── etc
A         -rw-r--r--   0:0       20B       │   ├── hosts
A         -rw-r--r--   0:0       1kB       │   └── motd
A         drwxr-xr-x   0:0       1.5kB     └── opt
A         drwxr-xr-x   0:0       600B          ├── d
A         -rw-r--r--   0:0       600B          │   └── z
A         -rw-r--r--   0:0       400B          ├── x
A         -rw-r--r--   0:0       500B          └── y
""",
    1: """\
CHANGE    MODE         OWNER       SIZE      PATH
                                   4.01kB    /
A         drwxr-xr-x   0:0         2.4kB     ├── app
A         -rwxr-xr-x   0:0         900B      │   ├── bin
A         -rwxr-xr-x   0:0         0B        │   ├── bin-link => /app/bin
A         -rw-r--r--   1000:1000   1.5kB     │   ├── config
A         lrwxrwxrwx   0:0         0B        │   └── current -> config
C         drwxr-xr-x   0:0         0B        ├── etc
A         lrwxrwxrwx   0:0         0B        │   ├── localtime -> /usr/share/zoneinfo/UTC
D         -rw-r--r--   0:0         1kB       │   └── motd
C         drwxr-xr-x   0:0         110B      ├── opt
D         drwxr-xr-x   0:0         600B      │   ├── d
A         -rw-r--r--   0:0         60B       │   ├── new
D         -rw-r--r--   0:0         400B      │   ├── x
C         -rw-r--r--   0:0         50B       │   └── y
A         drwxrwxrwt   0:0         1.5kB     └── tmp
A         drwxr-xr-x   0:0         800B          ├── sub
A         -rw-r--r--   0:0         800B          │   └── t2
A         -rw-r--r--   0:0         700B          └── t1
""",
    2: """\
CHANGE    MODE         OWNER     SIZE      PATH
                                 1.64kB    /
C         drwxr-xr-x   0:0       1.6kB     ├── app
C         -rw-r--r--   0:0       1.6kB     │   └── config
C         drwxr-xr-x   0:0       30B       ├── etc
C         -rw-r--r--   0:0       30B       │   └── hosts
A         -rw-r--r--   0:0       10B       ├── new.txt
D         drwxrwxrwt   0:0       1.5kB     └── tmp
""",
}


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
        "Uid": "0",
        "Gid": "0",
        "Size": "0B",
        "SizeBytes": "0",
        "Path": "/app/bin-link",
        "Target": "/app/bin",
    }
    assert rows[3] == {
        "Change": "A",
        "Type": "file",
        "Mode": "0644",
        "Owner": "1000:1000",
        "Uid": "1000",
        "Gid": "1000",
        "Size": "1.5kB",
        "SizeBytes": "1500",
        "Path": "/app/config",
        "Target": "",
    }
    assert rows[9] == {
        "Change": "D",
        "Type": "dir",
        "Mode": "0755",
        "Owner": "0:0",
        "Uid": "0",
        "Gid": "0",
        "Size": "600B",
        "SizeBytes": "600",
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
        "1640",
        [
            (
                "C",
                "app",
                "/app",
                "dir",
                "1600",
                [("C", "config", "/app/config", "file", "1600", [])],
            ),
            ("C", "etc", "/etc", "dir", "30", [("C", "hosts", "/etc/hosts", "file", "30", [])]),
            ("A", "new.txt", "/new.txt", "file", "10", []),
            ("D", "tmp", "/tmp", "dir", "1500", []),
        ],
    )
    assert tree["Size"] == "1.64kB" and tree["Mode"] == ""
    assert tree["Children"][3]["Mode"] == "1777"


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


# ---------------------------------------------------------------- efficiency

EFFICIENCY = """\
Efficiency:   65.86%
Wasted:       5.52kB (5520 bytes)
Total:        16.2kB (16170 bytes of files in 3 layers)
User wasted:  97.70% (of 5.65kB added above the first layer)

COUNT     WASTED    LAYERS    PATH
1         1.5kB     1         /app/config
1         1kB       0         /etc/motd
1         800B      1         /tmp/sub/t2
1         700B      1         /tmp/t1
1         600B      0         /opt/d/z
1         500B      0         /opt/y
1         400B      0         /opt/x
1         20B       0         /etc/hosts
"""


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


# -------------------------------------------------------------------- caching


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


# -------------------------------------------------------------- replay rules


def show_rows(path: Path, n: int) -> list[tuple[str, str, str, int]]:
    out = ok("layer", "show", f"{path}:latest", str(n), "--format", "json")
    return [
        (r["Change"], r["Path"], r["Type"], int(r["SizeBytes"]))
        for r in map(json.loads, out.splitlines())
    ]


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
    assert {f["Path"]: f["WastedBytes"] for f in doc["Files"]} == {
        "/a": "3",
        "/d/x": "5",
        "/d/y": "7",
        "/e/x": "11",
        "/dup": "100",
        "/k": "1",
    }
    # lower: 3 + 5 + 7 + 11 + 1 + 1; upper: a, d/z, e, dup twice (whiteouts count 0)
    assert doc["TotalBytes"] == str(28 + 1 + 1 + 2 + 100 + 10)
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
    ] == [("4", "0", "0"), ("2", "1", "2"), ("1", "0", "1")]


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
    assert {f["Path"]: f["WastedBytes"] for f in doc["Files"]} == {
        "/usr/lib/a": "10",
        "/usr/lib/b": "7",
    }
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


# ------------------------------------------------------------------- hostile


@dataclass
class Work:
    dir: Path
    canary: Path
    canary_file: Path
    layout: Path

    @property
    def dest(self) -> Path:
        return self.dir / "dest"

    def image(self, *layers: Sequence[Member | bytes]) -> str:
        write_test_image(self.layout, [make_layer(m) for m in layers])
        return f"{self.layout}:latest"


@pytest.fixture
def work(tmp_path: Path) -> Iterator[Work]:
    """dest is extracted into tmp/work/dest, next to a canary that must not change."""
    w = tmp_path / "work"
    w.mkdir()
    canary = w / "canary"
    canary.mkdir()
    (canary / "secret").write_bytes(b"do not touch\n")
    (canary / "sub").mkdir()
    canary_file = w / "canary.txt"
    canary_file.write_bytes(b"host file\n")
    old = 1_000_000_000_000_000_000
    for p in [canary / "secret", canary / "sub", canary, canary_file]:
        os.utime(p, ns=(old, old))
    before = canary_state(canary), canary_state(canary_file)
    yield Work(w, canary, canary_file, tmp_path / "lay")
    assert (canary_state(canary), canary_state(canary_file)) == before, "the canary changed"
    assert set(os.listdir(w)) <= {"canary", "canary.txt", "dest"}
    assert sorted(os.listdir(tmp_path)) == ["lay", "work"]


def _show_writes_nothing(work: Work, *argv: str) -> Any:
    """Run ``layer show`` and check that it wrote nothing but its cache."""
    before = {k: v for k, v in canary_state(work.dir.parent).items() if ".oci-tools" not in k}
    r = cli("layer", "show", *argv)
    after = {k: v for k, v in canary_state(work.dir.parent).items() if ".oci-tools" not in k}
    assert after == before
    return r


def test_hostile_dotdot_traversal(work: Work) -> None:
    ref = work.image([file("ok", b"1"), file("../canary/secret", b"pwned")])
    r = cli("layer", "extract", ref, "0", str(work.dest))
    assert r.code == 1 and "escapes the root" in r.err
    r = _show_writes_nothing(work, ref, "0")
    assert r.code == 1 and "escapes the root" in r.err and r.out == ""
    assert not (work.layout / ".oci-tools" / "cache" / "layers").exists()


def test_hostile_hardlink_escape(work: Work) -> None:
    ref = work.image([hardlink("h", "../canary.txt")])
    r = cli("layer", "extract", ref, "0", str(work.dest))
    assert r.code == 1 and "escapes the root" in r.err
    r = _show_writes_nothing(work, ref, "0")
    assert r.code == 1 and "escapes the root" in r.err


def test_hostile_hardlink_to_host_absolute_path(work: Work) -> None:
    ref = work.image([hardlink("h", str(work.canary_file))])
    r = cli("layer", "extract", ref, "0", str(work.dest))
    assert r.code == 1 and "missing" in r.err
    assert not work.dest.exists()  # made by the failed extraction, so removed again
    r = _show_writes_nothing(work, ref, "0")
    assert r.code == 0
    assert r.out.splitlines()[1].split() == [
        "A",
        "hardlink",
        "-rw-r--r--",
        "0:0",
        "0B",
        "/h",
        str(work.canary_file),
    ]


def test_hostile_absolute_symlink_then_write_through_it(work: Work) -> None:
    ref = work.image(
        [
            symlink("esc", str(work.canary)),
            file("esc/secret", b"pwned"),
            directory("esc/sub", mode=0o777),
            symlink("up", "../../.."),
            file("up/canary.txt", b"x"),
        ]
    )
    r = cli("layer", "extract", ref, "0", str(work.dest))
    assert r.code == 0, r.err
    inside = work.dest / str(work.canary).lstrip("/")
    assert (inside / "secret").read_bytes() == b"pwned"  # confined to dest
    assert (work.dest / "canary.txt").read_bytes() == b"x"
    r = _show_writes_nothing(work, ref, "0")
    assert r.code == 0
    # Names through a symlink are shown where they land, inside the rootfs.
    assert sorted(line.split() for line in r.out.splitlines()[1:]) == sorted(
        [
            ["A", "symlink", "lrwxrwxrwx", "0:0", "0B", "/esc", str(work.canary)],
            ["A", "file", "-rw-r--r--", "0:0", "5B", f"{work.canary}/secret"],
            ["A", "dir", "drwxrwxrwx", "0:0", "0B", f"{work.canary}/sub"],
            ["A", "symlink", "lrwxrwxrwx", "0:0", "0B", "/up", "../../.."],
            ["A", "file", "-rw-r--r--", "0:0", "1B", "/canary.txt"],
        ]
    )


def test_hostile_symlink_in_lower_layer_then_write(work: Work) -> None:
    ref = work.image(
        [symlink("esc", str(work.canary))],
        [file("esc/secret", b"pwned"), whiteout("esc/sub"), opaque("esc")],
    )
    for n in ("0", "1"):
        dest = work.dest / n
        r = cli("layer", "extract", ref, n, str(dest))
        assert r.code == 0, r.err
    assert os.readlink(work.dest / "0" / "esc") == str(work.canary)
    assert (work.dest / "1" / "esc" / "secret").read_bytes() == b"pwned"
    assert r.out == "whiteout /esc/sub\nopaque /esc\n"
    r = _show_writes_nothing(work, ref, "1")
    assert r.code == 0
    assert [line.split()[:6] for line in r.out.splitlines()[1:]] == [
        ["A", "file", "-rw-r--r--", "0:0", "5B", f"{work.canary}/secret"]
    ]


def test_hostile_names_are_escaped(work: Work) -> None:
    name = "evil\x1b[2J\nname\t\udcff"
    ref = work.image([file(name, b"1"), symlink("s", "\x1b]0;title\x07")])
    r = _show_writes_nothing(work, ref, "0")
    assert r.code == 0
    assert "\x1b" not in r.out and "\x07" not in r.out
    assert "/evil\\x1b[2J\\nname\\t\\xff" in r.out and "\\x1b]0;title\\x07" in r.out
    assert r.out.count("\n") == 3
    tree = _show_writes_nothing(work, ref, "0", "--tree")
    assert "\x1b" not in tree.out and tree.out.count("\n") == 4
    js = _show_writes_nothing(work, ref, "0", "--format", "json")
    rows = [json.loads(line) for line in js.out.splitlines()]
    assert "\x1b" not in js.out and "\\u001b" in js.out
    assert rows[0]["Path"] == "/evil\x1b[2J\nname\t\\xff"
    r = cli("layer", "extract", ref, "0", str(work.dest))
    assert r.code == 0, r.err
    assert sorted(os.listdir(os.fsencode(work.dest))) == sorted([os.fsencode(name), b"s"])


def test_hostile_copied_hardlink_lands_inside_dest(work: Work) -> None:
    """The copy of a lower layer's file goes through apply's confinement:
    written through a symlink to the host path, it lands inside dest."""
    ref = work.image(
        [file("t", b"pwned")],
        [
            symlink("esc", str(work.canary)),
            hardlink("esc/secret", "t"),
            symlink("up", "../.."),
            hardlink("up/canary.txt", "t"),
        ],
    )
    r = cli("layer", "extract", ref, "1", str(work.dest))
    assert r.code == 0, r.err
    assert (work.dest / str(work.canary).lstrip("/") / "secret").read_bytes() == b"pwned"
    assert (work.dest / "canary.txt").read_bytes() == b"pwned"


def _raw_layer(tar: bytes, codec: str = "gzip") -> Layer:
    blob = compress(tar, codec)
    return Layer(tar, blob, codec, sha256_digest(blob), sha256_digest(tar))


#: The unpack tests' hostile layers (tests/test_hostile.py), as images: each
#: case gives the layers, given the work dir's canary paths.
HOSTILE: dict[str, Any] = {
    "dotdot": lambda w: [[file("../canary/secret", b"pwned")]],
    "deep-dotdot": lambda w: [[directory("a"), file("a/b/../../../canary.txt", b"pwned")]],
    "gnu-long-dotdot": lambda w: [
        [file("../" * 40 + "canary.txt", b"x", long_names="gnu", fmt="gnu")]
    ],
    "pax-path-dotdot": lambda w: [[file("ok", b"x", pax={"path": "../canary.txt"})]],
    "symlink-rel-write": lambda w: [[symlink("esc", "../canary"), file("esc/secret", b"pwned")]],
    "symlink-chain": lambda w: [
        [
            symlink("a", "b/../../../../.."),
            symlink("b", "/../../.."),
            file("a/canary.txt", b"pwned"),
        ]
    ],
    "symlink-two-layers": lambda w: [
        [symlink("esc", "../../canary")],
        [file("esc/secret", b"pwned"), directory("esc/sub", mode=0o777)],
    ],
    "file-over-host-symlink": lambda w: [
        [symlink("f", str(w.canary_file)), symlink("g", "../canary.txt")],
        [file("f", b"replaced", mode=0o777), file("g", b"replaced")],
    ],
    "dir-over-host-symlink": lambda w: [
        [symlink("d", str(w.canary))],
        [directory("d", mode=0o777, mtime=5, pax={"SCHILY.xattr.user.pwn": b"1"})],
    ],
    "symlink-loop": lambda w: [[symlink("a", "b"), symlink("b", "a"), file("a/x", b"x")]],
    "hardlink-via-symlink": lambda w: [[symlink("up", "../../.."), hardlink("h", "up/canary.txt")]],
    "hardlink-host-dir": lambda w: [
        [symlink("hostdir", str(w.dir)), hardlink("h", "hostdir/canary.txt")]
    ],
    "hardlink-to-host-symlink": lambda w: [
        [
            symlink("s", str(w.canary_file)),
            hardlink("h", "s", mode=0o777),
            file("s2", b"x"),
            hardlink("s2", "s"),
        ]
    ],
    "hardlink-lower-through-symlink": lambda w: [
        [file("t", b"1"), symlink("up", "../..")],
        [hardlink("h", "up/t"), hardlink("up/x", "t")],
    ],
    "hardlink-to-dir": lambda w: [[directory("d"), hardlink("h", "d")]],
    "root-symlink": lambda w: [
        [Member(".", b"2", linkname=str(w.canary)), file("secret", b"pwned")]
    ],
    "root-file": lambda w: [[file(".", b"x")]],
    "whiteout-via-symlinks": lambda w: [
        [
            symlink("rel", "../canary"),
            symlink("abs", str(w.canary)),
            symlink("host", str(w.dir)),
            directory("canary"),
            file("canary/secret"),
        ],
        [
            whiteout("rel/secret"),
            whiteout("abs/secret"),
            whiteout("abs/sub"),
            whiteout("host/canary"),
            whiteout("host/canary.txt"),
            opaque("abs"),
            opaque("host"),
            opaque("host/canary"),
        ],
    ],
    "opaque-clamped-root": lambda w: [
        [file("lower", b"1"), symlink("up", "../../..")],
        [opaque("up"), file("mine", b"2")],
    ],
    "whiteout-symlink-dance": lambda w: [
        [directory("d"), file("d/x", b"1")],
        [whiteout("d"), symlink("d", str(w.canary))],
        [whiteout("d/secret"), file("d/new", b"n")],
    ],
    "corrupt-header": lambda w: [
        _raw_layer(
            corrupt_checksum(build_tar([file("a", b"1"), file("b", b"2"), file("c", b"3")]), 1)
        )
    ],
    "truncated": lambda w: [_raw_layer(build_tar([file("a", b"1" * 5000)])[:3000], "zstd")],
    "unknown-type": lambda w: [_raw_layer(build_tar([Member("x", b"7", b"data")]))],
    "sparse": lambda w: [[file("s", pax={"GNU.sparse.realsize": "1" + "0" * 12})]],
    "bad-uid": lambda w: [[file("u", raw={"uid": base256(-1, 8)})]],
    "pax-size-bomb": lambda w: [
        _raw_layer(build_tar([file("f", b"tiny", pax={"size": str(1 << 60)}, pad_data=False)]))
    ],
    "invalid-whiteout": lambda w: [[file("a/.wh.b/c", b"x")]],
    "nul-name": lambda w: [[file("ok", pax={"path": b"a\0../../canary.txt"})]],
    "setuid-via-symlink": lambda w: [
        [
            symlink("bin", str(w.canary)),
            file("bin/secret", b"#!/bin/sh\n", mode=0o4755),
            symlink("s", str(w.canary / "secret")),
            hardlink("h", "s", mode=0o4777),
        ]
    ],
    "device": lambda w: [[chardev("dev/mem", 1, 1)]],
}


#: Cases whose (only) layer the strict reader refuses: show and extract fail.
UNREADABLE = {
    "bad-uid",
    "corrupt-header",
    "deep-dotdot",
    "dotdot",
    "gnu-long-dotdot",
    "invalid-whiteout",
    "nul-name",
    "pax-path-dotdot",
    "pax-size-bomb",
    "root-file",
    "root-symlink",
    "sparse",
    "truncated",
    "unknown-type",
}
#: Readable, listed by show, but refused by extract as by unpack.
UNEXTRACTABLE = {"hardlink-host-dir", "hardlink-to-dir", "hardlink-via-symlink", "symlink-loop"}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_layers_through_show_and_extract(work: Work, case: str) -> None:
    """Every layer of every case: ``layer show`` writes nothing but its cache,
    ``layer extract`` writes only inside DEST; both succeed or fail with one
    line and exit 1; a failed extract leaves no DEST behind.  The fixture
    checks the canary and that nothing else appeared in the work dir."""
    layers = [lyr if isinstance(lyr, Layer) else make_layer(lyr) for lyr in HOSTILE[case](work)]
    write_test_image(work.layout, layers)
    ref = f"{work.layout}:latest"
    for n in range(len(layers)):
        for argv in (("show", ref, str(n)), ("show", ref, str(n), "--tree")):
            r = _show_writes_nothing(work, *argv[1:])
            assert r.code == (case in UNREADABLE), (argv, r.err)
            if r.code:
                assert r.err.startswith("oci-tools: error: ") and r.err.count("\n") == 1, r.err
        dest = work.dest
        r = cli("layer", "extract", ref, str(n), str(dest))
        assert r.code == (case in UNREADABLE | UNEXTRACTABLE), r.err
        if r.code:
            assert r.err.startswith("oci-tools: error: ") and r.err.count("\n") == 1, r.err
            assert not dest.exists()
        else:
            remove_tree(str(dest))


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
