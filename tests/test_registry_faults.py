"""Faults between us and a real docker-registry, injected by a loopback proxy:
dropped connections, 5xx, 429 + Retry-After, slow reads, corrupt blobs,
oversized manifests.  Retries must recover; giving up must be one line and
leave the layout exactly as it was."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli
from registry_env import (
    FaultProxy,
    Registry,
    corrupt_body,
    drop_mid_body,
    huge_manifest,
    layout_state,
    make_image,
    needs_registry,
    run_registry,
)
from verify import assert_valid_layout

from oci_tools.errors import DigestMismatchError, RegistryError
from oci_tools.layout import Layout
from oci_tools.registry import Options, RetryPolicy, parse_reference
from oci_tools.registry import remote as remote_mod
from oci_tools.registry.transfer import Client, pull, push

pytestmark = needs_registry

BIG = 3 << 20  # several 1 MiB reads, so a cut lands mid-blob


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    px = FaultProxy(registry)
    yield px
    px.close()


def quick(**kw: object) -> Client:
    policy = RetryPolicy(attempts=4, base=0.05, cap=0.2, total=30)
    return Client(Options(retry=policy, **kw))  # type: ignore[arg-type]


@pytest.fixture
def pushed(tmp_path: Path, proxy: FaultProxy) -> str:
    """An image in the registry (pushed straight, not through faults)."""
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(BIG), os.urandom(1000)])
    name = f"t/f{os.urandom(4).hex()}"
    with quick() as c:
        push(c, src, "v1", parse_reference(f"docker://{proxy.host}/{name}:v1"))
    proxy.log.clear()
    return name


def _is_blob_get(m: str, p: str) -> bool:
    return m == "GET" and "/blobs/sha256:" in p


def _dst(tmp_path: Path) -> tuple[Layout, dict[str, bytes]]:
    dst = Layout.init(str(tmp_path / "dst"))
    make_image(dst, "keep", [b"already here"])
    return dst, layout_state(tmp_path / "dst")


def test_dropped_blob_resumes_with_range(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    proxy.add(_is_blob_get, drop_mid_body, count=1)
    dst = Layout.init(str(tmp_path / "dst"))
    with quick(jobs=1) as c:
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    ranges = [h.get("Range") for m, p, h in proxy.log if _is_blob_get(m, p)]
    resumed = [r for r in ranges if r]
    assert len(resumed) == 1 and resumed[0].startswith("bytes=")
    assert int(resumed[0][6:].rstrip("-")) > 0
    assert_valid_layout(tmp_path / "dst")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_then_success(tmp_path: Path, proxy: FaultProxy, pushed: str, status: int) -> None:
    proxy.add(lambda m, p: "/manifests/" in p, ("status", status, {}), count=2)
    proxy.add(_is_blob_get, ("status", status, {}), count=2)
    dst = Layout.init(str(tmp_path / "dst"))
    with quick() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert len([p for m, p, _ in proxy.log if "/manifests/" in p]) == 3
    assert_valid_layout(tmp_path / "dst")


def test_429_retry_after(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    proxy.add(lambda m, p: "/manifests/" in p, ("status", 429, {"Retry-After": "1"}), count=1)
    dst = Layout.init(str(tmp_path / "dst"))
    with quick() as c:
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert len([p for m, p, _ in proxy.log if "/manifests/" in p]) == 2
    assert_valid_layout(tmp_path / "dst")


def test_slow_read_times_out_and_retries(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    proxy.add(_is_blob_get, ("delay", 2.0), count=1)
    dst = Layout.init(str(tmp_path / "dst"))
    with quick(read_timeout=0.5, jobs=1) as c:
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert len([p for m, p, _ in proxy.log if _is_blob_get(m, p)]) == 3 + 1  # 3 blobs, 1 retry
    assert_valid_layout(tmp_path / "dst")


def test_give_up_is_one_line_and_layout_unchanged(
    tmp_path: Path, proxy: FaultProxy, pushed: str
) -> None:
    dst, before = _dst(tmp_path)
    proxy.add(_is_blob_get, ("status", 503, {}), count=-1)
    with quick() as c, pytest.raises(RegistryError, match="after 4 attempts"):
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert layout_state(tmp_path / "dst") == before
    r = cli("pull", "--retry-times", "2", f"docker://{proxy.host}/{pushed}:v1", str(dst.path))
    assert r.code == 1
    assert len(r.err.splitlines()) == 1
    assert "HTTP 503" in r.err and "after 2 attempts" in r.err
    assert layout_state(tmp_path / "dst") == before
    assert_valid_layout(tmp_path / "dst")


def test_dropped_every_time_gives_up(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    dst, before = _dst(tmp_path)
    proxy.add(_is_blob_get, drop_mid_body, count=-1)
    with quick() as c, pytest.raises(RegistryError, match="attempts"):
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert layout_state(tmp_path / "dst") == before


def test_corrupt_blob_is_refused(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    dst, before = _dst(tmp_path)
    proxy.add(_is_blob_get, corrupt_body, count=-1)
    with quick() as c, pytest.raises(DigestMismatchError):
        pull(c, parse_reference(f"docker://{proxy.host}/{pushed}:v1"), dst)
    assert layout_state(tmp_path / "dst") == before
    r = cli("pull", f"docker://{proxy.host}/{pushed}:v1", str(dst.path))
    assert r.code == 1 and len(r.err.splitlines()) == 1
    assert "expected sha256:" in r.err
    assert layout_state(tmp_path / "dst") == before


def test_manifest_over_size_cap(tmp_path: Path, proxy: FaultProxy, pushed: str) -> None:
    dst, before = _dst(tmp_path)
    proxy.add(lambda m, p: "/manifests/" in p, huge_manifest, count=-1)
    r = cli("pull", f"docker://{proxy.host}/{pushed}:v1", str(dst.path))
    assert r.code == 1 and len(r.err.splitlines()) == 1
    assert "4 MiB" in r.err
    assert layout_state(tmp_path / "dst") == before


def test_push_resumes_chunked_upload_after_drop(
    tmp_path: Path, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_mod, "MONOLITHIC_MAX", 1 << 20)
    monkeypatch.setattr(remote_mod, "CHUNK_SIZE", 1 << 20)
    src = Layout.init(str(tmp_path / "src"))
    make_image(src, "v1", [os.urandom(BIG + 12345)])
    patches = {"n": 0}

    def second_patch(m: str, p: str) -> bool:
        if m != "PATCH":
            return False
        patches["n"] += 1
        return patches["n"] == 2

    proxy.add(second_patch, "drop", count=1)
    proxy.add(lambda m, p: m == "PUT" and "/manifests/" in p, ("status", 500, {}), count=1)
    ref = parse_reference(f"docker://{proxy.host}/t/resume:v1")
    with quick() as c:
        dg = push(c, src, "v1", ref)
    log = [(m, h.get("Content-Range")) for m, p, h in proxy.log if "/uploads/" in p]
    sent = [cr for m, cr in log if m == "PATCH"]
    # The dropped chunk is sent again from the offset the registry reported.
    assert ("GET", None) in log
    assert sent[1] == sent[2] and sent[1].startswith(f"{1 << 20}-")
    assert dg == src.lookup("v1").digest
    dst = Layout.init(str(tmp_path / "dst"))
    with quick() as c:
        pull(c, ref, dst)
    assert dst.lookup("v1").digest == dg
    assert_valid_layout(tmp_path / "dst")
