"""Golden tables for history, images, df, status and diff; the seed scenario."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
from pathlib import Path

import pytest
from helpers import cli
from verify import assert_valid_layout

import oci_tools.cli._common as cli_common
import oci_tools.compression
import oci_tools.layer.stream
import oci_tools.views.sizes

T0 = "2024-01-01T00:00:00Z"
GOLDEN = Path(__file__).resolve().parent.parent / "testdata" / "golden"


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


@pytest.fixture
def frozen_now(monkeypatch: pytest.MonkeyPatch) -> None:
    now = dt.datetime(2024, 1, 1, 0, 1, 30, tzinfo=dt.UTC)  # 90 s after T0
    monkeypatch.setattr(cli_common, "now", lambda: now)


@pytest.fixture
def seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The layering lab: a base of a few steps, and an app image extending it."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1704067200")  # == T0
    lay = tmp_path / "lay"
    ok("new", f"{lay}:scratch")
    b = tmp_path / "step"
    ok("unpack", f"{lay}:scratch", str(b))
    r = b / "rootfs"
    (r / "etc").mkdir()
    (r / "etc/os-release").write_bytes(random.Random(0).randbytes(6110000))
    ok("commit", str(b), f"{lay}:base", "--created-by", "/bin/sh -c #(nop) ADD file:abc in / ")
    ok("config", f"{lay}:base", "--cmd", '["bash"]')
    ok("unpack", "--force", f"{lay}:base", str(b))
    (r / "usr/src/app").mkdir(parents=True)
    ok("commit", str(b), f"{lay}:base", "--created-by", "/bin/sh -c mkdir -p /usr/src/app")
    ok("config", f"{lay}:base", "--workdir", "/usr/src/app")
    a = tmp_path / "app"
    ok("unpack", f"{lay}:base", str(a))
    (a / "rootfs/usr/src/app/server.js").write_bytes(b"y" * 578)
    ok(
        "commit",
        str(a),
        f"{lay}:app",
        "--created-by",
        "/bin/sh -c #(nop) COPY file:0123456789abcdef0123456789abcdef in /usr/src/app/ ",
    )
    ok("config", f"{lay}:app", "--expose", "8080")
    return lay


def _ids(lay: Path, ref: str) -> str:
    return json.loads(ok("inspect", "--index", f"{lay}:{ref}"))["config"]["digest"]


def _cells(line: str) -> list[str]:
    return re.split(r"\s{3,}", line.rstrip())


def test_history_child_contains_parent_rows(seed: Path, frozen_now: None) -> None:
    base = [_cells(x) for x in ok("history", "--no-trunc", f"{seed}:base").splitlines()]
    app = [_cells(x) for x in ok("history", "--no-trunc", f"{seed}:app").splitlines()]
    assert app[0] == base[0]  # header
    n = len(base) - 1
    assert [r[1:] for r in app[-n:]] == [r[1:] for r in base[1:]]  # parent rows identical
    assert app[-n][0] == base[1][0]  # the state that is the tagged base shows its id
    assert app[2][0] == "<missing>" and app[1][0] != "<missing>"
    assert len(app) - 1 == n + 2


def test_history_golden(seed: Path, frozen_now: None) -> None:
    out = ok("history", f"{seed}:app")
    top = out.splitlines()[1].split()[0]
    base_top = ok("history", "-q", f"{seed}:base").split()[0]
    golden = (GOLDEN / "history-app.txt").read_text()
    expected = golden.replace("{top}", top).replace("{base_top}", base_top)
    assert out == expected


def test_history_flags(seed: Path, frozen_now: None) -> None:
    raw = ok("history", "--human=false", "--no-trunc", f"{seed}:app").splitlines()
    assert raw[0].split()[:3] == ["IMAGE", "CREATED", "AT"]
    assert raw[1].split()[0].startswith("sha256:") and "2024-01-01T00:00:00Z" in raw[1]
    assert "COPY file:0123456789abcdef0123456789abcdef in /usr/src/app/" in raw[2]
    assert raw[-1].split()[-1] == "6110000"  # plain bytes, Docker's: the file's
    q = ok("history", "-q", f"{seed}:app").split()
    assert len(q) == 6 and q[1] == "<missing>"
    rows = [json.loads(x) for x in ok("history", "--format", "json", f"{seed}:app").splitlines()]
    assert rows[0]["CreatedBy"] == "/bin/sh -c #(nop)  EXPOSE 8080" and rows[-1]["Size"] == "6.11MB"


def test_images_and_df_count_shared_layers_once(seed: Path, frozen_now: None) -> None:
    out = ok("images", str(seed)).splitlines()
    assert out[0].split() == [
        "REF",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
        "SHARED",
        "SIZE",
        "UNIQUE",
        "SIZE",
    ]
    rows = {ln.split()[0]: ln.split() for ln in out[1:]}
    # Docker's sizes: regular-file bytes (the mkdir layer is 0B, COPY 578B).
    assert rows["base"][-3:] == ["6.11MB", "6.11MB", "0B"]
    assert rows["app"][-3:] == ["6.11MB", "6.11MB", "578B"]
    assert rows["scratch"][-3:] == ["0B", "0B", "0B"]
    df = ok("df", str(seed)).splitlines()
    assert df[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    layers_row = df[2].split()
    assert layers_row[:2] == ["Layers", "3"]
    on_disk = sum(p.stat().st_size for p in (seed / "blobs/sha256").iterdir())
    layer_bytes = sum(
        (seed / "blobs/sha256" / d["digest"].split(":")[1]).stat().st_size
        for d in json.loads(ok("inspect", f"{seed}:app"))["layers"]
    )
    assert layer_bytes < on_disk < 2 * layer_bytes  # shared layers stored once
    v = ok("df", "-v", str(seed))
    assert "Images space usage:" in v and "Layers space usage:" in v


def test_container_status_diff_commit(seed: Path, tmp_path: Path, frozen_now: None) -> None:
    c = tmp_path / "c"
    ok("unpack", f"{seed}:app", str(c))
    (c / "rootfs/usr/src/app/new.txt").write_bytes(b"z" * 1234)
    (c / "rootfs/etc/os-release").unlink()
    st = ok("status", str(c)).splitlines()
    assert st[0].split() == ["BUNDLE", "IMAGE", "COMMAND", "CREATED", "SIZE"]
    assert st[1].endswith("1.23kB (virtual 6.11MB)")
    assert "app@" in st[1]
    assert ok("diff", str(c)).splitlines() == [
        "C /etc",
        "D /etc/os-release",
        "C /usr",
        "C /usr/src",
        "C /usr/src/app",
        "A /usr/src/app/new.txt",
    ]
    js = [json.loads(x) for x in ok("diff", "--format", "json", str(c)).splitlines()]
    assert js[1] == {"Kind": "D", "Path": "/etc/os-release"}
    before = len(ok("history", "-q", f"{seed}:app").split())
    ok("commit", str(c), f"{seed}:app")
    assert len(ok("history", "-q", f"{seed}:app").split()) == before + 1
    assert_valid_layout(str(seed))


def test_views_read_only_json(seed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once sizes are known, views never decompress a layer."""
    ok("images", str(seed))

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a view decompressed a layer")

    # views.sizes imports these where a layer is read (start-up): patch their homes.
    monkeypatch.setattr(oci_tools.compression, "decompressor", boom)
    monkeypatch.setattr(oci_tools.layer.stream, "open_layer_stream", boom)
    ok("images", str(seed))
    ok("history", f"{seed}:app")
    ok("df", "-v", str(seed))
    assert os.path.isdir(seed)


def test_views_return_data_rows(seed: Path, tmp_path: Path) -> None:
    """The views give typed values (numbers in bytes, full ids), never text to print."""
    from oci_tools import views
    from oci_tools.image import Image
    from oci_tools.layout import Layout

    lay = Layout.open(str(seed))
    hist = views.history_rows(Image.load(lay, "app"))
    assert all(isinstance(r, views.HistoryRow) for r in hist)
    assert hist[0].id.startswith("sha256:") and hist[-1].size == 6110000
    assert hist[-1].uncompressed_size == 6112256 and hist[-1].compressed_size > 6110000
    imgs = {r.ref: r for r in views.image_rows(lay)}
    assert isinstance(imgs["app"], views.ImageRow) and imgs["app"].layers == 3
    assert imgs["app"].size == imgs["app"].shared + imgs["app"].unique
    du = views.disk_usage(lay, verbose=True)
    assert isinstance(du, views.DiskUsage) and du.layers == 3
    assert all(isinstance(u, views.LayerUse) for u in du.layer_uses)
    assert {r.ref for r in du.image_rows} == set(imgs)
    ok("unpack", f"{seed}:app", str(tmp_path / "b"))
    st = views.bundle_status(str(tmp_path / "b"))
    assert isinstance(st, views.BundleStatus)
    assert st.rw == 0 and st.virtual == imgs["app"].size and st.image_id.startswith("sha256:")


def test_sizes_are_dockers_content_bytes(seed: Path, tmp_path: Path, frozen_now: None) -> None:
    """Issue 15 #8/#9: SIZE is the layer's regular-file bytes (hardlinks once),
    JSON adds the tar and blob sizes under their own names."""
    b = tmp_path / "b"
    ok("unpack", f"{seed}:app", str(b))
    data = b / "rootfs/data"
    data.mkdir()
    (data / "f").write_bytes(b"q" * 2_000_000)
    os.link(data / "f", data / "g")  # a hardlink: Docker counts the inode once
    os.symlink("f", data / "s")
    st = ok("status", str(b)).splitlines()[1]
    assert st.endswith("2MB (virtual 8.11MB)"), st
    ok("commit", str(b), f"{seed}:big")
    hist = [json.loads(x) for x in ok("history", "--format", "json", f"{seed}:big").splitlines()]
    assert hist[0]["Size"] == "2MB"
    assert int(hist[0]["UncompressedSize"]) > 2_000_000 and int(hist[0]["CompressedSize"]) > 0
    listing = ok("images", "--format", "json", str(seed)).splitlines()
    imgs = {r["Ref"]: r for r in map(json.loads, listing)}
    assert imgs["big"]["Size"] == "8.11MB" and imgs["big"]["UniqueSize"] == "2MB"
    assert int(imgs["big"]["UncompressedSize"]) > 8_110_578
    df = [json.loads(x) for x in ok("df", "--format", "json", str(seed)).splitlines()]
    assert df[0]["Size"] == "8.111MB" and int(df[0]["CompressedSize"]) > 0


def test_image_id_is_the_config_digest(seed: Path, frozen_now: None) -> None:
    """Issue 15 #10: IMAGE ID is the config digest, DIGEST the manifest digest."""
    config = _ids(seed, "app")
    refs = [json.loads(x) for x in ok("ls", "--format", "json", str(seed)).splitlines()]
    manifest = next(r["Digest"] for r in refs if r["Ref"] == "app")
    assert config != manifest
    out = ok("images", "--digests", "--no-trunc", str(seed)).splitlines()
    row = next(ln.split() for ln in out[1:] if ln.startswith("app "))
    assert row[1:3] == [manifest, config]
    assert ok("history", "-q", "--no-trunc", f"{seed}:app").split()[0] == config
    assert ok("images", "-q", str(seed)).split().count(config.split(":")[1][:12]) == 1
