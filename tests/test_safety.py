"""Issue 14, item by item, through the CLI: nothing is lost by a slip (no
silent clobbering, a safe ``unpack --force``, bundles that keep their base
wherever they move, digest refs), clear errors and progress."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import cli
from verify import assert_valid_layout


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out.strip()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    """A layout whose ref ``app`` names a one-layer image."""
    lay = tmp_path / "lay"
    ok("new", f"{lay}:empty")
    b = tmp_path / "work"
    ok("unpack", f"{lay}:empty", str(b))
    (b / "rootfs" / "hello.txt").write_text("hello\n" * 1000)
    ok("commit", str(b), f"{lay}:app")
    return lay


# ---------------------------------------------------------------- 1. clobber


def test_new_refuses_to_replace_an_existing_ref(app: Path) -> None:
    before = ok("ls", "--format", "json", str(app))
    r = cli("new", f"{app}:app")
    assert r.code == 1
    assert "refusing to overwrite ref 'app'" in r.err and "--force" in r.err
    assert ok("ls", "--format", "json", str(app)) == before
    # --force replaces it and says which image lost the ref.
    old = json.loads(before.splitlines()[-1])
    r = cli("new", "--force", f"{app}:app")
    assert r.code == 0, r.err
    assert f"Untagged: app@{old['Digest']}" in r.err
    assert f"Tagged: app@{r.out.strip()}" in r.err
    assert_valid_layout(str(app))


def test_commands_making_a_new_version_move_the_ref_and_say_so(app: Path, tmp_path: Path) -> None:
    first = ok("inspect", "--index", f"{app}:app")
    old = cli("ls", "--format", "json", str(app)).out
    old_app = next(json.loads(x) for x in old.splitlines() if json.loads(x)["Ref"] == "app")
    r = cli("config", "--env", "A=1", f"{app}:app")
    assert r.code == 0
    assert f"Untagged: app@{old_app['Digest']}" in r.err
    assert f"Tagged: app@{r.out.strip()}" in r.err
    # tag onto an existing ref moves it too
    r = cli("tag", f"{app}:empty", "app")
    assert r.code == 0 and "Untagged: app@" in r.err
    # a ref that is new: nothing to say
    r = cli("tag", f"{app}:empty", "brand-new")
    assert r.code == 0 and r.err == ""
    assert first


# ------------------------------------------------------- 2. unpack --force


def _corrupt_layer(lay: Path, ref: str) -> None:
    """Flip bytes in the middle of the image's top layer blob."""
    manifest = json.loads(ok("inspect", f"{lay}:{ref}"))
    blob = lay / "blobs" / "sha256" / manifest["layers"][-1]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    mid = len(data) // 2
    data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


def test_unpack_force_keeps_the_old_bundle_when_the_new_unpack_fails(
    app: Path, tmp_path: Path
) -> None:
    b = tmp_path / "bundle"
    ok("unpack", f"{app}:empty", str(b))
    (b / "rootfs" / "work.txt").write_text("uncommitted work")
    record = (b / "oci-tools.json").read_bytes()
    _corrupt_layer(app, "app")
    r = cli("unpack", "--force", f"{app}:app", str(b))
    assert r.code == 1
    assert (b / "rootfs" / "work.txt").read_text() == "uncommitted work"
    assert (b / "oci-tools.json").read_bytes() == record
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "lay", "work"]


def test_unpack_force_replaces_a_bundle_and_releases_its_old_root(
    app: Path, tmp_path: Path
) -> None:
    b = tmp_path / "bundle"
    ok("unpack", f"{app}:empty", str(b))
    (b / "rootfs" / "old.txt").write_text("old")
    roots = app / ".oci-tools" / "roots"
    before = set(roots.iterdir())
    ok("unpack", "--force", f"{app}:app", str(b))
    assert not (b / "rootfs" / "old.txt").exists()
    assert (b / "rootfs" / "hello.txt").exists()
    assert len(set(roots.iterdir())) == len(before)  # the old bundle's root went with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "lay", "work"]


# ------------------------------------------------------- 3. moved bundles


def test_a_moved_bundle_keeps_its_base_alive(app: Path, tmp_path: Path) -> None:
    b = tmp_path / "bundle"
    ok("unpack", f"{app}:app", str(b))
    (b / "rootfs" / "more.txt").write_text("more")
    moved = tmp_path / "elsewhere"
    b.rename(moved)
    ok("rm", f"{app}:app")
    r = cli("gc", str(app))
    assert r.code == 0
    assert "bundle not found" in r.err and "--prune-missing-bundles" in r.err
    out = ok("commit", str(moved), f"{app}:saved")
    assert out.startswith("sha256:")
    assert_valid_layout(str(app))
    # commit found the bundle at its new place: nothing is reported missing now
    r = cli("gc", str(app))
    assert r.code == 0 and "not found" not in r.err


def test_only_prune_missing_bundles_frees_a_lost_bundles_base_and_status_says_so(
    app: Path, tmp_path: Path
) -> None:
    b = tmp_path / "bundle"
    ok("unpack", f"{app}:app", str(b))
    moved = tmp_path / "elsewhere"
    b.rename(moved)
    ok("rm", f"{app}:app")
    dry = cli("gc", "--dry-run", "--prune-missing-bundles", str(app))
    assert dry.code == 0 and "would delete sha256:" in dry.out
    r = cli("gc", "--prune-missing-bundles", str(app))
    assert r.code == 0 and r.out.count("deleted sha256:") == dry.out.count("would delete")
    st = cli("status", str(moved))
    assert st.code == 0
    assert "base image" in st.err and "is gone" in st.err and "unpack again" in st.err


# ------------------------------------------------------------ 5. gc --dry-run


def test_gc_dry_run_lists_what_would_be_freed_and_deletes_nothing(app: Path) -> None:
    ok("rm", f"{app}:app")
    blobs = sorted((app / "blobs" / "sha256").iterdir())
    dry = cli("gc", "--dry-run", str(app))
    assert dry.code == 0 and dry.out.count("would delete sha256:") >= 3
    assert "Reclaimable space (dry run)" in dry.err
    assert sorted((app / "blobs" / "sha256").iterdir()) == blobs
    real = cli("gc", str(app))
    assert real.out.replace("deleted", "would delete") == dry.out


# ----------------------------------------------- 4. no stray layouts on failure


def test_a_failed_build_into_a_new_layout_leaves_no_layout(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nCOPY missing.txt /\n")
    target = tmp_path / "newlay"
    r = cli("build", "-q", "-t", f"{target}:x", str(ctx))
    assert r.code == 1
    assert not target.exists()


def test_a_failed_import_into_a_new_layout_leaves_no_layout(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"not a tar" * 100)
    target = tmp_path / "newlay"
    assert cli("import", str(bad), str(target)).code == 1
    assert not target.exists()


def test_new_and_build_create_a_layout_only_inside_an_existing_directory(
    tmp_path: Path,
) -> None:
    r = cli("new", f"{tmp_path / 'typo' / 'lay'}:x")
    assert r.code == 1 and "no directory" in r.err
    assert not (tmp_path / "typo").exists()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM scratch\nENV A=1\n")
    r = cli("build", "-q", "-t", f"{tmp_path / 'typo' / 'lay'}:x", str(ctx))
    assert r.code == 1 and "no directory" in r.err
    assert not (tmp_path / "typo").exists()


# ------------------------------------------------------ 6. refs by digest / id


def _images(lay: Path) -> list[dict[str, object]]:
    out = ok("images", "--digests", "--no-trunc", "--format", "json", str(lay))
    return [json.loads(x) for x in out.splitlines()]


def test_an_image_is_addressable_by_digest_and_id_prefix(app: Path) -> None:
    row = next(r for r in _images(app) if r["Ref"] == "app")
    digest, image_id = str(row["Digest"]), str(row["ID"])
    by_name = ok("inspect", f"{app}:app")
    assert ok("inspect", f"{app}@{digest}") == by_name
    assert ok("inspect", f"{app}:{image_id.removeprefix('sha256:')[:6]}") == by_name
    assert ok("inspect", f"{app}:{digest.removeprefix('sha256:')[:8]}") == by_name
    assert ok("history", "-q", f"{app}@{digest}") == ok("history", "-q", f"{app}:app")


def test_tag_by_digest_recovers_a_removed_ref(app: Path) -> None:
    digest = str(next(r for r in _images(app) if r["Ref"] == "app")["Digest"])
    ok("rm", f"{app}:app")
    assert ok("tag", f"{app}@{digest}", "app") == digest
    assert_valid_layout(str(app))
    # an untagged image is found by an id prefix too
    ok("rm", f"{app}:app")
    assert ok("tag", f"{app}:{digest.removeprefix('sha256:')[:10]}", "back") == digest


def test_an_ambiguous_id_prefix_lists_the_candidates(app: Path) -> None:
    # Two manifests (same image, different annotations) whose digests share
    # their first 4 hex digits: found by trying annotations (birthday bound).
    manifest = json.loads(ok("inspect", f"{app}:app"))
    seen: dict[str, bytes] = {}
    pair: list[bytes] = []
    for i in range(100_000):
        raw = json.dumps({**manifest, "annotations": {"n": str(i)}}).encode()
        head = hashlib.sha256(raw).hexdigest()[:4]
        if head in seen:
            pair = [seen[head], raw]
            break
        seen[head] = raw
    digests = []
    for n, raw in enumerate(pair):
        hexd = hashlib.sha256(raw).hexdigest()
        (app / "blobs" / "sha256" / hexd).write_bytes(raw)
        digests.append(f"sha256:{hexd}")
        ok("tag", f"{app}@sha256:{hexd}", f"twin{n}")
    r = cli("inspect", f"{app}:{digests[0][7:11]}")
    assert r.code == 2 and "ambiguous image id prefix" in r.err
    assert digests[0] in r.err and digests[1] in r.err and "more digits" in r.err
    assert ok("inspect", f"{app}:{digests[0][7:40]}").encode() == pair[0]
    r = cli("inspect", f"{app}:ffffffffff")
    assert r.code == 1 and "unknown ref" in r.err


def test_an_unknown_ref_suggests_the_nearest(app: Path) -> None:
    r = cli("history", f"{app}:ap")
    assert r.code == 1 and "did you mean 'app'?" in r.err


# ----------------------------------------------- 7. layout paths with ':'


def test_a_layout_path_with_a_colon_is_split_where_the_layout_is(tmp_path: Path) -> None:
    col = tmp_path / "col:dir"
    col.mkdir()
    lay = col / "lay"
    ok("init", str(lay))
    digest = ok("new", f"{lay}:v1")
    assert ok("ls", "-q", str(lay)) == "v1"
    assert ok("inspect", "--index", f"{lay}:v1")
    assert ok("tag", f"{lay}:v1", "a:b") == digest  # a ref with ':' after a path with ':'
    assert ok("inspect", "--index", f"{lay}:a:b") == ok("inspect", "--index", f"{lay}:v1")
    assert not (tmp_path / "col").exists()


def test_new_never_creates_a_different_layout_for_a_colon_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("col:dir").mkdir()
    r = cli("new", "col:dir/lay:v1")
    assert r.code == 2 and "ambiguous" in r.err and "init" in r.err
    assert not Path("col").exists() and not Path("col:dir/lay").exists()
    ok("init", "col:dir/lay")
    ok("new", "col:dir/lay:v1")
    assert ok("ls", "-q", "col:dir/lay") == "v1"
    assert not Path("col").exists()


# ---------------------------------------------------- 9. damaged blobs


def test_a_corrupt_layer_blob_says_what_it_is_and_what_to_do(app: Path, tmp_path: Path) -> None:
    manifest = json.loads(ok("inspect", f"{app}:app"))
    digest = manifest["layers"][-1]["digest"]
    blob = app / "blobs" / "sha256" / digest[7:]
    data = bytearray(blob.read_bytes())
    data[-8] ^= 0xFF  # the gzip trailer's CRC
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    r = cli("unpack", f"{app}:app", str(tmp_path / "b"))
    assert r.code == 1
    assert r.err.startswith(
        f"oci-tools: error: layer 0 ({digest[:19]}…): corrupt gzip data (CRC check failed);"
        f" the blob is damaged: run oci-tools validate {app}\n"
    ), r.err
    assert "unsafe layer entry" not in r.err


def test_a_truncated_layer_blob_says_so(app: Path, tmp_path: Path) -> None:
    manifest = json.loads(ok("inspect", f"{app}:app"))
    blob = app / "blobs" / "sha256" / manifest["layers"][-1]["digest"][7:]
    data = blob.read_bytes()
    blob.chmod(0o644)
    blob.write_bytes(data[: len(data) // 2])
    r = cli("unpack", f"{app}:app", str(tmp_path / "b"))
    assert r.code == 1
    assert "corrupt gzip data (truncated:" in r.err and "the blob is damaged" in r.err
    assert f"run oci-tools validate {app}" in r.err


# ---------------------------------------------------- 10. usage errors


def test_usage_errors_have_one_prefix_and_name_the_subcommand() -> None:
    r = cli("history")
    assert r.code == 2
    assert r.err == (
        "oci-tools: error: history: the following arguments are required: LAYOUT:REF\n"
        "hint: see: oci-tools history --help\n"
    )
    r = cli("history", "--bogus", "lay:x")
    assert r.code == 2 and r.err.count("oci-tools") == 2  # the prefix and the hint
    assert "history: unrecognized arguments: --bogus" in r.err
    assert "hint: see: oci-tools history --help" in r.err


def test_an_unknown_command_suggests_the_nearest() -> None:
    r = cli("histroy", "lay:x")
    assert r.code == 2
    assert r.err.startswith("oci-tools: error: unknown command 'histroy'\n")
    assert "did you mean 'history'?" in r.err
    assert "choose from" not in r.err


# ---------------------------------------------------- 11. status


def test_status_without_arguments_lists_the_bundles_it_knows(
    app: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    far = tmp_path / "far"
    far.mkdir()
    ok("unpack", f"{app}:app", str(far / "elsewhere"))  # base in ./lay, bundle outside
    monkeypatch.chdir(tmp_path)
    r = cli("status")
    assert r.code == 0, r.err
    assert "bundles in the current directory and those whose base is in its layouts (lay)" in r.err
    names = {line.split()[0] for line in r.out.splitlines()[1:]}
    assert names == {"work", "far/elsewhere"}


def test_status_of_a_layout_explains_it_wants_a_bundle(app: Path) -> None:
    r = cli("status", str(app))
    assert r.code == 2
    assert "is an image layout; status wants a bundle" in r.err
    assert f"oci-tools images {app}" in r.err


# ------------------------------------------------ 12. binary to a terminal


def _on_a_terminal(*argv: str) -> tuple[int, bytes]:
    """Run oci-tools with stdout and stderr on a pseudo-terminal: (exit code, output)."""
    main_fd, tty_fd = pty.openpty()
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "oci_tools", *argv],
            stdin=subprocess.DEVNULL,
            stdout=tty_fd,
            stderr=tty_fd,
        )
        os.close(tty_fd)
        out = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        return p.wait(), out
    finally:
        os.close(main_fd)


def test_export_refuses_to_write_an_archive_to_a_terminal(app: Path, tmp_path: Path) -> None:
    code, out = _on_a_terminal("export", f"{app}:app", "-")
    assert code == 2
    assert b"refusing to write an archive to a terminal" in out and len(out) < 1000
    with (tmp_path / "x.tar").open("wb") as f:  # not a terminal: the archive is written
        p = subprocess.run(
            [sys.executable, "-m", "oci_tools", "export", f"{app}:app", "-"], stdout=f
        )
    assert p.returncode == 0 and (tmp_path / "x.tar").stat().st_size > 1024


# ------------------------------------------------------------ 13. JSON


def test_json_keeps_dockers_strings_and_gives_our_counts_as_numbers(
    app: Path, tmp_path: Path
) -> None:
    row = next(r for r in _images(app) if r["Ref"] == "app")
    assert isinstance(row["Size"], str) and str(row["Size"]).endswith("B")  # docker: "659MB"
    assert row["Layers"] == 1
    ls = [json.loads(x) for x in ok("ls", "--format", "json", str(app)).splitlines()]
    assert all(isinstance(r["Size"], int) for r in ls)
    st = json.loads(ok("status", "--format", "json", str(tmp_path / "work")))
    assert isinstance(st["Size"], str) and "virtual" in st["Size"]  # docker ps -s form
    assert isinstance(st["SizeRw"], int) and isinstance(st["SizeRootFs"], int)
    assert st["SizeRootFs"] >= st["SizeRw"] > 0
    layers = [json.loads(x) for x in ok("layers", f"{app}:app", "--format", "json").splitlines()]
    assert [r["Index"] for r in layers] == [0]
    assert isinstance(layers[0]["SizeBytes"], int) and layers[0]["Added"] == 1
    hist = [json.loads(x) for x in ok("history", "--format", "json", f"{app}:app").splitlines()]
    assert all(isinstance(h["Size"], str) for h in hist)


# ------------------------------------------------- 14. set-up docs, demo


ROOT = Path(__file__).resolve().parent.parent


def test_readme_says_how_to_put_oci_tools_on_path_and_why_the_demo_misses_the_cache() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make install" in readme and ".venv/bin" in readme and "PATH" in readme
    assert "pip install ." in readme and "pipx install ." in readme
    assert "misses the cache" in (ROOT / "testdata" / "demo-build.sh").read_text()


# ------------------------------------------------- 15. no mirror hosts


#: Package-mirror and registry hosts (split so this file does not name them).
_HOSTS = [
    "deb." + "debian.org",
    "security." + "debian.org",
    "archive." + "ubuntu.com",
    "pypi." + "org",
    "files." + "pythonhosted.org",
    "registry-1." + "docker.io",
    "index." + "docker.io",
    "quay." + "io",
    "ghcr." + "io",
]
_SKIP_DIRS = {
    ".git",
    ".venv",
    "cache",
    "__pycache__",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
}


def test_the_repository_names_no_mirror_or_registry_host() -> None:
    found = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if not path.is_file() or _SKIP_DIRS & set(rel.parts) or rel.parts[0].endswith("egg-info"):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{rel}: {h}" for h in _HOSTS if h in text]
        # docker.io as a host in prose or the bench (the code may use it as
        # Docker Hub's *name* when normalizing, and apt's package is called so)
        if rel.parts[0] in ("bench", "README.md") and "docker" + ".io" in text:
            found.append(f"{rel}: docker" + ".io")
    assert found == []


def _bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_run"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_the_bench_takes_the_debian_mirror_from_apt(tmp_path: Path) -> None:
    bench = _bench()
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list").write_text(
        "# comment\ndeb [signed-by=/k.gpg arch=amd64] http://mirror.example/debian bookworm main\n"
    )
    assert bench.debian_mirror(apt=apt) == "http://mirror.example/debian"
    (apt / "sources.list").unlink()
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://other.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb deb-src\nURIs: http://other.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert bench.debian_mirror(apt=apt) == "http://other.example/debian"
    with pytest.raises(SystemExit, match="no apt source for Debian trixie"):
        bench.debian_mirror("trixie", apt=apt)


# ------------------------------------------------------------ 8. progress


@pytest.fixture
def big(tmp_path: Path) -> Path:
    """A layout whose ref ``big`` has a 3 MB layer (incompressible)."""
    lay = tmp_path / "biglay"
    ok("new", f"{lay}:empty")
    b = tmp_path / "bigwork"
    ok("unpack", f"{lay}:empty", str(b))
    (b / "rootfs" / "random.bin").write_bytes(os.urandom(3 << 20))
    ok("commit", str(b), f"{lay}:big")
    return lay


def _progress_env() -> dict[str, str]:
    env = dict(os.environ)
    env["OCI_TOOLS_PROGRESS_DELAY"] = "0"  # draw at once: no timing in the test
    return env


def _stderr_on_a_terminal(*argv: str) -> tuple[int, bytes]:
    """Run oci-tools with stderr on a pseudo-terminal, stdout piped."""
    main_fd, tty_fd = pty.openpty()
    try:
        p = subprocess.Popen(
            [sys.executable, "-m", "oci_tools", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=tty_fd,
            env=_progress_env(),
        )
        os.close(tty_fd)
        out = b""
        while True:
            try:
                chunk = os.read(main_fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        return p.wait(), out
    finally:
        os.close(main_fd)


def test_progress_shows_on_a_terminal_only(big: Path, tmp_path: Path) -> None:
    digest = json.loads(ok("inspect", f"{big}:big"))["layers"][-1]["digest"]
    code, err = _stderr_on_a_terminal("unpack", f"{big}:big", str(tmp_path / "b1"))
    assert code == 0, err
    # the layer's bar: its digest, bytes done of the blob's size, rate (and ETA)
    assert digest[:19].encode() in err and b"/3.15M [" in err and b"B/s]" in err
    # piped: no progress at all
    p = subprocess.run(
        [sys.executable, "-m", "oci_tools", "unpack", f"{big}:big", str(tmp_path / "b2")],
        capture_output=True,
        env=_progress_env(),
    )
    assert p.returncode == 0 and p.stderr == b""
    # -q on a terminal: none either
    code, err = _stderr_on_a_terminal("unpack", "-q", f"{big}:big", str(tmp_path / "b3"))
    assert code == 0 and b"B/s" not in err


def test_progress_for_commit_export_import_and_validate(big: Path, tmp_path: Path) -> None:
    b = tmp_path / "b"
    ok("unpack", f"{big}:big", str(b))
    (b / "rootfs" / "more.bin").write_bytes(os.urandom(2 << 20))
    code, err = _stderr_on_a_terminal("commit", str(b), f"{big}:more")
    assert code == 0 and b"writing blob" in err and b"B/s" in err
    tar = tmp_path / "x.tar"
    code, err = _stderr_on_a_terminal("export", f"{big}:more", str(tar))
    assert code == 0 and b"B/s" in err
    code, err = _stderr_on_a_terminal("import", str(tar), f"{tmp_path / 'other'}:x")
    assert code == 0 and b"writing blob" in err
    code, err = _stderr_on_a_terminal("validate", str(big))
    assert code == 0 and b"B/s" in err


def test_digest_refs_never_become_ref_names(app: Path, tmp_path: Path) -> None:
    digest = str(next(r for r in _images(app) if r["Ref"] == "app")["Digest"])
    refs = ok("ls", "-q", str(app))
    r = cli("config", "--env", "X=1", f"{app}:{digest[7:15]}")
    assert r.code == 0 and "untagged" in r.err and f"oci-tools tag {app}@sha256:" in r.err
    r = cli("commit", str(tmp_path / "work"), f"{app}@{digest}")
    assert r.code == 2 and "not a ref" in r.err
    assert ok("ls", "-q", str(app)) == refs
