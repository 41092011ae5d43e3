"""Kill-anywhere campaign: ``commit``, ``build``, ``pull`` and ``rm -f`` of a
running container SIGKILLed at random points.

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

``pull`` gets from a loopback ``docker-registry`` (as in the registry tests)
into a fresh layout each run; a re-run must give the same manifest digest.
Container removal runs on runc + overlay (as in the container tests); after
the kill the next ``rm -f`` (or ``ps -a``) must leave no mount, no container
directory and no gc root behind, and ``gc`` must work.

About 10 runs per command in CI; ``FUZZ_LONG=1`` runs 200 of each.  The seed is
printed on failure; ``KILL_SEED=N`` replays a campaign.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli
from registry_env import REGISTRY, Registry, make_image, needs_registry, run_registry

from oci_tools import api
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.snapshots import overlay_supported

pytestmark = [
    pytest.mark.slow,
    pytest.mark.fuzz,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (the bundle keeps owners)"),
]

FUZZ_LONG = os.environ.get("FUZZ_LONG") == "1"
RUNS = 200 if FUZZ_LONG else 10  # per command: commit, build, pull, rm -f
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


# ------------------------------------------------------------------ pull


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if REGISTRY is None:
        pytest.skip("docker-registry is not installed")
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@needs_registry
def test_kill_anywhere_pull(registry: Registry, tmp_path: Path) -> None:
    rng = random.Random(f"{SEED}-pull")
    src = Layout.init(str(tmp_path / "src"))
    data = random.Random(11)
    # Several layers of a few hundred KB: pulled in parallel, each one long
    # enough to be killed mid-body.
    make_image(src, "v1", [data.randbytes(data.randrange(200_000, 900_000)) for _ in range(5)])
    want = str(src.lookup("v1").digest)
    assert cli("push", "-q", f"{tmp_path}/src:v1", f"{registry.host}/t/kill:v1").code == 0
    remote = f"docker://{registry.host}/t/kill:v1"

    def argv(lay: Path) -> list[str]:
        return ["pull", "-q", remote, f"{lay}:v1"]

    def pulled(lay: Path) -> str:
        return str(Layout.open(str(lay)).lookup("v1").digest)

    first = tmp_path / "first"
    full = _timed(*argv(first))
    assert pulled(first) == want
    for i in range(RUNS):
        what = f"pull run {i} (KILL_SEED={SEED})"
        # A fresh layout each run (blobs already there would not be fetched again).
        lay = tmp_path / f"k{i}"
        api.init_layout(str(lay))
        p = _oci_tools(*argv(lay))
        time.sleep(rng.uniform(0, full * 1.1))
        p.send_signal(signal.SIGKILL)
        p.wait()
        _check(lay, what)
        # The re-run works, gives the same image and leaves nothing of the killed one.
        assert _oci_tools(*argv(lay)).wait() == 0, what
        _check(lay, what)
        assert pulled(lay) == want, what
        assert _leftovers(lay) == [], what
        shutil.rmtree(lay)


# ------------------------------------------------------------------ rm -f


def _mounts_under(top: Path) -> list[str]:
    """Mount points at or under ``top`` (mountinfo's octal escapes undone)."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4]
        point = point.encode().decode("unicode_escape").encode("latin-1").decode()
        if point == str(top) or point.startswith(f"{top}/"):
            out.append(point)
    return out


@pytest.fixture
def containers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A per-test state directory; afterwards, whatever the outcome, every
    container is gone and everything mounted under ``tmp_path`` is detached."""
    if shutil.which("runc") is None:
        pytest.skip("runc is not installed")
    if not overlay_supported():
        pytest.skip("the kernel has no overlayfs")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    state = tmp_path / "state"
    monkeypatch.setenv("OCI_TOOLS_STATE", str(state))
    try:
        yield state
    finally:
        for cid in cli("ps", "-a", "-q", "--no-trunc").out.split():
            cli("rm", "-f", cid)
        runc = ["runc", "--root", str(state / "runc")]
        listed = subprocess.run([*runc, "list", "-q"], capture_output=True, text=True, check=False)
        for cid in listed.stdout.split():
            subprocess.run([*runc, "delete", "-f", cid], capture_output=True, check=False)
        for point in sorted(_mounts_under(tmp_path), key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _busybox_layout(top: Path) -> Path:
    """A layout with ``base``: a static busybox with ``sh`` and ``sleep``."""
    lay = top / "lay"
    layout = api.init_layout(str(lay))
    from oci_tools.mutate import new_image

    new_image(layout, "empty")
    b = top / "b0"
    api.unpack(layout, "empty", str(b))
    r = b / "rootfs"
    for d in ("bin", "etc", "tmp"):
        (r / d).mkdir()
    shutil.copy2("/bin/busybox", r / "bin/busybox")
    for a in ("sh", "sleep"):
        (r / "bin" / a).symlink_to("busybox")
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    api.commit(layout, "base", str(b))
    shutil.rmtree(b)
    return lay


def test_kill_anywhere_container_rm(containers: Path, tmp_path: Path) -> None:
    state = containers
    rng = random.Random(f"{SEED}-rm")
    lay = _busybox_layout(tmp_path)

    def run_sleeper(name: str) -> None:
        p = subprocess.run(
            [sys.executable, "-m", "oci_tools", "run", "-d", "--name", name,
             f"{lay}:base", "sleep", "600"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr

    def names() -> list[str]:
        out = cli("ps", "-a", "--format", "json").out.splitlines()
        return [json.loads(x)["Names"] for x in out]

    def check_clean(what: str) -> None:
        assert _mounts_under(tmp_path) == [], what
        cdir = state / "containers"
        assert not cdir.is_dir() or list(cdir.iterdir()) == [], what
        rw = lay / ".oci-tools" / "containers"
        assert not rw.is_dir() or list(rw.iterdir()) == [], what
        _check(lay, what)
        r = cli("gc", str(lay))
        assert r.code == 0, f"{what}: gc failed: {r.err}"
        _check(lay, what)

    run_sleeper("first")
    full = _timed("rm", "-f", "first")
    check_clean("rm -f, uninterrupted")
    for i in range(RUNS):
        what = f"rm -f run {i} (KILL_SEED={SEED})"
        name = f"c{i}"
        run_sleeper(name)
        p = _oci_tools("rm", "-f", name)
        time.sleep(rng.uniform(0, full * 1.1))
        p.send_signal(signal.SIGKILL)
        p.wait()
        # The next command cleans up what the killed one left: ``ps -a``
        # lists it if its record is still there, then ``rm -f`` removes it.
        if name in names():
            r = cli("rm", "-f", name)
            assert r.code == 0, f"{what}: {r.err}"
        assert names() == [], what
        check_clean(what)


def test_a_remove_killed_after_dropping_the_record_is_swept(
    containers: Path, tmp_path: Path
) -> None:
    # Regression (found by reading what a kill inside ``rm`` can leave): the
    # record used to go in the middle of deleting the container's directory,
    # so a kill there left a directory nothing listed or removed, forever.
    lay = _busybox_layout(tmp_path)
    assert cli("run", "-d", "--name", "c", f"{lay}:base", "sleep", "600").code == 0
    code = (
        "import os\n"
        "from oci_tools.containers import Runtime\n"
        "real = os.unlink\n"
        "def unlink(p, *a, **k):\n"
        "    real(p, *a, **k)\n"
        "    if str(p).endswith('container.json'):\n"
        "        os._exit(9)  # killed right after the record went\n"
        "os.unlink = unlink\n"
        "rt = Runtime()\n"
        "rt.remove(rt.find('c'), force=True)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 9, p.stderr
    assert list((containers / "containers").iterdir()) != []  # the directory is left
    assert cli("ps", "-a", "-q").out == ""
    assert list((containers / "containers").iterdir()) == []  # ... and swept by ``ps -a``
    assert _mounts_under(tmp_path) == []
    assert cli("gc", str(lay)).code == 0
    _check(lay, "after the sweep")
