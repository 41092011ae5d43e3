"""Issue 14, item by item, through the CLI: nothing is lost by a slip (no
silent clobbering, a safe ``unpack --force``, bundles that keep their base
wherever they move, digest refs), clear errors and progress."""

from __future__ import annotations

import json
from pathlib import Path

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
