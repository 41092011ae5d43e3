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
from helpers import cli, need_tool, run

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


# ---------------------------------------------------------------- the build (1-7)

BUILD_DOCKERFILE = """\
FROM base
ENV PATH=/opt/bin:$PATH
RUN mkdir -p /opt/bin && ls / > /dev/null
RUN echo 1.2.3.4 x >> /etc/hosts && echo h > /etc/hostname && \\
    echo nameserver 9.9.9.9 > /etc/resolv.conf
WORKDIR /usr/src/app
EXPOSE 443/udp 80 8080/tcp 22
COPY a ./
COPY --chown=1000:1000 a b.txt ./
COPY dir /d/
COPY . /all/
COPY *.txt /w/
ADD plain.tar /t1/
ADD made-by-tar.tgz /t2/
ADD t.tbz2 /t3/
ADD t.txz /t4/
LABEL x=y
SHELL ["/bin/ash", "-c"]
CMD echo hi
"""

CHILD_DOCKERFILE = """\
FROM parent
RUN echo $0 > /shell.txt
"""


def _tarball(path: Path, mode: str) -> None:
    """A tar with a directory, a file, a symlink and a hardlink."""
    import io
    import tarfile

    with tarfile.open(path, mode) as tf:
        for name, kind, data in (
            ("x", tarfile.DIRTYPE, b""),
            ("x/f", tarfile.REGTYPE, b"file in a tar\n"),
            ("x/s", tarfile.SYMTYPE, b"f"),
            ("x/h", tarfile.LNKTYPE, b"x/f"),
        ):
            info = tarfile.TarInfo(name)
            info.type = kind
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            info.mtime = 1700000000
            if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
                info.linkname = data.decode()
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data) if data else None)


def build_context(root: Path) -> Path:
    """One context for both builders: files, dirs, symlinks, a hardlink,
    .dockerignore and tarballs of every compression Docker 20.10 reads."""
    c = root / "ctx"
    (c / "dir/sub").mkdir(parents=True)
    (c / "a").write_text("hello\n")
    (c / "b.txt").write_text("bbb")
    (c / "c.txt").write_text("c")
    (c / "dir/x").write_text("x\n")
    (c / "dir/sub/y").write_text("y\n")
    (c / "dir/lx").symlink_to("x")
    (c / "dir/la").symlink_to("../a")
    os.link(c / "a", c / "dir/hard")
    (c / "skip.log").write_text("ignored")
    (c / ".dockerignore").write_text("*.log\n")
    _tarball(c / "plain.tar", "w")
    _tarball(c / "t.tbz2", "w:bz2")
    _tarball(c / "t.txz", "w:xz")
    src = root / "tarsrc"
    (src / "top/d").mkdir(parents=True)
    (src / "top/d/f").write_text("from tar -czf\n")
    (src / "top/l").symlink_to("d/f")
    run("tar", "-czf", str(c / "made-by-tar.tgz"), "-C", str(src), "top")
    for p in sorted(c.rglob("*")):
        if not p.is_symlink():
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    return c


def _docker_build(docker: list[str], ctx: Path, dockerfile: str, name: str) -> None:
    (ctx / "Dockerfile").write_text(dockerfile)
    run(*docker, "build", "-q", "-t", name, str(ctx), env={**os.environ, "DOCKER_BUILDKIT": "0"})


def _our_build(lay: Path, ctx: Path, dockerfile: str, ref: str) -> str:
    (ctx / "Dockerfile").write_text(dockerfile)
    return ok("build", "-t", f"{lay}:{ref}", str(ctx))


def test_build_history_and_config_equal_dockers(docker: list[str], tmp_path: Path) -> None:
    need_tool("runc")
    lay = tmp_path / "lay"
    busybox_base(lay, tmp_path)
    b = tmp_path / "bundle-base"
    ok("unpack", "--force", f"{lay}:base", str(b))
    (b / "rootfs/bin/ash").symlink_to("busybox")
    ok("commit", str(b), f"{lay}:base")
    # The same name on both sides: Docker resolves "base" to a local image,
    # we to the ref of the target layout (issue 15 #7).
    load(docker, lay, "base", "localhost/fidelity:base", tmp_path)
    run(*docker, "tag", "localhost/fidelity:base", "base:latest")
    ctx = build_context(tmp_path)
    (tmp_path / "base").mkdir()  # a directory named like the image: not used

    _docker_build(docker, ctx, BUILD_DOCKERFILE, "localhost/fidelity:built")
    out = _our_build(lay, ctx, BUILD_DOCKERFILE, "built")
    assert "Successfully built " in out

    theirs = docker_history(docker, "localhost/fidelity:built", "{{.CreatedBy}}\t{{.Size}}")
    ours = [
        json.loads(x)
        for x in ok(
            "history", "--format", "json", "--no-trunc", "--human=false", f"{lay}:built"
        ).splitlines()
    ]
    assert [f"{r['CreatedBy']}\t{r['Size']}" for r in ours] == theirs

    [info] = json.loads(run(*docker, "image", "inspect", "localhost/fidelity:built").stdout)
    cfg = json.loads(ok("inspect", "--config", f"{lay}:built"))["config"]
    for key in ("Env", "Shell", "WorkingDir", "Cmd", "Labels", "ExposedPorts"):
        assert cfg.get(key) == info["Config"].get(key), key
    assert cfg["Shell"] == ["/bin/ash", "-c"]
    assert len(info["RootFS"]["Layers"]) == len(
        json.loads(ok("inspect", "--config", f"{lay}:built"))["rootfs"]["diff_ids"]
    )

    # A child image runs RUN with the parent's SHELL (issue 15 #1).
    load(docker, lay, "built", "localhost/fidelity:parent", tmp_path)
    run(*docker, "tag", "localhost/fidelity:parent", "parent:latest")
    _docker_build(docker, ctx, CHILD_DOCKERFILE, "localhost/fidelity:child")
    lay2 = tmp_path / "lay2"
    ok("new", f"{lay2}:scratch")
    archive = tmp_path / "parent.tar"
    ok("export", f"{lay}:built", str(archive))
    ok("import", str(archive), f"{lay2}:parent")
    _our_build(lay2, ctx, CHILD_DOCKERFILE, "child")
    theirs = docker_history(docker, "localhost/fidelity:child", "{{.CreatedBy}}")[0]
    ours_top = json.loads(
        ok("history", "--format", "json", "--no-trunc", f"{lay2}:child").splitlines()[0]
    )
    assert ours_top["CreatedBy"] == theirs == "/bin/ash -c echo $0 > /shell.txt"
    shell_txt = run(
        *docker, "run", "--rm", "--network", "none", "localhost/fidelity:child", "cat", "/shell.txt"
    ).stdout
    c = tmp_path / "child-bundle"
    ok("unpack", f"{lay2}:child", str(c))
    assert (c / "rootfs/shell.txt").read_text() == shell_txt == "/bin/ash\n"
