"""Start-up and view speed mechanisms keep behaviour: the CLI builds only the
subparser of the command being run (same parsing and help as the full
parser), read-only views import no heavy module, and the views read each
document once with the same results as resolving every ref."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from oci_tools.cli.app import (
    COMMANDS,
    GROUPS,
    SkippedParser,
    build_parser,
    command_word,
    group_module,
    main,
)
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.mutate import new_image
from oci_tools.spec.model import Platform
from oci_tools.views import disk_usage, image_rows, tagged_images


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


def test_command_word() -> None:
    assert command_word(["history", "x:y"]) == "history"
    assert command_word(["--version"]) is None
    assert command_word(["-h"]) is None
    assert command_word([]) is None
    assert command_word(["--", "history"]) is None


def test_lazy_parser_matches_the_full_one_for_every_command() -> None:
    full = _subparsers(build_parser())
    assert len(full) > 20
    for name, sub in full.items():
        lazy = _subparsers(build_parser(name))
        assert set(lazy) == {n for n, p in full.items() if p is sub}, name  # it and its aliases
        assert lazy[name].format_help() == sub.format_help(), name


def test_the_command_table_names_the_group_of_every_command() -> None:
    registered: dict[str, str] = {}
    for group in GROUPS:

        def add(name: str, handler: object, help_: str, aliases: Sequence[str] = ()) -> object:
            for word in (name, *aliases):
                assert word not in registered, f"{word} registered twice"
                registered[word] = group  # noqa: B023  (called before the loop moves on)
            return SkippedParser()

        group_module(group).register(add)  # type: ignore[arg-type]
    assert registered == COMMANDS
    assert list(dict.fromkeys(COMMANDS.values())) == list(GROUPS)  # --help's order


def test_a_command_missing_from_the_table_still_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(COMMANDS, "history")
    assert set(_subparsers(build_parser("history"))) == {"history"}  # found in every group
    out = io.StringIO()
    assert main(["history", "--help"], stdout=out, stderr=io.StringIO()) == 0
    assert "usage: oci-tools history" in out.getvalue()


def test_unknown_command_gets_the_full_parser() -> None:
    assert set(_subparsers(build_parser("no-such-command"))) == set(_subparsers(build_parser()))
    err = io.StringIO()
    assert main(["hsitory", "x"], stdout=io.StringIO(), stderr=err) == 2
    assert "unknown command 'hsitory'" in err.getvalue() and "'history'" in err.getvalue()


def test_skipped_swallows_definitions() -> None:
    s = SkippedParser()
    g = s.add_mutually_exclusive_group(required=True)
    assert g.add_argument("--x", action="store_true") is s
    assert s.add_subparsers(dest="d").add_parser("p", help="h") is s


def test_subcommand_parsing_and_help_still_work(tmp_path: Path) -> None:
    out = io.StringIO()
    assert main(["ls", "--help"], stdout=out, stderr=io.StringIO()) == 0
    assert "usage: oci-tools ls" in out.getvalue()
    lay = tmp_path / "lay"
    assert main(["new", f"{lay}:a"], stdout=io.StringIO(), stderr=io.StringIO()) == 0
    out = io.StringIO()
    assert main(["list", str(lay), "-q"], stdout=out, stderr=io.StringIO()) == 0  # an alias
    assert out.getvalue() == "a\n"


def _layout_with_images(tmp_path: Path) -> Layout:
    lay = Layout.init(str(tmp_path / "lay"))
    for ref, arch in (("a", "amd64"), ("b", "arm64"), ("c", "riscv64")):
        new_image(lay, ref, platform=Platform("linux", arch))  # three distinct images
    lay.set_ref("d", lay.lookup("a"))  # two refs, one image
    return lay


def test_tagged_images_equals_loading_each_ref(tmp_path: Path) -> None:
    lay = _layout_with_images(tmp_path)
    got = tagged_images(lay)
    want = [(ref, Image.load(lay, ref)) for ref, _ in lay.refs()]
    assert [r for r, _ in got] == [r for r, _ in want]
    for (_, g), (_, w) in zip(got, want, strict=True):
        assert g.descriptor == w.descriptor and g.ref == w.ref
        assert g.manifest.raw == w.manifest.raw and g.config.raw == w.config.raw
    assert len(image_rows(lay)) == 4
    du = disk_usage(lay, verbose=True)
    assert du.images == 3  # a and d are one image
    assert du.reclaimable == 0 and du.image_bytes == du.total_bytes


@pytest.mark.parametrize("command", [["history", "{lay}:a"], ["images", "{lay}"], ["df", "{lay}"]])
def test_views_do_not_import_heavy_modules(tmp_path: Path, command: list[str]) -> None:
    lay = _layout_with_images(tmp_path)
    argv = [a.format(lay=lay.path) for a in command]
    code = (
        "import sys\n"
        "from oci_tools.cli.app import main\n"
        f"rc = main({argv!r})\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
        "{'jsonschema', 'zstandard', 'cryptography', 'referencing', 'tempfile', 'queue', 'tqdm'})\n"
        "print(__import__('json').dumps([rc, heavy]), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, heavy = json.loads(res.stderr.strip().splitlines()[-1])
    assert rc == 0
    assert heavy == []
