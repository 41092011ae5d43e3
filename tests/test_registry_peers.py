"""Real peers on a loopback docker-registry: what we push, skopeo (and podman)
read; what skopeo pushes, we pull — digests identical both ways."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, need_tool, run
from registry_env import Registry, make_image, make_index, needs_registry, run_registry
from verify import assert_valid_layout

from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt

pytestmark = [needs_registry, pytest.mark.interop]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def _skopeo(*args: str) -> str:
    return run(need_tool("skopeo"), "--insecure-policy", *args).stdout


def _index_digest(path: Path, ref: str) -> str:
    doc = json.loads((path / "index.json").read_text())
    for m in doc["manifests"]:
        if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            return str(m["digest"])
    raise AssertionError(f"{ref} not in {path}")


def test_skopeo_reads_what_we_push(tmp_path: Path, registry: Registry) -> None:
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(5000), os.urandom(7000)])
    want = str(src.lookup("v1").digest)
    assert cli("push", f"{tmp_path}/src:v1", f"{registry.host}/peer/ours:v1").code == 0
    info = json.loads(
        _skopeo("inspect", "--tls-verify=false", f"docker://{registry.host}/peer/ours:v1")
    )
    assert info["Digest"] == want
    _skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{registry.host}/peer/ours:v1",
        f"oci:{tmp_path}/sk:v1",
    )
    assert _index_digest(tmp_path / "sk", "v1") == want
    assert_valid_layout(tmp_path / "sk")


def test_skopeo_reads_our_index(tmp_path: Path, registry: Registry) -> None:
    src = Layout.init(str(tmp_path / "src"))
    a = make_image(src, None, [b"amd"], arch="amd64")
    b = make_image(src, None, [b"arm"], arch="arm64", variant="v8")
    idx = make_index(src, "multi", [a, b])
    assert cli("push", f"{tmp_path}/src:multi", f"{registry.host}/peer/multi:1").code == 0
    raw = _skopeo(
        "inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/peer/multi:1"
    )
    assert raw.encode().rstrip(b"\n") == src.read_blob(idx)
    _skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{registry.host}/peer/multi:1",
        f"oci:{tmp_path}/sk:m",
    )
    assert _index_digest(tmp_path / "sk", "m") == str(idx.digest)


@pytest.mark.parametrize("fmt", ["oci", "v2s2"])
def test_we_pull_what_skopeo_pushes(tmp_path: Path, registry: Registry, fmt: str) -> None:
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(4000)])
    dest = f"docker://{registry.host}/peer/theirs-{fmt}:v1"
    _skopeo("copy", "--dest-tls-verify=false", "--format", fmt, f"oci:{tmp_path}/src:v1", dest)
    info = json.loads(_skopeo("inspect", "--tls-verify=false", dest))
    r = cli("pull", dest, f"{tmp_path}/ours")
    assert r.code == 0, r.err
    assert r.out.strip() == info["Digest"]
    got = Layout.open(str(tmp_path / "ours")).lookup("v1")
    assert str(got.digest) == info["Digest"]
    want_type = mt.OCI_MANIFEST if fmt == "oci" else mt.DOCKER_MANIFEST
    assert got.media_type == want_type
    raw = _skopeo("inspect", "--raw", "--tls-verify=false", dest)
    lay = Layout.open(str(tmp_path / "ours"))
    assert lay.read_blob(got) == raw.encode().rstrip(b"\n")
    assert_valid_layout(tmp_path / "ours")


def test_podman_pulls_what_we_push(tmp_path: Path, registry: Registry) -> None:
    podman = need_tool("podman")
    if os.geteuid() != 0:
        pytest.skip("podman with a private vfs store is run as root here")
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(3000)])
    want = str(src.lookup("v1").digest)
    assert cli("push", f"{tmp_path}/src:v1", f"{registry.host}/peer/podman:v1").code == 0
    import tempfile

    # podman refuses a runroot path longer than 50 characters.
    short = Path(tempfile.mkdtemp(prefix="ocpd-"))
    root, runroot = short / "root", short / "run"
    base = [
        podman,
        "--root",
        str(root),
        "--runroot",
        str(runroot),
        "--storage-driver",
        "vfs",
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "none",
    ]
    try:
        run(*base, "pull", "-q", "--tls-verify=false", f"{registry.host}/peer/podman:v1")
        out = run(*base, "images", "--digests", "--format", "{{.Digest}}").stdout
        assert want in out.split()
    finally:
        run(*base, "rmi", "-a", "-f", check=False)
        shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def docker() -> Iterator[list[str]]:
    """A private Docker engine (tests/interop's one helper: own roots and
    socket, vfs, no networking set-up); loopback registries are insecure for
    it by default."""
    from interop.daemons import docker_engine

    with docker_engine() as cmd:
        yield cmd


def test_docker_pulls_what_we_push_and_we_pull_what_it_pushes(
    tmp_path: Path, registry: Registry, docker: list[str]
) -> None:
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(3000), os.urandom(2000)])
    want = str(src.lookup("v1").digest)
    name = f"{registry.host}/peer/docker"
    assert cli("push", f"{tmp_path}/src:v1", f"{name}:v1").code == 0
    run(*docker, "pull", "-q", f"{name}:v1")
    [info] = json.loads(run(*docker, "image", "inspect", f"{name}:v1").stdout)
    assert f"{name}@{want}" in info["RepoDigests"]
    # docker push writes a Docker schema 2 manifest of its own; we pull it as is.
    run(*docker, "tag", f"{name}:v1", f"{name}:from-docker")
    out = run(*docker, "push", f"{name}:from-docker").stdout
    pushed = next(w for w in out.split() if w.startswith("sha256:"))
    r = cli("pull", f"docker://{name}:from-docker", f"{tmp_path}/ours")
    assert r.code == 0, r.err
    assert r.out.strip() == pushed
    got = Layout.open(str(tmp_path / "ours")).lookup("from-docker")
    assert got.media_type == mt.DOCKER_MANIFEST
    assert_valid_layout(tmp_path / "ours")


def test_we_pull_what_buildah_pushes(tmp_path: Path, registry: Registry) -> None:
    import subprocess
    import tempfile

    need_tool("buildah")
    if os.geteuid() != 0:
        pytest.skip("buildah with a private vfs store is run as root here")
    short = Path(tempfile.mkdtemp(prefix="ocbh-"))  # buildah wants a short runroot
    base = ["buildah", "--root", f"{short}/r", "--runroot", f"{short}/rr"]
    base += ["--storage-driver", "vfs"]
    try:
        c = run(*base, "from", "scratch").stdout.strip()
        (tmp_path / "hello").write_text("hello from buildah\n")
        run(*base, "copy", c, str(tmp_path / "hello"), "/hello")
        run(*base, "commit", "-q", c, "localhost/ocbh:v1")
        dest = f"docker://{registry.host}/peer/buildah:v1"
        digestfile = tmp_path / "digest"
        run(
            *base,
            "push",
            "--tls-verify=false",
            "--digestfile",
            str(digestfile),
            "localhost/ocbh:v1",
            dest,
        )
        pushed = digestfile.read_text().strip()
    finally:
        subprocess.run([*base, "rm", "-a"], capture_output=True, check=False)
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, check=False)
        shutil.rmtree(short, ignore_errors=True)
    r = cli("pull", dest, f"{tmp_path}/ours")
    assert r.code == 0, r.err
    assert r.out.strip() == pushed
    assert_valid_layout(tmp_path / "ours")
