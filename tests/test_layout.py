"""layout: init/open, refs, the writer lock, atomic index replacement, gc
roots and the one blob-graph walk."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest

from oci_tools.digest import Digest
from oci_tools.errors import ClobberError, InvalidLayoutError, RefNotFoundError, UsageError
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, ImageConfig, Index, Manifest
from oci_tools.store import put_bytes


def _image(lay: Layout, text: bytes = b"layer") -> Descriptor:
    """Put a one-layer image into ``lay`` (untagged); returns its manifest descriptor."""
    layer = gzip.compress(text, mtime=0)
    ldesc = Descriptor(mt.OCI_LAYER_GZIP, put_bytes(lay.store, layer), len(layer))
    cfg = ImageConfig.from_dict(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [str(Digest.of_bytes(text))]},
        }
    )
    put_bytes(lay.store, cfg.raw)
    m = Manifest.build(cfg.descriptor(mt.OCI_CONFIG), [ldesc])
    put_bytes(lay.store, m.raw)
    return m.descriptor(mt.OCI_MANIFEST)


def test_init_writes_header_and_empty_index_and_open_reads_them(tmp_path: Path) -> None:
    path = tmp_path / "lay"
    Layout.init(str(path))
    assert json.loads((path / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    assert json.loads((path / "index.json").read_text())["manifests"] == []
    assert (path / "blobs" / "sha256").is_dir()
    assert Layout.open(str(path)).refs() == []


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(ClobberError):
        Layout.init(str(tmp_path))


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: None, "no such directory"),
        (lambda p: p.mkdir(), "missing oci-layout"),
        (
            lambda p: (p.mkdir(), (p / "oci-layout").write_text('{"imageLayoutVersion":"2"}')),
            "unsupported imageLayoutVersion",
        ),
    ],
)
def test_open_refuses_what_is_not_a_layout(tmp_path: Path, setup: object, message: str) -> None:
    path = tmp_path / "lay"
    setup(path)  # type: ignore[operator]
    with pytest.raises(InvalidLayoutError, match=message):
        Layout.open(str(path))


def test_refs_set_lookup_replace_and_remove(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    a, b = _image(lay, b"a"), _image(lay, b"b")
    lay.set_ref("v1", a)
    lay.set_ref("v2", b)
    assert [n for n, _ in lay.refs()] == ["v1", "v2"]
    assert lay.lookup("v1").digest == a.digest
    lay.set_ref("v1", b)  # replaces, never duplicates
    assert [n for n, _ in lay.refs()] == ["v2", "v1"]
    assert lay.lookup("v1").digest == b.digest
    assert lay.remove_ref("v2").digest == b.digest
    with pytest.raises(RefNotFoundError):
        lay.lookup("v2")
    with pytest.raises(UsageError):
        lay.set_ref("bad ref!", a)


def test_resolve_gives_the_manifest(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    desc = _image(lay)
    lay.set_ref("app", desc)
    r = lay.resolve("app")
    assert r.manifest.digest == desc.digest and len(r.manifest.layers) == 1


def test_index_is_replaced_atomically_and_a_failed_change_keeps_it(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    lay.set_ref("v1", _image(lay))
    before = Path(lay.path, "index.json").read_bytes()

    def boom(entries: list[Descriptor]) -> list[Descriptor]:
        raise RuntimeError("half-way")

    with pytest.raises(RuntimeError):
        lay.update_index(boom)
    assert Path(lay.path, "index.json").read_bytes() == before
    # No temp file is left beside index.json.
    assert sorted(os.listdir(lay.path)) == [".oci-tools", "blobs", "index.json", "oci-layout"]


def test_concurrent_writers_under_the_lock_lose_no_ref(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    desc = _image(lay)
    errors: list[BaseException] = []

    def tag(i: int) -> None:
        try:
            Layout.open(lay.path).set_ref(f"r{i}", desc)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=tag, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(n for n, _ in lay.refs()) == [f"r{i}" for i in range(8)]


def test_lock_is_reentrant_in_one_process(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    desc = _image(lay)
    with lay.lock():
        lay.set_ref("inside", desc)  # takes the lock again without deadlock
    assert lay.lookup("inside").digest == desc.digest


def test_gc_keeps_tagged_and_extra_roots_and_deletes_the_rest(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    kept, rooted, garbage = _image(lay, b"k"), _image(lay, b"r"), _image(lay, b"g")
    lay.set_ref("kept", kept)
    owner = tmp_path / "bundle"
    owner.mkdir()
    lay.add_root("bundle", rooted, owner=str(owner))
    freed = {dg for dg, _ in lay.gc()}
    assert garbage.digest in freed
    assert lay.store.has(kept.digest) and lay.store.has(rooted.digest)
    assert not lay.store.has(garbage.digest)
    # A root whose owner is gone is kept (the owner may have moved) and
    # reported, until it is pruned explicitly.
    owner.rmdir()
    assert lay.gc() == []
    assert [r.key for r in lay.missing_roots()] == ["bundle"]
    assert rooted.digest in {dg for dg, _ in lay.gc(dry_run=True, prune_missing=True)}
    assert lay.store.has(rooted.digest) and lay.missing_roots()
    freed = {dg for dg, _ in lay.gc(prune_missing=True)}
    assert rooted.digest in freed and lay.store.has(kept.digest)
    assert lay.missing_roots() == []


def test_walk_visits_each_blob_once_with_where_it_was_found(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    m = _image(lay)
    idx = Index.build([m, m])  # the same manifest twice: visited once
    put_bytes(lay.store, idx.raw)
    top = idx.descriptor(mt.OCI_INDEX)
    seen: list[tuple[str, str]] = []

    def visit(d: Descriptor, where: str) -> bool:
        seen.append((d.media_type, where))
        return True

    lay.walk([(top, "root")], visit)
    manifest = lay.manifest(m)
    assert manifest.config is not None
    assert sorted(seen) == sorted(
        [
            (mt.OCI_INDEX, "root"),
            (mt.OCI_MANIFEST, f"{top.digest} manifests[1]"),
            (mt.OCI_CONFIG, f"{m.digest} config"),
            (mt.OCI_LAYER_GZIP, f"{m.digest} layers[0]"),
        ]
    )


def test_walk_does_not_descend_when_visit_says_no(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    m = _image(lay)
    seen: list[Descriptor] = []
    lay.walk([(m, "root")], lambda d, w: seen.append(d) is not None)
    assert seen == [m]


def test_reachable_includes_missing_blobs_and_follows_subjects(tmp_path: Path) -> None:
    lay = Layout.init(str(tmp_path / "lay"))
    m = _image(lay)
    missing = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(b"not stored"), 10)
    doc = json.loads(lay.read_blob(m))
    doc["subject"] = missing.to_dict()
    referrer = Manifest.parse(json.dumps(doc).encode())
    put_bytes(lay.store, referrer.raw)
    live = lay.reachable([referrer.descriptor(mt.OCI_MANIFEST)])
    assert missing.digest in live
    assert referrer.digest in live
    assert lay.manifest(m).layers[0].digest in live


def test_is_same_knows_a_layout_by_its_directory_however_named(tmp_path: Path) -> None:
    a = Layout.init(str(tmp_path / "lay"))
    (tmp_path / "link").symlink_to(tmp_path / "lay")
    assert a.is_same(a)
    assert a.is_same(Layout.open(str(tmp_path / "link")))
    assert not a.is_same(Layout.init(str(tmp_path / "other")))
