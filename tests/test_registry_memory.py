"""Bounded memory: pushing and pulling a large layer through a real
docker-registry keeps the peak RSS of the process under 100 MB (VmHWM of a
fresh subprocess).  The layer is 512 MiB of random data by
default (OCI_TOOLS_BIG_LAYER_MIB changes it; the issue's figure is 2048)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_env import Registry, needs_registry, run_registry

from oci_tools.digest import Digest
from oci_tools.layout import Layout
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Manifest
from oci_tools.store import put_bytes

pytestmark = [needs_registry, pytest.mark.slow]

MIB = int(os.environ.get("OCI_TOOLS_BIG_LAYER_MIB", "512"))
LIMIT = 100 * 1000 * 1000  # bytes of peak RSS


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def _big_image(path: Path) -> Descriptor:
    """An image with one MIB-MiB layer, written in 1 MiB pieces (a random
    1 MiB block, varied per piece, so nothing compresses or dedups)."""
    lay = Layout.init(str(path))
    w = lay.store.writer()
    block = bytearray(os.urandom(1 << 20))
    for i in range(MIB):
        block[:8] = i.to_bytes(8, "big")
        w.write(block)
    layer = w.commit()
    cfg = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    ).encode()
    cd = put_bytes(lay.store, cfg)
    m = Manifest.build(
        Descriptor(mt.OCI_CONFIG, cd, len(cfg)),
        [Descriptor(mt.OCI_LAYER_TAR, layer, MIB << 20)],
    )
    md = put_bytes(lay.store, m.raw)
    desc = Descriptor(mt.OCI_MANIFEST, md, len(m.raw))
    lay.set_ref("big", desc)
    return desc


_SCRIPT = textwrap.dedent(
    """
    import sys
    from oci_tools.layout import Layout
    from oci_tools.registry import parse_reference
    from oci_tools.registry.transfer import Client, pull, push

    action, layout, ref = sys.argv[1:4]
    with Client() as c:
        if action == "push":
            print(push(c, Layout.open(layout), "big", parse_reference(ref)))
        else:
            print(pull(c, parse_reference(ref), Layout.init(layout), "big")[1].digest)
    # VmHWM, not getrusage's ru_maxrss: the latter keeps the high-water mark
    # of the process that exec'd us (pytest, hundreds of MB in a full run).
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    print(hwm * 1024)
    """
)


def _measure(action: str, layout: Path, ref: str) -> tuple[str, int]:
    p = subprocess.run(
        [sys.executable, "-c", _SCRIPT, action, str(layout), ref],
        capture_output=True,
        text=True,
        check=False,
    )
    assert p.returncode == 0, p.stderr
    digest, rss = p.stdout.split()
    return digest, int(rss)


def test_big_layer_push_and_pull_in_bounded_memory(tmp_path: Path, registry: Registry) -> None:
    desc = _big_image(tmp_path / "src")
    ref = f"docker://{registry.host}/big/layer:v1"
    digest, push_rss = _measure("push", tmp_path / "src", ref)
    assert digest == str(desc.digest)
    print(f"push of {MIB} MiB: peak RSS {push_rss / 1e6:.1f} MB")
    assert push_rss <= LIMIT, f"push peak RSS {push_rss / 1e6:.1f} MB"
    digest, pull_rss = _measure("pull", tmp_path / "dst", ref)
    assert digest == str(desc.digest)
    print(f"pull of {MIB} MiB: peak RSS {pull_rss / 1e6:.1f} MB")
    assert pull_rss <= LIMIT, f"pull peak RSS {pull_rss / 1e6:.1f} MB"
    dst = Layout.open(str(tmp_path / "dst"))
    m = dst.manifest(dst.lookup("big"))
    layer = m.layers[0]
    assert dst.store.stat_size(layer.digest) == MIB << 20
    assert isinstance(layer.digest, Digest)
    r = dst.store.open(layer.digest, layer.size)
    r.drain()  # the pulled blob verifies
    r.close()
