"""Crash safety and concurrent writers."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from verify import assert_valid_layout

from oci_tools.layout import Layout

WRITER = r"""
import os, sys
from oci_tools.layout import Layout
from oci_tools.mutate import new_image
from oci_tools.store import put_bytes
lay = Layout.open(sys.argv[1])
prefix = sys.argv[2]
i = 0
while True:
    put_bytes(lay.store, os.urandom(100000))
    new_image(lay, f"{prefix}-{i}")
    i += 1
"""

TAGGER = r"""
import sys
from oci_tools.layout import Layout
lay = Layout.open(sys.argv[1])
desc = lay.lookup("base")
for i in range(50):
    lay.set_ref(f"{sys.argv[2]}-{i}", desc)
"""


@pytest.mark.slow
def test_sigkill_never_corrupts_layout(tmp_path: Path) -> None:
    p = str(tmp_path / "lay")
    lay = Layout.init(p)
    rng = random.Random(1234)
    for k in range(50):
        before = {name: d for name, d in lay.refs()}
        proc = subprocess.Popen([sys.executable, "-c", WRITER, p, f"k{k}"])
        time.sleep(0.15 + rng.random() * 0.25)  # past start-up, at a random point
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reopened = Layout.open(p)
        after = {name: d for name, d in reopened.refs()}
        for name, desc in before.items():
            assert after[name] == desc, f"ref {name} changed or vanished after kill {k}"
        for name in rng.sample(sorted(before), min(5, len(before))):
            reopened.resolve(name)  # manifest and config still readable and verified
    assert len(Layout.open(p).refs()) > 0, "the writer never got to tag anything"
    assert_valid_layout(p)


def test_two_processes_tagging_at_once_both_win(tmp_path: Path) -> None:
    p = str(tmp_path / "lay")
    from oci_tools.mutate import new_image

    new_image(Layout.init(p), "base")
    procs = [subprocess.Popen([sys.executable, "-c", TAGGER, p, who]) for who in ("a", "b")]
    assert [q.wait() for q in procs] == [0, 0]
    names = {n for n, _ in Layout.open(p).refs()}
    assert {f"{w}-{i}" for w in "ab" for i in range(50)} <= names
    assert len(names) == 101
    assert_valid_layout(p)
