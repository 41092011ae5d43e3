"""The step cache (``oci_tools.build.cache``): what a key covers, and the
cache index kept in the layout by one gc root."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from oci_tools.build import CACHE_KEY_ANNOTATION, CACHE_ROOT
from oci_tools.build import cache as cache_mod
from oci_tools.build.cache import Cache, cache_key
from oci_tools.digest import Digest
from oci_tools.layout import Layout
from oci_tools.mutate import write_image
from oci_tools.spec.model import Descriptor

P1 = Digest.parse("sha256:" + "1" * 64)
P2 = Digest.parse("sha256:" + "2" * 64)


def test_cache_key_is_a_stable_sha256_of_parent_and_parts() -> None:
    k = cache_key(P1, "run", "echo hi")
    assert re.fullmatch(r"[0-9a-f]{64}", k)
    assert cache_key(P1, "run", "echo hi") == k
    assert cache_key(P2, "run", "echo hi") != k  # another parent state
    assert cache_key(P1, "meta", "echo hi") != k  # another kind of step
    assert cache_key(P1, "run", "echo ho") != k
    # Parts are delimited: moving text across a boundary is another key.
    assert cache_key(P1, "ru", "necho hi") != k


def _image(lay: Layout, n: int) -> Descriptor:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": [f"N={n}"]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }
    with lay.lock():
        return write_image(lay, doc, [])


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    return Layout.init(str(tmp_path / "lay"))


def test_put_then_get_from_a_fresh_cache(lay: Layout) -> None:
    assert Cache(lay).get("k1") is None
    desc = _image(lay, 1)
    with lay.lock():
        Cache(lay).put("k1", desc)
    again = Cache(lay)  # as the next build sees it
    got = again.get("k1")
    assert got is not None and got.digest == desc.digest
    assert again.get("k2") is None
    assert again.entries["k1"].annotations == {CACHE_KEY_ANNOTATION: "k1"}


def test_the_cache_is_a_gc_root_not_a_ref(lay: Layout) -> None:
    desc = _image(lay, 1)
    with lay.lock():
        Cache(lay).put("k1", desc)
    assert (Path(lay.roots_dir()) / f"{CACHE_ROOT}.json").is_file()
    assert lay.index().manifests == ()  # `ls` shows nothing
    lay.gc()
    got = Cache(lay).get("k1")
    assert got is not None and got.digest == desc.digest


def test_entries_of_other_builds_are_kept(lay: Layout) -> None:
    a, b = _image(lay, 1), _image(lay, 2)
    first, second = Cache(lay), Cache(lay)  # two builds, loaded at the same time
    with lay.lock():
        first.put("a", a)
        second.put("b", b)
    now = Cache(lay)
    assert now.get("a") is not None and now.get("b") is not None


def test_oldest_entries_are_dropped_beyond_the_limit(
    lay: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_mod, "CACHE_MAX_ENTRIES", 2)
    descs = [_image(lay, n) for n in range(3)]
    with lay.lock():
        c = Cache(lay)
        for n, d in enumerate(descs):
            c.put(f"k{n}", d)
    now = Cache(lay)
    assert now.get("k0") is None
    assert now.get("k1") is not None and now.get("k2") is not None


def test_a_damaged_cache_record_is_an_empty_cache(lay: Layout) -> None:
    with lay.lock():
        Cache(lay).put("k1", _image(lay, 1))
    (Path(lay.roots_dir()) / f"{CACHE_ROOT}.json").write_text("{not json")
    assert Cache(lay).entries == {}
