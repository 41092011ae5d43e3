"""Pull, push, copy, ls-tags and inspect against a real, open docker-registry
(distribution 2.8) on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from registry_env import (
    FaultProxy,
    Registry,
    layout_state,
    make_image,
    make_index,
    needs_registry,
    run_registry,
)
from verify import assert_valid_layout

from oci_tools.layout import Layout
from oci_tools.registry import Options, RetryPolicy, parse_reference
from oci_tools.registry import remote as remote_mod
from oci_tools.registry.transfer import Client, pull, push
from oci_tools.spec.model import Platform

pytestmark = needs_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    px = FaultProxy(registry)
    yield px
    px.close()


def client() -> Client:
    return Client(Options(retry=RetryPolicy(attempts=4, base=0.05, cap=0.2, total=20)))


def _image(tmp_path: Path, name: str = "src", ref: str = "v1", n: int = 2) -> Layout:
    lay = Layout.init(str(tmp_path / name))
    make_image(lay, ref, [os.urandom(2000 + i) for i in range(n)])
    return lay


def test_push_then_pull_preserves_digest(tmp_path: Path, registry: Registry) -> None:
    src = _image(tmp_path)
    want = src.lookup("v1").digest
    r = cli("push", f"{tmp_path}/src:v1", f"{registry.host}/t/roundtrip:v1")
    assert r.code == 0, r.err
    assert r.out.strip() == str(want)
    r = cli("pull", "-q", f"docker://{registry.host}/t/roundtrip:v1", f"{tmp_path}/dst")
    assert r.code == 0, r.err
    assert r.out.strip() == str(want)
    dst = Layout.open(str(tmp_path / "dst"))
    assert dst.lookup("v1").digest == want  # default REF = the tag
    assert_valid_layout(tmp_path / "dst")
    # Every blob file is byte-identical to the source's.
    for d in src.reachable([src.lookup("v1")]):
        assert Path(dst.store.path_of(d)).read_bytes() == Path(src.store.path_of(d)).read_bytes()


def test_push_skips_existing_blobs_and_pull_skips_present(
    tmp_path: Path, proxy: FaultProxy
) -> None:
    src = _image(tmp_path, n=3)
    ref = parse_reference(f"docker://{proxy.host}/t/skip:v1")
    with client() as c:
        push(c, src, "v1", ref)
        first = [m for m, p, _ in proxy.log if m in ("PATCH", "PUT") and "/blobs/" in p]
        assert first  # uploaded once
        proxy.log.clear()
        push(c, src, "v1", ref)
        again = [(m, p) for m, p, _ in proxy.log if "/blobs/" in p and m != "HEAD"]
        assert again == []  # HEAD said "have it": nothing uploaded
        dst = Layout.init(str(tmp_path / "dst"))
        pull(c, ref, dst, "a")
        proxy.log.clear()
        pull(c, ref, dst, "b")
        assert [p for m, p, _ in proxy.log if m == "GET" and "/blobs/" in p] == []
    assert_valid_layout(tmp_path / "dst")


def test_chunked_upload_and_cross_repo_mount(
    tmp_path: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_mod, "MONOLITHIC_MAX", 1000)
    monkeypatch.setattr(remote_mod, "CHUNK_SIZE", 700)
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(3000)])
    with client() as c:
        dg = push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/chunked:v1"))
        patches = [h for m, p, h in proxy.log if m == "PATCH"]
        assert len(patches) >= 2
        assert patches[0]["Content-Range"].startswith("0-")
        proxy.log.clear()
        r = cli(
            "copy",
            f"docker://{proxy.host}/t/chunked:v1",
            f"docker://{proxy.host}/t/mounted:v2",
        )
        assert r.code == 0, r.err
        assert r.out.strip() == str(dg)
        mounts = [p for m, p, _ in proxy.log if m == "POST" and "mount=" in p]
        assert mounts and all("from=t%2Fchunked" in p for p in mounts)
        assert not [m for m, p, _ in proxy.log if m in ("PATCH",)]
    dst = Layout.init(str(tmp_path / "dst"))
    with client() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/t/mounted:v2"), dst)
    assert dst.lookup("v2").digest == dg
    assert_valid_layout(tmp_path / "dst")


def test_index_platforms(tmp_path: Path, registry: Registry) -> None:
    src = Layout.init(str(tmp_path / "src"))
    amd = make_image(src, None, [b"amd64 bits"], arch="amd64")
    arm = make_image(src, None, [b"arm64 bits"], arch="arm64", variant="v8")
    idx = make_index(src, "multi", [amd, arm])
    r = cli("push", f"{tmp_path}/src:multi", f"docker://{registry.host}/t/multi:1")
    assert r.code == 0, r.err
    assert r.out.strip() == str(idx.digest)
    # Default: follow the index to one platform.
    r = cli(
        "pull",
        "--platform",
        "linux/arm64",
        f"docker://{registry.host}/t/multi:1",
        f"{tmp_path}/one:arm",
    )
    assert r.code == 0, r.err
    one = Layout.open(str(tmp_path / "one"))
    got = one.lookup("arm")
    assert got.digest == arm.digest
    assert got.platform == Platform("linux", "arm64", "v8")
    assert not one.store.has(idx.digest) and not one.store.has(amd.digest)
    # --all-platforms keeps the index with every manifest.
    r = cli("pull", "--all-platforms", f"docker://{registry.host}/t/multi:1", f"{tmp_path}/all")
    assert r.code == 0, r.err
    every = Layout.open(str(tmp_path / "all"))
    assert every.lookup("1").digest == idx.digest
    assert every.store.has(amd.digest) and every.store.has(arm.digest)
    assert_valid_layout(tmp_path / "all")
    assert_valid_layout(tmp_path / "one")
    r = cli(
        "pull", "--platform", "linux/s390x", f"docker://{registry.host}/t/multi:1", f"{tmp_path}/x"
    )
    assert r.code == 1
    assert "linux/s390x" in r.err and "linux/amd64" in r.err


def test_ls_tags_and_inspect(tmp_path: Path, registry: Registry) -> None:
    src = _image(tmp_path)
    for tag in ("b", "a", "c"):
        assert cli("push", "-q", f"{tmp_path}/src:v1", f"{registry.host}/t/tags:{tag}").code == 0
    r = cli("ls-tags", f"docker://{registry.host}/t/tags")
    assert r.code == 0, r.err
    assert r.out.split() == ["a", "b", "c"]
    r = cli("inspect", "--raw", f"docker://{registry.host}/t/tags:a")
    assert r.code == 0, r.err
    assert r.out.rstrip("\n").encode() == src.read_blob(src.lookup("v1"))
    r = cli("inspect", f"docker://{registry.host}/t/tags:a")
    doc = json.loads(r.out)
    assert doc["Digest"] == str(src.lookup("v1").digest)
    assert doc["Architecture"] == "amd64" and len(doc["Layers"]) == 2
    r = cli("inspect", "--config", f"docker://{registry.host}/t/tags:a")
    assert json.loads(r.out)["os"] == "linux"


def test_copy_transports(tmp_path: Path, registry: Registry) -> None:
    src = _image(tmp_path)
    want = str(src.lookup("v1").digest)
    steps = [
        (f"oci:{tmp_path}/src:v1", f"docker://{registry.host}/t/copy:v1"),
        (f"docker://{registry.host}/t/copy:v1", f"oci-archive:{tmp_path}/img.tar"),
        (f"oci-archive:{tmp_path}/img.tar", f"docker://{registry.host}/t/copy2:v2"),
        (f"docker://{registry.host}/t/copy2:v2", f"oci:{tmp_path}/back:z"),
    ]
    for a, b in steps:
        r = cli("copy", "-q", a, b)
        assert r.code == 0, (a, b, r.err)
        assert r.out.strip() == want, (a, b)
    assert Layout.open(str(tmp_path / "back")).lookup("z").digest == src.lookup("v1").digest
    assert_valid_layout(tmp_path / "back")
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".oci-tools-copy-")]


def test_errors_are_one_line(tmp_path: Path, registry: Registry) -> None:
    r = cli("pull", f"docker://{registry.host}/t/none:nope", f"{tmp_path}/x")
    assert r.code == 1
    assert r.err.splitlines() == [
        f"oci-tools: error: manifest {registry.host}/t/none:nope: manifest unknown "
        "(MANIFEST_UNKNOWN, HTTP 404)"
    ]
    assert cli("copy", "a", "b").code == 2
    assert cli("pull", "--platform", "linux/amd64", "--all-platforms", "x/y", "l").code == 2


def test_redirected_blob_gets_no_credentials(tmp_path: Path, registry: Registry) -> None:
    """A blob GET redirected to another host (storage) carries no Authorization."""
    import http.server
    import threading

    from registry_env import free_port

    seen: list[str | None] = []
    src = _image(tmp_path, n=1)
    ref = parse_reference(f"docker://{registry.host}/t/redirect:v1")
    with client() as c:
        push(c, src, "v1", ref)

    class Storage(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append(self.headers.get("Authorization"))
            self.send_response(307)
            self.send_header("Location", f"http://{registry.host}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

    port = free_port()
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Storage)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    px = FaultProxy(registry)

    def to_storage(h, resp, data):  # type: ignore[no-untyped-def]
        h.send_response(307)
        h.send_header("Location", f"http://127.0.0.1:{port}{h.path}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    px.add(lambda m, p: m == "GET" and "/blobs/sha256:" in p, to_storage, count=-1)
    try:
        from oci_tools.registry import Credential

        opts = Options(creds=Credential("user", "topsecret"))
        with Client(opts) as c:
            # An open registry ignores credentials; force Basic on every request.
            t = c.transport(px.host)
            t.base()
            from oci_tools.registry.auth import Challenge

            t._challenge = Challenge("basic", {})
            dst = Layout.init(str(tmp_path / "dst"))
            pull(c, parse_reference(f"docker://{px.host}/t/redirect:v1"), dst)
        sent = [h.get("Authorization") for m, p, h in px.log if "/blobs/sha256:" in p]
        assert sent and all(a and a.startswith("Basic ") for a in sent)
        assert seen and all(a is None for a in seen)
        assert_valid_layout(tmp_path / "dst")
    finally:
        px.close()
        srv.shutdown()
        srv.server_close()


def test_failed_pull_leaves_layout_unchanged(tmp_path: Path, proxy: FaultProxy) -> None:
    src = _image(tmp_path, n=3)
    ref = parse_reference(f"docker://{proxy.host}/t/atomic:v1")
    with client() as c:
        push(c, src, "v1", ref)
    dst = Layout.init(str(tmp_path / "dst"))
    make_image(dst, "keep", [b"already here"])
    before = layout_state(tmp_path / "dst")
    proxy.add(lambda m, p: m == "GET" and "/blobs/" in p, ("status", 404, {}), count=1)
    with client() as c, pytest.raises(Exception, match="HTTP 404"):
        pull(c, ref, dst)
    assert layout_state(tmp_path / "dst") == before


def test_copy_between_registries_streams(tmp_path: Path, registry: Registry) -> None:
    """Another registry (here: another host:port) gets the blobs streamed
    through — uploaded, not mounted — and nothing is written locally."""
    src = _image(tmp_path, n=2)
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{registry.host}/t/stream:v1"))
    px = FaultProxy(registry)
    try:
        before = set(os.listdir(tmp_path))
        r = cli(
            "copy",
            f"docker://{registry.host}/t/stream:v1",
            f"docker://{px.host}/t/streamed:v1",
        )
        assert r.code == 0, r.err
        assert r.out.strip() == str(src.lookup("v1").digest)
        methods = [m for m, p, _ in px.log if "/blobs/" in p]
        assert "PATCH" in methods
        assert not [p for m, p, _ in px.log if "mount=" in p]
        assert set(os.listdir(tmp_path)) == before
    finally:
        px.close()
    dst = Layout.init(str(tmp_path / "dst"))
    with client() as c:
        pull(c, parse_reference(f"docker://{registry.host}/t/streamed:v1"), dst)
    assert dst.lookup("v1").digest == src.lookup("v1").digest


def test_push_mounts_blobs_the_layout_knows_a_source_for(tmp_path: Path, proxy: FaultProxy) -> None:
    """The layout remembers which repositories hold its blobs (from pulls and
    pushes), so pushing to another repository of that registry mounts."""
    src = _image(tmp_path, n=2)
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/known-a:v1"))
        proxy.log.clear()
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/known-b:v1"))
    mounts = [p for m, p, _ in proxy.log if m == "POST" and "mount=" in p]
    assert len(mounts) == 3 and all("from=t%2Fknown-a" in p for p in mounts)
    assert not [m for m, p, _ in proxy.log if m in ("PATCH", "PUT") and "/blobs/" in p]
    # A pulled image knows where it came from too.
    dst = Layout.init(str(tmp_path / "dst"))
    with client() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/t/known-b:v1"), dst)
        proxy.log.clear()
        push(c, dst, "v1", parse_reference(f"docker://{proxy.host}/t/known-c:v1"))
    mounts = [p for m, p, _ in proxy.log if m == "POST" and "mount=" in p]
    assert len(mounts) == 3 and all("from=t%2Fknown-b" in p for p in mounts)
    assert_valid_layout(tmp_path / "dst")


def test_mount_only_push_and_copy_make_the_fewest_requests(
    tmp_path: Path, proxy: FaultProxy
) -> None:
    """Where every blob can be mounted, a push is one mount POST per blob and
    the manifest PUT (no /v2/ ping, no HEAD: a 201 says it all), and a copy
    within one registry adds only the source manifest's GET."""
    src = _image(tmp_path, n=2)
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/few-a:v1"))
    proxy.log.clear()
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/few-b:v1"))
    seen = sorted((m, p.split("/")[4]) for m, p, _ in proxy.log)
    assert seen == [("POST", "blobs")] * 3 + [("PUT", "manifests")]
    proxy.log.clear()
    r = cli("copy", f"docker://{proxy.host}/t/few-b:v1", f"docker://{proxy.host}/t/few-c:v1")
    assert r.code == 0, r.err
    seen = sorted((m, p.split("/")[4]) for m, p, _ in proxy.log)
    assert seen == [("GET", "manifests")] + [("POST", "blobs")] * 3 + [("PUT", "manifests")]
    dst = Layout.init(str(tmp_path / "dst"))
    with client() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/t/few-c:v1"), dst)
    assert dst.lookup("v1").digest == src.lookup("v1").digest


def test_refused_mount_uploads_into_its_session_or_skips(tmp_path: Path, proxy: FaultProxy) -> None:
    """A mount the registry refuses (the source does not hold the blob) opens
    an upload session: the blob goes into it, unless a HEAD shows the
    destination has it already (then the session is cancelled)."""
    from oci_tools.registry import transfer

    src = _image(tmp_path, n=2)
    blobs = [d for d in src.reachable([src.lookup("v1")]) if d != src.lookup("v1").digest]
    transfer._record_sources(src, blobs, f"{proxy.host}/t/nowhere")
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/refused:v1"))
    mounts = [p for m, p, _ in proxy.log if m == "POST" and "mount=" in p]
    assert len(mounts) == 3 and all("from=t%2Fnowhere" in p for p in mounts)
    assert len([m for m, p, _ in proxy.log if m == "PUT" and "/blobs/uploads/" in p]) == 3
    assert not [m for m, p, _ in proxy.log if m == "POST" and "mount=" not in p]
    # Now the destination has them; the layout forgot, and names only the wrong source.
    os.unlink(transfer._sources_path(src))
    transfer._record_sources(src, blobs, f"{proxy.host}/t/nowhere")
    proxy.log.clear()
    with client() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/t/refused:v2"))
    methods = sorted(m for m, p, _ in proxy.log if "/blobs/" in p)
    assert methods == ["DELETE"] * 3 + ["HEAD"] * 3 + ["POST"] * 3
    dst = Layout.init(str(tmp_path / "dst"))
    with client() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/t/refused:v2"), dst)
    assert dst.lookup("v2").digest == src.lookup("v1").digest
    assert_valid_layout(tmp_path / "dst")


def test_tls_registry_on_loopback(tmp_path: Path) -> None:
    """A loopback port that speaks only TLS: plain HTTP is tried first and
    HTTPS taken; a self-signed certificate needs --tls-verify=false."""
    src = _image(tmp_path)
    with run_registry(tmp_path / "tls", tls=True) as reg:
        dest = f"docker://{reg.host}/t/tls:v1"
        r = cli("push", f"{tmp_path}/src:v1", dest)
        assert r.code == 1
        error, hint = r.err.splitlines()
        assert "certificate" in error.lower() and hint.startswith("hint: --tls-verify=false")
        r = cli("push", "--tls-verify=false", f"{tmp_path}/src:v1", dest)
        assert r.code == 0, r.err
        r = cli("pull", "--tls-verify=false", dest, f"{tmp_path}/dst")
        assert r.code == 0, r.err
        assert r.out.strip() == str(src.lookup("v1").digest)
        assert cli("pull", "--plain-http", dest, f"{tmp_path}/dst2").code == 1


def _docker_image(lay: Layout, data: bytes, arch: str) -> Any:
    """A Docker schema 2 image (Docker media types throughout)."""
    from builders import file, make_layer

    from oci_tools.digest import Digest
    from oci_tools.spec import mediatype as mt
    from oci_tools.spec.model import Descriptor, Platform
    from oci_tools.store import put_bytes

    layer = make_layer([file("f", data)])
    put_bytes(lay.store, layer.blob)
    cfg = json.dumps(
        {
            "architecture": arch,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
    ).encode()
    cd = put_bytes(lay.store, cfg)
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST,
            "config": {"mediaType": mt.DOCKER_CONFIG, "size": len(cfg), "digest": str(cd)},
            "layers": [
                {"mediaType": mt.DOCKER_LAYER_GZIP, "size": len(layer.blob), "digest": layer.digest}
            ],
        },
        indent=3,
    ).encode()
    md = put_bytes(lay.store, raw)
    assert md == Digest.of_bytes(raw)
    return Descriptor(mt.DOCKER_MANIFEST, md, len(raw), platform=Platform("linux", arch))


def test_docker_manifest_list_round_trip(tmp_path: Path, proxy: FaultProxy) -> None:
    """A Docker manifest list with Docker schema 2 manifests is pushed and
    pulled byte for byte; manifests are PUT only after every blob."""
    from oci_tools.spec import mediatype as mt
    from oci_tools.spec.model import Descriptor
    from oci_tools.store import put_bytes

    src = Layout.init(str(tmp_path / "src"))
    a = _docker_image(src, b"amd", "amd64")
    b = _docker_image(src, b"arm", "arm64")
    raw = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": mt.DOCKER_MANIFEST_LIST,
            "manifests": [d.to_dict() for d in (a, b)],
        },
        indent=3,
    ).encode()
    ld = put_bytes(src.store, raw)
    src.set_ref("list", Descriptor(mt.DOCKER_MANIFEST_LIST, ld, len(raw)))
    r = cli("push", f"{tmp_path}/src:list", f"docker://{proxy.host}/t/dlist:1")
    assert r.code == 0, r.err
    assert r.out.strip() == str(ld)
    kinds = [
        "manifest" if "/manifests/" in p else "blob"
        for m, p, _ in proxy.log
        if m in ("PUT", "PATCH")
    ]
    assert kinds.index("manifest") > max(i for i, k in enumerate(kinds) if k == "blob")
    r = cli("pull", "--all-platforms", f"docker://{proxy.host}/t/dlist:1", f"{tmp_path}/all")
    assert r.code == 0, r.err
    every = Layout.open(str(tmp_path / "all"))
    top = every.lookup("1")
    assert top.digest == ld and top.media_type == mt.DOCKER_MANIFEST_LIST
    assert every.read_blob(top) == raw
    r = cli(
        "pull", "--platform", "linux/arm64", f"docker://{proxy.host}/t/dlist:1", f"{tmp_path}/one"
    )
    assert r.code == 0, r.err
    one = Layout.open(str(tmp_path / "one")).lookup("1")
    assert one.digest == b.digest and one.media_type == mt.DOCKER_MANIFEST
    assert_valid_layout(tmp_path / "all")


def test_copy_index_between_repositories(tmp_path: Path, registry: Registry) -> None:
    """``copy --all-platforms`` moves an index with every manifest (digest
    unchanged); without it, only this platform's manifest."""
    src = Layout.init(str(tmp_path / "src"))
    amd = make_image(src, None, [b"amd64 copy"], arch="amd64")
    arm = make_image(src, None, [b"arm64 copy"], arch="arm64")
    idx = make_index(src, "multi", [amd, arm])
    assert cli("push", f"{tmp_path}/src:multi", f"{registry.host}/t/cidx:1").code == 0
    r = cli(
        "copy",
        "--all-platforms",
        f"docker://{registry.host}/t/cidx:1",
        f"docker://{registry.host}/t/cidx-all:1",
    )
    assert r.code == 0, r.err
    assert r.out.strip() == str(idx.digest)
    r = cli(
        "copy",
        "--platform",
        "linux/arm64",
        f"docker://{registry.host}/t/cidx:1",
        f"docker://{registry.host}/t/cidx-arm:1",
    )
    assert r.code == 0, r.err
    assert r.out.strip() == str(arm.digest)
    r = cli("pull", "--all-platforms", f"{registry.host}/t/cidx-all:1", f"{tmp_path}/back")
    assert r.code == 0, r.err
    assert_valid_layout(tmp_path / "back")
