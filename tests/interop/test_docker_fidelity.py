"""Docker fidelity (issue 15): a private dockerd (classic builder,
``DOCKER_BUILDKIT=0``) is the judge.  Base images go from our layout into it
with ``docker load`` of our docker-archive export (it cannot pull), then the
same steps run on both sides and what Docker reports is compared with ours.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, run

from interop.daemons import docker_engine
from interop.imagefixture import add_busybox

pytestmark = pytest.mark.interop

TOOLS = ("sh", "ls", "cat", "head", "ln", "id", "mkdir", "echo", "env", "stat", "readlink")


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


@pytest.fixture(scope="module")
def docker() -> Iterator[list[str]]:
    """The private engine's ``docker`` command."""
    with docker_engine() as cmd:
        yield cmd


def load(docker: list[str], layout: Path, ref: str, name: str, tmp: Path) -> None:
    """Put our image ``layout:ref`` into the engine as ``name``."""
    archive = tmp / f"{ref}.docker.tar"
    ok("export", f"{layout}:{ref}", str(archive), "--format", "docker-archive", "--name", name)
    run(*docker, "load", "-i", str(archive))


def busybox_base(layout: Path, tmp: Path, ref: str = "base") -> Path:
    """``layout:ref``: busybox and its tools, plus a hardlinked file and a
    symlink (so the base layer's size counts a hardlinked inode once)."""
    if not (layout / "index.json").exists():
        ok("new", f"{layout}:scratch")
    b = tmp / f"bundle-{ref}"
    ok("unpack", f"{layout}:scratch", str(b))
    root = b / "rootfs"
    add_busybox(root, *TOOLS)
    (root / "etc").mkdir()
    (root / "etc/data").write_bytes(b"d" * 5000)
    os.link(root / "etc/data", root / "etc/data.link")
    (root / "etc/data.sym").symlink_to("data")
    ok("commit", str(b), f"{layout}:{ref}")
    return b


def docker_history(docker: list[str], name: str, fmt: str) -> list[str]:
    out = run(*docker, "history", "--no-trunc", "-H=false", "--format", fmt, name).stdout
    return out.splitlines()


# ------------------------------------------------------------ sizes and ids (8, 9, 10)


def test_history_and_images_sizes_and_ids_equal_dockers(docker: list[str], tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    b = busybox_base(lay, tmp_path)
    ok("unpack", "--force", f"{lay}:base", str(b))
    (b / "rootfs/usr/src/app").mkdir(parents=True)  # a layer of directories only: 0B
    ok("commit", str(b), f"{lay}:two", "--created-by", "/bin/sh -c mkdir -p /usr/src/app")
    ok("unpack", "--force", f"{lay}:two", str(b))
    (b / "rootfs/usr/src/app/id.txt").write_bytes(b"x" * 59)
    ok("commit", str(b), f"{lay}:app", "--created-by", "/bin/sh -c id > /usr/src/app/id.txt")
    load(docker, lay, "app", "localhost/fidelity:app", tmp_path)

    theirs = docker_history(docker, "localhost/fidelity:app", "{{.Size}}")
    ours = [
        ln.split()[-1]
        for ln in ok("history", "--human=false", "--no-trunc", f"{lay}:app").splitlines()[1:]
    ]
    assert ours == theirs and theirs[:2] == ["59", "0"]
    human = run(*docker, "history", "--format", "{{.Size}}", "localhost/fidelity:app").stdout
    rows = [json.loads(x) for x in ok("history", "--format", "json", f"{lay}:app").splitlines()]
    assert [r["Size"] for r in rows] == human.splitlines()

    # IMAGE ID is the config digest on both sides; images SIZE is Docker's.
    [d_id, d_size] = run(
        *docker, "images", "--no-trunc", "--format", "{{.ID}} {{.Size}}", "localhost/fidelity:app"
    ).stdout.split()
    [top] = docker_history(docker, "localhost/fidelity:app", "{{.ID}}")[:1]
    row = next(
        json.loads(x)
        for x in ok("images", "--format", "json", "--no-trunc", str(lay)).splitlines()
        if json.loads(x)["Ref"] == "app"
    )
    assert (row["ID"], row["Size"]) == (d_id, d_size) and top == d_id
    [info] = json.loads(run(*docker, "image", "inspect", "localhost/fidelity:app").stdout)
    assert info["Size"] == sum(int(s) for s in theirs)


def test_status_counts_like_docker_ps_s(docker: list[str], tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    busybox_base(lay, tmp_path)
    load(docker, lay, "base", "localhost/fidelity:base", tmp_path)
    script = "head -c 2097152 /dev/urandom > /f && ln /f /g && ln -s f /s && mkdir -p /d/e"
    run(
        *docker,
        "run",
        "--network",
        "none",
        "--name",
        "fid-ps",
        "localhost/fidelity:base",
        "sh",
        "-c",
        script,
    )
    theirs = run(*docker, "ps", "-a", "-s", "--filter", "name=fid-ps", "--format", "{{.Size}}")
    c = tmp_path / "c"
    ok("unpack", f"{lay}:base", str(c))
    # The same writes, made from the host (no /dev in the bundle's rootfs).
    root = c / "rootfs"
    (root / "f").write_bytes(os.urandom(2097152))
    os.link(root / "f", root / "g")
    (root / "s").symlink_to("f")
    (root / "d/e").mkdir(parents=True)
    ours = ok("status", "--format", "json", str(c))
    assert json.loads(ours)["Size"] == theirs.stdout.strip() == "2.1MB (virtual 4.08MB)"
