"""The public API: ``__all__`` is what ``import oci_tools`` offers, and
docs/python-api.md's worked example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import oci_tools

DOC = Path(__file__).resolve().parent.parent / "docs" / "python-api.md"


def test_every_name_in_all_resolves() -> None:
    for name in oci_tools.__all__:
        assert getattr(oci_tools, name) is not None, name


def test_all_is_the_documented_api() -> None:
    api = {n for n in oci_tools.__all__ if not n.endswith("Error") and n[0].islower()}
    assert api == {
        "build_image", "commit", "df", "export_image", "history", "images",
        "import_archive", "init_layout", "layers", "load_image", "open_layout", "resolve",
        "status", "unpack", "validate",
    }  # fmt: skip
    text = DOC.read_text()
    for name in api:
        assert f"{name}(" in text, f"docs/python-api.md does not mention {name}"


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = oci_tools.no_such_thing  # type: ignore[attr-defined]


def test_import_stays_light() -> None:
    code = (
        "import sys, oci_tools; print(sorted(m for m in sys.modules if m.startswith('oci_tools')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['oci_tools', 'oci_tools.errors']"


def test_python_m_runs_the_cli() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "oci_tools", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "oci-tools" in out.stdout


def test_help_shows_the_api() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import oci_tools; help(oci_tools)"],
        capture_output=True, text=True, env={**os.environ, "PAGER": "cat"},
    )  # fmt: skip
    assert out.returncode == 0
    for name in ("unpack(layout", "commit(layout", "load_image(layout", "RefNotFoundError"):
        assert name in out.stdout


def test_docs_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    scope: dict[str, object] = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), scope)
    assert (tmp_path / "app.tar").stat().st_size > 0
    assert (tmp_path / "copy" / "index.json").exists()


def test_values_have_short_reprs() -> None:
    d = oci_tools.Descriptor.from_dict(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + "ab" * 32,
            "size": 12,
            "annotations": {"org.opencontainers.image.ref.name": "app"},
        }
    )
    assert (
        repr(d)
        == "Descriptor(application/vnd.oci.image.manifest.v1+json abababababab 12 B ref='app')"
    )
    assert repr(d.digest) == f"Digest('sha256:{'ab' * 32}')"
