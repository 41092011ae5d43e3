"""Docker's COPY/ADD content hashes (``file:``, ``dir:``, ``multi:``); the
pinned values are what dockerd 20.10 printed for the same context
(tests/interop/test_docker_fidelity.py compares live)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from oci_tools.build.dockerignore import DockerIgnore
from oci_tools.build.sourcehash import ContextHasher, hash_strings
from oci_tools.errors import NotFoundError

#: docker history of ``COPY a /x`` with ``a`` = "hello\n", mode 0644.
HELLO = "file:d874ee53746802fc1dcb2de75da199ed2e5ae193ff139b7b4f38f65b191931df"


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "dir/sub").mkdir(parents=True)
    (c / "a").write_text("hello\n")
    os.chmod(c / "a", 0o644)
    (c / "b.txt").write_text("bbb")
    (c / "dir/x").write_text("x\n")
    (c / "dir/lx").symlink_to("x")
    (c / "dir/la").symlink_to("../a")
    (c / "dir/broken").symlink_to("/nonexistent")
    os.link(c / "a", c / "dir/hard")
    (c / "dlink").symlink_to("dir")
    return c


def _tarsum(head: str, content: bytes = b"") -> str:
    return hashlib.sha256(head.encode() + content).hexdigest()


def test_a_file_hashes_as_docker_does(ctx: Path) -> None:
    h = ContextHasher(str(ctx))
    assert h.hash_sources(["a"]) == HELLO
    assert h.hash_sources(["./a"]) == h.hash_sources(["/a"]) == HELLO
    # tarsum v1 of the CLI's header: permission bits, uid/gid 0, no mtime.
    head = "nameamode420uid0gid0size6typeflag0linknameunamegnamedevmajor0devminor0"
    assert "file:" + _tarsum(head, b"hello\n") == HELLO


def test_symlinks_are_followed_and_hardlinks_are_link_entries(ctx: Path) -> None:
    h = ContextHasher(str(ctx))
    assert h.hash_sources(["dir/la"]) == HELLO  # the sum of where it leads
    assert h.hash_sources(["dlink"]) == h.hash_sources(["dir"])
    # dir/hard comes after "a" in the walk: a hardlink entry, no content.
    head = "namedir/hardmode420uid0gid0size0typeflag1linknameaunamegnamedevmajor0devminor0"
    assert h.hash_sources(["dir/hard"]) == "file:" + _tarsum(head)


def test_dir_and_multi(ctx: Path) -> None:
    h = ContextHasher(str(ctx))
    subs = sorted(
        [
            h.path_hash("dir"),
            h.path_hash("dir/broken"),  # no sum: the path string
            h.path_hash("dir/hard"),
            HELLO.removeprefix("file:"),  # dir/la
            h.path_hash("dir/x"),  # dir/lx
            h.path_hash("dir/sub"),
            h.path_hash("dir/x"),
        ]
    )
    assert h.path_hash("dir/broken") == "dir/broken"
    assert h.hash_sources(["dir"]) == hash_strings("dir", subs)
    both = [h.hash_sources(["a"]), h.hash_sources(["b.txt"])]
    assert h.hash_sources(["a", "b.txt"]) == hash_strings("multi", both)
    assert h.hash_sources(["*.txt"]) == h.hash_sources(["b.txt"])
    with pytest.raises(NotFoundError):
        h.hash_sources(["missing"])


def test_dockerignore_and_the_root(ctx: Path) -> None:
    (ctx / "skip.log").write_text("nope")
    before = ContextHasher(str(ctx), DockerIgnore(["*.log"])).hash_sources(["."])
    (ctx / "skip.log").write_text("changed")
    assert ContextHasher(str(ctx), DockerIgnore(["*.log"])).hash_sources(["."]) == before
    assert ContextHasher(str(ctx), DockerIgnore()).hash_sources(["."]) != before
