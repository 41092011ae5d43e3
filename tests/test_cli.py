"""The command line: layout commands (init/new/tag/rm/ls/inspect/gc/validate),
help for every command, and bad input as one-line errors with exit 1 or 2."""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path

import pytest
from helpers import cli
from verify import assert_valid_layout

from oci_tools.cli.app import build_parser


def _snapshot(path: Path) -> dict[str, bytes]:
    """Every file's bytes under path (to prove a failed command changed nothing)."""
    out = {}
    for root, _dirs, files in os.walk(path):
        for f in files:
            p = Path(root, f)
            if ".oci-tools" in p.parts:
                continue
            out[str(p.relative_to(path))] = p.read_bytes()
    return out


@pytest.fixture
def lay(tmp_path: Path) -> Path:
    p = tmp_path / "lay"
    r = cli("new", f"{p}:base")
    assert r.code == 0, r.err
    return p


def test_init_creates_valid_empty_layout(tmp_path: Path) -> None:
    p = tmp_path / "l"
    r = cli("init", str(p))
    assert r.code == 0
    assert json.loads((p / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    idx = json.loads((p / "index.json").read_text())
    assert idx["schemaVersion"] == 2 and idx["manifests"] == []
    assert_valid_layout(str(p))
    again = cli("init", str(p))
    assert again.code == 1 and "refusing to overwrite" in again.err


def test_new_is_reproducible_with_source_date_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    a = cli("new", f"{tmp_path / 'a'}:x")
    b = cli("new", f"{tmp_path / 'b'}:x")
    assert a.code == b.code == 0
    assert a.out == b.out and a.out.startswith("sha256:")
    cfg = json.loads(cli("inspect", "--config", f"{tmp_path / 'a'}:x").out)
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": []}
    assert_valid_layout(str(tmp_path / "a"))


def test_tag_ls_rm_gc(lay: Path) -> None:
    digest = cli("tag", f"{lay}:base", "v1").out.strip()
    ls = cli("ls", str(lay))
    assert ls.code == 0
    lines = ls.out.splitlines()
    assert lines[0].split() == ["REF", "DIGEST", "MEDIA", "TYPE"]
    assert {ln.split()[0] for ln in lines[1:]} == {"base", "v1"}
    assert all(digest in ln for ln in lines[1:])
    assert cli("ls", "-q", str(lay)).out.split() == ["base", "v1"]
    rows = [json.loads(x) for x in cli("ls", "--format", "json", str(lay)).out.splitlines()]
    assert [r["Ref"] for r in rows] == ["base", "v1"]

    assert cli("rm", f"{lay}:base").code == 0
    assert cli("ls", "-q", str(lay)).out.split() == ["v1"]
    gc = cli("gc", str(lay))
    assert gc.code == 0 and gc.out == ""  # v1 still holds everything
    assert cli("rm", f"{lay}:v1").code == 0
    gc = cli("gc", str(lay))
    assert gc.code == 0 and len(gc.out.splitlines()) == 2  # config + manifest
    assert os.listdir(lay / "blobs" / "sha256") == []
    assert_valid_layout(str(lay))


def test_inspect_prints_stored_bytes(lay: Path) -> None:
    m = cli("inspect", f"{lay}:base")
    doc = json.loads(m.out)
    assert doc["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    blob = lay / "blobs" / "sha256" / doc["config"]["digest"].split(":")[1]
    assert cli("inspect", "--config", f"{lay}:base").out.rstrip("\n").encode() == blob.read_bytes()


def test_validate_layout_and_document(lay: Path, tmp_path: Path) -> None:
    ok = cli("validate", str(lay))
    assert ok.code == 0 and ok.out.startswith("PASS")
    doc = tmp_path / "m.json"
    doc.write_text('{"schemaVersion": 2, "config": {}, "layers": "x"}')
    bad = cli("validate", "--media-type", "application/vnd.oci.image.manifest.v1+json", str(doc))
    assert bad.code == 1
    assert len(bad.out.splitlines()) >= 2  # every problem, not only the first


def test_validate_reports_tampered_blob(lay: Path) -> None:
    blobs = lay / "blobs" / "sha256"
    victim = sorted(blobs.iterdir())[0]
    victim.write_bytes(victim.read_bytes() + b" ")
    r = cli("validate", str(lay))
    assert r.code == 1
    assert any(victim.name in ln and "hashes to" in ln for ln in r.out.splitlines())


def test_every_command_has_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        r = cli(name, "--help")
        assert r.code == 0 and "usage:" in r.out, name
    v = cli("--version")
    assert v.code == 0 and "oci-tools" in v.out


# -- bad input: each a clear one-line error, exit 1 or 2, layout unchanged ----------


def _one_line_error(err: str) -> None:
    lines = err.strip().splitlines()
    assert lines and lines[0].startswith("oci-tools: error: ")
    assert all(ln.startswith(("oci-tools: error: ", "hint: ")) for ln in lines)
    assert "Traceback" not in err


def test_missing_layout(tmp_path: Path) -> None:
    r = cli("ls", str(tmp_path / "nope"))
    assert r.code == 1 and "no such directory" in r.err
    _one_line_error(r.err)


def test_file_where_layout_should_be(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = cli("ls", str(f))
    assert r.code == 1 and "not a directory" in r.err
    _one_line_error(r.err)


@pytest.mark.parametrize(
    ("target", "content", "message"),
    [
        ("oci-layout", '{"imageLayoutVersion": "2.0.0"}', "imageLayoutVersion"),
        ("oci-layout", "not json", "oci-layout"),
        ("index.json", '{"schemaVersion": 2, "manifests": [', "index.json"),
        ("index.json", '{"schemaVersion": 2, "manifests": [], "manifests": []}', "duplicate"),
        ("index.json", b"\xff\xfe{}", "index.json"),
    ],
)
def test_broken_layout_files(lay: Path, target: str, content: str | bytes, message: str) -> None:
    p = lay / target
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)
    before = _snapshot(lay)
    for argv in (["ls", str(lay)], ["tag", f"{lay}:base", "x"], ["gc", str(lay)]):
        r = cli(*argv)
        assert r.code == 1, argv
        assert message in r.err, r.err
        _one_line_error(r.err)
    assert _snapshot(lay) == before


def test_unknown_ref_lists_known_refs(lay: Path) -> None:
    before = _snapshot(lay)
    r = cli("inspect", f"{lay}:nope")
    assert r.code == 1 and "unknown ref 'nope'" in r.err and "hint: known refs: base" in r.err
    _one_line_error(r.err)
    assert _snapshot(lay) == before


@pytest.mark.parametrize("ref", ["bad ref", "x-", "a..b", "UPPER/_x", "é", "a/"])
def test_invalid_ref_characters(lay: Path, ref: str) -> None:
    before = _snapshot(lay)
    r = cli("tag", f"{lay}:base", ref)
    assert r.code == 2 and "invalid ref name" in r.err
    _one_line_error(r.err)
    assert _snapshot(lay) == before


def test_wrong_flag_is_usage_error(lay: Path) -> None:
    r = cli("ls", "--bogus", str(lay))
    assert r.code == 2
    _one_line_error(r.err)
    assert cli("frobnicate").code == 2


def _manifest_path(lay: Path) -> Path:
    idx = json.loads((lay / "index.json").read_text())
    return lay / "blobs" / "sha256" / idx["manifests"][0]["digest"].split(":")[1]


def test_blob_bytes_not_matching_digest(lay: Path) -> None:
    mp = _manifest_path(lay)
    mp.write_bytes(mp.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    before = _snapshot(lay)
    r = cli("inspect", f"{lay}:base")
    assert r.code == 1 and "expected sha256:" in r.err
    _one_line_error(r.err)
    assert _snapshot(lay) == before


def test_descriptor_with_wrong_size(lay: Path) -> None:
    idx = json.loads((lay / "index.json").read_text())
    idx["manifests"][0]["size"] += 7
    (lay / "index.json").write_text(json.dumps(idx))
    r = cli("inspect", f"{lay}:base")
    assert r.code == 1 and "size" in r.err
    _one_line_error(r.err)


def test_manifest_referencing_missing_blob(lay: Path) -> None:
    m = json.loads(_manifest_path(lay).read_text())
    os.unlink(lay / "blobs" / "sha256" / m["config"]["digest"].split(":")[1])
    r = cli("inspect", "--config", f"{lay}:base")
    assert r.code == 1 and "blob not found" in r.err
    _one_line_error(r.err)
    v = cli("validate", str(lay))
    assert v.code == 1 and "is missing" in v.out


def test_blob_path_that_is_not_a_digest(lay: Path) -> None:
    (lay / "blobs" / "sha256" / "not-a-digest").write_text("x")
    idx = json.loads((lay / "index.json").read_text())
    idx["manifests"][0]["digest"] = "sha256:../../../etc/passwd"
    (lay / "index.json").write_text(json.dumps(idx))
    r = cli("inspect", f"{lay}:base")
    assert r.code == 1 and "digest" in r.err
    _one_line_error(r.err)
    v = cli("validate", str(lay))
    assert v.code == 1 and "not-a-digest" in v.out


def test_unwritable_layout_is_one_line_error(lay: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root ignores permissions; a read-only bind is not available here, so
        # make the index path a directory instead: the rename must fail.
        (lay / ".oci-tools").mkdir(exist_ok=True)
        shutil.rmtree(lay / ".oci-tools")
        (lay / ".oci-tools").write_text("in the way")
    else:
        os.chmod(lay, 0o555)
    r = cli("tag", f"{lay}:base", "other")
    assert r.code == 1
    _one_line_error(r.err)
    assert cli("ls", "-q", str(lay)).out.split() == ["base"]


# -- the CLI's own structure ---------------------------------------------------------

_PKG = Path(__file__).resolve().parent.parent / "oci_tools"
_SHARED = {"oci_tools.cli._common", "oci_tools.cli.tables"}


def _cli_imports(path: Path) -> set[str]:
    """The ``oci_tools.cli...`` modules a file imports (at any depth)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == "oci_tools.cli":
            found.update(f"oci_tools.cli.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oci_tools.cli."):
            found.add(str(node.module))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("oci_tools.cli"))
    return found


def test_command_modules_import_only_the_shared_cli_modules() -> None:
    commands = {p.stem: p for p in (_PKG / "cli" / "commands").glob("*.py")}
    assert set(commands) >= {"layout", "bundle", "views", "archive", "build", "layers"}
    for name, path in commands.items():
        assert _cli_imports(path) <= _SHARED, name
    for shared in ("_common", "tables"):
        assert _cli_imports(_PKG / "cli" / f"{shared}.py") <= _SHARED, shared


def test_nothing_outside_cli_imports_cli() -> None:
    for path in _PKG.rglob("*.py"):
        rel = path.relative_to(_PKG)
        if rel.parts[0] in ("cli", "__main__.py"):
            continue
        assert not _cli_imports(path), rel
