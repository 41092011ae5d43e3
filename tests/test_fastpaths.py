"""Fast paths give exactly what the general code gives: the tar writer's
common-entry path, and diff's flat byte sort keys against the reference
(rank, name)-tuple ordering."""

from __future__ import annotations

import io
import random

import pytest

from oci_tools.diff import _RANK_OPAQUE, _RANK_WHITEOUT, _child_key, _enc, _key
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.writer import TarWriter

NS = 1_000_000_000


def _random_entries(r: random.Random, n: int) -> list[tuple[TarEntry, bytes | None]]:
    names = ["a", "bin", "usr/lib/x", "é/ü", "\udcff", "x" * 99, "y" * 100, "z" * 150, "d/" * 60]
    out: list[tuple[TarEntry, bytes | None]] = []
    for i in range(n):
        kind = r.choice(list(EntryType))
        name = f"{r.choice(names)}{i}"
        ns = r.choice([0, 1_700_000_000 * NS, 1_700_000_000 * NS + r.randint(1, NS - 1),
                       -5 * NS - 7, (0o77777777777 + 5) * NS])
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
        dev = (r.randint(0, 300), r.randint(0, 300)) if kind in (
            EntryType.CHAR, EntryType.BLOCK) else (0, 0)
        out.append((TarEntry(name, kind, r.randint(0, 0o7777), ids, r.choice([0, ids]), size, ns,
                             link, dev[0], dev[1], xattrs), data))
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
