"""Private daemons for interop tests: one helper runs containerd or dockerd
with its own roots and socket, and stops it (also when the test failed)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import need_tool


@contextlib.contextmanager
def daemon(d: Path, argv: list[str], probe: list[str]) -> Iterator[None]:
    """Run the daemon ``argv`` (log in ``d/log``) until ``probe`` succeeds;
    on exit stop it and remove ``d``, also when the test failed."""
    name = argv[0]
    log = open(d / "log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(probe, capture_output=True).returncode != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{name} did not start:\n" + (d / "log").read_text()[-3000:])
            time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(d, ignore_errors=True)


@contextlib.contextmanager
def docker_engine() -> Iterator[list[str]]:
    """A private Docker engine (own data root, exec root and socket; vfs, no
    networking set-up); yields the ``docker`` command that talks to it.
    Skips when dockerd is missing or not root (a failure in CI)."""
    need_tool("dockerd")
    need_tool("docker")
    if os.geteuid() != 0:
        pytest.skip("dockerd needs root")
    # Short path: unix socket names are limited to 108 bytes.
    d = Path(tempfile.mkdtemp(prefix="ocdk-"))
    sock = f"unix://{d}/d.sock"
    cmd = ["docker", "-H", sock]
    argv = [
        "dockerd",
        "--data-root",
        str(d / "root"),
        "--exec-root",
        str(d / "exec"),
        "-H",
        sock,
        "--pidfile",
        str(d / "pid"),
        "--storage-driver",
        "vfs",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
        "--ip-masq=false",
    ]
    with daemon(d, argv, [*cmd, "version"]):
        yield cmd
