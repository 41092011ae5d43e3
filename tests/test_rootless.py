"""--rootless: owners and devices that cannot be applied are recorded, and a
later commit restores them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import cli, need_root
from treecmp import tree_state

from oci_tools.layer.rootless import ROOTLESS_XATTR, encode_rootless


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


@pytest.mark.root
def test_rootless_unpack_records_owners_and_commit_restores_them(tmp_path: Path) -> None:
    need_root()  # to make an image with foreign owners and a device in the first place
    lay = tmp_path / "lay"
    ok("new", f"{lay}:empty")
    b = tmp_path / "b"
    ok("unpack", f"{lay}:empty", str(b))
    r = b / "rootfs"
    (r / "owned").write_text("x")
    os.chown(r / "owned", 1234, 5678)
    (r / "d").mkdir()
    os.chown(r / "d", 42, 43)
    (r / "plain").write_text("root's")
    os.mknod(r / "null", 0o666 | 0o020000, os.makedev(1, 3))
    ok("commit", str(b), f"{lay}:base")

    rl = tmp_path / "rl"
    res = cli("unpack", "--rootless", f"{lay}:base", str(rl))
    assert res.code == 0, res.err
    assert "null" in res.err  # the device is reported, not created
    rr = rl / "rootfs"
    assert not (rr / "null").exists()
    assert os.lstat(rr / "owned").st_uid == 0  # the invoking user (root here)
    assert os.getxattr(rr / "owned", ROOTLESS_XATTR) == encode_rootless(1234, 5678)
    assert os.getxattr(rr / "d", ROOTLESS_XATTR) == encode_rootless(42, 43)
    with pytest.raises(OSError):
        os.getxattr(rr / "plain", ROOTLESS_XATTR)

    (rr / "owned").write_text("changed")
    (rr / "d/new").write_text("n")
    ok("commit", str(rl), f"{lay}:next")
    back = tmp_path / "back"
    ok("unpack", f"{lay}:next", str(back))
    st = tree_state(str(back / "rootfs"))
    assert st["owned"][2:4] == (1234, 5678)
    assert st["d"][2:4] == (42, 43)
    assert st["d/new"][2:4] == (0, 0)
    assert (back / "rootfs/null").exists()  # the lower layer's device survives
    # the record never leaks into a layer
    assert not any(ROOTLESS_XATTR in v[7] for v in st.values())
