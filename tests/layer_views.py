"""The image the tests of ``oci_tools.views.layers`` share, and its expected views.

``three_layer_image`` builds it (layer 0: files and directories; layer 1:
overwrites, whiteouts, an opaque marker, links; layer 2: more of the same);
SHOW, TREE and EFFICIENCY are the exact outputs of ``layer show``,
``layer show --tree`` and ``efficiency`` on it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from builders import Layer, directory, file, hardlink, make_layer, opaque, symlink, whiteout
from helpers import cli

from oci_tools.digest import Digest
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.mutate import empty_config, write_image
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Platform
from oci_tools.store import put_bytes

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
    """A layout built for a test and the layers of its image ``latest``."""

    path: Path
    layers: list[Layer]

    @property
    def ref(self) -> str:
        return f"{self.path}:latest"


def three_layer_image(tmp_path: Path) -> Built:
    """``three_layers()`` as image ``latest`` of ``tmp_path/lay``, with an
    empty-layer history row between layers 1 and 2."""
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
    """Run the CLI; its stdout (exit code 0 asserted)."""
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


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

EFFICIENCY = """\
Efficiency:   82.29%
Wasted:       4.7kB (4700 bytes)
Total:        16.2kB (16170 bytes of files in 3 layers)
User wasted:  83.19% (of 5.65kB added above the first layer)

COUNT     WASTED    LAYERS    PATH
2         3.1kB     1,2       /app/config
2         1kB       0,1       /etc/motd
2         550B      0,1       /opt/y
2         50B       0,2       /etc/hosts
"""


def show_rows(path: Path, n: int) -> list[tuple[str, str, str, int]]:
    """(change, path, type, size) of each ``layer show`` row of layer ``n``."""
    out = ok("layer", "show", f"{path}:latest", str(n), "--format", "json")
    return [
        (r["Change"], r["Path"], r["Type"], int(r["SizeBytes"]))
        for r in map(json.loads, out.splitlines())
    ]
