"""apply creates files with their final mode and fixes the owner only when
the umask or ids say so: the result equals the general (snapshot-less) path."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest
from builders import file, make_layer

from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.digest import Digest
from oci_tools.snapshot import Snapshot

IS_ROOT = os.geteuid() == 0


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o000])
@pytest.mark.parametrize("rootless", [False, True])
def test_files_get_exact_modes_and_owners_with_a_snapshot(
    tmp_path: Path, umask: int, rootless: bool
) -> None:
    if not rootless and not IS_ROOT:
        pytest.skip("needs root (chown to other ids)")
    members = [
        file("plain", b"p", mode=0o644),
        file("exec", b"e", mode=0o755),
        file("private", b"s", mode=0o600),
        file("none", b"n", mode=0o000),
        file("all", b"a", mode=0o777),
        file("suid", b"u", mode=0o4755),
        file("sgid", b"g", mode=0o2711, gid=50),
        file("sticky", b"t", mode=0o1644),
        file("owned", b"o", mode=0o640, uid=1000, gid=1000),
        file("suid-owned", b"x", mode=0o4750, uid=7, gid=8),
    ]
    results = {}
    for with_snapshot in (True, False):
        root = tmp_path / f"r{with_snapshot}"
        root.mkdir()
        snap = Snapshot() if with_snapshot else None
        lay = make_layer(members, "gzip")
        old = os.umask(umask)
        try:
            apply_layer(
                io.BytesIO(lay.blob),
                str(root),
                codec="gzip",
                diff_id=Digest.parse(lay.diff_id),
                snapshot=snap,
                options=ApplyOptions(rootless=rootless),
            )
        finally:
            os.umask(old)
        got = {}
        for m in members:
            name = m.name if isinstance(m.name, str) else m.name.decode()
            st = os.lstat(root / name)
            got[name] = (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            if snap is not None:
                fs = snap.files[name]
                assert (fs.mode, fs.uid, fs.gid, fs.ctime_ns, fs.ino) == (
                    st.st_mode,
                    st.st_uid,
                    st.st_gid,
                    st.st_ctime_ns,
                    st.st_ino,
                )
        results[with_snapshot] = got
    assert results[True] == results[False]
    got = results[True]
    assert {n: mode for n, (mode, _, _) in got.items()} == {
        "plain": 0o644,
        "exec": 0o755,
        "private": 0o600,
        "none": 0o000,
        "all": 0o777,
        "suid": 0o4755,
        "sgid": 0o2711,
        "sticky": 0o1644,
        "owned": 0o640,
        "suid-owned": 0o4750,
    }
    if not rootless:
        assert got["owned"][1:] == (1000, 1000)
        assert got["suid-owned"][1:] == (7, 8)
        assert got["sgid"][2] == 50
