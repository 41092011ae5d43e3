"""export/import of oci-archive (hybrid) and docker-archive tars, without peer tools."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from interop.imagefixture import CREATED_BY, ENV, build_tar, make_image, sha256
from verify import assert_valid_layout

from oci_tools.archive import export_image, image_name, import_archive, parse_name
from oci_tools.digest import Digest
from oci_tools.errors import DigestMismatchError, InvalidDocumentError, UsageError
from oci_tools.image import Image
from oci_tools.layout import Layout, host_platform
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import CONTAINERD_NAME, REF_NAME, Descriptor, dump_json
from oci_tools.store import put_bytes

RUN_CLI = [sys.executable, "-c", "from oci_tools.cli.app import run; run()"]


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Layout, Descriptor]:
    """The fixture image as ``demo:app``."""
    desc = make_image(tmp_path / "demo", "app")
    return Layout.open(str(tmp_path / "demo")), desc


def _listing(data: bytes) -> list[tuple[str, str, int, int, int, int, int]]:
    """(name, type, mode, uid, gid, mtime, size) of every member."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        kinds = {tarfile.DIRTYPE: "dir", tarfile.REGTYPE: "file"}
        return [(m.name, kinds[m.type], m.mode, m.uid, m.gid, int(m.mtime), m.size) for m in tf]


def _member(data: bytes, name: str) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        f = tf.extractfile(name)
        assert f is not None
        return f.read()


def _export(lay: Layout, ref: str, fmt: str = "oci-archive") -> bytes:
    buf = io.BytesIO()
    export_image(lay, ref, buf, fmt=fmt)
    return buf.getvalue()


def _blob(lay: Layout, dg: Digest) -> bytes:
    return Path(lay.store.path_of(dg)).read_bytes()


class OneWay(io.RawIOBase):
    """A non-seekable stream (like a pipe on stdin)."""

    def __init__(self, data: bytes) -> None:
        self._b = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = self._b.readinto(buf)
        return n

    def seekable(self) -> bool:
        return False


# --------------------------------------------------------------------------- names


def test_names() -> None:
    assert image_name("/x/demo", "app") == "localhost/demo:app"
    assert image_name("/x/My_Images.v2/", "latest") == "localhost/my-images-v2:latest"
    assert image_name("/x/demo", "example.com/foo:v3") == "example.com/foo:v3"
    assert image_name("/x/demo", "foo/bar") == "localhost/foo/bar:latest"
    assert image_name("/x/demo", "foo:1.0") == "localhost/foo:1.0"
    assert image_name("/x/demo", "v1+build") == "localhost/demo:v1-build"
    assert image_name("/x/demo", "app", "registry:5000/a/b:c") == "registry:5000/a/b:c"
    with pytest.raises(UsageError):
        image_name("/x/demo", "app", "Upper/Case")
    assert parse_name("localhost:5000/x") == ("localhost:5000/x", "latest")
    assert parse_name("x@sha256:" + "0" * 64) is None


# --------------------------------------------------------------------------- export


def test_export_oci_archive_listing(demo: tuple[Layout, Descriptor]) -> None:
    lay, desc = demo
    data = _export(lay, "app")
    img = Image.load(lay, "app")
    assert img.manifest.config is not None
    blobs = sorted({str(d.digest) for d in (desc, img.manifest.config, *img.layers)})
    expected = [
        ("blobs", "dir", 0o755, 0, 0, 0, 0),
        ("blobs/sha256", "dir", 0o755, 0, 0, 0, 0),
    ]
    for b in blobs:
        dg = Digest.parse(b)
        size = len(_blob(lay, dg))
        expected.append((f"blobs/sha256/{dg.encoded}", "file", 0o644, 0, 0, 0, size))
    got = _listing(data)
    assert got[: len(expected)] == expected
    assert [g[0] for g in got[len(expected) :]] == ["index.json", "manifest.json", "oci-layout"]
    for name, *_rest in got:
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(_member(data, name)).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(_member(data, "index.json"))
    plat = host_platform()
    assert index == {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [
            {
                "mediaType": mt.OCI_MANIFEST,
                "digest": str(desc.digest),
                "size": desc.size,
                "annotations": {CONTAINERD_NAME: "localhost/demo:app", REF_NAME: "app"},
                "platform": {"architecture": plat.architecture, "os": plat.os},
            }
        ],
    }
    assert json.loads(_member(data, "manifest.json")) == [
        {
            "Config": f"blobs/sha256/{img.manifest.config.digest.encoded}",
            "RepoTags": ["localhost/demo:app"],
            "Layers": [f"blobs/sha256/{d.digest.encoded}" for d in img.layers],
        }
    ]
    assert json.loads(_member(data, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    assert len(data) % 10240 == 0


def test_export_docker_archive_listing(demo: tuple[Layout, Descriptor]) -> None:
    lay, _ = demo
    data = _export(lay, "app", "docker-archive")
    img = Image.load(lay, "app")
    assert img.manifest.config is not None
    cfg = img.manifest.config.digest.encoded
    diffs = [d.encoded for d in img.config.diff_ids]
    expected = [(f"{cfg}.json", "file", 0o644, 0, 0, 0, img.manifest.config.size)]
    for d in diffs:
        expected.append((d, "dir", 0o755, 0, 0, 0, 0))
        expected.append((f"{d}/layer.tar", "file", 0o644, 0, 0, 0, -1))
    expected.append(("manifest.json", "file", 0o644, 0, 0, 0, -1))
    expected.append(("repositories", "file", 0o644, 0, 0, 0, -1))
    got = _listing(data)
    assert [g[:6] for g in got] == sorted(e[:6] for e in expected)
    # The layers are the uncompressed tars: their sha256 is the diff_id.
    for d in diffs:
        assert hashlib.sha256(_member(data, f"{d}/layer.tar")).hexdigest() == d
    assert _member(data, f"{cfg}.json") == _blob(lay, img.manifest.config.digest)
    assert json.loads(_member(data, "manifest.json")) == [
        {
            "Config": f"{cfg}.json",
            "RepoTags": ["localhost/demo:app"],
            "Layers": [f"{d}/layer.tar" for d in diffs],
        }
    ]
    assert json.loads(_member(data, "repositories")) == {"localhost/demo": {"app": diffs[-1]}}


def test_export_is_deterministic_and_file_equals_stream(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    lay, desc = demo
    for fmt in ("oci-archive", "docker-archive"):
        a = _export(lay, "app", fmt)
        assert a == _export(lay, "app", fmt)
        out = tmp_path / f"{fmt}.tar"
        got = export_image(lay, "app", str(out), fmt=fmt)
        assert got.digest == desc.digest and not got.annotations
        assert out.read_bytes() == a
        assert out.stat().st_mode & 0o777 == 0o644
    # The same image made again elsewhere exports to the same bytes.
    make_image(tmp_path / "again" / "demo", "app")
    again = Layout.open(str(tmp_path / "again" / "demo"))
    assert _export(again, "app") == _export(lay, "app")


def test_export_without_annotation_counts_uncompressed_size(tmp_path: Path) -> None:
    """A gzip layer without the size annotation is decompressed once to count."""
    lay = Layout.init(str(tmp_path / "l"))
    tar = build_tar([])
    blob = gzip.compress(tar, mtime=0)
    dg = put_bytes(lay.store, blob)
    from oci_tools.mutate import write_image

    plat = host_platform()
    write_image(
        lay,
        {
            "architecture": plat.architecture,
            "os": plat.os,
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        },
        [Descriptor(mt.OCI_LAYER_GZIP, dg, len(blob))],
        ref="x",
    )
    data = _export(lay, "x", "docker-archive")
    assert _member(data, f"{sha256(tar)[7:]}/layer.tar") == tar


def test_export_refuses_tampered_blob_and_leaves_target(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    lay, _ = demo
    img = Image.load(lay, "app")
    victim = Path(lay.store.path_of(img.layers[1].digest))
    raw = bytearray(victim.read_bytes())
    raw[-9] ^= 0xFF  # inside the gzip trailer's CRC: still decompresses
    victim.chmod(0o644)
    victim.write_bytes(bytes(raw))
    out = tmp_path / "out.tar"
    out.write_bytes(b"previous")
    for fmt in ("oci-archive", "docker-archive"):
        with pytest.raises(DigestMismatchError):
            export_image(lay, "app", str(out), fmt=fmt)
        assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo", "out.tar"]


def test_export_errors(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, _ = demo
    with pytest.raises(UsageError):
        export_image(lay, "app", io.BytesIO(), fmt="tarball")
    with pytest.raises(UsageError):
        export_image(lay, "app", str(tmp_path))
    r = cli("export", f"{tmp_path / 'demo'}:nope", str(tmp_path / "x.tar"))
    assert r.code == 1 and "unknown ref" in r.err


# --------------------------------------------------------------------------- import


def test_round_trip_oci_archive_keeps_manifest_digest(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    lay, desc = demo
    data = _export(lay, "app")
    # Same directory name, so the derived image name is the same too.
    new = Layout.init(str(tmp_path / "copy" / "demo"))
    got = import_archive(io.BytesIO(data), new)
    assert [(n, d.digest) for n, d in got] == [("app", desc.digest)]
    assert new.lookup("app").digest == desc.digest
    assert set(new.lookup("app").annotations) == {REF_NAME}
    assert_valid_layout(new.path)
    # And the re-import exports to the very same bytes.
    assert _export(new, "app") == data


def test_import_docker_archive_converts_to_oci(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    lay, _ = demo
    src = Image.load(lay, "app")
    new = Layout.init(str(tmp_path / "new"))
    [(name, desc)] = import_archive(io.BytesIO(_export(lay, "app", "docker-archive")), new)
    assert name == "app"
    img = Image.load(new, "app")
    assert img.manifest.media_type == mt.OCI_MANIFEST
    assert img.manifest.config is not None and src.manifest.config is not None
    assert img.manifest.config.media_type == mt.OCI_CONFIG
    # Config bytes kept: same image id, history, diff_ids, Env.
    assert img.manifest.config.digest == src.manifest.config.digest
    assert img.config.diff_ids == src.config.diff_ids
    assert [h.created_by for h in img.config.history] == CREATED_BY
    assert img.config.config["Env"] == ENV
    assert [d.media_type for d in img.layers] == [mt.OCI_LAYER_TAR] * 3
    assert [d.digest for d in img.layers] == list(src.config.diff_ids)
    assert desc.platform == host_platform()
    assert_valid_layout(new.path)


def _docker_style_archive(tmp_path: Path, *, gz: bool = True, tags: Any = None) -> bytes:
    """A ggcr-style docker archive: ``sha256:<hex>`` config name, compressed
    ``<hex>.tar.gz`` layers, ``./`` prefixed names, Docker media types nowhere."""
    tar1 = build_tar([])
    layer = gzip.compress(tar1, mtime=0) if gz else tar1
    lname = hashlib.sha256(layer).hexdigest() + (".tar.gz" if gz else ".tar")
    plat = host_platform()
    config = dump_json(
        {
            "architecture": plat.architecture,
            "os": plat.os,
            "config": {"Env": None, "Cmd": ["sh"], "Labels": None},
            "container_config": {"Cmd": None},
            "docker_version": "24.0.0",
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar1)]},
            "history": [{"created_by": "ADD x /"}],
        }
    )
    cname = "sha256:" + hashlib.sha256(config).hexdigest()
    entries = [{"Config": cname, "RepoTags": tags, "Layers": [lname]}]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in (
            (cname, config),
            (lname, layer),
            ("manifest.json", json.dumps(entries).encode()),
        ):
            ti = tarfile.TarInfo("./" + name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    return buf.getvalue()


def test_import_compressed_docker_layers(tmp_path: Path) -> None:
    new = Layout.init(str(tmp_path / "new"))
    data = _docker_style_archive(tmp_path, tags=["example.com/a/b:v1", "example.com/a/b:v2"])
    got = import_archive(io.BytesIO(data), new)
    assert [n for n, _ in got] == ["v1", "v2"]
    img = Image.load(new, "v2")
    assert [d.media_type for d in img.layers] == [mt.OCI_LAYER_GZIP]
    assert img.uncompressed_size(0) == len(build_tar([]))
    assert img.config.config["Cmd"] == ["sh"]
    assert_valid_layout(new.path)


def test_import_gzipped_archive_from_a_pipe(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    """``docker save | gzip`` on stdin: compressed and not seekable."""
    lay, desc = demo
    data = gzip.compress(_export(lay, "app", "docker-archive"), mtime=0)
    new = Layout.init(str(tmp_path / "new"))
    [(name, _)] = import_archive(OneWay(data), new, "given")  # type: ignore[arg-type]
    assert name == "given" and [n for n, _ in new.refs()] == ["given"]
    data = _export(lay, "app")
    [(name, d)] = import_archive(OneWay(data), new)  # type: ignore[arg-type]
    assert (name, d.digest) == ("app", desc.digest)
    assert_valid_layout(new.path)


def test_import_names_and_refs(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, desc = demo
    new = Layout.init(str(tmp_path / "new"))
    # An image without a name needs a REF.
    nameless = _docker_style_archive(tmp_path, tags=None)
    before = Path(new.path, "index.json").read_bytes()
    with pytest.raises(UsageError) as e:
        import_archive(io.BytesIO(nameless), new)
    assert "has no name" in str(e.value) and e.value.hint and "LAYOUT:REF" in e.value.hint
    assert Path(new.path, "index.json").read_bytes() == before
    assert import_archive(io.BytesIO(nameless), new, "named")[0][0] == "named"
    # Importing moves an existing tag.
    import_archive(io.BytesIO(_export(lay, "app")), new, "named")
    assert new.lookup("named").digest == desc.digest
    assert [n for n, _ in new.refs()] == ["named"]
    # A ref with a whole name in it stays as it was in ref.name.
    make_image(lay.path, "example.com/x/y:v9")
    got = import_archive(io.BytesIO(_export(lay, "example.com/x/y:v9")), new)
    assert got[0][0] == "example.com/x/y:v9"


def _two_image_archive(data: bytes) -> bytes:
    """Our hybrid archive with its one index entry listed twice under two names."""
    index = json.loads(_member(data, "index.json"))
    e2 = json.loads(json.dumps(index["manifests"][0]))
    e2["annotations"][REF_NAME] = "second"
    index["manifests"].append(e2)
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(data)) as src,
        tarfile.open(fileobj=out, mode="w") as dst,
    ):
        for m in src:
            body = src.extractfile(m) if m.isreg() else None
            if m.name == "index.json":
                raw = json.dumps(index).encode()
                m.size = len(raw)
                body = io.BytesIO(raw)
            dst.addfile(m, body)
    return out.getvalue()


def test_import_multi_image_archive(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, desc = demo
    data = _two_image_archive(_export(lay, "app"))
    new = Layout.init(str(tmp_path / "new"))
    with pytest.raises(UsageError):
        import_archive(io.BytesIO(data), new, "one")
    got = import_archive(io.BytesIO(data), new)
    assert [(n, d.digest) for n, d in got] == [("app", desc.digest), ("second", desc.digest)]


def _cut_points(data: bytes) -> dict[str, int]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        members = tf.getmembers()
    big = max(members, key=lambda m: m.size)
    index = next(m for m in members if m.name == "index.json")
    return {
        "inside a blob": big.offset_data + big.size // 2,
        "before index.json": index.offset,
        "inside a header": index.offset + 100,
    }


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_truncated_archive_changes_nothing(
    demo: tuple[Layout, Descriptor], tmp_path: Path, fmt: str
) -> None:
    lay, _ = demo
    data = _export(lay, "app", fmt)
    target = Layout.init(str(tmp_path / "t"))
    import_archive(io.BytesIO(_export(lay, "app")), target, "keep")
    before = Path(target.path, "index.json").read_bytes()
    cuts = _cut_points(data) if fmt == "oci-archive" else {"half": len(data) // 2}
    cuts["empty"] = 0
    for what, at in cuts.items():
        with pytest.raises(InvalidDocumentError) as e:
            import_archive(io.BytesIO(data[:at]), target, "new")
        assert "archive" in str(e.value), what
        assert Path(target.path, "index.json").read_bytes() == before, what
    assert_valid_layout(target.path)


def _tamper(data: bytes, name: str, pos: int = -1) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        m = tf.getmember(name)
    out = bytearray(data)
    out[m.offset_data + (pos % m.size)] ^= 0x01
    return bytes(out)


def test_tampered_blob_is_refused(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, _ = demo
    img = Image.load(lay, "app")
    target = Layout.init(str(tmp_path / "t"))
    before = Path(target.path, "index.json").read_bytes()
    oci = _export(lay, "app")
    for dg in (img.layers[2].digest, img.descriptor.digest):
        bad = _tamper(oci, f"blobs/sha256/{dg.encoded}", 40)
        with pytest.raises(DigestMismatchError) as e:
            import_archive(io.BytesIO(bad), target, "x")
        assert dg.encoded in str(e.value)
    docker = _export(lay, "app", "docker-archive")
    bad = _tamper(docker, f"{img.config.diff_ids[0].encoded}/layer.tar", 600)
    with pytest.raises(DigestMismatchError):
        import_archive(io.BytesIO(bad), target, "x")
    assert Path(target.path, "index.json").read_bytes() == before


def test_import_refuses_junk(tmp_path: Path) -> None:
    target = Layout.init(str(tmp_path / "t"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("hello.txt")
        tf.addfile(ti, io.BytesIO(b""))
    with pytest.raises(InvalidDocumentError, match=r"no index\.json or manifest\.json"):
        import_archive(io.BytesIO(buf.getvalue()), target)
    with pytest.raises(InvalidDocumentError):
        import_archive(io.BytesIO(b"not a tar at all" * 100), target)
    r = cli("import", str(tmp_path / "missing.tar"), str(tmp_path / "t"))
    assert r.code == 1 and "no such archive" in r.err


def test_docker_v22_manifest_is_readable_and_exportable(tmp_path: Path) -> None:
    """Image.load and export of an image with Docker v2.2 media types."""
    lay = Layout.init(str(tmp_path / "d"))
    tar = build_tar([])
    layer = gzip.compress(tar, mtime=0)
    ldg = put_bytes(lay.store, layer)
    plat = host_platform()
    config = dump_json(
        {
            "architecture": plat.architecture,
            "os": plat.os,
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": [sha256(tar)]},
        }
    )
    cdg = put_bytes(lay.store, config)
    manifest = dump_json(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(config), "digest": str(cdg)},
            "layers": [{"mediaType": mt.DOCKER_LAYER_GZIP, "size": len(layer), "digest": str(ldg)}],
        }
    )
    mdg = put_bytes(lay.store, manifest)
    lay.set_ref("v22", Descriptor(mt.DOCKER_MANIFEST, mdg, len(manifest)))
    img = Image.load(lay, "v22")
    assert img.manifest.media_type == mt.DOCKER_MANIFEST
    assert img.config.config["Cmd"] == ["sh"]
    assert img.uncompressed_size(0) is None
    assert_valid_layout(lay.path)
    data = _export(lay, "v22", "docker-archive")
    assert _member(data, f"{sha256(tar)[7:]}/layer.tar") == tar
    new = Layout.init(str(tmp_path / "n"))
    [(_, d)] = import_archive(io.BytesIO(_export(lay, "v22")), new)
    assert d.digest == mdg and d.media_type == mt.DOCKER_MANIFEST
    assert_valid_layout(new.path)


def test_cli_stdout_and_stdin(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, desc = demo
    exp = subprocess.run(
        [*RUN_CLI, "export", f"{lay.path}:app", "-"], capture_output=True, check=True
    )
    assert exp.stdout == _export(lay, "app")
    imp = subprocess.run(
        [*RUN_CLI, "import", "-", f"{tmp_path / 'fresh'}:copied"],
        input=exp.stdout,
        capture_output=True,
        check=True,
    )
    assert imp.stdout.decode() == f"copied {desc.digest}\n"
    assert_valid_layout(str(tmp_path / "fresh"))
    r = cli("export", f"{lay.path}:app", str(tmp_path / "a.tar"), "--format", "docker-archive")
    assert r.code == 0 and r.out == f"{desc.digest}\n"
    r = cli("import", str(tmp_path / "a.tar"), str(tmp_path / "fresh"))
    assert r.code == 0 and r.out.startswith("app sha256:")
    assert_valid_layout(str(tmp_path / "fresh"))


def test_index_ref_exports_one_platform_and_imports_whole(
    demo: tuple[Layout, Descriptor], tmp_path: Path
) -> None:
    """A ref naming an index: export picks one manifest; importing a tar of
    the layout itself brings the whole index."""
    from oci_tools.spec.model import Index, Platform

    lay, desc = demo
    other = Descriptor(desc.media_type, desc.digest, desc.size, platform=Platform("plan9", "mips"))
    idx = Index.build([desc, other])
    put_bytes(lay.store, idx.raw)
    lay.set_ref("multi", idx.descriptor(mt.OCI_INDEX))
    buf = io.BytesIO()
    assert export_image(lay, "multi", buf).digest == desc.digest
    entry = json.loads(_member(buf.getvalue(), "index.json"))["manifests"][0]
    assert entry["digest"] == str(desc.digest) and entry["platform"]["os"] == "linux"
    export_image(lay, "multi", io.BytesIO(), platform=Platform("plan9", "mips"))
    plain = io.BytesIO()
    with tarfile.open(fileobj=plain, mode="w") as tf:
        for name in ("blobs", "index.json", "oci-layout"):
            tf.add(Path(lay.path, name), arcname=name)
    new = Layout.init(str(tmp_path / "new"))
    got = dict(import_archive(io.BytesIO(plain.getvalue()), new))
    assert got["multi"].digest == idx.digest and got["app"].digest == desc.digest
    assert_valid_layout(new.path)


def test_export_to_a_device_writes_through(demo: tuple[Layout, Descriptor]) -> None:
    lay, _ = demo
    export_image(lay, "app", "/dev/null")
    assert Path("/dev/null").is_char_device()


def test_truncated_gzipped_archive(demo: tuple[Layout, Descriptor], tmp_path: Path) -> None:
    lay, _ = demo
    data = gzip.compress(_export(lay, "app"), mtime=0)
    target = Layout.init(str(tmp_path / "t"))
    before = Path(target.path, "index.json").read_bytes()
    # (a cut in the final zero padding loses nothing and may well import)
    for at in (len(data) // 3, len(data) // 2):
        with pytest.raises(InvalidDocumentError):
            import_archive(OneWay(data[:at]), target, "x")  # type: ignore[arg-type]
    assert Path(target.path, "index.json").read_bytes() == before
