"""Hostile layers through ``layer show`` (writes nothing but its cache) and
``layer extract`` (writes only inside DEST): the unpack tests' cases, as images."""

from __future__ import annotations

import json
import os
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
from layer_views import write_test_image

from oci_tools.fsutil import remove_tree


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
