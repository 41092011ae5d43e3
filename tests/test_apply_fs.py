"""The modules of oci_tools.apply on their own: in-root resolution and the fd
cache (fs), removal (remove), the metadata helpers (nodes).

End-to-end behaviour (whole layers, hostile archives) is in test_apply.py and
test_hostile.py; these tests pin the confinement rules at the API where they
are implemented, so a change there fails here first.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from oci_tools.apply import MAX_SYMLINK_HOPS, ApplyOptions, read_file_in_root
from oci_tools.apply.fs import RootDirs, open_in_root
from oci_tools.apply.nodes import clamp_ns, xattr_policy
from oci_tools.apply.remove import Remover
from oci_tools.errors import UnsafeLayerError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    (r / "etc").mkdir(parents=True)
    (r / "etc" / "hostname").write_text("inside\n")
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A host directory next to the rootfs that nothing may touch."""
    o = tmp_path / "outside"
    o.mkdir()
    (o / "hostname").write_text("host secret\n")
    (o / "keep").write_text("keep\n")
    return o


D = TypeVar("D", bound=RootDirs)


def _open(cls: type[D], root: Path) -> Iterator[D]:
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    dirs = cls(rootfd, None, ApplyOptions(rootless=False, check_free_space=False))
    try:
        yield dirs
    finally:
        dirs.close()
        os.close(rootfd)


@pytest.fixture
def dirs(root: Path) -> Iterator[RootDirs]:
    yield from _open(RootDirs, root)


@pytest.fixture
def remover(root: Path) -> Iterator[Remover]:
    yield from _open(Remover, root)


def _same(fd: int, path: Path) -> bool:
    a, b = os.fstat(fd), os.stat(path, follow_symlinks=False)
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# ---------------------------------------------------------------- fs.resolve_dir


@pytest.mark.parametrize(
    "target",
    ["../../..", "/", "/../..", "../etc/..", "etc/../../../.."],
)
def test_resolve_dir_clamps_dotdot_and_absolute_links_at_the_root(
    dirs: RootDirs, root: Path, outside: Path, target: str
) -> None:
    (root / "up").symlink_to(target)
    got = dirs.resolve_dir("up/etc", create=False, entry="up/etc/x")
    assert got is not None
    canon, fd = got
    assert canon == "etc"
    assert _same(fd, root / "etc")


def test_resolve_dir_plain_dotdot_is_clamped(dirs: RootDirs, root: Path) -> None:
    got = dirs.resolve_dir("../../etc", create=False, entry="x")
    assert got is not None
    assert got[0] == "etc"
    assert _same(got[1], root / "etc")


def test_resolve_dir_creates_through_a_host_absolute_link_inside_the_root(
    dirs: RootDirs, root: Path, outside: Path
) -> None:
    # A link naming a host path is resolved as if the rootfs were "/": the
    # missing components are created under the rootfs, never on the host.
    (root / "link").symlink_to(outside)
    got = dirs.resolve_dir("link/sub", create=True, entry="link/sub/f")
    assert got is not None
    canon, fd = got
    assert canon == str(outside).lstrip("/") + "/sub"
    assert _same(fd, root / canon)
    assert sorted(os.listdir(outside)) == ["hostname", "keep"]


def test_resolve_dir_missing_without_create_is_none(dirs: RootDirs) -> None:
    assert dirs.resolve_dir("nope/deeper", create=False, entry="x") is None


def test_resolve_dir_file_component(dirs: RootDirs) -> None:
    assert dirs.resolve_dir("etc/hostname", create=False, entry="x") is None
    with pytest.raises(UnsafeLayerError, match="is not a directory"):
        dirs.resolve_dir("etc/hostname", create=True, entry="etc/hostname/x")


def test_resolve_dir_symlink_loop_is_refused(dirs: RootDirs, root: Path) -> None:
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(UnsafeLayerError, match="too many levels of symbolic links"):
        dirs.resolve_dir("a/x", create=True, entry="a/x/f")


def test_resolve_dir_hop_limit(dirs: RootDirs, root: Path) -> None:
    # A chain of exactly MAX_SYMLINK_HOPS links resolves; one more does not.
    (root / "l0").symlink_to("etc")
    for i in range(1, MAX_SYMLINK_HOPS + 1):
        (root / f"l{i}").symlink_to(f"l{i - 1}")
    got = dirs.resolve_dir(f"l{MAX_SYMLINK_HOPS - 1}", create=False, entry="x")
    assert got is not None and got[0] == "etc"
    with pytest.raises(UnsafeLayerError, match="too many levels"):
        dirs.resolve_dir(f"l{MAX_SYMLINK_HOPS}", create=False, entry="x")


# ----------------------------------------------------------------- fs.dirfd


def test_dirfd_never_follows_a_symlink(dirs: RootDirs, root: Path, outside: Path) -> None:
    # A canonical path has no symlinks: if one appears there, it is not
    # followed (the directory is treated as gone).
    (root / "swapped").symlink_to(outside)
    assert dirs.try_dirfd("swapped") is None
    assert dirs.try_dirfd("swapped/x") is None


def test_invalidate_drops_cached_fds_below(dirs: RootDirs, root: Path, outside: Path) -> None:
    (root / "d" / "e").mkdir(parents=True)
    assert _same(dirs.dirfd("d/e"), root / "d" / "e")
    (root / "d" / "e").rmdir()
    (root / "d").rmdir()
    (root / "d").symlink_to(outside)
    dirs.invalidate("d")
    assert dirs.try_dirfd("d/e") is None


# ---------------------------------------------------------- fs.open_in_root


@pytest.mark.parametrize(
    "link", ["../outside/hostname", "../../../../outside/hostname", "/../outside/hostname"]
)
def test_read_file_in_root_does_not_read_the_host(root: Path, outside: Path, link: str) -> None:
    (root / "link").symlink_to(link)
    assert read_file_in_root(str(root), "link") is None
    # The same names resolved in the root find the root's file.
    (root / "outside").mkdir()
    (root / "outside" / "hostname").write_text("inside too\n")
    assert read_file_in_root(str(root), "link") == b"inside too\n"


def test_read_file_in_root_follows_the_last_link_in_root(root: Path) -> None:
    (root / "etc" / "alias").symlink_to("/etc/hostname")
    assert read_file_in_root(str(root), "/etc/alias") == b"inside\n"


def test_read_file_in_root_special_files_and_dirs_are_none(root: Path) -> None:
    os.mkfifo(root / "fifo")
    assert read_file_in_root(str(root), "fifo") is None  # never opened: no hang
    assert read_file_in_root(str(root), "etc") is None
    assert read_file_in_root(str(root), "etc/hostname/x") is None


def test_read_file_in_root_size_cap(root: Path) -> None:
    with pytest.raises(UnsafeLayerError, match="larger than 3 bytes"):
        read_file_in_root(str(root), "etc/hostname", max_bytes=3)


def test_open_in_root_loop(root: Path) -> None:
    (root / "loop").symlink_to("loop")
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with pytest.raises(UnsafeLayerError, match="too many levels"):
            open_in_root(rootfd, "loop")
        fd = open_in_root(rootfd, "../../etc")
        assert fd is not None
        try:
            assert _same(fd, root / "etc")
        finally:
            os.close(fd)
    finally:
        os.close(rootfd)


# ------------------------------------------------------------------ remove


def test_rmtree_does_not_follow_symlinks_out(remover: Remover, root: Path, outside: Path) -> None:
    tree = root / "tree" / "a" / "b"
    tree.mkdir(parents=True)
    (tree / "out").symlink_to(outside)
    (tree / "abs").symlink_to("/")
    (root / "tree" / "f").write_text("x")
    remover.rmtree(remover.rootfd, "tree", "tree")
    assert not (root / "tree").exists()
    assert sorted(os.listdir(outside)) == ["hostname", "keep"]
    assert (root / "etc" / "hostname").read_text() == "inside\n"


def test_remove_node_of_a_symlink_removes_the_link_only(
    remover: Remover, root: Path, outside: Path
) -> None:
    (root / "l").symlink_to(outside)
    st = os.stat(root / "l", follow_symlinks=False)
    remover.remove_node(remover.rootfd, "l", "l", st)
    assert not os.path.lexists(root / "l")
    assert sorted(os.listdir(outside)) == ["hostname", "keep"]


def test_prune_children_keeps_this_layers_nodes(remover: Remover, root: Path) -> None:
    d = root / "d"
    (d / "sub").mkdir(parents=True)
    (d / "lower").write_text("lower")
    (d / "sub" / "lower").write_text("lower")
    (d / "mine").write_text("mine")
    remover.mark_written("d/mine")
    remover.prune_children("d")
    assert sorted(os.listdir(d)) == ["mine"]


# ------------------------------------------------------------------- nodes


@pytest.mark.parametrize(
    ("name", "rootless", "why"),
    [
        ("user.x", True, None),
        ("security.capability", False, None),
        ("security.capability", True, "needs root"),
        ("system.posix_acl_access", True, None),
        ("trusted.overlay.opaque", False, "refused (trusted.* is for the host)"),
        ("security.selinux", False, "refused (labels come from the host policy)"),
        ("security.ima", False, "refused (unsupported namespace)"),
    ],
)
def test_xattr_policy(name: str, rootless: bool, why: str | None) -> None:
    assert xattr_policy(name, rootless) == why


@pytest.mark.parametrize(
    ("ns", "want"), [(0, 0), (-(1 << 63), -(1 << 63)), ((1 << 63) - 1, (1 << 63) - 1), (1 << 63, 0)]
)
def test_clamp_ns(ns: int, want: int) -> None:
    assert clamp_ns(ns) == want
