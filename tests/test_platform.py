"""Refs that point at an image index: the host's manifest, or --platform's."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from helpers import cli
from verify import assert_valid_layout

from oci_tools.layout import Layout, host_platform
from oci_tools.mutate import empty_config, write_image
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Index, Platform
from oci_tools.store import put_bytes


def _multi(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    p = tmp_path / "lay"
    lay = Layout.init(str(p))
    host = host_platform()
    other = Platform("linux", "arm64" if host.architecture != "arm64" else "amd64")
    descs = {}
    for plat in (other, host):
        d = write_image(lay, empty_config(plat, "2024-01-01T00:00:00Z"), [])
        descs[str(plat)] = d
    inner = Index.build(list(descs.values()))
    put_bytes(lay.store, inner.raw)
    # an index inside an index: followed down to the manifest
    outer = Index.build([Descriptor(mt.OCI_INDEX, inner.digest, inner.size)])
    put_bytes(lay.store, outer.raw)
    lay.set_ref("multi", Descriptor(mt.OCI_INDEX, outer.digest, outer.size))
    return p, {k: str(v.digest) for k, v in descs.items()}


def test_host_platform_is_chosen_from_nested_indexes(tmp_path: Path) -> None:
    p, digests = _multi(tmp_path)
    cfg = json.loads(cli("inspect", "--config", f"{p}:multi").out)
    assert cfg["architecture"] == host_platform().architecture
    raw = cli("inspect", f"{p}:multi").out.rstrip("\n").encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digests[str(host_platform())]
    assert_valid_layout(str(p))


def test_platform_flag_selects_another(tmp_path: Path) -> None:
    p, digests = _multi(tmp_path)
    other = next(k for k in digests if k != str(host_platform()))
    r = cli("inspect", "--platform", other, "--config", f"{p}:multi")
    assert r.code == 0 and json.loads(r.out)["architecture"] == other.split("/")[1]
    r = cli("history", "--platform", other, "-q", "--no-trunc", f"{p}:multi")
    assert r.code == 0


def test_unknown_platform_is_a_clear_error(tmp_path: Path) -> None:
    p, _ = _multi(tmp_path)
    r = cli("inspect", "--platform", "windows/s390x", f"{p}:multi")
    assert r.code == 1 and "no manifest for platform windows/s390x" in r.err
    assert "available platforms" in r.err
    r = cli("inspect", "--platform", "nonsense", f"{p}:multi")
    assert r.code == 1 and "os/arch" in r.err
