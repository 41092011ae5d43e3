"""The Dockerfile parser: parser directives, comments, continuation lines,
``--flags`` and the JSON (exec) form, into :class:`Instruction` values.

Words inside the arguments are left alone here; the builder expands them
with :mod:`oci_tools.build.words` once the variables are known.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from oci_tools.errors import BuildError


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined.

    ``args`` is the text after the keyword and its ``--flags``; ``exec_form``
    holds the JSON array form when the arguments are one (``RUN ["a", "b"]``).
    """

    line: int
    keyword: str
    args: str
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None
    original: str = ""

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (the last one given)."""
        found = None
        for k, v in self.flags:
            if k == name:
                found = v
        return found


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions and its escape character."""

    name: str
    instructions: tuple[Instruction, ...]
    escape: str = "\\"


SUPPORTED = frozenset(
    {
        "FROM",
        "COPY",
        "ADD",
        "RUN",
        "ENV",
        "ARG",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "LABEL",
        "CMD",
        "ENTRYPOINT",
        "VOLUME",
        "STOPSIGNAL",
        "SHELL",
        "MAINTAINER",
    }
)
#: Real Dockerfile instructions this builder refuses (rather than skipping them).
_REFUSED = {
    "HEALTHCHECK": "HEALTHCHECK is not supported",
    "ONBUILD": "ONBUILD is not supported",
}
#: Flags each instruction accepts; any other flag is an error naming it.
_FLAGS: dict[str, frozenset[str]] = {"COPY": frozenset({"chown", "chmod"})}
_FLAGS["ADD"] = _FLAGS["COPY"]
_FLAG_RE = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)")
_DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"(?:^|\s)<<-?(['\"]?)[A-Za-z_][A-Za-z0-9_]*\1")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """Strip a trailing continuation (escape char, then only blanks)."""
    stripped = line.rstrip(" \t\r")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def parse_dockerfile(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text`` (``name`` is used in error messages).

    Handles parser directives (``# escape=``; ``# syntax=`` is ignored, as the
    classic builder does), comments, blank lines, line continuations (comment
    and blank lines inside one are dropped, like Docker), ``--flags`` and the
    JSON form.  Unknown or unsupported instructions, flags and heredocs raise
    BuildError naming the line.
    """
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # Directives only count before anything else (even a blank line ends them).
    while i < len(lines):
        m = _DIRECTIVE_RE.fullmatch(lines[i].strip())
        if not m or not lines[i].lstrip().startswith("#"):
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise BuildError(name, i + 1, f"invalid escape token {value!r}: use \\ or `")
            escape = value
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text_, more = _continues(raw.lstrip(), escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if not nxt.strip() or nxt.lstrip().startswith("#"):
                continue
            part, more = _continues(nxt, escape)
            text_ += part
        if not text_.strip():
            # Only a line continuation (``\`` alone, at the end of the file):
            # nothing to run, like a blank line.
            continue
        out.append(_instruction(name, start, text_.strip()))
    return Dockerfile(name, tuple(out), escape)


def _instruction(file: str, line: int, text: str) -> Instruction:
    m = re.match(r"(\S+)\s*(.*)", text, re.S)
    assert m is not None
    word, rest = m.group(1), m.group(2)
    kw = word.upper()
    if kw in _REFUSED:
        raise BuildError(file, line, _REFUSED[kw])
    if kw not in SUPPORTED:
        raise BuildError(file, line, f"unknown instruction: {word}")
    flags: list[tuple[str, str]] = []
    if kw in ("FROM", "COPY", "ADD", "RUN"):
        while rest.startswith("--"):
            fm = _FLAG_RE.match(rest)
            if fm is None:
                raise BuildError(file, line, f"malformed flag in {kw}: {rest.split()[0]}")
            flag_name, value = fm.group(1), fm.group(2)
            if flag_name not in _FLAGS.get(kw, frozenset()):
                why = " (multi-stage builds)" if flag_name == "from" else ""
                raise BuildError(file, line, f"{kw} --{flag_name}{why} is not supported")
            if not value:
                raise BuildError(file, line, f"{kw} --{flag_name} needs a value")
            flags.append((flag_name, value))
            rest = rest[fm.end() :]
    exec_form: tuple[str, ...] | None = None
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            exec_form = tuple(parsed)
    if kw in ("RUN", "COPY", "ADD") and exec_form is None and _HEREDOC_RE.search(rest):
        raise BuildError(file, line, f"heredocs ({kw} <<WORD) are not supported")
    if kw == "SHELL" and exec_form is None:
        raise BuildError(file, line, 'SHELL needs the JSON form, e.g. SHELL ["/bin/sh", "-c"]')
    return Instruction(line, kw, rest, tuple(flags), exec_form, text)


__all__ = ["SUPPORTED", "Dockerfile", "Instruction", "parse_dockerfile"]
