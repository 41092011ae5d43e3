"""Fast paths give exactly what the general code gives: the tar writer's
common-entry path, diff's flat byte sort keys against the reference
(rank, name)-tuple ordering, and apply's files created with their final mode
(fixed up only when the umask or owner says so)."""

from __future__ import annotations

import io
import os
import random
import stat
from pathlib import Path

import pytest
from builders import file, make_layer

from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.diff import _RANK_OPAQUE, _RANK_WHITEOUT, _child_key, _enc, _key
from oci_tools.digest import Digest
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.writer import TarWriter
from oci_tools.snapshot import Snapshot

NS = 1_000_000_000


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


def _tuple_key(rel: str) -> tuple[tuple[int, bytes], ...]:
    return () if not rel else tuple((2, c) for c in _enc(rel).split(b"/"))


def test_flat_sort_keys_order_like_component_tuples() -> None:
    r = random.Random(3)
    alphabet = ["a", "b", "a-", "a.b", "é", "\udcff", "ab", "a0", ".wh.x", "z", "A", "a\x01"]
    for _ in range(200):
        paths = {"/".join(r.choice(alphabet) for _ in range(r.randint(1, 4))) for _ in range(50)}
        ref, flat = [], []
        for p in paths:
            ref.append((_tuple_key(p), 2, p))
            flat.append((_key(p), 2, p))
            parent, _, name = p.rpartition("/")
            if r.random() < 0.3:
                wh = _enc(".wh." + name)
                ref.append(((*_tuple_key(parent), (1, wh)), 1, p))
                flat.append((_child_key(parent, _RANK_WHITEOUT, wh), 1, p))
            if r.random() < 0.2:
                ref.append(((*_tuple_key(p), (0, b"")), 0, p))
                flat.append((_child_key(p, _RANK_OPAQUE, b""), 0, p))
        ref.sort()
        flat.sort()
        assert [(w, p) for _, w, p in ref] == [(w, p) for _, w, p in flat]


# -- apply: files created with their final mode, owner fixed only when needed ----

IS_ROOT = os.geteuid() == 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
@pytest.mark.parametrize("rootless", [False, True])
def test_files_get_exact_modes_and_owners_with_a_snapshot(
    tmp_path: Path, umask: int, rootless: bool
) -> None:
    if not rootless and not IS_ROOT:
        pytest.skip("needs root (chown to other ids)")
    members = [
        file("plain", b"p", mode=0o644),
        file("exec", b"e", mode=0o755),
        file("private", b"s", mode=0o600),
        file("none", b"n", mode=0o000),
        file("all", b"a", mode=0o777),
        file("suid", b"u", mode=0o4755),
        file("sgid", b"g", mode=0o2711, gid=50),
        file("sticky", b"t", mode=0o1644),
        file("owned", b"o", mode=0o640, uid=1000, gid=1000),
        file("suid-owned", b"x", mode=0o4750, uid=7, gid=8),
    ]
    results = {}
    for with_snapshot in (True, False):
        root = tmp_path / f"r{with_snapshot}"
        root.mkdir()
        snap = Snapshot() if with_snapshot else None
        lay = make_layer(members, "gzip")
        old = os.umask(umask)
        try:
            apply_layer(
                io.BytesIO(lay.blob),
                str(root),
                codec="gzip",
                diff_id=Digest.parse(lay.diff_id),
                snapshot=snap,
                options=ApplyOptions(rootless=rootless),
            )
        finally:
            os.umask(old)
        got = {}
        for m in members:
            name = m.name if isinstance(m.name, str) else m.name.decode()
            st = os.lstat(root / name)
            got[name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if snap is not None:
                fs = snap.files[name]
                assert (fs.mode, fs.uid, fs.gid, fs.ctime_ns, fs.ino) == (
                    st.st_mode,
                    st.st_uid,
                    st.st_gid,
                    st.st_ctime_ns,
                    st.st_ino,
                )
        results[with_snapshot] = got
    assert results[True] == results[False]
    got = results[True]
    assert {n: mode for n, (mode, _, _) in got.items()} == {
        "plain": 0o644,
        "exec": 0o755,
        "private": 0o600,
        "none": 0o000,
        "all": 0o777,
        "suid": 0o4755,
        "sgid": 0o2711,
        "sticky": 0o1644,
        "owned": 0o640,
        "suid-owned": 0o4750,
    }
    if not rootless:
        assert got["owned"][1:] == (1000, 1000)
        assert got["suid-owned"][1:] == (7, 8)
        assert got["sgid"][2] == 50
