"""Every input the fuzzers (tests/fuzz/) ever crashed on, replayed through
the same fuzz target: testdata/fuzz-regressions/<fuzzer>/<file>.  A target
may raise only what its fuzzer allows (our error tree); anything else fails
here.  Plus one plain test per fixed bug, saying what the right behaviour is.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from oci_tools.build.dockerfile import parse_dockerfile
from oci_tools.errors import OCIToolsError

HERE = Path(__file__).parent
REGRESSIONS = HERE.parent / "testdata" / "fuzz-regressions"
CASES = sorted(
    (d.name, f) for d in REGRESSIONS.iterdir() if d.is_dir() for f in sorted(d.iterdir())
)


def _target(fuzzer: str) -> Callable[[bytes], None]:
    sys.path.insert(0, str(HERE / "fuzz"))
    try:
        module = importlib.import_module(f"fuzz_{fuzzer}")
    finally:
        sys.path.remove(str(HERE / "fuzz"))
    return module.one_input  # type: ignore[no-any-return]


@pytest.mark.parametrize(("fuzzer", "path"), CASES, ids=[f"{d}/{f.name}" for d, f in CASES])
def test_saved_input_raises_only_our_errors(
    fuzzer: str, path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the tar target writes its rootfs in the cwd
    target = _target(fuzzer)
    with contextlib.suppress(OCIToolsError):
        target(path.read_bytes())


def test_a_lone_line_continuation_at_the_end_is_nothing() -> None:
    # Found by fuzz_dockerfile: a line holding only the escape character at
    # the end of the file made an empty instruction and an AssertionError.
    for text in ("FROM scratch\n\\\n", "FROM scratch\n\\", "# escape=`\nFROM a\n`\n"):
        df = parse_dockerfile(text)
        assert [i.keyword for i in df.instructions] == ["FROM"], text
    assert os.path.exists(REGRESSIONS / "dockerfile" / "lone-continuation-at-eof")


@pytest.mark.parametrize("value", [[None], {"a": 1}, 2, True])
def test_a_media_type_that_is_not_a_string_is_an_invalid_document(value: object) -> None:
    # Found by tests/test_properties_documents.py: a list or an object as a
    # manifest's or an index's mediaType was a TypeError (unhashable).
    import json

    from oci_tools.errors import InvalidDocumentError
    from oci_tools.spec.model import Index, Manifest

    config = {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2}
    config["digest"] = "sha256:" + "4" * 64
    man = {"schemaVersion": 2, "mediaType": value, "config": config, "layers": []}
    with pytest.raises(InvalidDocumentError, match="is not a manifest"):
        Manifest.parse(json.dumps(man).encode())
    idx = {"schemaVersion": 2, "mediaType": value, "manifests": []}
    with pytest.raises(InvalidDocumentError, match="is not an index"):
        Index.parse(json.dumps(idx).encode())
