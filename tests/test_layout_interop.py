"""Layouts round-trip with the real tools: ours in skopeo/umoci, theirs in ours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli, need_tool, run
from verify import assert_valid_layout

pytestmark = pytest.mark.interop


def test_skopeo_inspects_an_image_new_created(tmp_path: Path) -> None:
    need_tool("skopeo")
    lay = tmp_path / "lay"
    digest = cli("new", f"{lay}:v1").out.strip()
    p = run("skopeo", "inspect", "--raw", f"oci:{lay}:v1")
    assert json.loads(p.stdout)["schemaVersion"] == 2
    p = run("skopeo", "inspect", f"oci:{lay}:v1")
    assert json.loads(p.stdout)["Digest"] == digest


def test_umoci_reads_our_layout(tmp_path: Path) -> None:
    need_tool("umoci")
    lay = tmp_path / "lay"
    cli("new", f"{lay}:v1")
    cli("tag", f"{lay}:v1", "v2")
    p = run("umoci", "ls", "--layout", str(lay))
    assert sorted(p.stdout.split()) == ["v1", "v2"]
    run("umoci", "stat", "--image", f"{lay}:v1")


def test_we_read_layouts_umoci_and_skopeo_wrote(tmp_path: Path) -> None:
    need_tool("umoci")
    need_tool("skopeo")
    um = tmp_path / "um"
    run("umoci", "init", "--layout", str(um))
    run("umoci", "new", "--image", f"{um}:base")
    r = cli("ls", "-q", str(um))
    assert r.code == 0 and r.out.split() == ["base"]
    assert cli("inspect", "--config", f"{um}:base").code == 0
    assert_valid_layout(str(um))
    sk = tmp_path / "sk"
    run("skopeo", "copy", f"oci:{um}:base", f"oci:{sk}:copied")
    r = cli("ls", "-q", str(sk))
    assert r.code == 0 and r.out.split() == ["copied"]
    assert cli("validate", str(sk)).code == 0
