"""unpack -> change -> commit -> unpack elsewhere, through the CLI."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from helpers import cli, need_root, need_tool, run
from treecmp import assert_same_tree
from verify import assert_valid_layout

from oci_tools.layout import Layout


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out.strip()


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """A layout with ref `base`: one layer with a few files and a busybox if present."""
    lay = tmp_path / "lay"
    ok("new", f"{lay}:empty")
    b = tmp_path / "b0"
    ok("unpack", f"{lay}:empty", str(b))
    r = b / "rootfs"
    (r / "etc").mkdir()
    (r / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
    )
    (r / "etc/group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    (r / "etc/hostname").write_text("base\n")
    (r / "data").mkdir()
    for i in range(20):
        (r / "data" / f"f{i}").write_text(f"file {i}\n" * 100)
    (r / "tree/sub").mkdir(parents=True)
    (r / "tree/sub/x").write_text("x")
    (r / "tree/y").write_text("y")
    (r / "link").symlink_to("/etc/hostname")
    (r / "bin").mkdir()
    if os.path.exists("/bin/busybox"):
        (r / "bin/busybox").write_bytes(Path("/bin/busybox").read_bytes())
        os.chmod(r / "bin/busybox", 0o755)
        (r / "bin/sh").symlink_to("busybox")
        (r / "bin/cat").symlink_to("busybox")
    ok("commit", str(b), f"{lay}:base", "--created-by", "base step")
    return lay


def test_round_trip_preserves_every_change(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    r = b / "rootfs"
    # add, same-size edit within the same second, delete file, delete a tree
    (r / "new.txt").write_text("new")
    st = os.stat(r / "etc/hostname")
    (r / "etc/hostname").write_text("BASE\n")
    os.utime(r / "etc/hostname", ns=(st.st_atime_ns, st.st_mtime_ns))
    (r / "data/f3").unlink()
    for p in sorted((r / "tree").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    (r / "tree").rmdir()
    # replace dir with file, file with symlink; chmod; hardlink; xattr; fifo
    (r / "tree").write_text("now a file")
    (r / "data/f4").unlink()
    (r / "data/f4").symlink_to("f5")
    os.chmod(r / "data/f6", 0o4750)
    os.link(r / "data/f7", r / "data/f7-link")
    os.setxattr(r / "data/f8", "user.note", b"hello")
    os.mkfifo(r / "data/pipe")
    if os.geteuid() == 0:
        os.chown(r / "data/f9", 1000, 2000)
        os.mknod(r / "data/null", 0o666 | 0o020000, os.makedev(1, 3))
    digest = ok("commit", str(b), f"{base}:next", "-m", "changes")
    assert digest.startswith("sha256:")
    assert_valid_layout(str(base))
    c = tmp_path / "b2"
    ok("unpack", f"{base}:next", str(c))
    assert_same_tree(str(r), str(c / "rootfs"))


def test_commit_records_history_and_diff_ids(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    (b / "rootfs/added").write_text("x")
    ok(
        "commit",
        str(b),
        f"{base}:v2",
        "--author",
        "me <me@example.com>",
        "-m",
        "msg",
        "--created-by",
        "make it",
        "--created",
        "2024-01-02T03:04:05Z",
        "--compress",
        "zstd",
    )
    cfg = json.loads(ok("inspect", "--config", f"{base}:v2"))
    man = json.loads(ok("inspect", f"{base}:v2"))
    assert cfg["history"][-1] == {
        "created": "2024-01-02T03:04:05Z",
        "created_by": "make it",
        "author": "me <me@example.com>",
        "comment": "msg",
    }
    assert len(cfg["rootfs"]["diff_ids"]) == len(man["layers"]) == 2
    assert sum(not h.get("empty_layer") for h in cfg["history"]) == 2
    assert man["layers"][-1]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+zstd"
    # the old image is intact
    old = json.loads(ok("inspect", f"{base}:base"))
    assert len(old["layers"]) == 1


def test_empty_diff_adds_nothing_unless_allowed(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    before = ok("inspect", f"{base}:base")
    r = cli("commit", str(b), f"{base}:same")
    assert r.code == 0 and "no changes" in r.err
    assert ok("inspect", f"{base}:same") == before
    ok("commit", str(b), f"{base}:same", "--allow-empty")
    cfg = json.loads(ok("inspect", "--config", f"{base}:same"))
    man = json.loads(ok("inspect", f"{base}:same"))
    assert cfg["history"][-1]["empty_layer"] is True and len(man["layers"]) == 1


def test_refresh_makes_next_commit_contain_only_newer_changes(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    (b / "rootfs/one").write_text("1")
    ok("commit", str(b), f"{base}:v1", "--refresh")
    (b / "rootfs/two").write_text("2")
    ok("commit", str(b), f"{base}:v2")
    lay = Layout.open(str(base))
    m = lay.resolve("v2").manifest
    names = _layer_names(lay, m.layers[-1])
    assert "two" in names and "one" not in names


def _layer_names(lay: Layout, desc: object) -> list[str]:
    import io

    from oci_tools.compression import codec_for_media_type, decompressor

    path = lay.store.path_of(desc.digest)  # type: ignore[attr-defined]
    with open(path, "rb") as f:
        data = decompressor(codec_for_media_type(desc.media_type), f).read()  # type: ignore[attr-defined]
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [m.name.rstrip("/") for m in t.getmembers()]


def test_deleting_a_big_directory_is_one_whiteout(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    d = b / "rootfs/big"
    d.mkdir()
    for i in range(1000):
        (d / f"{i}").write_text("x")
    ok("commit", str(b), f"{base}:big", "--refresh")
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    ok("commit", str(b), f"{base}:gone")
    lay = Layout.open(str(base))
    names = _layer_names(lay, lay.resolve("gone").manifest.layers[-1])
    assert [n for n in names if ".wh." in n] == [".wh.big"]


def test_same_tree_gives_identical_digests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    digests = []
    for n in range(2):
        lay = tmp_path / f"lay{n}"
        ok("new", f"{lay}:empty")
        b = tmp_path / f"b{n}"
        ok("unpack", f"{lay}:empty", str(b))
        r = b / "rootfs"
        (r / "d").mkdir()
        (r / "d/file").write_text("same")
        (r / "d/link").symlink_to("file")
        os.utime(r / "d/file", (time.time(), time.time()))  # newer than SDE: clamped
        digests.append(ok("commit", str(b), f"{lay}:x"))
        assert_valid_layout(str(lay))
    assert digests[0] == digests[1]


def test_config_edits(base: Path) -> None:
    ok("config", f"{base}:base", "--to", "cfg", "--env", "A=1", "--env", "B=2")
    ok(
        "config",
        f"{base}:cfg",
        "--env",
        "A=3",
        "--cmd",
        '["sh","-c","x"]',
        "--expose",
        "8080",
        "--workdir",
        "/w",
        "--user",
        "app",
        "--label",
        "k=v",
        "--volume",
        "/data",
        "--stop-signal",
        "SIGTERM",
    )
    cfg = json.loads(ok("inspect", "--config", f"{base}:cfg"))
    c = cfg["config"]
    assert c["Env"] == ["A=3", "B=2"]
    assert c["Cmd"] == ["sh", "-c", "x"] and c["ExposedPorts"] == {"8080/tcp": {}}
    assert c["WorkingDir"] == "/w" and c["User"] == "app" and c["Labels"] == {"k": "v"}
    assert c["Volumes"] == {"/data": {}} and c["StopSignal"] == "SIGTERM"
    rows = cfg["history"][-2:]
    assert rows[0]["created_by"] == "/bin/sh -c #(nop)  ENV A=1 B=2"
    assert all(r["empty_layer"] for r in rows)
    m1 = json.loads(ok("inspect", f"{base}:base"))
    m2 = json.loads(ok("inspect", f"{base}:cfg"))
    assert m1["layers"] == m2["layers"]
    r = cli("config", f"{base}:cfg", "--cmd", "not json")
    assert r.code == 2 and "JSON array" in r.err
    r = cli("config", f"{base}:cfg", "--expose", "99999")
    assert r.code == 2


def test_unpack_refuses_non_empty_bundle_and_cleans_up_failures(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    b.mkdir()
    (b / "keep").write_text("x")
    r = cli("unpack", f"{base}:base", str(b))
    assert r.code == 1 and "refusing to overwrite" in r.err
    assert (b / "keep").read_text() == "x"
    ok("unpack", "--force", f"{base}:base", str(b))
    assert not (b / "keep").exists() and (b / "oci-tools.json").exists()
    # a corrupt layer: no finished-looking bundle is left
    lay = Layout.open(str(base))
    ld = lay.resolve("base").manifest.layers[0]
    p = Path(lay.store.path_of(ld.digest))
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    c = tmp_path / "c"
    r = cli("unpack", f"{base}:base", str(c))
    assert r.code == 1 and "Traceback" not in r.err
    assert not (c / "oci-tools.json").exists() and not (c / "config.json").exists()


def test_gc_keeps_a_live_bundles_base(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    ok("rm", f"{base}:base")
    ok("rm", f"{base}:empty")
    ok("gc", str(base))
    (b / "rootfs/new").write_text("n")
    ok("commit", str(b), f"{base}:after-gc")
    assert_valid_layout(str(base))
    # once the bundle is gone, its base can be collected
    import shutil

    shutil.rmtree(b)
    shutil.rmtree(tmp_path / "b0")  # the fixture's bundle holds the empty image
    ok("rm", f"{base}:after-gc")
    r = cli("gc", str(base))  # a bundle that can't be found may have moved: kept
    assert r.code == 0 and "bundle not found" in r.err and "--prune-missing-bundles" in r.err
    assert os.listdir(base / "blobs" / "sha256")
    ok("gc", "--prune-missing-bundles", str(base))
    assert os.listdir(base / "blobs" / "sha256") == []


def test_commit_bad_input(base: Path, tmp_path: Path) -> None:
    nob = tmp_path / "nobundle"
    nob.mkdir()
    r = cli("commit", str(nob), f"{base}:x")
    assert r.code == 1 and "no base record" in r.err
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    (b / "rootfs/.wh.sneaky").write_text("x")
    idx = (base / "index.json").read_bytes()
    r = cli("commit", str(b), f"{base}:x")
    assert r.code == 1 and ".wh." in r.err and "Traceback" not in r.err
    assert (base / "index.json").read_bytes() == idx
    (b / "rootfs/.wh.sneaky").unlink()
    r = cli("commit", str(b), f"{base}:x", "--compress", "lz4")
    assert r.code == 2
    # base image gone from the layout
    lay = Layout.open(str(base))
    os.unlink(lay.store.path_of(lay.resolve("base").manifest_descriptor.digest))
    r = cli("commit", str(b), f"{base}:x")
    assert r.code == 1 and "gone" in r.err
    assert (base / "index.json").read_bytes() == idx


@pytest.mark.interop
def test_our_layers_load_in_gnu_tar_umoci_and_skopeo(base: Path, tmp_path: Path) -> None:
    need_tool("umoci")
    need_tool("skopeo")
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    (b / "rootfs/data/f1").unlink()
    (b / "rootfs/added").write_text("added")
    ok("commit", str(b), f"{base}:v2")
    lay = Layout.open(str(base))
    for ld in lay.resolve("v2").manifest.layers:
        run("tar", "-tzf", lay.store.path_of(ld.digest))
    um = tmp_path / "um"
    run("umoci", "unpack", "--image", f"{base}:v2", str(um))
    assert_same_tree(str(b / "rootfs"), str(um / "rootfs"), mtimes=False)
    run("skopeo", "copy", f"oci:{base}:v2", f"docker-archive:{tmp_path / 'd.tar'}:x:y")


@pytest.mark.interop
@pytest.mark.root
def test_bundle_runs_under_runc(base: Path, tmp_path: Path) -> None:
    need_root()
    need_tool("runc")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    ok("config", f"{base}:base", "--to", "run", "--cmd", '["cat","/etc/hostname"]')
    b = tmp_path / "rb"
    ok("unpack", f"{base}:run", str(b))
    spec = json.loads((b / "config.json").read_text())
    assert spec["process"]["args"] == ["cat", "/etc/hostname"]
    p = run(
        "runc",
        "--root",
        str(tmp_path / "runc-state"),
        "run",
        "--bundle",
        str(b),
        f"oci-tools-test-{os.getpid()}",
        timeout=60,
    )
    assert p.stdout == "base\n"


def test_runtime_config_resolves_user(base: Path, tmp_path: Path) -> None:
    ok("config", f"{base}:base", "--to", "u", "--user", "app", "--env", "X=1")
    b = tmp_path / "ub"
    ok("unpack", f"{base}:u", str(b))
    spec = json.loads((b / "config.json").read_text())
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert "X=1" in spec["process"]["env"] and "HOME=/home/app" in spec["process"]["env"]
    ok("config", f"{base}:base", "--to", "nouser", "--user", "nobody")
    r = cli("unpack", f"{base}:nouser", str(tmp_path / "nb"))
    assert r.code == 1 and "nobody" in r.err


def test_commit_to_unwritable_layout_leaves_it_unchanged(base: Path, tmp_path: Path) -> None:
    b = tmp_path / "b1"
    ok("unpack", f"{base}:base", str(b))
    (b / "rootfs/new").write_text("n")
    idx = (base / "index.json").read_bytes()
    blobs = sorted(os.listdir(base / "blobs/sha256"))
    # Root ignores permission bits, so block the layout's temp area instead:
    # the layer cannot be staged, and nothing may change.
    tmp = base / ".oci-tools" / "tmp"
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    tmp.write_text("in the way")
    r = cli("commit", str(b), f"{base}:x")
    assert r.code == 1 and "Traceback" not in r.err
    assert r.err.startswith("oci-tools: error: ")
    assert (base / "index.json").read_bytes() == idx
    assert sorted(os.listdir(base / "blobs/sha256")) == blobs


def test_commit_without_a_ref_tags_nothing(tmp_path: Path) -> None:
    from oci_tools.bundle import CommitOptions, commit, unpack
    from oci_tools.image import Image
    from oci_tools.mutate import empty_image, write

    lay = Layout.init(str(tmp_path / "lay"))
    lay.set_ref("empty", write(lay, empty_image(lay, created="2024-01-01T00:00:00Z")))
    b = tmp_path / "b"
    unpack(lay, "empty", str(b), rootless=True)
    # nothing changed and no empty image wanted: the base, untagged
    res = commit(str(b), lay, None)
    assert res.empty and res.layer is None
    assert res.descriptor.digest == lay.lookup("empty").digest
    assert [name for name, _ in lay.refs()] == ["empty"]
    (b / "rootfs" / "hello").write_text("hi\n")
    res = commit(str(b), lay, None, CommitOptions(created="2024-02-02T00:00:00Z", author="me"))
    assert [name for name, _ in lay.refs()] == ["empty"]
    assert not res.empty and res.layer is not None
    img = Image.from_descriptor(lay, res.descriptor)
    assert img.layer(-1).descriptor == res.layer
    assert img.config.created == "2024-02-02T00:00:00Z" and img.config.author == "me"
    assert img.config.history[-1].created_by == "oci-tools commit"
    assert_valid_layout(str(lay.path))
