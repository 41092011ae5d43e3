"""What we write loads in skopeo, umoci, containerd, podman and docker; what they write
imports with ``oci-tools import`` and validates.

Each test skips only when its tool is missing.  Everything lives in temp
dirs: containerd and dockerd run privately (own roots and sockets; stopped
after the module, also on failure) and podman uses its own vfs store.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import cli, need_tool, run
from verify import assert_valid_layout

from interop.daemons import daemon as _daemon
from interop.daemons import docker_engine
from interop.imagefixture import (
    CMD,
    CREATED_BY,
    ENV,
    EXPECTED,
    HARDLINKS,
    add_busybox,
    make_image,
    tree_of,
)
from oci_tools.image import Image
from oci_tools.layout import Layout

pytestmark = pytest.mark.interop

NAME = "localhost/demo:app"
DOCKER_NAME = "localhost/demo:docker"


@dataclass(frozen=True)
class Made:
    """Our image and its exports."""

    layout: Path
    digest: str
    config_digest: str
    diff_ids: list[str]
    oci_tar: Path
    docker_tar: Path


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    base = tmp_path_factory.mktemp("ours")
    desc = make_image(base / "demo", "app")
    img = Image.load(Layout.open(str(base / "demo")), "app")
    assert img.manifest.config is not None
    r = cli("export", f"{base / 'demo'}:app", str(base / "oci.tar"))
    assert r.code == 0, r.err
    assert r.out.strip() == str(desc.digest)
    # Exported under another name so both forms can sit in one store.
    from oci_tools.archive import export_image

    export_image(
        Layout.open(str(base / "demo")),
        "app",
        str(base / "docker.tar"),
        fmt="docker-archive",
        name=DOCKER_NAME,
    )
    return Made(
        base / "demo",
        str(desc.digest),
        str(img.manifest.config.digest),
        [str(d) for d in img.config.diff_ids],
        base / "oci.tar",
        base / "docker.tar",
    )


def _tar_dir(src: Path, dest: Path) -> Path:
    """A plain tar of a layout directory: that is an oci-archive."""
    with tarfile.open(dest, "w") as tf:
        for name in sorted(os.listdir(src)):
            tf.add(src / name, arcname=name)
    return dest


def _import(archive: Path, target: Path, ref: str = "") -> list[tuple[str, str]]:
    """``oci-tools import`` through the CLI; returns (ref, digest) lines."""
    r = cli("import", str(archive), f"{target}:{ref}" if ref else str(target))
    assert r.code == 0, r.err
    assert_valid_layout(str(target))
    return [tuple(line.split(" ", 1)) for line in r.out.splitlines()]  # type: ignore[misc]


# --------------------------------------------------------------------------- skopeo


def test_skopeo_reads_our_layout_and_archives(made: Made, tmp_path: Path) -> None:
    need_tool("skopeo")
    info = json.loads(run("skopeo", "inspect", f"oci:{made.layout}:app").stdout)
    assert info["Digest"] == made.digest
    assert info["Env"] == ENV
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{made.oci_tar}").stdout)
    assert info["Digest"] == made.digest
    info = json.loads(run("skopeo", "inspect", f"oci-archive:{made.oci_tar}:app").stdout)
    assert info["Digest"] == made.digest
    raw = run("skopeo", "inspect", "--raw", f"docker-archive:{made.docker_tar}").stdout
    assert [d["digest"] for d in json.loads(raw)["layers"]] == made.diff_ids
    config = json.loads(
        run("skopeo", "inspect", "--config", f"docker-archive:{made.docker_tar}").stdout
    )
    assert config["config"]["Cmd"] == CMD


def test_skopeo_copy_and_import_back(made: Made, tmp_path: Path) -> None:
    need_tool("skopeo")
    src = f"oci:{made.layout}:app"
    run("skopeo", "copy", "-q", src, f"docker-archive:{tmp_path / 'd.tar'}:example.com/demo:v1")
    run("skopeo", "copy", "-q", src, f"oci-archive:{tmp_path / 'o.tar'}:v2")
    run("skopeo", "copy", "-q", src, f"oci:{tmp_path / 'skl'}:v3")
    assert_valid_layout(str(tmp_path / "skl"))  # we read skopeo's layout as it is
    target = tmp_path / "imported"
    assert _import(tmp_path / "d.tar", target)[0][0] == "v1"
    assert _import(tmp_path / "o.tar", target)[0][0] == "v2"
    assert _import(_tar_dir(tmp_path / "skl", tmp_path / "skl.tar"), target)[0][0] == "v3"
    lay = Layout.open(str(target))
    for ref in ("v1", "v2", "v3"):
        img = Image.load(lay, ref)
        assert [str(d) for d in img.config.diff_ids] == made.diff_ids
        assert [h.created_by for h in img.config.history] == CREATED_BY
    # skopeo keeps the config bytes when it writes a docker-archive.
    v1 = Image.load(lay, "v1")
    assert v1.manifest.config is not None
    assert str(v1.manifest.config.digest) == made.config_digest


# --------------------------------------------------------------------------- umoci


def test_umoci_unpacks_our_image(made: Made, tmp_path: Path) -> None:
    need_tool("umoci")
    bundle = tmp_path / "bundle"
    run("umoci", "unpack", "--image", f"{made.layout}:app", str(bundle))
    rootfs = bundle / "rootfs"
    assert tree_of(rootfs) == EXPECTED
    for a, b in HARDLINKS:
        assert (rootfs / a).stat().st_ino == (rootfs / b).stat().st_ino
    conf = json.loads((bundle / "config.json").read_text())
    assert conf["process"]["args"] == CMD
    assert "GREETING=hello interop" in conf["process"]["env"]


def test_umoci_written_image_imports(tmp_path: Path) -> None:
    need_tool("umoci")
    u = tmp_path / "umoci"
    run("umoci", "init", "--layout", str(u))
    run("umoci", "new", "--image", f"{u}:base")
    (tmp_path / "hello.txt").write_text("from umoci\n")
    run("umoci", "insert", "--image", f"{u}:base", str(tmp_path / "hello.txt"), "/etc/hello.txt")
    run("umoci", "config", "--image", f"{u}:base", "--config.env", "FROM=umoci")
    assert_valid_layout(str(u))
    target = tmp_path / "imported"
    [(ref, digest)] = _import(_tar_dir(u, tmp_path / "u.tar"), target)
    assert ref == "base"
    img = Image.load(Layout.open(str(target)), "base")
    assert str(img.descriptor.digest) == digest
    assert len(img.layers) == 1 and "FROM=umoci" in img.config.config["Env"]


# --------------------------------------------------------------------------- daemons


# --------------------------------------------------------------------------- containerd


@pytest.fixture(scope="module")
def containerd() -> Iterator[str]:
    """A private containerd; yields its socket path."""
    need_tool("containerd")
    need_tool("ctr")
    # Short path: unix socket names are limited to 108 bytes.
    d = Path(tempfile.mkdtemp(prefix="octd-"))
    sock = d / "c.sock"
    plugins_off = [
        "io.containerd.grpc.v1.cri",
        "io.containerd.snapshotter.v1.btrfs",
        "io.containerd.snapshotter.v1.zfs",
        "io.containerd.snapshotter.v1.devmapper",
        "io.containerd.snapshotter.v1.aufs",
        "io.containerd.tracing.processor.v1.otlp",
        "io.containerd.internal.v1.tracing",
    ]
    (d / "config.toml").write_text(
        "version = 2\n"
        f'root = "{d}/root"\n'
        f'state = "{d}/state"\n'
        f"disabled_plugins = {json.dumps(plugins_off)}\n"
        f'[grpc]\n  address = "{sock}"\n'
        f'[ttrpc]\n  address = "{sock}.ttrpc"\n'
        '[debug]\n  address = ""\n'
        '[metrics]\n  address = ""\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{d}/opt"\n'
    )
    with _daemon(
        d, ["containerd", "--config", str(d / "config.toml")], ["ctr", "-a", str(sock), "version"]
    ):
        yield str(sock)


def _ctr(sock: str, *args: str) -> str:
    return run("ctr", "-a", sock, *args).stdout


def test_containerd_imports_our_archives(made: Made, containerd: str, tmp_path: Path) -> None:
    for archive in (made.oci_tar, made.docker_tar):
        _ctr(containerd, "images", "import", "--snapshotter", "native", str(archive))
    names = _ctr(containerd, "images", "ls", "-q").split()
    assert NAME in names and DOCKER_NAME in names
    check = _ctr(containerd, "images", "check", "--snapshotter", "native")
    rows = {line.split()[0]: line for line in check.splitlines()[1:]}
    for name in (NAME, DOCKER_NAME):
        assert "complete" in rows[name], check
    assert made.digest in rows[NAME]  # the oci-archive keeps our manifest digest
    # The reverse: containerd's own export imports and validates.
    out = tmp_path / "ctr.tar"
    _ctr(containerd, "images", "export", str(out), NAME)
    [(ref, digest)] = _import(out, tmp_path / "imported")
    assert (ref, digest) == ("app", made.digest)


# --------------------------------------------------------------------------- podman


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """podman with a private vfs store."""
    need_tool("podman")
    d = tmp_path_factory.mktemp("podman")
    return [
        "podman",
        "--root",
        str(d / "root"),
        "--runroot",
        str(d / "run"),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]


def test_podman_loads_our_archives(made: Made, podman: list[str]) -> None:
    for archive in (made.oci_tar, made.docker_tar):
        run(*podman, "load", "-q", "-i", str(archive))
    listed = json.loads(run(*podman, "images", "--format", "json").stdout)
    names = {n for img in listed for n in img.get("Names") or []}
    assert {NAME, DOCKER_NAME} <= names
    for name in (NAME, DOCKER_NAME):
        [info] = json.loads(run(*podman, "image", "inspect", name).stdout)
        assert info["Config"]["Env"] == ENV
        assert info["Config"]["Cmd"] == CMD
        assert [h.get("created_by") for h in info["History"]] == CREATED_BY
        assert info["RootFS"]["Layers"] == made.diff_ids
        # podman's image id is the config digest, whichever form was loaded.
        assert "sha256:" + info["Id"] == made.config_digest


def test_podman_save_imports(made: Made, podman: list[str], tmp_path: Path) -> None:
    run(*podman, "load", "-q", "-i", str(made.oci_tar))
    target = tmp_path / "imported"
    for fmt, ref in (("oci-archive", NAME), ("docker-archive", "app")):
        out = tmp_path / f"{fmt}.tar"
        run(*podman, "save", "-q", "--format", fmt, "-o", str(out), NAME)
        [(got, _)] = _import(out, target)
        # oci-archive: podman's ref.name is the whole name, kept as the ref;
        # docker-archive: the RepoTags tag part.
        assert got == ref
        img = Image.load(Layout.open(str(target)), ref)
        assert [str(d) for d in img.config.diff_ids] == made.diff_ids
        assert img.config.config["Env"] == ENV


# --------------------------------------------------------------------------- docker


@pytest.fixture(scope="module")
def docker() -> Iterator[list[str]]:
    """A private Docker engine; yields the ``docker`` command that talks to it."""
    with docker_engine() as cmd:
        yield cmd


def test_docker_loads_our_archives(made: Made, docker: list[str]) -> None:
    for archive, name in ((made.oci_tar, NAME), (made.docker_tar, DOCKER_NAME)):
        out = run(*docker, "load", "-i", str(archive)).stdout
        assert f"Loaded image: {name}" in out, out
        [info] = json.loads(run(*docker, "image", "inspect", name).stdout)
        assert info["Config"]["Env"] == ENV
        assert info["Config"]["Cmd"] == CMD
        assert info["RootFS"]["Layers"] == made.diff_ids
        # docker's image id is the config digest, whichever form was loaded.
        assert info["Id"] == made.config_digest
        rows = run(*docker, "history", "--no-trunc", "--format", "{{.CreatedBy}}", name)
        assert rows.stdout.splitlines() == CREATED_BY[::-1]


def test_docker_runs_our_image_and_its_save_imports(docker: list[str], tmp_path: Path) -> None:
    lay = tmp_path / "lay"
    assert cli("new", f"{lay}:scratch").code == 0
    b = tmp_path / "b"
    assert cli("unpack", f"{lay}:scratch", str(b)).code == 0
    add_busybox(b / "rootfs", "sh")
    (b / "rootfs/msg").write_text("hello from docker\n")
    assert cli("commit", str(b), f"{lay}:run").code == 0
    r = cli(
        "config",
        f"{lay}:run",
        "--env",
        "WHO=oci-tools",
        "--cmd",
        '["sh","-c","cat /msg; echo $WHO"]',
    )
    assert r.code == 0, r.err
    for fmt in ("oci-archive", "docker-archive"):
        archive = tmp_path / f"{fmt}.tar"
        r = cli(
            "export",
            f"{lay}:run",
            str(archive),
            "--format",
            fmt,
            "--name",
            f"localhost/oct-{fmt}:run",
        )
        assert r.code == 0, r.err
        run(*docker, "load", "-i", str(archive))
        p = run(
            *docker, "run", "--rm", "--network", "none", f"localhost/oct-{fmt}:run", timeout=120
        )
        assert p.stdout == "hello from docker\noci-tools\n"
    # The reverse: docker save imports, validates and keeps every layer.
    run(*docker, "save", "-o", str(tmp_path / "saved.tar"), "localhost/oct-oci-archive:run")
    [(ref, _)] = _import(tmp_path / "saved.tar", tmp_path / "imported")
    assert ref == "run"
    theirs = Image.load(Layout.open(str(tmp_path / "imported")), ref)
    ours = Image.load(Layout.open(str(lay)), "run")
    assert theirs.config.diff_ids == ours.config.diff_ids
    assert theirs.config.config["Env"] == ours.config.config["Env"]
