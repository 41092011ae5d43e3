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
from oci_tools.digest import Digest
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


#: Imported by no command that only reads a layout: network and crypto stacks,
#: schema validation, progress bars, codecs, and the packages that write
#: images, talk to registries, build, sign or apply layers.
HEAVY = frozenset(
    {
        "urllib3",
        "ssl",
        "http",
        "cryptography",
        "nacl",
        "jsonschema",
        "referencing",
        "tqdm",
        "zstandard",
        "isal",
        "tempfile",
        "uuid",
        "oci_tools.apply",
        "oci_tools.archive",
        "oci_tools.build",
        "oci_tools.compression",
        "oci_tools.diff",
        "oci_tools.layer.reader",
        "oci_tools.mutate",
        "oci_tools.registry",
        "oci_tools.sign",
        "oci_tools.snapshot",
        "oci_tools.surgery",
    }
)


def _modules_after(argv: list[str]) -> set[str]:
    """The modules a fresh interpreter has loaded once ``oci-tools ARGV`` ran
    (through the console script's ``main``; the command must succeed)."""
    code = (
        "import json, sys\n"
        "from oci_tools.cli.app import main\n"
        f"rc = main({argv!r})\n"
        "print(json.dumps([rc, sorted(sys.modules)]), file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    rc, mods = json.loads(res.stderr.strip().splitlines()[-1])
    assert rc == 0, res.stderr
    return set(mods)


def _heavy(mods: set[str], also: frozenset[str] = frozenset()) -> list[str]:
    """The modules of ``mods`` that are in HEAVY or ``also`` (a package counts
    for its submodules), plus command modules beyond the one that ran."""
    bad = HEAVY | also
    found = {m for m in mods if m in bad or any(m.startswith(b + ".") for b in bad)}
    groups = {m for m in mods if m.startswith("oci_tools.cli.commands.")}
    if len(groups) > 1:
        found |= groups
    return sorted(found)


def _layout_with_layers(tmp_path: Path) -> Layout:
    """Images a and b sharing a base layer, b with one more layer."""
    from builders import directory, file, make_layer

    from oci_tools.mutate import empty_config, write_image
    from oci_tools.spec import mediatype as mt
    from oci_tools.spec.model import Descriptor
    from oci_tools.store import put_bytes

    lay = Layout.init(str(tmp_path / "lay"))
    layers = [
        make_layer([directory("etc"), file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")]),
        make_layer([directory("opt"), file("opt/a", b"a" * 100)]),
    ]
    for ref, n in (("a", 1), ("b", 2)):
        descs = []
        for lyr in layers[:n]:
            put_bytes(lay.store, lyr.blob)
            descs.append(
                Descriptor(
                    mt.OCI_LAYER_FOR_CODEC[lyr.codec], Digest.parse(lyr.digest), len(lyr.blob)
                )
            )
        cfg = empty_config(Platform("linux", "amd64"), "2024-01-01T00:00:00Z")
        cfg["rootfs"]["diff_ids"] = [lyr.diff_id for lyr in layers[:n]]
        cfg["history"] = [{"created": "2024-01-01T00:00:00Z", "created_by": "x"}] * n
        write_image(lay, cfg, descs, ref=ref)
    return lay


@pytest.mark.parametrize(
    "command",
    [
        ["history", "{lay}:b"],
        ["images", "{lay}"],
        ["df", "{lay}"],
        ["df", "-v", "{lay}"],
        ["ls", "{lay}"],
        ["--version"],
    ],
)
def test_read_only_commands_import_no_heavy_module(tmp_path: Path, command: list[str]) -> None:
    lay = _layout_with_layers(tmp_path)
    argv = [a.format(lay=lay.path) for a in command]
    _modules_after(argv)  # the first run learns the layer sizes (reads the layers)
    mods = _modules_after(argv)
    # Views read JSON documents only, never a layer: no codec, no tar reader.
    also = frozenset(
        {"oci_tools.layer", "oci_tools.bundle", "subprocess", "secrets", "dataclasses", "inspect"}
    )
    assert _heavy(mods, also) == []
    assert "oci_tools.views.df" in mods or command[0] != "df"
    if command[0] in ("history", "images"):  # each view imports only itself
        assert {m for m in mods if m.startswith("oci_tools.views.")} <= {
            "oci_tools.views.history",
            "oci_tools.views.images",
            "oci_tools.views.sizes",
        }
        assert "oci_tools.containers" not in mods


def test_unpack_overlay_of_stored_layers_imports_no_layer_machinery(tmp_path: Path) -> None:
    from helpers import need_root

    from oci_tools.snapshots import overlay_supported, unmount

    need_root()
    if not overlay_supported():
        pytest.skip("the kernel has no overlayfs")
    lay = _layout_with_layers(tmp_path)
    first, second = tmp_path / "b1", tmp_path / "b2"
    try:
        # The first unpack extracts the layers into the store (apply, codecs);
        # the next one only mounts them.
        _modules_after(["unpack", "--overlay", f"{lay.path}:b", str(first)])
        mods = _modules_after(["unpack", "--overlay", f"{lay.path}:b", str(second)])
        assert (second / "rootfs" / "opt" / "a").read_bytes() == b"a" * 100
    finally:
        for b in (first, second):
            unmount(str(b / "rootfs"))
    also = frozenset({"oci_tools.layer.entry", "oci_tools.views", "dataclasses", "inspect"})
    assert _heavy(mods, also) == []
    assert "oci_tools.snapshots.overlay" in mods  # it did mount


def test_the_heavy_check_can_fail() -> None:
    assert _heavy({"oci_tools.apply.fs", "os"}) == ["oci_tools.apply.fs"]
    assert _heavy({"urllib3", "oci_tools.cli.commands.a", "oci_tools.cli.commands.b"}) == [
        "oci_tools.cli.commands.a",
        "oci_tools.cli.commands.b",
        "urllib3",
    ]


def test_the_registry_path_imports_no_heavy_module() -> None:
    """pull/push/copy load urllib3 and the registry modules, but not what only
    signing, validation, progress bars or dataclasses need."""
    code = (
        "import json, sys\n"
        "import oci_tools.cli.commands.registry, oci_tools.registry.transfer\n"
        "import oci_tools.registry.copy\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mods = set(json.loads(res.stdout))
    assert "urllib3" in mods  # the check sees the registry stack
    banned = ("cryptography", "nacl", "jsonschema", "tqdm", "dataclasses", "inspect")
    banned += ("concurrent.futures", "importlib.metadata", "oci_tools.sign", "oci_tools.apply")
    assert sorted(m for m in mods if m in banned or m.startswith(banned)) == []


def test_a_commit_imports_no_heavy_module(tmp_path: Path) -> None:
    """A commit diffs, writes one layer and tags: no network, crypto, schema,
    progress, dataclasses or tempfile (a one-file commit is mostly start-up)."""
    lay = _layout_with_layers(tmp_path)
    bundle = tmp_path / "bundle"
    assert main(["unpack", f"{lay.path}:b", str(bundle)], stdout=io.StringIO()) == 0
    (bundle / "rootfs" / "opt" / "a").write_bytes(b"changed")
    mods = _modules_after(["commit", str(bundle), f"{lay.path}:c"])
    assert "oci_tools.diff" in mods  # the check sees the commit's own modules
    needed = {"oci_tools.diff", "oci_tools.snapshot", "oci_tools.mutate", "oci_tools.compression"}
    needed |= {"isal", "zstandard"}  # the layer's and the snapshot's codecs
    banned = (HEAVY - needed) | {"dataclasses", "inspect", "tempfile", "subprocess"}
    found = sorted(m for m in mods if m in banned or m.startswith(tuple(b + "." for b in banned)))
    assert found == []
