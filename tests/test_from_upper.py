"""commit --from-upper: an overlayfs upper directory becomes the layer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import cli, need_root

from oci_tools.layout import Layout


@pytest.mark.root
def test_commit_from_overlay_upper_dir(tmp_path: Path) -> None:
    need_root()
    lay = tmp_path / "lay"
    cli("new", f"{lay}:empty")
    b = tmp_path / "b"
    cli("unpack", f"{lay}:empty", str(b))
    r = b / "rootfs"
    (r / "keep").mkdir()
    (r / "keep/old").write_text("old")
    (r / "gone").write_text("bye")
    (r / "opq").mkdir()
    (r / "opq/hidden").write_text("h")
    assert cli("commit", str(b), f"{lay}:base", "--refresh").code == 0
    # what the kernel would leave in an upper dir after: rm gone, add keep/new,
    # rm -r opq && mkdir opq && touch opq/fresh
    up = tmp_path / "upper"
    (up / "keep").mkdir(parents=True)
    (up / "keep/new").write_text("new")
    os.mknod(up / "gone", 0o600 | 0o020000, os.makedev(0, 0))
    (up / "opq").mkdir()
    os.setxattr(up / "opq", "trusted.overlay.opaque", b"y")
    (up / "opq/fresh").write_text("f")
    res = cli("commit", str(b), f"{lay}:next", "--from-upper", str(up))
    assert res.code == 0, res.err
    c = tmp_path / "c"
    assert cli("unpack", f"{lay}:next", str(c)).code == 0
    cr = c / "rootfs"
    assert sorted(p.name for p in cr.iterdir()) == ["keep", "opq"]
    assert sorted(p.name for p in (cr / "keep").iterdir()) == ["new", "old"]
    assert sorted(p.name for p in (cr / "opq").iterdir()) == ["fresh"]
    m = Layout.open(str(lay)).resolve("next").manifest
    assert len(m.layers) == 2
