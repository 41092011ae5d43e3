"""The builder (``oci_tools.build.builder``): its dispatch table, options
and the checks it makes before any work (no image needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_tools.build import SUPPORTED, BuildError, BuildOptions, build, parse_build_args
from oci_tools.build.builder import STEP_KEYWORDS
from oci_tools.errors import NotFoundError, UsageError


def test_every_parsed_keyword_has_a_step() -> None:
    assert STEP_KEYWORDS == SUPPORTED


def test_parse_build_args() -> None:
    assert parse_build_args(["A=1", "B", "C=", "D=x=y"]) == {
        "A": "1",
        "B": None,
        "C": "",
        "D": "x=y",
    }
    with pytest.raises(UsageError, match="must be KEY=VALUE or KEY"):
        parse_build_args(["=x"])


@pytest.mark.parametrize(
    ("opts", "what"),
    [
        (BuildOptions(runtime="docker"), "--runtime 'docker'"),
        (BuildOptions(network="bridge"), "--network 'bridge'"),
        (BuildOptions(compress="lz4"), "--compress 'lz4'"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, opts: BuildOptions, what: str) -> None:
    with pytest.raises(UsageError, match=what):
        build(str(tmp_path / "lay"), opts)
    assert not (tmp_path / "lay").exists()


def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no Dockerfile at") as ei:
        build(str(tmp_path / "lay"), BuildOptions(context=str(tmp_path)))
    assert ei.value.hint == "use -f PATH"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("ARG A\n", 1, "no FROM instruction"),
        ("ENV A=1\nFROM scratch\n", 1, "ENV before FROM"),
        ("FROM scratch\nFROM scratch\n", 2, "multi-stage builds"),
        ("FROM scratch\nRUN true\n", 2, "RUN is disabled (--runtime none)"),
    ],
)
def test_structure_is_checked_before_any_step(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    (tmp_path / "Dockerfile").write_text(text)
    log: list[str] = []
    with pytest.raises(BuildError) as ei:
        build(
            str(tmp_path / "lay"),
            BuildOptions(context=str(tmp_path), runtime="none"),
            log=log.append,
        )
    assert ei.value.line == line and what in ei.value.reason
    assert log == []  # not one step ran
