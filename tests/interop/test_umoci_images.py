"""Images umoci made (and skopeo copies of them) unpack with oci-tools to the
same tree umoci unpacks; a runnable bundle of ours runs under runc."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import cli, need_root, need_tool, run
from treecmp import assert_same_tree

from interop.imagefixture import add_busybox

pytestmark = pytest.mark.interop


def _populate(root: Path) -> None:
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/conf").write_text("a=1\n")
    (root / "bin").mkdir(exist_ok=True)
    (root / "bin/tool").write_bytes(b"\x7fELF" + os.urandom(5000))
    os.chmod(root / "bin/tool", 0o4755)
    (root / "bin/alias").symlink_to("tool")
    (root / "abs").symlink_to("/etc/conf")
    os.link(root / "etc/conf", root / "etc/conf-hard")
    (root / "deep/a/b/c").mkdir(parents=True)
    (root / "deep/a/b/c/file").write_text("deep")
    os.chmod(root / "deep/a", 0o700)
    os.mkfifo(root / "fifo")
    os.setxattr(root / "etc/conf", "user.k", b"v")
    if os.geteuid() == 0:
        os.chown(root / "etc/conf", 1234, 5678)
        os.mknod(root / "null", 0o666 | 0o020000, os.makedev(1, 3))


def test_umoci_and_skopeo_images_unpack_like_umoci(tmp_path: Path) -> None:
    need_tool("umoci")
    need_tool("skopeo")
    lay = tmp_path / "lay"
    run("umoci", "init", "--layout", str(lay))
    run("umoci", "new", "--image", f"{lay}:base")
    b = tmp_path / "ub"
    run("umoci", "unpack", "--image", f"{lay}:base", str(b))
    _populate(b / "rootfs")
    run("umoci", "repack", "--image", f"{lay}:v1", str(b))
    # second layer: delete a file and a directory, change another
    b2 = tmp_path / "ub2"
    run("umoci", "unpack", "--image", f"{lay}:v1", str(b2))
    (b2 / "rootfs/etc/conf-hard").unlink()
    for p in sorted((b2 / "rootfs/deep").rglob("*"), reverse=True):
        os.chmod(p, 0o755) if p.is_dir() else None
        p.rmdir() if p.is_dir() else p.unlink()
    (b2 / "rootfs/deep").rmdir()
    (b2 / "rootfs/bin/tool").write_bytes(b"new tool")
    run("umoci", "repack", "--image", f"{lay}:v2", str(b2))
    sk = tmp_path / "sk"
    run("skopeo", "copy", f"oci:{lay}:v2", f"oci:{sk}:v2")

    for layout in (lay, sk):
        ref = f"{layout}:v2"
        theirs = tmp_path / f"theirs-{layout.name}"
        ours = tmp_path / f"ours-{layout.name}"
        run("umoci", "unpack", "--image", ref, str(theirs))
        r = cli("unpack", ref, str(ours))
        assert r.code == 0, r.err
        assert_same_tree(str(theirs / "rootfs"), str(ours / "rootfs"))
        assert not (ours / "rootfs/deep").exists()
        assert (ours / "rootfs/bin/tool").read_bytes() == b"new tool"


@pytest.mark.root
def test_runc_runs_a_command_from_our_bundle(tmp_path: Path) -> None:
    need_root()
    need_tool("runc")
    lay = tmp_path / "lay"
    assert cli("new", f"{lay}:scratch").code == 0
    b = tmp_path / "b"
    assert cli("unpack", f"{lay}:scratch", str(b)).code == 0
    r = b / "rootfs"
    add_busybox(r, "sh", "cat", "id")
    (r / "etc").mkdir()
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nsvc:x:100:101::/srv:/bin/sh\n")
    (r / "etc/group").write_text("root:x:0:\nsvc:x:101:\n")
    (r / "msg").write_text("hello from inside\n")
    assert cli("commit", str(b), f"{lay}:run").code == 0
    assert (
        cli("config", f"{lay}:run", "--user", "svc", "--cmd", '["sh","-c","id -u; cat /msg"]').code
        == 0
    )
    c = tmp_path / "c"
    assert cli("unpack", f"{lay}:run", str(c)).code == 0
    p = run(
        "runc",
        "--root",
        str(tmp_path / "state"),
        "run",
        "--bundle",
        str(c),
        f"octest-{os.getpid()}",
        timeout=60,
    )
    assert p.stdout == "100\nhello from inside\n"
