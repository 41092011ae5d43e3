"""The strict streaming tar reader: every dialect it accepts, every input it refuses."""

from __future__ import annotations

import io
import tarfile
import time

import pytest
from builders import (
    BLOCK,
    ZERO_BLOCK,
    Member,
    base256,
    blockdev,
    build_tar,
    chardev,
    corrupt_checksum,
    directory,
    ext_header,
    fifo,
    file,
    hardlink,
    member_offsets,
    octal,
    pax_records,
    symlink,
)

from oci_tools.errors import (
    LinkEscapeError,
    PathEscapeError,
    SpecialFileError,
    UnsafeLayerError,
)
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.reader import ReadLimits, iter_entries


def read_all(data: bytes, limits: ReadLimits | None = None) -> list[tuple[TarEntry, bytes]]:
    stream = io.BytesIO(data)
    it = iter_entries(stream) if limits is None else iter_entries(stream, limits)
    return [(e, c.read()) for e, c in it]


def names(data: bytes) -> list[str]:
    return [e.name for e, _ in read_all(data)]


# ----------------------------------------------------------------- accepted input


def test_ustar_all_types() -> None:
    tar = build_tar(
        [
            directory("d", mode=0o750, uid=5, gid=6, mtime=1000),
            file("d/f", b"hello", mode=0o4755, uid=1000, gid=100, mtime=1234),
            symlink("d/s", "../target/x"),
            hardlink("d/h", "d/f"),
            chardev("dev/null", 1, 3, mode=0o666),
            blockdev("dev/sda", 8, 0),
            fifo("run/p", mode=0o600),
        ]
    )
    got = read_all(tar)
    assert [(e.name, e.type) for e, _ in got] == [
        ("d", EntryType.DIR),
        ("d/f", EntryType.REG),
        ("d/s", EntryType.SYMLINK),
        ("d/h", EntryType.HARDLINK),
        ("dev/null", EntryType.CHAR),
        ("dev/sda", EntryType.BLOCK),
        ("run/p", EntryType.FIFO),
    ]
    d, f, s, h, null, sda, _ = (e for e, _ in got)
    assert (d.mode, d.uid, d.gid, d.mtime_ns) == (0o750, 5, 6, 1000 * 10**9)
    assert (f.mode, f.uid, f.gid, f.size) == (0o4755, 1000, 100, 5)
    assert got[1][1] == b"hello"
    assert s.linkname == "../target/x"
    assert h.linkname == "d/f"
    assert (null.devmajor, null.devminor, sda.devmajor) == (1, 3, 8)


def test_mode_type_bits_are_masked() -> None:
    ((e, _),) = read_all(build_tar([file("f", mode=0o100644)]))
    assert e.mode == 0o644


def test_ustar_prefix_field() -> None:
    long = "p" * 120 + "/" + "n" * 90
    tar = build_tar([file(long, b"x", long_names="prefix")])
    assert tar[345:346] == b"p"  # really used the prefix field
    assert names(tar) == [long]


def test_gnu_prefix_area_is_not_a_prefix() -> None:
    # GNU headers keep atime/ctime where ustar has the prefix: never join it.
    tar = build_tar([file("f", fmt="gnu", raw={"prefix": octal(1234, 12)})])
    assert names(tar) == ["f"]


def test_v7_header_and_old_style_directory() -> None:
    tar = build_tar(
        [
            Member("olddir/", b"\0", fmt="v7"),
            Member("olddir/file", b"\0", b"data", fmt="v7"),
        ]
    )
    got = read_all(tar)
    assert [(e.name, e.type) for e, _ in got] == [
        ("olddir", EntryType.DIR),
        ("olddir/file", EntryType.REG),
    ]
    assert got[1][1] == b"data"


def test_gnu_long_name_and_long_link() -> None:
    name = "/".join(["dir" * 30] * 3) + "/file"
    target = "t" * 150
    tar = build_tar(
        [
            file(name, b"content", long_names="gnu", fmt="gnu"),
            symlink("link", target, long_names="gnu", fmt="gnu"),
            hardlink("hl", name, long_names="gnu", fmt="gnu"),
        ]
    )
    got = read_all(tar)
    assert got[0][0].name == name and got[0][1] == b"content"
    assert got[1][0].linkname == target
    assert got[2][0].linkname == name


def test_pax_overrides() -> None:
    name = "x" * 200 + "/" + "y" * 200
    tar = build_tar(
        [
            file(
                "short",
                b"12345678",
                pax={
                    "path": name,
                    "uid": "4294967294",
                    "gid": "70000",
                    "size": "8",
                    "uname": "ignored",
                    "comment": "anything",
                },
            ),
            symlink("l", "short", pax={"linkpath": "/abs/" + "y" * 200}),
        ]
    )
    (f, data), (link, _) = read_all(tar)
    assert (f.name, f.uid, f.gid, f.size, data) == (name, 2**32 - 2, 70000, 8, b"12345678")
    assert link.linkname == "/abs/" + "y" * 200


@pytest.mark.parametrize(
    ("value", "ns"),
    [
        ("1700000000.123456789", 1700000000123456789),
        ("1700000000.5", 1700000000500000000),
        ("1700000000.1234567891234", 1700000000123456789),  # truncated past ns
        ("7", 7_000_000_000),
        ("-1.5", -1_500_000_000),
        ("0.000000001", 1),
    ],
)
def test_pax_mtime_nanoseconds_exact(value: str, ns: int) -> None:
    ((e, _),) = read_all(build_tar([file("f", pax={"mtime": value})]))
    assert e.mtime_ns == ns


def test_mtime_only_pax_header_fast_path_matches_the_general_one() -> None:
    """A PAX header holding only ``mtime`` takes the reader's fast path; with
    another record beside it, or in a second header, the general one: the
    entries are the same either way, and the later header still wins."""
    t = "1796422938.296464199"
    fast = read_all(build_tar([file("a/f", b"x", pax={"mtime": t}), directory("a")]))
    general = read_all(build_tar([file("a/f", b"x", pax={"mtime": t, "uid": "0"}), directory("a")]))
    assert fast == general
    assert fast[0][0].mtime_ns == 1796422938296464199
    # Two mtime-only headers in front of one member: the later one wins.
    first = ext_header(b"x", pax_records({"mtime": "5.5"}))
    second = ext_header(b"x", pax_records({"mtime": "7.25"}))
    ((e, _),) = read_all(first + second + build_tar([file("g")]))
    assert e.mtime_ns == 7_250_000_000
    ((e, _),) = read_all(second + first + build_tar([file("g")]))
    assert e.mtime_ns == 5_500_000_000
    # Trailing bytes after the one record: not the fast path, still refused.
    with pytest.raises(UnsafeLayerError, match="PAX"):
        read_all(ext_header(b"x", pax_records({"mtime": "5"}) + b"x") + build_tar([file("g")]))


def test_buffered_content_is_the_whole_rest() -> None:
    tar = build_tar([file("f", b"hello world"), file("g", b"")])
    it = iter_entries(io.BytesIO(tar))
    e, content = next(it)
    assert content.read(6) == b"hello "
    view = content.buffered()
    assert view is not None and bytes(view) == b"world"
    assert content.remaining == 0 and content.read() == b""
    e, content = next(it)
    assert e.name == "g"
    view = content.buffered()
    assert view is not None and bytes(view) == b""


def test_make_entry_equals_the_dataclass() -> None:
    from oci_tools.layer.entry import make_entry

    args = ("a/b", EntryType.SYMLINK, 0o777, 1, 2, 0, 5, "t", 0, 0, {"user.x": b"1"})
    made = make_entry(*args)
    assert made == TarEntry(*args)
    with pytest.raises(AttributeError):
        made.name = "c"  # type: ignore[misc]


def test_pax_xattrs_are_raw_bytes() -> None:
    tar = build_tar(
        [
            file(
                "f",
                pax={
                    "SCHILY.xattr.user.bin": b"\x80\x00\xff=\n",
                    "SCHILY.xattr.security.capability": b"\x01\x00\x00\x02",
                },
            )
        ]
    )
    ((e, _),) = read_all(tar)
    assert dict(e.xattrs) == {
        "user.bin": b"\x80\x00\xff=\n",
        "security.capability": b"\x01\x00\x00\x02",
    }


def test_non_utf8_names_round_trip() -> None:
    raw = b"caf\xe9/\xff\xfe"
    ((e, _),) = read_all(build_tar([file(raw)]))
    assert e.name.encode("utf-8", "surrogateescape") == raw


def test_base256_numbers() -> None:
    big = 2**33 + 5
    tar = build_tar(
        [
            file(
                "f",
                b"abc",
                raw={
                    "uid": base256(3_000_000, 8),
                    "gid": base256(2**32 - 2, 8),
                    "mtime": base256(big, 12),
                    "size": base256(3, 12),
                },
            ),
        ]
    )
    ((e, data),) = read_all(tar)
    assert (e.uid, e.gid, e.mtime_ns, e.size, data) == (
        3_000_000,
        2**32 - 2,
        big * 10**9,
        3,
        b"abc",
    )


def test_negative_base256_mtime_is_kept() -> None:
    ((e, _),) = read_all(build_tar([file("f", raw={"mtime": base256(-10, 12)})]))
    assert e.mtime_ns == -10 * 10**9


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("/etc/passwd", "etc/passwd"),
        ("./etc/passwd", "etc/passwd"),
        ("etc//passwd", "etc/passwd"),
        ("etc/./passwd", "etc/passwd"),
        ("a/b/../c", "a/c"),
        ("usr/lib/", "usr/lib"),
        ("///x", "x"),
        ("a\\b", "a\\b"),  # backslash is an ordinary character on Linux
    ],
)
def test_name_cleaning(raw: str, clean: str) -> None:
    assert names(build_tar([file(raw)])) == [clean]


@pytest.mark.parametrize("raw", ["./", "/", ".", "a/.."])
def test_root_directory_entry(raw: str) -> None:
    ((e, _),) = read_all(build_tar([Member(raw, b"5", mode=0o755)]))
    assert e.name == "" and e.type is EntryType.DIR


def test_header_only_types_carry_no_data() -> None:
    # A size on a symlink header is ignored, as Go does: no data blocks follow.
    tar = build_tar([symlink("l", "t", size=100), file("f", b"x")])
    assert names(tar) == ["l", "f"]


def test_unread_content_is_skipped_and_partial_reads() -> None:
    big = bytes(range(256)) * 5000
    tar = build_tar([file("a", big), file("b", b"second"), file("c", b"")])
    it = iter_entries(io.BytesIO(tar))
    _a, ca = next(it)
    assert ca.read(10) == big[:10]
    buf = bytearray(7)
    assert ca.readinto(buf) == 7 and bytes(buf) == big[10:17]
    b, cb = next(it)  # the rest of a is skipped
    assert b.name == "b" and cb.read() == b"second"
    c, cc = next(it)
    assert c.name == "c" and cc.read() == b"" and cc.read(5) == b""
    assert list(it) == []


def test_chunks_are_zero_copy_and_complete() -> None:
    data = b"z" * (3 * 1024 * 1024 + 17)
    _e, c = next(iter_entries(io.BytesIO(build_tar([file("f", data)]))))
    assert b"".join(bytes(x) for x in c.chunks()) == data


def test_pax_global_header_is_ignored() -> None:
    g = ext_header(b"g", pax_records({"path": "evil", "uid": "12345", "SCHILY.xattr.user.x": "1"}))
    tar = build_tar([g, file("a"), file("b")])
    got = read_all(tar)
    assert [(e.name, e.uid, dict(e.xattrs)) for e, _ in got] == [("a", 0, {}), ("b", 0, {})]


def test_pax_size_applies_to_the_next_real_member_like_go() -> None:
    # PAX size, then a GNU long name, then the member: PAX wins (as Go).
    x = ext_header(b"x", pax_records({"size": "4"}))
    long = ext_header(b"L", b"longname\0", name=b"././@LongLink", fmt="gnu")
    tar = build_tar([x, long, file("short", b"ABCD", size=0, pad_data=False), bytes(BLOCK - 4)])
    ((e, data),) = read_all(tar)
    assert (e.name, e.size, data) == ("longname", 4, b"ABCD")


def test_end_of_archive_single_zero_block_then_eof() -> None:
    assert names(build_tar([file("a")], eof_blocks=1)) == ["a"]


def test_trailing_data_after_end_is_left_to_the_caller() -> None:
    tar = build_tar([file("a", b"1")], trailing=b"junk" * 1000)
    stream = io.BytesIO(tar)
    assert [e.name for e, _ in iter_entries(stream)] == ["a"]


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_reads_what_python_tarfile_writes(fmt: int) -> None:
    # A differential check against an independent writer.
    buf = io.BytesIO()
    long = "deep/" * 30 + "file.txt"
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for name, data in [("a.txt", b"alpha"), (long, b"beta" * 1000)]:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 1_600_000_000
            ti.uid = 1000 if fmt != tarfile.USTAR_FORMAT else 7
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("link")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "a.txt"
        tf.addfile(ti)
    got = read_all(buf.getvalue())
    assert [(e.name, d) for e, d in got] == [
        ("a.txt", b"alpha"),
        (long, b"beta" * 1000),
        ("link", b""),
    ]
    assert got[0][0].mtime_ns == 1_600_000_000 * 10**9


# ----------------------------------------------------------------- refused input


def three() -> bytes:
    return build_tar([file("a", b"1" * 700), file("b", b"2" * 10), file("c", b"3")])


def test_corrupt_checksum_of_second_header() -> None:
    # tarfile stops silently here and lists only 'a'.
    with pytest.raises(UnsafeLayerError, match="checksum"):
        read_all(corrupt_checksum(three(), 1))


def test_wrong_checksum_field_value() -> None:
    with pytest.raises(UnsafeLayerError, match="checksum"):
        read_all(build_tar([file("a", chksum=b"0000000\0")]))


def test_signed_checksum_is_accepted() -> None:
    # Old tars computed the checksum over signed chars.
    m = file(b"\xe9t\xe9")
    raw = bytearray(m.to_bytes())
    signed = sum((b - 256 if b >= 128 else b) for b in raw[:148] + raw[156:512]) + 256
    raw[148:156] = b"%06o\0 " % signed
    assert names(build_tar([bytes(raw)])) == ["\udce9t\udce9"]


def test_truncated_mid_header() -> None:
    tar = three()
    cut = member_offsets(tar)[1] + 100
    with pytest.raises(UnsafeLayerError, match="truncated tar header"):
        read_all(tar[:cut])


def test_truncated_mid_content() -> None:
    tar = three()
    with pytest.raises(UnsafeLayerError, match="truncated content"):
        read_all(tar[: BLOCK + 300])


def test_truncated_in_padding() -> None:
    tar = three()
    with pytest.raises(UnsafeLayerError, match="truncated"):
        read_all(tar[: BLOCK + 1000])


def test_clean_end_without_end_of_archive_blocks_is_accepted() -> None:
    # Go's archive/tar, containerd and umoci read a tar that stops at a header
    # boundary without the two zero blocks as complete (issue 15 item 12).
    assert names(build_tar([file("a"), file("b", b"x" * 700)], eof_blocks=0)) == ["a", "b"]
    assert [c for _, c in read_all(three()[: member_offsets(three())[2]])] == [
        b"1" * 700,
        b"2" * 10,
    ]


def test_empty_stream_is_an_empty_archive() -> None:
    assert read_all(b"") == []


def test_extension_header_cut_before_its_member_is_refused() -> None:
    tar = build_tar([file("p" * 150, pax={"path": "q" * 150})], eof_blocks=0)
    cut = member_offsets(tar)[1]  # after the PAX header, before the member
    with pytest.raises(UnsafeLayerError, match="extension header not followed"):
        read_all(tar[:cut])


@pytest.mark.parametrize("cut", [1, 100, 511, 512 + 1, 512 + 699, 512 + 700, 512 + 1023])
def test_cut_inside_a_header_or_an_entry_is_still_refused(cut: int) -> None:
    with pytest.raises(UnsafeLayerError, match="truncated"):
        read_all(three()[:cut])


def test_data_after_single_zero_block() -> None:
    tar = build_tar([file("a")], eof_blocks=0) + ZERO_BLOCK + file("b").to_bytes()
    with pytest.raises(UnsafeLayerError, match="non-zero block"):
        read_all(tar)


@pytest.mark.parametrize(
    ("member", "match"),
    [
        (file("neg", raw={"size": base256(-1, 12)}), "negative size"),
        (file("u", raw={"uid": base256(-1, 8)}), "uid -1"),
        (file("g", raw={"gid": base256(-1, 8)}), "gid -1"),
        (file("u", pax={"uid": str(2**32)}), "uid 4294967296"),
        (file("u", pax={"uid": str(2**32 - 1)}), "uid 4294967295"),
        (file("g", pax={"gid": "99999999999999"}), "gid"),
        (file("u", pax={"uid": "-5"}), "invalid PAX uid"),
        (file("s", pax={"size": "+5"}), "invalid PAX size"),
        (file("m", pax={"mtime": "1.2.3"}), "invalid PAX mtime"),
        (file("m", pax={"mtime": "1e9"}), "invalid PAX mtime"),
        (file("o", raw={"mode": b"+644\0"}), "invalid octal"),
        (file("o", raw={"size": b"1_0\0"}), "invalid octal"),
        (Member("t", b"7"), "type flag '7'"),
        (Member("t", b"X"), "type flag 'X'"),
        (Member("t", b"V"), "type flag 'V'"),
        (Member("t", b"Z"), "type flag 'Z'"),
        (Member("t", b"\x01"), "type flag"),
        (Member("t", b"S", fmt="gnu"), "sparse"),
        (file("t", pax={"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}), "sparse"),
        (file("t", pax={"GNU.sparse.realsize": "1099511627776"}), "sparse"),
        (chardev("d", 2**32, 0, raw={"devmajor": base256(2**32, 8)}), "device number"),
        (file("../x"), "escapes"),
        (file("a/../../x"), "escapes"),
        (file("x", pax={"path": "../../etc/passwd"}), "escapes"),
        (file("a" * 256), "longer than 255"),
        (file("x", pax={"path": b"a\0b"}), "NUL"),
        (symlink("l", "x", pax={"linkpath": b"a\0b"}), "NUL"),
        (symlink("l", ""), "empty symlink target"),
        (hardlink("h", "../outside"), "escapes"),
        (hardlink("h", "/"), "root"),
        (file("."), "root entry"),
        (symlink("./", "/tmp"), "root entry"),
        (hardlink("/", "x"), "root entry"),
    ],
)
def test_refused_members(member: Member, match: str) -> None:
    with pytest.raises(UnsafeLayerError, match=match):
        read_all(build_tar([file("before"), member]))


def test_escape_error_classes() -> None:
    with pytest.raises(PathEscapeError):
        read_all(build_tar([file("../x")]))
    with pytest.raises(LinkEscapeError):
        read_all(build_tar([hardlink("h", "a/../../x")]))
    with pytest.raises(SpecialFileError):
        read_all(build_tar([Member("x", b"S")]))


def test_gnu_long_name_with_embedded_nul() -> None:
    tar = build_tar([ext_header(b"L", b"a\0b\0", name=b"././@LongLink", fmt="gnu"), file("x")])
    with pytest.raises(UnsafeLayerError, match="NUL"):
        read_all(tar)


@pytest.mark.parametrize(
    "records",
    [
        b"0 \n",  # zero-length record (CVE-2019-20907 looped forever)
        b"3 \n",
        b"10 path\n",  # no '='
        b"9 =value\n",  # empty key
        b"99 path=x\n",  # length past the end
        b"x path=abc\n",
        b"11 path=abcd\n",  # length off by one: record does not end in newline
        b"11 path=abc\nGARBAGE",
    ],
)
def test_malformed_pax_records(records: bytes) -> None:
    tar = build_tar([ext_header(b"x", records), file("f")])
    with pytest.raises(UnsafeLayerError, match="PAX"):
        read_all(tar)


def test_huge_pax_header_refused_before_reading() -> None:
    # The size field claims 2 GiB; nothing of it is read or buffered.
    tar = ext_header(b"x", b"", size=2**31)[:BLOCK]
    with pytest.raises(UnsafeLayerError, match="extension header of 2147483648 bytes"):
        read_all(tar)


def test_pax_header_over_cap() -> None:
    big = pax_records({"SCHILY.xattr.user.big": b"v" * (1 << 20)})
    with pytest.raises(UnsafeLayerError, match="exceeds"):
        read_all(build_tar([ext_header(b"x", big), file("f")]))


def test_many_pax_headers_over_cumulative_cap() -> None:
    part = ext_header(b"x", pax_records({"SCHILY.xattr.user.a": b"v" * 300_000}))
    with pytest.raises(UnsafeLayerError, match="for one member"):
        read_all(build_tar([part, part, part, part, file("f")]))


def test_gnu_long_name_over_cap() -> None:
    tar = ext_header(b"L", b"", size=(1 << 20) + 1, fmt="gnu")[:BLOCK]
    with pytest.raises(UnsafeLayerError, match="extension header"):
        read_all(tar)


def test_custom_header_cap() -> None:
    tar = build_tar([file("x" * 200)])  # a small PAX path record
    with pytest.raises(UnsafeLayerError, match="exceeds 100"):
        read_all(tar, ReadLimits(max_header_bytes=100))


def test_max_entry_size() -> None:
    with pytest.raises(UnsafeLayerError, match="exceeds the limit"):
        read_all(build_tar([file("f", b"x" * 100)]), ReadLimits(max_entry_size=10))


def test_extension_header_at_end_of_archive() -> None:
    tar = build_tar([ext_header(b"x", pax_records({"path": "a"}))])
    with pytest.raises(UnsafeLayerError, match="not followed by a member"):
        read_all(tar)


# ----------------------------------------------------------------- speed


@pytest.mark.slow
def test_reader_throughput() -> None:
    data = bytes(range(256)) * 128  # 32 KiB
    members = [file(f"dir{i // 100}/file{i}", data) for i in range(4000)]
    tar = build_tar(members)  # ~130 MB
    t0 = time.perf_counter()
    n = 0
    for _e, c in iter_entries(io.BytesIO(tar)):
        for mv in c.chunks():
            n += len(mv)
    dt = time.perf_counter() - t0
    assert n == 4000 * len(data)
    # Throughput is reported, never asserted (make bench measures speed).
    print(f"reader: {len(tar) / dt / 1e6:.0f} MB/s")
