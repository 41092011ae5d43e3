"""The deterministic tar writer: exact bytes, PAX only where needed, and what
GNU tar and Python's tarfile make of it."""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import stat
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest
from builders import mixed_data

from oci_tools import compression
from oci_tools.compression import (
    decompressor,
)
from oci_tools.digest import Digest
from oci_tools.errors import DigestMismatchError
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.writer import TarWriter, write_layer
from oci_tools.store import MemoryStore

NS = 1_000_000_000
T0 = 1_700_000_000 * NS
IS_ROOT = os.geteuid() == 0
HAVE_GNU_TAR = shutil.which("tar") is not None


def tar_bytes(items: list[tuple[TarEntry, bytes | None]]) -> bytes:
    out = io.BytesIO()
    w = TarWriter(out)
    for entry, data in items:
        w.add(entry, None if data is None else io.BytesIO(data))
    w.close()
    return out.getvalue()


def blocks(data: bytes) -> list[bytes]:
    return [data[i : i + 512] for i in range(0, len(data), 512)]


def pax_records(data: bytes) -> list[dict[str, bytes]]:
    """Every PAX extended header in a tar, as ordered key -> raw value maps."""
    found = []
    pos = 0
    while pos + 512 <= len(data):
        hdr = data[pos : pos + 512]
        if hdr == bytes(512):
            break
        size = int(hdr[124:135] or b"0", 8)
        body = data[pos + 512 : pos + 512 + size]
        if hdr[156:157] == b"x":
            recs: dict[str, bytes] = {}
            rest = body
            while rest:
                length = int(rest.split(b" ", 1)[0])
                rec, rest = rest[:length], rest[length:]
                assert rec.endswith(b"\n")
                key, _, value = rec[:-1].split(b" ", 1)[1].partition(b"=")
                recs[key.decode()] = value
            found.append(recs)
        pos += 512 + (size + 511) // 512 * 512
    return found


# -- exact bytes -------------------------------------------------------------------


def test_golden_header_and_layout() -> None:
    data = tar_bytes([(TarEntry("hello.txt", EntryType.REG, 0o644, 1000, 1000, 3, T0), b"hi\n")])
    expected_header = (
        b"hello.txt".ljust(100, b"\0")
        + b"0000644\0"  # mode
        + b"0001750\0"  # uid 1000
        + b"0001750\0"  # gid 1000
        + b"00000000003\0"  # size
        + b"14524770400\0"  # mtime 1700000000
        + b"007676\0 "  # checksum
        + b"0"  # typeflag
        + bytes(100)  # linkname
        + b"ustar\0"
        + b"00"
        + bytes(32)  # uname: always empty
        + bytes(32)  # gname: always empty
        + bytes(8)  # devmajor: devices only
        + bytes(8)  # devminor
        + bytes(155)  # prefix: never used
        + bytes(12)
    )
    assert len(expected_header) == 512
    assert data[:512] == expected_header
    assert data[512:1024] == b"hi\n" + bytes(509)
    # Exactly two zero blocks end the archive: no 10240-byte record padding.
    assert data[1024:] == bytes(1024)
    assert len(data) == 2048
    assert (
        hashlib.sha256(data).hexdigest()
        == "5da840f6dcb80896daedca46b0f3788a4dae13b2b5057bb1a6b6cb3fa8479997"
    )


def test_checksum_matches_definition() -> None:
    data = tar_bytes([(TarEntry("a", EntryType.DIR, 0o755, mtime_ns=T0), None)])
    hdr = bytearray(data[:512])
    stored = int(hdr[148:154], 8)
    hdr[148:156] = b" " * 8
    assert stored == sum(hdr)


def test_empty_archive_is_two_zero_blocks() -> None:
    assert tar_bytes([]) == bytes(1024)


def test_directory_names_and_root() -> None:
    data = tar_bytes(
        [
            (TarEntry("", EntryType.DIR, 0o755), None),
            (TarEntry("usr/lib", EntryType.DIR, 0o755), None),
        ]
    )
    assert data[:2] == b"./" and data[2] == 0
    assert data[512:520] == b"usr/lib/"


def test_mode_is_masked_and_devices_only_for_devices() -> None:
    data = tar_bytes(
        [
            (TarEntry("f", EntryType.REG, 0o100755 | 0o4000), b""),
            (TarEntry("null", EntryType.CHAR, 0o666, devmajor=1, devminor=3), None),
        ]
    )
    f_hdr, dev_hdr = blocks(data)[0], blocks(data)[1]
    assert f_hdr[100:108] == b"0004755\0"
    assert f_hdr[329:345] == bytes(16)
    assert dev_hdr[156:157] == b"3"
    assert dev_hdr[329:337] == b"0000001\0" and dev_hdr[337:345] == b"0000003\0"


def test_deterministic() -> None:
    items: list[tuple[TarEntry, bytes | None]] = [
        (TarEntry("d", EntryType.DIR, 0o755, mtime_ns=T0 + 5), None),
        (
            TarEntry(
                "d/f", EntryType.REG, 0o644, 1, 2, 5, T0, xattrs={"user.b": b"2", "user.a": b"1"}
            ),
            b"hello",
        ),
        (TarEntry("d/l", EntryType.SYMLINK, 0o777, linkname="f" * 150), None),
    ]
    assert tar_bytes(items) == tar_bytes(items)
    # xattr insertion order does not matter either.
    swapped = list(items)
    swapped[1] = (
        TarEntry("d/f", EntryType.REG, 0o644, 1, 2, 5, T0, xattrs={"user.a": b"1", "user.b": b"2"}),
        b"hello",
    )
    assert tar_bytes(swapped) == tar_bytes(items)


# -- PAX only where needed -----------------------------------------------------------


def test_no_pax_for_plain_entries() -> None:
    data = tar_bytes(
        [
            (TarEntry("etc", EntryType.DIR, 0o755, mtime_ns=T0), None),
            (TarEntry("etc/" + "a" * 90, EntryType.REG, 0o644, 0, 0, 1, T0), b"x"),
            (TarEntry("etc/l", EntryType.SYMLINK, 0o777, linkname="a" * 100), None),
            (TarEntry("etc/h", EntryType.HARDLINK, 0o644, linkname="etc/l"), None),
            (TarEntry("big", EntryType.REG, uid=0o7777777, gid=0o7777777), b""),
        ]
    )
    assert pax_records(data) == []
    assert all(b[156:157] != b"x" for b in blocks(data))


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (TarEntry("n" * 101, EntryType.REG), {"path": b"n" * 101}),
        (TarEntry("d" * 100, EntryType.DIR), {"path": b"d" * 100 + b"/"}),
        (TarEntry("caf\u00e9", EntryType.REG), {"path": "caf\u00e9".encode()}),
        (
            TarEntry("l", EntryType.SYMLINK, linkname="t" * 101),
            {"linkpath": b"t" * 101},
        ),
        (TarEntry("f", EntryType.REG, uid=0o7777777 + 1), {"uid": b"2097152"}),
        (TarEntry("f", EntryType.REG, gid=(1 << 32) - 2), {"gid": b"4294967294"}),
        (
            TarEntry("f", EntryType.REG, mtime_ns=T0 + 123_456_789),
            {"mtime": b"1700000000.123456789"},
        ),
        (TarEntry("f", EntryType.REG, mtime_ns=T0 + 500_000_000), {"mtime": b"1700000000.5"}),
        (TarEntry("f", EntryType.REG, mtime_ns=-1_500_000_000), {"mtime": b"-1.5"}),
        (TarEntry("f", EntryType.REG, mtime_ns=-2 * NS), {"mtime": b"-2"}),
        (
            TarEntry("f", EntryType.REG, xattrs={"user.bin": b"\x00\xff=\n", "user.empty": b""}),
            {"SCHILY.xattr.user.bin": b"\x00\xff=\n"},
        ),
        (TarEntry("bad\udcff", EntryType.REG), {"hdrcharset": b"BINARY", "path": b"bad\xff"}),
    ],
)
def test_pax_only_the_needed_records(entry: TarEntry, expected: dict[str, bytes]) -> None:
    data = tar_bytes([(entry, None)])
    assert pax_records(data) == [expected]


def test_pax_records_sorted_and_stand_in_fields() -> None:
    entry = TarEntry(
        "\u00e9" * 60,
        EntryType.SYMLINK,
        uid=1 << 22,
        mtime_ns=T0 + 1,
        linkname="x" * 120,
        xattrs={"user.z": b"1", "security.capability": b"\x01"},
    )
    data = tar_bytes([(entry, None)])
    (recs,) = pax_records(data)
    assert list(recs) == sorted(recs, key=lambda k: k.encode())
    assert list(recs) == [
        "SCHILY.xattr.security.capability",
        "SCHILY.xattr.user.z",
        "linkpath",
        "mtime",
        "path",
        "uid",
    ]
    hdr = blocks(data)[2]  # x header, its records, then the entry
    assert hdr[:100].rstrip(b"\0") == b"_" * 100  # ASCII stand-in, truncated
    assert hdr[108:116] == b"0000000\0"  # real uid is in the PAX record
    assert hdr[136:148] == b"14524770400\0"  # whole seconds stay in the field


def test_pax_record_length_counts_its_own_digits() -> None:
    # Record lengths around 99/100 and 999/1000 change their own digit count.
    for n in [*range(85, 100), *range(980, 1000)]:
        (recs,) = pax_records(tar_bytes([(TarEntry("p" * n + "\u00e9", EntryType.REG), None)]))
        assert recs["path"] == ("p" * n + "\u00e9").encode()


# -- content -----------------------------------------------------------------------


def test_content_is_streamed_and_padded() -> None:
    payload = os.urandom((1 << 20) * 2 + 1000)
    data = tar_bytes([(TarEntry("big", EntryType.REG, size=len(payload)), payload)])
    assert data[512 : 512 + len(payload)] == payload
    assert len(data) == 512 + (len(payload) + 511) // 512 * 512 + 1024


def test_short_and_long_content_rejected() -> None:
    w = TarWriter(io.BytesIO())
    with pytest.raises(DigestMismatchError):
        w.add(TarEntry("f", EntryType.REG, size=10), io.BytesIO(b"123"))
    w = TarWriter(io.BytesIO())
    with pytest.raises(DigestMismatchError):
        w.add(TarEntry("f", EntryType.REG, size=2), io.BytesIO(b"123"))


def test_invalid_entries_rejected() -> None:
    w = TarWriter(io.BytesIO())
    with pytest.raises(ValueError):
        w.add(TarEntry("d", EntryType.DIR), io.BytesIO(b""))
    with pytest.raises(ValueError):
        w.add(TarEntry("", EntryType.REG))
    with pytest.raises(ValueError):
        w.add(TarEntry("/abs", EntryType.REG))
    with pytest.raises(ValueError):
        w.add(TarEntry("l", EntryType.SYMLINK))
    with pytest.raises(ValueError):
        w.add(TarEntry("f", EntryType.REG, uid=-1))
    w.close()
    with pytest.raises(ValueError):
        w.add(TarEntry("f", EntryType.REG))


# -- readers -------------------------------------------------------------------------


def sample_entries() -> list[tuple[TarEntry, bytes | None]]:
    return [
        (TarEntry("etc", EntryType.DIR, 0o755, 0, 0, 0, T0), None),
        (
            TarEntry(
                "etc/app.conf",
                EntryType.REG,
                0o640,
                1000,
                1001,
                6,
                T0 + 123_456_789,
                xattrs={"user.note": b"hi\x00\xff"},
            ),
            b"conf!\n",
        ),
        (TarEntry("etc/hard", EntryType.HARDLINK, 0o640, 1000, 1001, 0, T0, "etc/app.conf"), None),
        (TarEntry("etc/sym", EntryType.SYMLINK, 0o777, 0, 0, 0, T0, "app.conf"), None),
        (TarEntry("etc/" + "long" * 40, EntryType.REG, 0o4755, 0, 0, 2, T0), b"ok"),
        (TarEntry("dev", EntryType.DIR, 0o755, 0, 0, 0, T0), None),
        (TarEntry("dev/null", EntryType.CHAR, 0o666, 0, 0, 0, T0, devmajor=1, devminor=3), None),
        (TarEntry("dev/loop0", EntryType.BLOCK, 0o660, 0, 6, 0, T0, devmajor=7, devminor=0), None),
        (TarEntry("dev/fifo", EntryType.FIFO, 0o600, 5, 5, 0, T0), None),
        (TarEntry("caf\u00e9", EntryType.REG, 0o644, 0, 0, 0, T0), b""),
    ]


def test_python_tarfile_reads_it() -> None:
    data = tar_bytes(sample_entries())
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        members = {m.name: m for m in t}
        conf = members["etc/app.conf"]
        assert (conf.mode, conf.uid, conf.gid, conf.uname, conf.gname) == (
            0o640,
            1000,
            1001,
            "",
            "",
        )
        assert conf.pax_headers["mtime"] == "1700000000.123456789"
        assert (
            conf.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape")
            == b"hi\x00\xff"
        )
        extracted = t.extractfile(conf)
        assert extracted is not None and extracted.read() == b"conf!\n"
        assert members["etc/hard"].islnk() and members["etc/hard"].linkname == "etc/app.conf"
        assert members["etc/sym"].issym() and members["etc/sym"].linkname == "app.conf"
        assert members["etc/" + "long" * 40].mode == 0o4755
        assert members["dev/null"].ischr() and (
            members["dev/null"].devmajor,
            members["dev/null"].devminor,
        ) == (1, 3)
        assert members["dev/loop0"].isblk()
        assert members["dev/fifo"].isfifo()
        assert "caf\u00e9" in members
        assert members["etc"].isdir()


@pytest.mark.skipif(not HAVE_GNU_TAR, reason="GNU tar not installed")
def test_gnu_tar_lists_it(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar"
    path.write_bytes(tar_bytes(sample_entries()))
    out = subprocess.run(
        ["tar", "-tvf", str(path), "--numeric-owner", "--full-time"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    lines = out.splitlines()
    assert len(lines) == len(sample_entries())
    conf = next(line for line in lines if line.endswith(" etc/app.conf"))
    assert conf.startswith("-rw-r----- 1000/1001")
    assert "2023-11-14 22:13:20.123456789" in conf
    assert any(line.endswith("etc/hard link to etc/app.conf") for line in lines)
    assert any(line.startswith("crw-rw-rw- 0/0") and "1,3" in line for line in lines)
    assert any(line.startswith("-rwsr-xr-x") and line.endswith("long" * 40) for line in lines)


@pytest.mark.skipif(not (HAVE_GNU_TAR and IS_ROOT), reason="needs GNU tar and root")
def test_gnu_tar_extracts_it(tmp_path: Path) -> None:
    path = tmp_path / "layer.tar"
    path.write_bytes(tar_bytes(sample_entries()))
    dest = tmp_path / "x"
    dest.mkdir()
    subprocess.run(
        [
            "tar", "-xf", str(path), "-C", str(dest), "--numeric-owner",
            "--same-permissions", "--xattrs", "--xattrs-include=*",
        ],
        check=True,
    )  # fmt: skip
    conf = os.lstat(dest / "etc/app.conf")
    assert stat.S_IMODE(conf.st_mode) == 0o640
    assert (conf.st_uid, conf.st_gid) == (1000, 1001)
    assert conf.st_mtime_ns == T0 + 123_456_789
    assert os.getxattr(dest / "etc/app.conf", "user.note") == b"hi\x00\xff"
    hard = os.lstat(dest / "etc/hard")
    assert hard.st_ino == conf.st_ino and conf.st_nlink == 2
    assert os.readlink(dest / "etc/sym") == "app.conf"
    assert stat.S_IMODE(os.lstat(dest / ("etc/" + "long" * 40)).st_mode) == 0o4755
    null = os.lstat(dest / "dev/null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    loop = os.lstat(dest / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and loop.st_gid == 6
    fifo = os.lstat(dest / "dev/fifo")
    assert stat.S_ISFIFO(fifo.st_mode) and (fifo.st_uid, fifo.st_gid) == (5, 5)
    assert os.lstat(dest / "etc").st_mtime_ns == T0
    assert (dest / "caf\u00e9").exists()


# -- write_layer -------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["gzip", "zstd", "none"])
def test_write_layer_one_pass_digests(codec: str) -> None:
    items = sample_entries()
    out = io.BytesIO()
    info = write_layer(((e, None if d is None else io.BytesIO(d)) for e, d in items), out, codec)
    blob = out.getvalue()
    plain = tar_bytes(items)
    assert info.codec == codec
    assert info.entries == len(items)
    assert info.size == len(blob)
    assert info.digest == Digest.of_bytes(blob)
    assert info.uncompressed_size == len(plain)
    assert info.diff_id == Digest.of_bytes(plain)
    assert decompressor(codec, io.BytesIO(blob)).read() == plain
    if codec == "none":
        assert info.digest == info.diff_id
    else:
        assert info.digest != info.diff_id
    again = io.BytesIO()
    info2 = write_layer(((e, None if d is None else io.BytesIO(d)) for e, d in items), again, codec)
    assert again.getvalue() == blob and info2 == info


def _random_entries(r: random.Random, n: int) -> list[tuple[TarEntry, bytes | None]]:
    names = ["a", "bin", "usr/lib/x", "é/ü", "\udcff", "x" * 99, "y" * 100, "z" * 150, "d/" * 60]
    out: list[tuple[TarEntry, bytes | None]] = []
    for i in range(n):
        kind = r.choice(list(EntryType))
        name = f"{r.choice(names)}{i}"
        ns = r.choice(
            [
                0,
                1_700_000_000 * NS,
                1_700_000_000 * NS + r.randint(1, NS - 1),
                -5 * NS - 7,
                (0o77777777777 + 5) * NS,
            ]
        )
        ids = r.choice([0, 1000, 0o7777777, 0o7777777 + 1, 2**31])
        xattrs = r.choice([{}, {}, {"user.a": b"1"}, {"user.e": b""}])
        link = ""
        if kind in (EntryType.SYMLINK, EntryType.HARDLINK):
            link = r.choice(["t", "../x", "é", "q" * 120])
        data = None
        size = 0
        if kind is EntryType.REG:
            data = r.randbytes(r.randint(0, 1500))
            size = len(data)
        dev = (
            (r.randint(0, 300), r.randint(0, 300))
            if kind in (EntryType.CHAR, EntryType.BLOCK)
            else (0, 0)
        )
        out.append(
            (
                TarEntry(
                    name,
                    kind,
                    r.randint(0, 0o7777),
                    ids,
                    r.choice([0, ids]),
                    size,
                    ns,
                    link,
                    dev[0],
                    dev[1],
                    xattrs,
                ),
                data,
            )
        )
    return out


def _write(items: list[tuple[TarEntry, bytes | None]]) -> bytes:
    out = io.BytesIO()
    w = TarWriter(out)
    for entry, data in items:
        w.add(entry, None if data is None else io.BytesIO(data))
    w.close()
    return out.getvalue()


def test_common_entry_path_writes_the_same_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    r = random.Random(11)
    taken = 0
    real = TarWriter._add_common

    def counting(self: TarWriter, *args: object) -> bool:
        nonlocal taken
        ok = real(self, *args)  # type: ignore[arg-type]
        taken += ok
        return ok

    for _ in range(20):
        items = _random_entries(r, 60)
        monkeypatch.setattr(TarWriter, "_add_common", counting)
        fast = _write(items)
        monkeypatch.undo()
        monkeypatch.setattr(TarWriter, "_add_common", lambda *a: False)
        general = _write(items)
        monkeypatch.undo()
        assert fast == general
    assert 20 < taken < 1200  # both paths were exercised


def test_write_layer_bytes_unchanged_by_the_pipe() -> None:
    """The layer is the same whether the tar reaches the codec through the
    pipe thread or not (a plain serial run of the same pieces)."""
    files = [(f"f{i}", mixed_data(1000 * i + 1)) for i in range(1, 12)]

    def entries() -> list[tuple[TarEntry, io.BytesIO | None]]:
        return [
            (TarEntry(name, EntryType.REG, 0o644, 0, 0, len(d), T0), io.BytesIO(d))
            for name, d in files
        ]

    for codec in ("gzip", "zstd", "none"):
        piped = io.BytesIO()
        info = write_layer(entries(), piped, codec)  # type: ignore[arg-type]
        serial = io.BytesIO()
        orig = compression.PipeWriter
        try:
            import oci_tools.layer.writer as lw

            class Serial:
                def __init__(self, sink: compression.Writable, depth: int = 0) -> None:
                    self.write = sink.write

                def close(self) -> None:
                    pass

                def abort(self) -> None:
                    pass

            lw.PipeWriter = Serial  # type: ignore[assignment,misc]
            info2 = write_layer(entries(), serial, codec)  # type: ignore[arg-type]
        finally:
            lw.PipeWriter = orig  # type: ignore[misc]
        assert piped.getvalue() == serial.getvalue()
        assert info == info2
        assert info.digest == Digest("sha256", hashlib.sha256(piped.getvalue()).hexdigest())


def test_write_layer_failure_in_the_source_stops_the_pipe() -> None:
    def entries():  # type: ignore[no-untyped-def]
        yield TarEntry("a", EntryType.REG, 0o644, 0, 0, 3, T0), io.BytesIO(b"abc")
        raise RuntimeError("walk failed")

    before = {t.name for t in threading.enumerate()}
    with pytest.raises(RuntimeError, match="walk failed"):
        write_layer(entries(), io.BytesIO(), "gzip")
    assert not {t.name for t in threading.enumerate()} - before


def test_write_layer_uses_the_store_writers_hash() -> None:
    store = MemoryStore()
    w = store.writer()
    info = write_layer(
        [(TarEntry("a", EntryType.REG, 0o644, 0, 0, 5, T0), io.BytesIO(b"hello"))], w, "gzip"
    )
    assert w.commit() == info.digest
    assert store.blobs[info.digest][:2] == b"\x1f\x8b"


@pytest.mark.parametrize("wrap", [io.BytesIO, lambda b: io.BufferedReader(io.BytesIO(b))])
@pytest.mark.parametrize(
    ("data", "actual", "how"), [(b"ab", "2", "shrank"), (b"abcd", "more than 3", "grew")]
)
def test_content_of_another_size_than_measured_is_refused(
    wrap: Callable[[bytes], BinaryIO], data: bytes, actual: str, how: str
) -> None:
    """Read whole (BytesIO) or in a loop, content that is not ``size`` bytes
    gives the same error, naming the file and how it changed."""
    w = TarWriter(io.BytesIO())
    entry = TarEntry("etc/f", EntryType.REG, size=3, mtime_ns=1_500_000_000)
    with pytest.raises(DigestMismatchError) as info:
        w.add(entry, wrap(data))
    assert info.value.actual == actual and f"the file {how} while" in str(info.value.hint)
    assert "size of etc/f" in str(info.value)
