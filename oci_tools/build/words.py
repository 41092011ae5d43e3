"""Words of a Dockerfile instruction: quotes, escapes and ``$VARIABLE``
substitution, as Docker's shell lexer does them (no shell is run)."""

from __future__ import annotations

import re
from collections.abc import Mapping

#: A variable (and ARG) name.
NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANK = " \t\r\n"


class Lexer:
    """Quote removal and variable expansion as the classic builder does it:
    ``$X``, ``${X}``, ``${X:-word}``, ``${X:+word}`` (and without the colon),
    ``${X:?msg}``; single quotes are literal, double quotes expand."""

    def __init__(self, escape: str) -> None:
        self.escape = escape

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """One word: blanks are kept (ProcessWord)."""
        out = self._run(text, env, split=False)
        return out[0] if out else ""

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Words split on unquoted blanks, after expansion (ProcessWords)."""
        return self._run(text, env, split=True)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each raw token split on unquoted blanks, quotes kept
        (how ENV, LABEL and ARG find their ``key=value`` pairs)."""
        out: list[tuple[int, int]] = []
        i, n = 0, len(text)
        while i < n:
            while i < n and text[i] in _BLANK:
                i += 1
            if i >= n:
                break
            start = i
            quote = ""
            while i < n:
                c = text[i]
                if quote:
                    if c == self.escape and quote == '"' and i + 1 < n:
                        i += 2
                        continue
                    if c == quote:
                        quote = ""
                elif c == self.escape and i + 1 < n:
                    i += 2
                    continue
                elif c in "'\"":
                    quote = c
                elif c in _BLANK:
                    break
                i += 1
            if quote:
                raise ValueError(f"unterminated {quote} quote in {text!r}")
            out.append((start, i))
        return out

    def _run(self, text: str, env: Mapping[str, str], *, split: bool) -> list[str]:
        out: list[str] = []
        cur: list[str] = []
        started = False
        i, n, esc = 0, len(text), self.escape

        def flush() -> None:
            nonlocal cur, started
            if started:
                out.append("".join(cur))
            cur, started = [], False

        while i < n:
            c = text[i]
            if split and c in _BLANK:
                flush()
                i += 1
            elif c == esc:
                cur.append(text[i + 1] if i + 1 < n else c)
                started = True
                i += 2
            elif c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise ValueError(f"unterminated ' quote in {text!r}")
                cur.append(text[i + 1 : j])
                started = True
                i = j + 1
            elif c == '"':
                i = self._double(text, i + 1, env, cur)
                started = True
            elif c == "$":
                value, i = self._dollar(text, i, env)
                if not split:
                    cur.append(value)
                    started = started or bool(value)
                    continue
                # An unquoted expansion is split into words, as a shell does.
                for k, seg in enumerate(re.split(r"[ \t\r\n]+", value)):
                    if k:
                        flush()
                    if seg:
                        cur.append(seg)
                        started = True
            else:
                cur.append(c)
                started = True
                i += 1
        flush()
        return out

    def _double(self, text: str, i: int, env: Mapping[str, str], cur: list[str]) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                cur.append(text[i + 1])
                i += 2
            elif c == "$":
                value, i = self._dollar(text, i, env)
                cur.append(value)
            else:
                cur.append(c)
                i += 1
        raise ValueError(f'unterminated " quote in {text!r}')

    def _dollar(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        n = len(text)
        if i + 1 < n and text[i + 1] == "{":
            m = NAME_RE.match(text, i + 2)
            if m is None:
                raise ValueError(f"bad substitution in {text!r}")
            name, j = m.group(), m.end()
            if j < n and text[j] == "}":
                return env.get(name, ""), j + 1
            op = next((o for o in (":-", ":+", ":?", "-", "+", "?") if text.startswith(o, j)), "")
            if not op:
                raise ValueError(f"bad substitution in {text!r}")
            depth, k = 1, j + len(op)
            while k < n:
                if text.startswith("${", k):
                    depth += 1
                    k += 1
                elif text[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if depth:
                raise ValueError(f"missing '}}' in {text!r}")
            arg = self.word(text[j + len(op) : k], env)
            is_set, value = name in env, env.get(name, "")
            present = bool(value) if op.startswith(":") else is_set
            if op.endswith("-"):
                return (value if present else arg), k + 1
            if op.endswith("+"):
                return (arg if present else ""), k + 1
            if not present:
                raise ValueError(f"{name}: {arg or 'is not set'}")
            return value, k + 1
        m = NAME_RE.match(text, i + 1)
        if m is not None:
            return env.get(m.group(), ""), m.end()
        return "$", i + 1


__all__ = ["NAME_RE", "Lexer"]
