"""The layer views' replay against the real thing: random small layer stacks
(files, directories, symlinks with relative, absolute and '..' targets,
hardlinks, whiteouts and opaque markers, in random tar order) are applied
with ``apply_layer`` and replayed from their indexes; the modelled tree must
be exactly what is on disk, path by path, with the same kinds and sizes, and
every A/C/D row must be true of the rootfs before and after the layer."""

from __future__ import annotations

import io
import os
import random
import shutil
import stat
from pathlib import Path

import pytest
from builders import Member, directory, file, hardlink, make_layer, opaque, symlink, whiteout

from oci_tools.apply import ApplyOptions, apply_layer
from oci_tools.digest import Digest
from oci_tools.errors import UnsafeLayerError
from oci_tools.layer.reader import iter_entries
from oci_tools.views.layers import IndexEntry, LayerIndex
from oci_tools.views.layers.replay import Replay

NAMES = ["a", "b", "c", "a/b", "a/c", "b/a", "b/c", "c/a", "a/b/c", "b/a/c", "c/a/b"]
TARGETS = ["a", "b", "c", "a/b", "../a", "/b", "../../c", ".", "/", "b/../a"]


def _member(rng: random.Random) -> Member:
    name = rng.choice(NAMES)
    kind = rng.choice(["dir", "dir", "file", "file", "symlink", "hardlink", "whiteout", "opaque"])
    if kind == "dir":
        return directory(name)
    if kind == "file":
        return file(name, b"x" * rng.randrange(1, 6))
    if kind == "symlink":
        return symlink(name, rng.choice(TARGETS))
    if kind == "hardlink":
        return hardlink(name, rng.choice(NAMES))
    if kind == "whiteout":
        return whiteout(name)
    return opaque(name)


def _disk(root: Path) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", 0)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0)
            else:
                out[rel] = ("reg", st.st_size)
    return out


def _model(replay: Replay, sizes: dict[str, int]) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for p, node in replay.tree.nodes.items():
        if not p:
            continue
        kind = "reg" if node.kind == "hardlink" else node.kind
        out[p] = (kind, sizes.get(p, node.size) if kind == "reg" else 0)
    return out


def _apply(root: Path, tar: bytes) -> bool:
    """Apply one uncompressed layer; False (and ``root`` as it was) when
    apply refuses it (a loop, a file used as a directory, a missing link
    target...)."""
    backup = root.with_name("backup")
    shutil.copytree(root, backup, symlinks=True)
    try:
        apply_layer(io.BytesIO(tar), str(root), codec="none", diff_id=None, options=ApplyOptions())
    except UnsafeLayerError:
        shutil.rmtree(root)
        backup.rename(root)
        return False
    shutil.rmtree(backup)
    return True


@pytest.mark.parametrize("seed", range(250))
def test_replay_matches_apply(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    root = tmp_path / "rootfs"
    root.mkdir()
    replay = Replay()
    before: dict[str, tuple[str, int]] = {}
    li = 0
    for _ in range(12):  # layers tried; the ones apply refuses are dropped
        layer = make_layer([_member(rng) for _ in range(rng.randrange(3, 9))], "none")
        if not _apply(root, layer.tar):
            continue
        entries = tuple(IndexEntry.from_tar(e) for e, _ in iter_entries(io.BytesIO(layer.tar)))
        rows, _ = replay.layer(
            li,
            LayerIndex(
                Digest.parse(layer.digest), Digest.parse(layer.diff_id), len(layer.tar), entries
            ),
        )
        disk = _disk(root)
        # The rows of ``layer show``: A/C are members on disk now, C exactly
        # when the path was there before the layer; D paths were there before.
        for row in rows:
            path = row.path[1:]
            if row.change == "D":
                assert path in before, (seed, li, row)
            else:
                assert path in disk and (row.change == "C") == (path in before), (seed, li, row)
        before = disk
        # A hardlink's size is its target's: take sizes from the disk for those.
        sizes = {
            p: disk[p][1]
            for p, n in replay.tree.nodes.items()
            if n.kind == "hardlink" and p in disk
        }
        assert _model(replay, sizes) == disk, f"seed {seed}, after layer {li}"
        li += 1
        if li == 3:
            break
