""".dockerignore (``oci_tools.build.dockerignore``): Docker's pattern syntax,
parent directories, ``!`` exceptions and the last-match-wins rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_tools.build import DockerIgnore
from oci_tools.build.dockerignore import pattern_regex


def test_dockerignore_patterns() -> None:
    ig = DockerIgnore(["# comment", "*.log", "!keep.log", "tmp", "**/secret*", "/build/"])
    assert ig.ignored("a.log") and not ig.ignored("keep.log") and not ig.ignored("d/a.log")
    assert ig.ignored("tmp") and ig.ignored("tmp/x/y")  # a parent directory matches
    assert ig.ignored("x/y/secret.txt") and ig.ignored("secret.key")
    assert ig.ignored("build/out") and not ig.ignored("app/server.js")


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("**/x", "x", True),  # ** is zero or more components
        ("**/x", "a/b/x", True),
        ("**/x", "ax", False),
        ("a/**", "a/b/c", True),
        ("a/**/b", "a/b", True),
        ("a/**/b", "a/x/y/b", True),
        ("a/**/b", "ab", False),
        ("*", "a", True),
        ("*", "a/b", False),  # * stays within one component
        ("?.txt", "a.txt", True),
        ("?.txt", "ab.txt", False),
        ("[!a]b", "ab", False),  # ! and ^ negate a class
        ("[!a]b", "bb", True),
        ("[^a]b", "cb", True),
        ("\\*", "*", True),  # a backslash escapes
        ("\\*", "a", False),
    ],
)
def test_pattern_syntax(pattern: str, path: str, hit: bool) -> None:
    assert bool(pattern_regex(pattern).match(path)) is hit


def test_patterns_are_cleaned_and_blank_or_dot_lines_dropped() -> None:
    ig = DockerIgnore(["/x", "./y", ".", "", "   ", " ! z "])
    assert [p.regex.pattern for p in ig.patterns] == ["^x$", "^y$", "^z$"]
    assert ig.has_exceptions
    assert ig.ignored("x") and ig.ignored("y/q") and not ig.ignored("z")
    assert not ig.ignored("")  # the context itself is never excluded


def test_last_matching_pattern_wins() -> None:
    ig = DockerIgnore(["*", "!keep"])
    assert ig.ignored("a") and not ig.ignored("keep") and not ig.ignored("keep/inside")
    assert DockerIgnore(["!keep", "*"]).ignored("keep")
    ig = DockerIgnore(["d", "!d/keep"])
    assert ig.ignored("d/x") and not ig.ignored("d/keep") and not ig.ignored("d/keep/y")
    assert not DockerIgnore(["d"]).has_exceptions


def test_load_reads_the_context_file(tmp_path: Path) -> None:
    assert DockerIgnore.load(str(tmp_path)).patterns == ()
    (tmp_path / ".dockerignore").write_text("*.log\n# c\n!a.log\n")
    ig = DockerIgnore.load(str(tmp_path))
    assert ig.ignored("b.log") and not ig.ignored("a.log")
