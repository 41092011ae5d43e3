"""Hostile layers, built in code, applied to a rootfs whose sibling canary must
come out byte-for-byte and mtime-for-mtime unchanged.

Layout of every test::

    tmp/work/rootfs        the target
    tmp/work/canary/...    host files a breakout would touch
    tmp/work/canary.txt

Each case either raises UnsafeLayerError (or a subclass) or has a documented
safe result (asserted), and the canary check runs after it either way.
"""

from __future__ import annotations

import io
import os
import stat
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from builders import (
    BLOCK,
    Member,
    base256,
    build_tar,
    chardev,
    compress,
    corrupt_checksum,
    directory,
    ext_header,
    file,
    hardlink,
    header,
    make_layer,
    number,
    octal,
    opaque,
    pax_records,
    symlink,
    whiteout,
)
from helpers import canary_state

from oci_tools.apply import ApplyOptions, ApplyResult, apply_layer
from oci_tools.digest import Digest
from oci_tools.errors import (
    LinkEscapeError,
    PathEscapeError,
    SpecialFileError,
    UnsafeLayerError,
)
from oci_tools.snapshot import Snapshot

IS_ROOT = os.geteuid() == 0


@dataclass
class Work:
    dir: Path
    rootfs: Path
    canary: Path  # the sibling directory
    canary_file: Path  # the sibling file

    @property
    def host(self) -> str:
        """Absolute host path of the work dir (what an attacker would aim at)."""
        return str(self.dir)

    def apply(
        self,
        members: Sequence[Member | bytes],
        *,
        codec: str = "gzip",
        snapshot: Snapshot | None = None,
        **opts: object,
    ) -> ApplyResult:
        lay = make_layer(members, codec)
        options = ApplyOptions(**opts)  # type: ignore[arg-type]
        return apply_layer(
            io.BytesIO(lay.blob),
            str(self.rootfs),
            codec=codec,
            diff_id=Digest.parse(lay.diff_id),
            snapshot=snapshot,
            options=options,
        )

    def apply_blob(self, blob: bytes, codec: str, **opts: object) -> ApplyResult:
        options = ApplyOptions(**opts)  # type: ignore[arg-type]
        return apply_layer(
            io.BytesIO(blob),
            str(self.rootfs),
            codec=codec,
            diff_id=None,
            options=options,
        )


@pytest.fixture()
def work(tmp_path: Path) -> Iterator[Work]:
    w = tmp_path / "work"
    w.mkdir()
    rootfs = w / "rootfs"
    rootfs.mkdir()
    canary = w / "canary"
    canary.mkdir()
    (canary / "secret").write_bytes(b"do not touch\n")
    (canary / "sub").mkdir()
    (canary / "sub" / "deep").write_bytes(b"\x00\x01binary")
    os.symlink("secret", canary / "link")
    canary_file = w / "canary.txt"
    canary_file.write_bytes(b"host file\n")
    old = 1_000_000_000_000_000_000
    for p in [canary / "secret", canary / "sub" / "deep", canary / "sub", canary, canary_file]:
        os.utime(p, ns=(old, old))
    before = canary_state(canary)
    before_file = canary_state(canary_file)
    before_dir = os.lstat(w).st_mtime_ns
    yield Work(w, rootfs, canary, canary_file)
    assert canary_state(canary) == before, "the canary directory changed"
    assert canary_state(canary_file) == before_file, "the canary file changed"
    assert sorted(os.listdir(w)) == ["canary", "canary.txt", "rootfs"]
    assert os.lstat(w).st_mtime_ns == before_dir
    assert sorted(os.listdir(tmp_path)) == ["work"]


# ------------------------------------------------------------------ names


def test_01_dotdot_traversal(work: Work) -> None:
    with pytest.raises(PathEscapeError):
        work.apply([file("../canary/secret", b"pwned")])


def test_02_deep_dotdot_traversal(work: Work) -> None:
    with pytest.raises(PathEscapeError):
        work.apply([directory("a"), file("a/b/../../../canary.txt", b"pwned")])


def test_03_absolute_name_is_rooted(work: Work) -> None:
    host_path = str(work.canary / "secret")
    work.apply([file(host_path, b"inside")])
    assert (work.rootfs / host_path.lstrip("/")).read_bytes() == b"inside"


def test_04_traversal_in_gnu_long_name_and_pax_path(work: Work) -> None:
    with pytest.raises(PathEscapeError):
        work.apply([file("../" * 40 + "canary.txt", b"x", long_names="gnu", fmt="gnu")])
    with pytest.raises(PathEscapeError):
        work.apply([file("ok", b"x", pax={"path": "../canary.txt"})])


# ------------------------------------------------------- symlinks, one layer


def test_05_symlink_then_write_relative_one_layer(work: Work) -> None:
    work.apply([symlink("esc", "../canary"), file("esc/secret", b"pwned")])
    # ".." is clamped at the rootfs: the write lands in rootfs/canary.
    assert (work.rootfs / "canary" / "secret").read_bytes() == b"pwned"


def test_06_symlink_then_write_absolute_one_layer(work: Work) -> None:
    work.apply(
        [
            symlink("esc", str(work.canary)),
            file("esc/secret", b"pwned"),
            directory("esc/sub", mode=0o777),
        ]
    )
    inside = work.rootfs / str(work.canary).lstrip("/")
    assert (inside / "secret").read_bytes() == b"pwned"


def test_07_symlink_chain_with_many_dotdots(work: Work) -> None:
    work.apply(
        [
            symlink("a", "b/../../../../.."),
            symlink("b", "/../../.."),
            file("a/canary.txt", b"pwned"),
        ]
    )
    assert (work.rootfs / "canary.txt").read_bytes() == b"pwned"


# ------------------------------------------------------- symlinks, two layers


def test_08_symlink_then_write_relative_two_layers(work: Work) -> None:
    work.apply([symlink("esc", "../../canary")])
    work.apply([file("esc/secret", b"pwned"), directory("esc/sub", mode=0o777)])
    assert (work.rootfs / "canary" / "secret").read_bytes() == b"pwned"


def test_09_symlink_then_write_absolute_two_layers(work: Work) -> None:
    work.apply([symlink("esc", str(work.canary))])
    work.apply([file("esc/secret", b"pwned"), whiteout("esc/sub"), opaque("esc")])
    inside = work.rootfs / str(work.canary).lstrip("/")
    assert (inside / "secret").read_bytes() == b"pwned"


def test_10_file_over_symlink_to_host_file(work: Work) -> None:
    work.apply([symlink("f", str(work.canary_file)), symlink("g", "../canary.txt")])
    work.apply([file("f", b"replaced", mode=0o777), file("g", b"replaced")])
    assert (work.rootfs / "f").read_bytes() == b"replaced"
    assert not os.path.islink(work.rootfs / "f")


def test_11_dir_entry_over_symlink_to_host_dir(work: Work) -> None:
    work.apply([symlink("d", str(work.canary))])
    work.apply([directory("d", mode=0o777, mtime=5, pax={"SCHILY.xattr.user.pwn": b"1"})])
    st = os.lstat(work.rootfs / "d")
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777


def test_12_symlink_loop_is_an_error(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="too many levels"):
        work.apply([symlink("a", "b"), symlink("b", "a"), file("a/x", b"x")])


# ----------------------------------------------------------------- hardlinks


def test_13_hardlink_dotdot_escape(work: Work) -> None:
    with pytest.raises(LinkEscapeError):
        work.apply([hardlink("h", "../canary.txt")])


def test_14_hardlink_via_symlinked_parent_stays_inside(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="missing"):
        work.apply([symlink("up", "../../.."), hardlink("h", "up/canary.txt")])
    # With an in-root file at the same spot, the link reaches that file only.
    work.apply(
        [file("canary.txt", b"in root"), symlink("up2", "../.."), hardlink("h2", "up2/canary.txt")]
    )
    assert (work.rootfs / "h2").read_bytes() == b"in root"


def test_15_hardlink_to_host_absolute_path(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="missing"):
        work.apply([hardlink("h", str(work.canary_file))])
    with pytest.raises(UnsafeLayerError, match="missing"):
        work.apply([symlink("hostdir", work.host), hardlink("h", "hostdir/canary.txt")])


def test_16_hardlink_to_symlink_pointing_at_host_then_chmod(work: Work) -> None:
    # CVE-2021-32760: metadata applied "to the hardlink" must not follow the
    # symlink it names.  The link is to the symlink itself.
    work.apply(
        [
            symlink("s", str(work.canary_file)),
            hardlink("h", "s", mode=0o777),
            file("s2", b"x"),
            hardlink("s2", "s"),
        ]
    )
    assert stat.S_ISLNK(os.lstat(work.rootfs / "h").st_mode)
    assert stat.S_ISLNK(os.lstat(work.rootfs / "s2").st_mode)


def test_17_hardlink_to_directory(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="directory"):
        work.apply([directory("d"), hardlink("h", "d")])


# ------------------------------------------------------------ the root entry


@pytest.mark.parametrize("name", [".", "./", "/", "", "a/.."])
def test_18_root_replaced_by_symlink(work: Work, name: str) -> None:
    # CVE-2021-29136: a '.' symlink would send later entries to the host.
    with pytest.raises(UnsafeLayerError, match="root"):
        work.apply([Member(name, b"2", linkname=str(work.canary)), file("secret", b"pwned")])


def test_19_root_as_file_or_hardlink(work: Work) -> None:
    with pytest.raises(UnsafeLayerError):
        work.apply([file(".", b"x")])
    with pytest.raises(UnsafeLayerError):
        work.apply([file("x"), hardlink("./", "x")])


def test_20_root_directory_entry_is_applied_to_rootfs(work: Work) -> None:
    work.apply([directory("./", mode=0o751, mtime=7), file("x")])
    st = os.lstat(work.rootfs)
    assert stat.S_IMODE(st.st_mode) == 0o751 and st.st_mtime_ns == 7 * 10**9


# ----------------------------------------------------------------- whiteouts


@pytest.mark.parametrize(
    "name",
    [
        ".wh.",
        ".wh..",
        ".wh...",
        "a/.wh.",
        "a/.wh..",
        "a/b/.wh...",
        ".wh..wh.plnk",
        ".wh..wh..opq/x",
        ".wh.x/y",
        "a/.wh..wh.aufs",
    ],
)
def test_21_invalid_whiteouts(work: Work, name: str) -> None:
    work.apply([directory("a/b"), file("a/b/f", b"keep")])
    with pytest.raises(UnsafeLayerError):
        work.apply([file(name)])
    assert (work.rootfs / "a/b/f").read_bytes() == b"keep"


def test_22_whiteout_escaping_via_symlinked_dir(work: Work) -> None:
    work.apply(
        [
            symlink("rel", "../canary"),
            symlink("abs", str(work.canary)),
            symlink("host", work.host),
            directory("canary"),
            file("canary/secret"),
        ]
    )
    work.apply(
        [
            whiteout("rel/secret"),
            whiteout("abs/secret"),
            whiteout("abs/sub"),
            whiteout("host/canary"),
            whiteout("host/canary.txt"),
            opaque("abs"),
            opaque("host"),
            opaque("host/canary"),
        ]
    )
    # rel -> ../canary resolves to rootfs/canary: its secret is whited out.
    assert not (work.rootfs / "canary/secret").exists()
    assert os.path.islink(work.rootfs / "abs")


def test_23_opaque_at_clamped_root_only_touches_rootfs(work: Work) -> None:
    work.apply([file("lower", b"1"), symlink("up", "../../..")])
    work.apply([opaque("up"), file("mine", b"2")])
    assert sorted(os.listdir(work.rootfs)) == ["mine"]


def test_24_whiteout_then_symlink_dance_across_layers(work: Work) -> None:
    work.apply([directory("d"), file("d/x", b"1")])
    # Replace the directory by a symlink to the host, then white out through it.
    work.apply([whiteout("d"), symlink("d", str(work.canary))])
    work.apply([whiteout("d/secret"), file("d/new", b"n")])
    inside = work.rootfs / str(work.canary).lstrip("/")
    assert (inside / "new").read_bytes() == b"n"


# -------------------------------------------------------------- malformed tars


def test_25_corrupt_header_stops_with_error(work: Work) -> None:
    tar = build_tar([file("a", b"1"), file("b", b"2"), file("c", b"3")])
    blob = compress(corrupt_checksum(tar, 1), "gzip")
    with pytest.raises(UnsafeLayerError, match="checksum"):
        work.apply_blob(blob, "gzip")
    assert sorted(os.listdir(work.rootfs)) == ["a"]


def test_26_truncated_tar(work: Work) -> None:
    tar = build_tar([file("a", b"1" * 5000)])
    with pytest.raises(UnsafeLayerError, match="truncated"):
        work.apply_blob(compress(tar[:3000], "zstd"), "zstd")


def test_27_unknown_and_sparse_type_flags(work: Work) -> None:
    for flag in (b"7", b"X", b"S", b"K", b"M", b"V", b"D"):
        tar = build_tar([Member("x", flag, b"data")])
        with pytest.raises(UnsafeLayerError):
            work.apply_blob(tar, "none")
    with pytest.raises(SpecialFileError):
        work.apply_blob(build_tar([file("s", pax={"GNU.sparse.realsize": "1" + "0" * 12})]), "none")
    assert os.listdir(work.rootfs) == []


def test_28_bad_ids(work: Work) -> None:
    for m in (
        file("u", raw={"uid": base256(-1, 8)}),
        file("g", pax={"gid": str(2**32)}),
        file("n", raw={"size": base256(-512, 12)}),
    ):
        with pytest.raises(UnsafeLayerError):
            work.apply([m])


# -------------------------------------------------------------- resource bombs


def _gzip_zero_bomb(declared: int, real: int) -> bytes:
    """gzip of a tar whose one file claims ``declared`` bytes, with ``real``
    zero bytes actually present (zlib: ~1028:1 on zeros)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(file("zeros", size=declared).to_bytes())]
    chunk = bytes(1 << 20)
    for _ in range(real >> 20):
        out.append(c.compress(chunk))
    out.append(c.flush())
    return b"".join(out)


def _rootfs_bytes(p: Path) -> int:
    total = 0
    for dirpath, _d, files in os.walk(p):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
    return total


def test_29_gzip_bomb_refused_by_free_space(work: Work) -> None:
    # 64 MiB of zeros compress to ~64 KiB; the header claims 1 PiB.
    blob = _gzip_zero_bomb(1 << 50, 64 << 20)
    with pytest.raises(UnsafeLayerError, match="do not fit"):
        work.apply_blob(blob, "gzip")
    assert _rootfs_bytes(work.rootfs) == 0  # refused before writing


def test_30_gzip_bomb_refused_by_ratio(work: Work) -> None:
    blob = _gzip_zero_bomb(256 << 20, 256 << 20)
    assert len(blob) < (300 << 10)
    with pytest.raises(UnsafeLayerError, match="expansion ratio"):
        work.apply_blob(blob, "gzip", max_ratio=200, ratio_grace_bytes=1 << 20)
    assert _rootfs_bytes(work.rootfs) < (32 << 20)


def test_31_zstd_bomb_refused_by_default_ratio(work: Work) -> None:
    import zstandard

    size = 2 << 30  # 2 GiB of zeros in a ~70 KiB frame
    cobj = zstandard.ZstdCompressor(level=3).compressobj()
    parts = [cobj.compress(file("zeros", size=size).to_bytes())]
    chunk = bytes(4 << 20)
    for _ in range(size // len(chunk)):
        parts.append(cobj.compress(chunk))
    parts.append(cobj.flush())
    blob = b"".join(parts)
    assert len(blob) < (1 << 20)
    with pytest.raises(UnsafeLayerError, match="expansion ratio"):
        work.apply_blob(blob, "zstd")  # default options
    assert _rootfs_bytes(work.rootfs) < (128 << 20)


def test_32_max_uncompressed_bytes(work: Work) -> None:
    blob = compress(build_tar([file("f", os.urandom(3 << 20))]), "gzip")
    with pytest.raises(UnsafeLayerError, match="uncompressed bytes"):
        work.apply_blob(blob, "gzip", max_uncompressed_bytes=1 << 20)


def test_33_pax_size_bombs(work: Work) -> None:
    # A PAX header claiming 2 GiB is refused from its header block alone.
    with pytest.raises(UnsafeLayerError, match="extension header"):
        work.apply_blob(ext_header(b"x", b"", size=2**31)[:BLOCK] + bytes(BLOCK * 4), "none")
    # PAX size record of 1 EiB on a tiny member: refused before writing.
    with pytest.raises(UnsafeLayerError, match="do not fit"):
        work.apply([file("f", b"tiny", pax={"size": str(1 << 60)}, pad_data=False)])
    # Thousands of PAX records summing past the cap.
    recs = {f"SCHILY.xattr.user.k{i}": b"v" * 200 for i in range(6000)}
    with pytest.raises(UnsafeLayerError, match="exceeds"):
        work.apply_blob(build_tar([ext_header(b"x", pax_records(recs)), file("f")]), "none")


def test_34_many_entries_capped(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="entries"):
        work.apply([file(f"f{i}") for i in range(101)], max_entries=100)


# ---------------------------------------------------------------- deep and wide


def _deep(n: int) -> list[str]:
    return ["/".join(["d"] * (i + 1)) for i in range(n)]


def test_35_deep_nesting_2000_levels(work: Work) -> None:
    names = _deep(2000)
    work.apply([directory(p) for p in names] + [file(names[-1] + "/leaf", b"bottom")])
    fd = os.open(work.rootfs, os.O_RDONLY)
    try:
        for _ in range(2000):
            nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        assert os.listdir(fd) == ["leaf"]
    finally:
        os.close(fd)
    # Removing it: iterative, no RecursionError, no fd exhaustion.
    work.apply([whiteout("d")])
    assert os.listdir(work.rootfs) == []


def test_36_deep_implied_parents_then_opaque(work: Work) -> None:
    deep = "/".join(["x"] * 1500) + "/f"
    work.apply([file(deep, b"1")])
    work.apply([opaque("")])
    assert os.listdir(work.rootfs) == []


def test_37_many_whiteouts_and_opaques_in_bounded_time(work: Work) -> None:
    lower = [directory(f"dir{i}") for i in range(100)]
    lower += [file(f"dir{i}/f{j}", b"x") for i in range(100) for j in range(100)]
    work.apply(lower)
    # Bounded work, counted rather than timed: every directory listing the
    # applier makes goes through os.scandir; a per-marker or per-whiteout
    # rescan would make thousands.
    listings = 0
    real_scandir = os.scandir

    def counting_scandir(*a: Any, **k: Any) -> Any:
        nonlocal listings
        listings += 1
        return real_scandir(*a, **k)

    upper: list[Member | bytes] = [
        whiteout(f"dir{i}/f{j}") for i in range(100) for j in range(0, 100, 2)
    ]
    upper += [opaque(f"dir{i}") for i in range(50)]
    upper += [opaque(f"dir{i}") for i in range(50)]  # repeated markers: no rescans
    upper += [whiteout(f"nothere{i}/x") for i in range(5000)]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(os, "scandir", counting_scandir)
        work.apply(upper)
    assert listings <= 150, f"{listings} directory listings for 100 opaque markers"
    assert os.listdir(work.rootfs / "dir0") == []
    assert len(os.listdir(work.rootfs / "dir99")) == 50


# ----------------------------------------------------------------- privileges


def test_38_trusted_overlay_xattrs_refused(work: Work) -> None:
    r = work.apply(
        [
            directory(
                "d",
                pax={
                    "SCHILY.xattr.trusted.overlay.opaque": b"y",
                    "SCHILY.xattr.trusted.overlay.redirect": b"/x",
                },
            )
        ]
    )
    assert os.listxattr(work.rootfs / "d") == []
    assert len([s for s in r.skipped if "trusted.overlay" in s]) == 2


def test_39_devices_rootless_are_skipped(work: Work) -> None:
    r = work.apply([chardev("dev/mem", 1, 1), Member("dev/sda", b"4", devmajor=8)], rootless=True)
    assert os.listdir(work.rootfs / "dev") == []
    assert len(r.skipped) == 2


@pytest.mark.root
@pytest.mark.skipif(not IS_ROOT, reason="needs root to prove the chown/chmod targets")
def test_40_setuid_planted_via_symlink_lands_inside(work: Work) -> None:
    # A setuid-root file written through a symlink to a host directory must
    # land inside the rootfs, and chmod/chown never follow the symlink.
    work.apply(
        [
            symlink("bin", str(work.canary)),
            file("bin/secret", b"#!/bin/sh\n", mode=0o4755, uid=0),
            symlink("s", str(work.canary / "secret")),
            hardlink("h", "s", mode=0o4777, uid=0),
        ]
    )
    inside = work.rootfs / str(work.canary).lstrip("/") / "secret"
    assert stat.S_IMODE(os.lstat(inside).st_mode) == 0o4755


def test_41_whiteout_named_parent_component(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="whiteout"):
        work.apply([file("a/.wh.b/c", b"x")])


def test_42_nul_and_overlong_names(work: Work) -> None:
    with pytest.raises(UnsafeLayerError, match="NUL"):
        work.apply([file("ok", pax={"path": b"a\0../../canary.txt"})])
    with pytest.raises(UnsafeLayerError, match="255"):
        work.apply([file("a" * 300, long_names="gnu", fmt="gnu")])


def test_43_raw_header_with_huge_base256_size(work: Work) -> None:
    h = header(
        {
            "name": b"big",
            "mode": octal(0o644, 8),
            "size": number(1 << 70, 12),
            "typeflag": b"0",
            "magic": b"ustar\0",
            "version": b"00",
        }
    )
    with pytest.raises(UnsafeLayerError, match="do not fit"):
        work.apply_blob(h + bytes(BLOCK * 8), "none")


def test_44_hardlink_replacing_the_directory_that_holds_its_target(work: Work) -> None:
    # Replacing "a" would delete "a/c" before the link to it is made: a clean
    # refusal (found by the replay-vs-apply random test), not a raw ENOENT.
    with pytest.raises(UnsafeLayerError, match="inside the directory the link replaces"):
        work.apply([directory("a"), file("a/c", b"1"), hardlink("a", "a/c")])
    # Through a symlinked parent too: the target's resolved path is what counts.
    with pytest.raises(UnsafeLayerError, match="inside the directory the link replaces"):
        work.apply([directory("d"), file("d/f", b"1"), symlink("s", "d"), hardlink("d", "s/f")])
