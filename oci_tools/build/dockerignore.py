"""``.dockerignore``: Docker's pattern syntax and which context paths it excludes."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool
    depth: int  # number of path components of the pattern


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` within a component, ``**`` any
    number of components, ``[...]`` classes, backslash escapes."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 < n:
                out.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                out.append(re.escape(c))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


class DockerIgnore:
    """The patterns of a ``.dockerignore``; ``ignored(path)`` says whether a
    context path (relative, ``/``-separated) is excluded: the last pattern
    matching it or one of its parent directories wins, ``!`` re-includes."""

    def __init__(self, lines: Sequence[str] = ()) -> None:
        pats: list[_Pattern] = []
        for line in lines:
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            p = posixpath.normpath(p)
            if len(p) > 1 and p.startswith("/"):
                p = p.lstrip("/")
            if p == ".":
                continue
            pats.append(_Pattern(pattern_regex(p), exclusion, len(p.split("/"))))
        self.patterns = tuple(pats)
        self.has_exceptions = any(p.exclusion for p in pats)

    @classmethod
    def load(cls, context: str) -> DockerIgnore:
        """Read ``CONTEXT/.dockerignore`` (no file: nothing is ignored)."""
        try:
            with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as f:
                return cls(f.read().splitlines())
        except FileNotFoundError:
            return cls()

    def ignored(self, path: str) -> bool:
        """Whether context path ``path`` is excluded."""
        if not self.patterns or not path:
            return False
        parents = path.split("/")[:-1]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = bool(p.regex.match(path))
            if not hit and parents and p.depth <= len(parents):
                hit = bool(p.regex.match("/".join(parents[: p.depth])))
            if hit:
                matched = not p.exclusion
        return matched


__all__ = ["DockerIgnore", "pattern_regex"]
