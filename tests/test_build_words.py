"""Words (``oci_tools.build.words``): quote removal, escapes, ``$VAR`` and
``${VAR...}`` substitution, word splitting and ``key=value`` spans."""

from __future__ import annotations

import pytest

from oci_tools.build import Lexer

ENV = {"A": "one", "E": "", "S": "x y"}


def test_word_substitution_and_quotes() -> None:
    lx = Lexer("\\")
    env = {"A": "one", "E": "", "S": "x y"}
    assert lx.word("$A-${A}-${B:-dflt}-${E:-empty}-${A:+set}-${B:+no}", env) == (
        "one-one-dflt-empty-set-"
    )
    assert lx.word("'$A' \"$A\" \\$A", env) == "$A one $A"
    assert lx.words('a "b c" $S', env) == ["a", "b c", "x", "y"]
    with pytest.raises(ValueError, match="unterminated"):
        lx.word('"open', env)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("${B-d}", "d"),  # without a colon: only unset counts
        ("${E-d}", ""),
        ("${E:-d}", "d"),  # with a colon: empty counts as unset
        ("${E+p}", "p"),
        ("${E:+p}", ""),
        ("${B+p}", ""),
        ("${A:-${B:-z}}", "one"),
        ("${B:-${Z:-z}}", "z"),  # nested default
        ("${E?}", ""),
        ("$1", "$1"),  # not a name: the dollar is literal
        ("a$", "a$"),
        ("a  b", "a  b"),  # word() keeps blanks
        ("pre${A}post", "preonepost"),
    ],
)
def test_word_substitution_forms(text: str, value: str) -> None:
    assert Lexer("\\").word(text, ENV) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${B:?gone}", "B: gone"),
        ("${B?}", "B: is not set"),
        ("${}", "bad substitution"),
        ("${A%x}", "bad substitution"),
        ("${A:-x", "missing '}'"),
        ("'open", "unterminated ' quote"),
    ],
)
def test_word_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Lexer("\\").word(text, ENV)


def test_words_split_unquoted_expansions_and_keep_quoted_empties() -> None:
    lx = Lexer("\\")
    assert lx.words("$E a", ENV) == ["a"]  # an empty unquoted expansion is no word
    assert lx.words('"" a', ENV) == ["", "a"]
    assert lx.words("'a b' c", ENV) == ["a b", "c"]
    assert lx.words("  ", ENV) == []


def test_backtick_escape() -> None:
    assert Lexer("`").word("a`$b \\x", {}) == "a$b \\x"


def test_spans_find_raw_tokens_with_quotes_kept() -> None:
    lx = Lexer("\\")
    text = 'A="x y" B=2  C'
    assert [text[a:b] for a, b in lx.spans(text)] == ['A="x y"', "B=2", "C"]
    assert lx.spans("  ") == []
    with pytest.raises(ValueError, match="unterminated"):
        lx.spans('A="x')
