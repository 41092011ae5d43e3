"""The build context (``oci_tools.build.context``): COPY/ADD sources, their
content hashes (what a cache key covers), archive sniffing, and the tar
entries that copy sources into a rootfs."""

from __future__ import annotations

import gzip
import hashlib
import os
import tarfile
from dataclasses import replace
from pathlib import Path

import pytest

from oci_tools.build.context import (
    BuildContext,
    Item,
    Source,
    archive_codec,
    archive_entries,
    copy_entries,
    entry_name,
    hash_file,
    resolve_in,
    with_mode,
)
from oci_tools.errors import NotFoundError, OCIToolsError
from oci_tools.layer.entry import EntryType


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "d" / "sub").mkdir(parents=True)
    (c / "a.txt").write_text("hi\n")
    (c / "d" / "f").write_text("x\n")
    (c / "d" / "sub" / "g").write_text("y\n")
    (c / "d" / "secret").write_text("s\n")
    (c / "l").symlink_to("a.txt")
    for p in (c / "d", c / "d" / "sub"):
        os.chmod(p, 0o755)
    for p in (c / "a.txt", c / "d" / "f", c / "d" / "sub" / "g"):
        os.chmod(p, 0o644)
    (c / ".dockerignore").write_text("d/secret\n")
    return c


def test_a_directory_source_lists_its_kept_tree_sorted(ctx: Path) -> None:
    (src,) = BuildContext(str(ctx)).sources("d", "COPY")
    assert src.name == "d" and src.is_dir and src.archive is None
    got = [(i.rel, i.kind, i.mode, i.size) for i in src.items]
    assert got == [
        ("", EntryType.DIR, 0o755, 0),
        ("f", EntryType.REG, 0o644, 2),
        ("sub", EntryType.DIR, 0o755, 0),
        ("sub/g", EntryType.REG, 0o644, 2),
    ]
    assert src.items[1].digest == hashlib.sha256(b"x\n").hexdigest()


def test_the_hash_covers_content_and_mode_not_times_or_ignored_files(ctx: Path) -> None:
    c = BuildContext(str(ctx))
    first = c.sources("d", "COPY")[0].hash()
    assert c.sources("d", "COPY")[0].hash() == first  # stable
    (ctx / "d" / "secret").write_text("changed\n")  # excluded by .dockerignore
    os.utime(ctx / "d" / "f", (1, 1))
    assert c.sources("d", "COPY")[0].hash() == first
    os.chmod(ctx / "d" / "f", 0o600)
    assert c.sources("d", "COPY")[0].hash() != first
    os.chmod(ctx / "d" / "f", 0o644)
    (ctx / "d" / "f").write_text("X\n")  # same size, other bytes
    assert c.sources("d", "COPY")[0].hash() != first


def test_an_archive_source_hashes_differently() -> None:
    # ADD of an archive unpacks it, COPY copies the file: not the same step.
    item = Item("", "/x", EntryType.REG, 0o644, 1, 0, digest="00")
    plain = Source("x", False, (item,))
    assert replace(plain, archive="gzip").hash() != plain.hash()


def test_wildcards_paths_and_errors(ctx: Path) -> None:
    c = BuildContext(str(ctx))
    assert [s.name for s in c.sources("*.txt", "COPY")] == ["a.txt"]
    assert [s.name for s in c.sources("/d/../a.txt", "COPY")] == ["a.txt"]
    assert c.sources(".", "COPY")[0].name == "ctx"
    (link,) = c.sources("l", "COPY")  # a symlink source is followed
    assert link.items[0].kind is EntryType.REG and link.items[0].digest == hash_file(
        str(ctx / "a.txt")
    )
    with pytest.raises(OCIToolsError, match="outside the build context"):
        c.sources("../x", "COPY")
    with pytest.raises(NotFoundError, match="no source files were specified"):
        c.sources("*.nope", "ADD")
    with pytest.raises(NotFoundError, match=r"excluded by \.dockerignore"):
        c.sources("d/secret", "COPY")
    with pytest.raises(NotFoundError, match="not found in build context"):
        c.sources("missing", "COPY")


def test_the_context_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="is not a directory"):
        BuildContext(str(tmp_path / "none"))


def test_entry_name_and_resolve_in(tmp_path: Path) -> None:
    assert entry_name("/a/../b/") == "b" and entry_name("x/./y") == "x/y"
    assert entry_name("/") == ""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "abs").symlink_to("/etc")  # absolute: resolved inside root
    (root / "up").symlink_to("../../..")  # .. stops at the root
    r = str(root)
    assert resolve_in(r, "/abs") == os.path.join(r, "etc")
    assert resolve_in(r, "/up/etc") == os.path.join(r, "etc")
    assert resolve_in(r, "/missing/x") is None
    assert resolve_in(r, "/") == r


def test_archive_codec_sniffs_bytes_not_names(tmp_path: Path, ctx: Path) -> None:
    with tarfile.open(tmp_path / "t.tar", "w") as t:
        t.add(ctx / "a.txt", "a.txt")
    with tarfile.open(tmp_path / "t.bin", "w:gz") as t:
        t.add(ctx / "a.txt", "a.txt")
    (tmp_path / "x.tar.gz").write_bytes(gzip.compress(b"not a tar" * 100))
    assert archive_codec(str(tmp_path / "t.tar")) == "none"
    assert archive_codec(str(tmp_path / "t.bin")) == "gzip"
    assert archive_codec(str(tmp_path / "x.tar.gz")) is None
    assert archive_codec(str(ctx / "a.txt")) is None
    names = [e.name for e, _ in archive_entries(str(tmp_path / "t.bin"), "gzip", "dst")]
    assert names == ["dst/a.txt"]


def test_with_mode_changes_files_and_directories(ctx: Path) -> None:
    (src,) = BuildContext(str(ctx)).sources("d", "COPY")
    assert {i.mode for i in with_mode(src, 0o700).items} == {0o700}


def test_copy_entries_place_sources_like_docker(ctx: Path, tmp_path: Path) -> None:
    c = BuildContext(str(ctx))
    rootfs = tmp_path / "rootfs"
    (rootfs / "dst").mkdir(parents=True)
    r = str(rootfs)

    def names(pattern: str, dest: str, into_dir: bool = False) -> list[str]:
        return [
            e.name for e, _ in copy_entries(r, c.sources(pattern, "COPY"), dest, into_dir, 5, 6)
        ]

    # A directory's contents go into an existing directory...
    assert names("d", "/dst") == ["dst/f", "dst/sub", "dst/sub/g"]
    # ...or become the new directory.
    assert names("d", "/new") == ["new", "new/f", "new/sub", "new/sub/g"]
    # A file goes into an existing directory, or becomes the destination.
    assert names("a.txt", "/dst") == ["dst/a.txt"]
    assert names("a.txt", "/f") == ["f"]
    assert names("a.txt", "/nd/", into_dir=True) == ["nd/a.txt"]
    owners = {(e.uid, e.gid) for e, _ in copy_entries(r, c.sources("d", "COPY"), "/x", False, 5, 6)}
    assert owners == {(5, 6)}


def test_copy_entries_refuse_whiteout_names(tmp_path: Path) -> None:
    c = tmp_path / "c"
    c.mkdir()
    (c / ".wh.x").write_text("")
    (tmp_path / "rootfs").mkdir()
    srcs = BuildContext(str(c)).sources(".wh.x", "COPY")
    with pytest.raises(OCIToolsError, match="whiteouts"):
        list(copy_entries(str(tmp_path / "rootfs"), srcs, "/", True, 0, 0))
