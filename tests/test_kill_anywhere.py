"""Kill-anywhere campaign: ``commit`` and ``build`` SIGKILLed at random points.

Each run starts the real command line (``python -m oci_tools``) in a
subprocess, kills it with SIGKILL after a random delay drawn from its own
uninterrupted duration (start-up included, so every phase gets hit), then
checks that:

- the layout validates (``oci-tools validate``: schemas, digests, sizes,
  every layer readable);
- every ref points at an image whose blobs are all there;
- the next command (the same one, uninterrupted) works, and afterwards no
  temporary file or build directory of a dead process is left (blob temp
  files, the index's atomic-write temp file, build work directories).

About 20 runs in CI; ``FUZZ_LONG=1`` runs 200 of each command.  The seed is
printed on failure; ``KILL_SEED=N`` replays a campaign.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli

from oci_tools import api
from oci_tools.image import Image
from oci_tools.layout import Layout

pytestmark = [
    pytest.mark.slow,
    pytest.mark.fuzz,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the bundle keeps owners)"),
]

FUZZ_LONG = os.environ.get("FUZZ_LONG") == "1"
RUNS = 200 if FUZZ_LONG else 10  # per command: commit and build
SEED = int(os.environ.get("KILL_SEED", str(random.SystemRandom().randrange(1 << 30))))


def _oci_tools(*argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "oci_tools", *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _timed(*argv: str) -> float:
    """Run to the end (it must work); its duration."""
    t = time.monotonic()
    assert _oci_tools(*argv).wait() == 0, argv
    return time.monotonic() - t


def _leftovers(lay: Path) -> list[str]:
    """Temporary files and directories left in the layout.  Called when no
    oci-tools process runs, so every one of them is a leak."""
    out = [p.name for p in lay.iterdir() if p.name.startswith(".index.json.")]
    for sub in ("tmp", "build"):
        d = lay / ".oci-tools" / sub
        if d.is_dir():
            out += [f"{sub}/{p.name}" for p in d.iterdir()]
    return out


def _check(lay: Path, what: str) -> None:
    r = cli("validate", str(lay))
    assert r.code == 0, f"{what}: validate failed: {r.out}{r.err}"
    layout = Layout.open(str(lay))
    for name, desc in layout.refs():
        img = Image.from_descriptor(layout, desc)
        for d in (img.descriptor, img.manifest.config, *img.layers):
            assert layout.store.has(d.digest), f"{what}: ref {name}: {d.digest} is missing"


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A layout with ``base``; a bundle of it with a few MB of changes; a
    build context that copies a few MB onto ``base``."""
    top = tmp_path_factory.mktemp("kill")
    lay = top / "lay"
    layout = api.init_layout(str(lay))
    from oci_tools.mutate import new_image

    new_image(layout, "empty")
    b0 = top / "b0"
    api.unpack(layout, "empty", str(b0))
    (b0 / "rootfs" / "etc").mkdir()
    (b0 / "rootfs" / "etc" / "hostname").write_text("base\n")
    api.commit(layout, "base", str(b0))
    rng = random.Random(7)
    bundle = top / "bundle"
    api.unpack(layout, "base", str(bundle))
    ctx = top / "ctx"
    for root in (bundle / "rootfs" / "data", ctx / "files"):
        for i in range(40):
            d = root / f"d{i % 5}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"f{i}").write_bytes(rng.randbytes(rng.randrange(1000, 120_000)))
    (ctx / "Dockerfile").write_text(
        "FROM base\nCOPY files/ /opt/files/\nENV A=1\nWORKDIR /opt\nCOPY files/d1 /opt/again/\n"
    )
    return lay, bundle, ctx


@pytest.mark.parametrize("command", ["commit", "build"])
def test_kill_anywhere(setup: tuple[Path, Path, Path], command: str) -> None:
    lay, bundle, ctx = setup
    rng = random.Random(f"{SEED}-{command}")

    def argv(ref: str) -> list[str]:
        if command == "commit":
            return ["commit", str(bundle), f"{lay}:{ref}"]
        return ["build", "--no-cache", "-t", f"{lay}:{ref}", str(ctx)]

    full = _timed(*argv("first"))
    for i in range(RUNS):
        what = f"{command} run {i} (KILL_SEED={SEED})"
        p = _oci_tools(*argv(f"k{i}"))
        time.sleep(rng.uniform(0, full * 1.1))
        p.send_signal(signal.SIGKILL)
        p.wait()
        _check(lay, what)
        # The next command works and leaves nothing of the killed one behind.
        assert _oci_tools(*argv(f"next{i}")).wait() == 0, what
        _check(lay, what)
        assert _leftovers(lay) == [], what
        # Untag this run's images, so validating stays as quick at run 200 as at run 1.
        layout = Layout.open(str(lay))
        for name, _ in layout.refs():
            if name in (f"k{i}", f"next{i}"):
                layout.remove_ref(name)
