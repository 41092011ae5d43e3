"""The Dockerfile parser (``oci_tools.build.dockerfile``): directives,
continuations, comments, flags, JSON form, and errors naming the line."""

from __future__ import annotations

import pytest

from oci_tools.build import SUPPORTED, BuildError, parse_dockerfile


def test_parse_continuations_comments_and_forms() -> None:
    df = parse_dockerfile(
        "# comment\n"
        "FROM base\n"
        "\n"
        "RUN echo a && \\\n"
        "# a comment inside is dropped\n"
        "    echo b\n"
        'CMD ["sh", "-c", "x"]\n'
        "copy --chown=1:2 --chmod=644 a b/\n"
        "ENV A=1 \\\n"
        "    B=2\n"
    )
    kinds = [(i.line, i.keyword) for i in df.instructions]
    assert kinds == [(2, "FROM"), (4, "RUN"), (7, "CMD"), (8, "COPY"), (9, "ENV")]
    run, cmd, cp, env = df.instructions[1:]
    assert run.args == "echo a &&     echo b" and run.exec_form is None
    assert cmd.exec_form == ("sh", "-c", "x")
    assert cp.flag("chown") == "1:2" and cp.flag("chmod") == "644" and cp.args == "a b/"
    assert env.args == "A=1     B=2"


def test_parse_escape_directive() -> None:
    df = parse_dockerfile("# escape=`\nFROM base\nRUN echo a `\n  b\n")
    assert df.escape == "`"
    assert df.instructions[1].args == "echo a   b"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("FROM base\n\nFOO bar\n", 3, "unknown instruction: FOO"),
        ("FROM base\nHEALTHCHECK CMD true\n", 2, "HEALTHCHECK is not supported"),
        ("FROM base\nONBUILD RUN x\n", 2, "ONBUILD is not supported"),
        ("FROM base\n# c\nCOPY --from=build /a /b\n", 3, "COPY --from (multi-stage builds)"),
        ("FROM base\nRUN <<EOF\necho hi\nEOF\n", 2, "heredocs"),
        ("FROM base\nRUN --mount=type=cache,target=/x true\n", 2, "RUN --mount"),
        ("FROM base\nSHELL /bin/bash -c\n", 2, "SHELL needs the JSON form"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: int, what: str) -> None:
    with pytest.raises(BuildError) as ei:
        parse_dockerfile(text, "Dockerfile")
    assert ei.value.line == line
    assert str(ei.value).startswith(f"Dockerfile:{line}: ") and what in str(ei.value)


def test_empty_and_comment_only_files_have_no_instructions() -> None:
    assert parse_dockerfile("").instructions == ()
    assert parse_dockerfile("# only\n\n   # comments\n").instructions == ()


def test_keywords_are_case_insensitive_and_original_keeps_the_joined_text() -> None:
    df = parse_dockerfile("from base\nrun echo a \\\n  b\n")
    assert [i.keyword for i in df.instructions] == ["FROM", "RUN"]
    run = df.instructions[1]
    assert run.original == "run echo a   b" and run.args == "echo a   b"


def test_continuation_at_end_of_file_ends_the_instruction() -> None:
    df = parse_dockerfile("FROM a\nRUN echo \\")
    assert df.instructions[-1].args == "echo"


def test_directives_only_count_at_the_top() -> None:
    # "# syntax=" is skipped like the classic builder; escape still applies.
    df = parse_dockerfile("# syntax=whatever\n# escape=`\nFROM a\nRUN a `\n b\n")
    assert df.escape == "`" and df.instructions[1].args == "a  b"
    # After a blank line a directive is an ordinary comment.
    df = parse_dockerfile("\n# escape=`\nFROM a\nRUN a `\n")
    assert df.escape == "\\" and df.instructions[1].args == "a `"


def test_invalid_escape_directive_names_line_one() -> None:
    with pytest.raises(BuildError) as ei:
        parse_dockerfile("# escape=x\nFROM a\n", "D")
    assert ei.value.line == 1 and "invalid escape token" in str(ei.value)


def test_flag_is_the_last_one_given() -> None:
    cp = parse_dockerfile("FROM a\nCOPY --chown=1 --chown=2 a b\n").instructions[1]
    assert cp.flags == (("chown", "1"), ("chown", "2"))
    assert cp.flag("chown") == "2" and cp.flag("chmod") is None


def test_json_form_only_for_a_list_of_strings() -> None:
    df = parse_dockerfile('FROM a\nCMD [1, 2]\nCMD ["a", "b c"]\nCMD [not json\n')
    assert [i.exec_form for i in df.instructions[1:]] == [None, ("a", "b c"), None]
    assert df.instructions[1].args == "[1, 2]"


@pytest.mark.parametrize(
    ("text", "what"),
    [
        ("FROM a\nCOPY --chown a b\n", "COPY --chown needs a value"),
        ("FROM a\nCOPY --foo=1 a b\n", "COPY --foo is not supported"),
        ("FROM a\nCOPY --=1 a b\n", "malformed flag in COPY"),
        ("FROM a\nFROM --platform=x b\n", "FROM --platform is not supported"),
        ("FROM a\nADD <<EOF /x\nhi\nEOF\n", "heredocs (ADD <<WORD)"),
    ],
)
def test_flag_and_heredoc_errors(text: str, what: str) -> None:
    with pytest.raises(BuildError) as ei:
        parse_dockerfile(text, "D")
    assert ei.value.file == "D" and ei.value.line == 2 and what in ei.value.reason


def test_every_supported_keyword_parses() -> None:
    for kw in sorted(SUPPORTED):
        args = '["/bin/sh", "-c"]' if kw == "SHELL" else "x"
        (ins,) = parse_dockerfile(f"{kw} {args}\n").instructions
        assert ins.keyword == kw
