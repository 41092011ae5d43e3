"""Fuzz the Dockerfile parser and the word lexer: any text as a Dockerfile,
then every instruction's arguments through quote removal, splitting and
``$VAR`` expansion.  ``parse_dockerfile`` may only raise our errors; the
Lexer's documented contract is ValueError (quoting, substitution), which the
builder turns into a BuildError naming the line (builder.py, ``run``), so
ValueError is allowed from the lexer calls only."""

from __future__ import annotations

import os
import sys

sys.path[:0] = [os.path.dirname(__file__)]

from harness import instrumented, main, seed_files  # noqa: E402

with instrumented():
    from oci_tools.build.dockerfile import parse_dockerfile
    from oci_tools.build.words import Lexer

ENV = {"A": "a", "EMPTY": "", "SPACE": "x y", "HOME": "/root", "Q": "'\""}


def one_input(data: bytes) -> None:
    """Parse ``data`` (UTF-8, undecodable bytes replaced) and lex every argument."""
    df = parse_dockerfile(data.decode("utf-8", "replace"), "Dockerfile")
    lexer = Lexer(df.escape)
    for ins in df.instructions:
        for call in (lexer.words, lexer.word):
            try:
                out = call(ins.args, ENV)
            except ValueError:
                continue
            assert out is not None
        try:
            spans = lexer.spans(ins.args)
        except ValueError:
            continue
        assert all(0 <= s <= e <= len(ins.args) for s, e in spans), spans


def seeds() -> list[bytes]:
    """The repository's Dockerfiles plus a few written for the lexer."""
    return [
        *seed_files("build/**/Dockerfile*", "**/Dockerfile"),
        b"# escape=`\nFROM scratch\nRUN echo `\n  hi\n",
        b'FROM a\nENV X="${A:-d} $EMPTY" Y=\'$A\'\nLABEL "k"="v" k2=v2\n',
        b'FROM a\nCOPY --chown=1:1 --chmod=755 ["a b", "c"]\nRUN ["sh", "-c", "x"]\n',
        b"FROM a\nARG V=${HOME:+set}\nWORKDIR ${V:?unset}/x\nUSER ${A}\\\n:b\n",
    ]


if __name__ == "__main__":
    main("dockerfile", one_input, seeds())
