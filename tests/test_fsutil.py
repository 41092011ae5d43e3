"""fsutil: the one atomic write (old file kept on failure, exact mode, no temp
left behind), write_json, tree removal and the layout's private paths."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from oci_tools import fsutil
from oci_tools.fsutil import (
    atomic_write,
    atomic_writer,
    empty_dir,
    private_path,
    remove_tree,
    write_json,
)


def test_atomic_write_replaces_with_mode_0644_whatever_the_umask(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    old = os.umask(0o077)
    try:
        atomic_write(str(target), b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert os.listdir(tmp_path) == ["f"]


def test_atomic_write_mode_is_honoured(tmp_path: Path) -> None:
    atomic_write(str(tmp_path / "f"), b"x", mode=0o600, sync=False)
    assert stat.S_IMODE((tmp_path / "f").stat().st_mode) == 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_writer(str(target)) as f:
        f.write(b"half of the new content")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f"]


def test_write_json_indented_or_compact(tmp_path: Path) -> None:
    p = tmp_path / "a.json"
    write_json(str(p), {"b": [1, 2]})
    assert p.read_text() == '{\n  "b": [\n    1,\n    2\n  ]\n}\n'
    write_json(str(p), {"b": [1, 2]}, indent=None)
    assert p.read_text() == '{"b":[1,2]}'
    assert json.loads(p.read_text()) == {"b": [1, 2]}


def test_remove_tree_opens_mode_000_dirs_but_not_through_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    outside.chmod(0o500)
    tree = tmp_path / "tree"
    (tree / "locked" / "deep").mkdir(parents=True)
    (tree / "locked" / "deep" / "f").write_bytes(b"x")
    (tree / "link").symlink_to(outside)
    (tree / "locked").chmod(0o000)
    remove_tree(str(tree))
    assert not tree.exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o500  # never chmod'ed through the link


def test_empty_dir_keeps_the_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "file").write_bytes(b"x")
    (d / "link").symlink_to(tmp_path)
    empty_dir(str(d))
    assert d.is_dir() and os.listdir(d) == []
    assert tmp_path.is_dir()


def test_private_path_is_inside_the_layout_and_creates_nothing(tmp_path: Path) -> None:
    p = private_path(str(tmp_path), fsutil.LOCK)
    assert p == os.path.join(str(tmp_path), fsutil.PRIVATE_DIR, fsutil.LOCK)
    assert not os.path.exists(os.path.dirname(p))


def test_remove_abandoned_takes_only_temp_files_of_dead_unlocked_writers(tmp_path: Path) -> None:
    import fcntl
    import subprocess
    import sys

    from oci_tools.fsutil import remove_abandoned, temp_prefix

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid is free now
    dead = tmp_path / f"blob.{gone.pid}.abc"
    mine = tmp_path / f"{temp_prefix('blob')}def"
    locked = tmp_path / f"blob.{gone.pid}.locked"
    other = tmp_path / f"cache.{gone.pid}.x"
    for p in (dead, mine, locked, other):
        p.write_bytes(b"x")
    with open(locked, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # a live writer in another pid namespace
        assert remove_abandoned(str(tmp_path), "blob") == [dead.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [mine.name, locked.name, other.name]
    )
