"""oci_tools.render reproduces docker's output formats (values from cli-conventions.md)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from oci_tools import render

# ------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize(
    ("n", "three", "four"),
    [
        (0, "0B", "0B"),
        (1, "1B", "1B"),
        (999, "999B", "999B"),
        (1000, "1kB", "1kB"),
        (1024, "1.02kB", "1.024kB"),
        (1_048_576, "1.05MB", "1.049MB"),
        (183_000_000, "183MB", "183MB"),
        (999_499, "999kB", "999.5kB"),
        # go-units quirk: the unit is picked before %g rounds up to 1000.
        (999_500, "1e+03kB", "999.5kB"),
        (999_999, "1e+03kB", "1000kB"),
        (1_000_000, "1MB", "1MB"),
        (7_780_000, "7.78MB", "7.78MB"),
        (2_175, "2.17kB", "2.175kB"),  # %g rounds the binary value 2.175 down
        (38_820_000, "38.8MB", "38.82MB"),
        (407, "407B", "407B"),
        (10**12, "1TB", "1TB"),
        (10**24, "1YB", "1YB"),
        (10**27, "1e+03YB", "1000YB"),  # YB is the last unit
    ],
)
def test_human_size(n: int, three: str, four: str) -> None:
    assert render.human_size(n) == three
    assert render.human_size(n, precision=4) == four


# --------------------------------------------------------------------------- durations

MIN, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "Less than a second"),
        (0.45, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (1.9, "1 second"),
        (2, "2 seconds"),
        (45, "45 seconds"),
        (59, "59 seconds"),
        (59.999, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (3 * MIN, "3 minutes"),
        (35 * MIN + 40, "35 minutes"),
        (59 * MIN + 59, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MIN, "About an hour"),
        (HOUR + 31 * MIN, "2 hours"),
        (HOUR + 59 * MIN, "2 hours"),
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (24 * HOUR, "24 hours"),
        (36 * HOUR, "36 hours"),
        (47 * HOUR + 29 * MIN, "47 hours"),
        (47 * HOUR + 31 * MIN, "2 days"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (30 * DAY, "4 weeks"),
        (MONTH + WEEK, "5 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + WEEK, "3 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        (26 * YEAR, "26 years"),
    ],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert render.human_duration(seconds) == text


NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def test_time_ago() -> None:
    assert render.time_ago(NOW - timedelta(seconds=90), NOW) == "About a minute ago"
    assert render.time_ago(NOW - timedelta(hours=36), NOW) == "36 hours ago"
    assert render.time_ago(NOW, NOW) == "Less than a second ago"
    # Future timestamps (clock skew) are not negative durations.
    assert render.time_ago(NOW + timedelta(days=3), NOW) == "Less than a second ago"


def test_time_ago_not_available() -> None:
    assert render.time_ago(None, NOW) == "N/A"
    assert render.time_ago(datetime(1970, 1, 1, tzinfo=UTC), NOW) == "N/A"  # SOURCE_DATE_EPOCH=0
    assert render.time_ago(datetime(2000, 1, 1, tzinfo=UTC), NOW) == "N/A"
    assert render.time_ago(datetime(2000, 1, 1, 0, 0, 1, tzinfo=UTC), NOW) == "24 years ago"


def test_time_ago_mixes_naive_and_aware() -> None:
    naive = datetime(2024, 6, 1, 11, 0, 0)
    plus2 = datetime(2024, 6, 1, 13, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    assert render.time_ago(naive, NOW) == "About an hour ago"
    assert render.time_ago(plus2, NOW) == "About an hour ago"


# ------------------------------------------------------------------------------ times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-01-01T12:00:03Z", datetime(2017, 1, 1, 12, 0, 3, tzinfo=UTC)),
        (
            "2015-10-31T22:22:56.015925234Z",
            datetime(2015, 10, 31, 22, 22, 56, 15925, tzinfo=UTC),
        ),
        ("2015-10-31T22:22:56.5z", datetime(2015, 10, 31, 22, 22, 56, 500000, tzinfo=UTC)),
        (
            "2016-06-10t18:44:31-07:30",
            datetime(2016, 6, 10, 18, 44, 31, tzinfo=timezone(-timedelta(hours=7, minutes=30))),
        ),
        ("1970-01-01T00:00:00+00:00", datetime(1970, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    parsed = render.parse_time(text)
    assert parsed == expected
    assert parsed.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text",
    [
        "2017-01-01",
        "2017-01-01T12:00:03",  # no offset
        "2017-01-01 12:00:03Z",
        "2017-13-01T12:00:03Z",
        "2017-02-30T12:00:03Z",
        "2016-12-31T23:59:60Z",  # leap second
        "2017-01-01T12:00:03.Z",
        "2017-01-01T12:00:03+0100",
        "2017-01-01T12:00:03+24:00",
        " 2017-01-01T12:00:03Z",
        "",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        render.parse_time(text)


@pytest.mark.parametrize(
    ("dt", "text"),
    [
        (datetime(2017, 1, 1, 12, 0, 3, tzinfo=UTC), "2017-01-01T12:00:03Z"),
        (datetime(2017, 1, 1, 12, 0, 3), "2017-01-01T12:00:03Z"),  # naive = UTC
        (datetime(2015, 10, 31, 22, 22, 56, 15925, tzinfo=UTC), "2015-10-31T22:22:56.015925Z"),
        (datetime(2015, 10, 31, 22, 22, 56, 500000, tzinfo=UTC), "2015-10-31T22:22:56.5Z"),
        (
            datetime(2016, 6, 10, 18, 44, 31, tzinfo=timezone(timedelta(hours=5, minutes=30))),
            "2016-06-10T18:44:31+05:30",
        ),
        (
            datetime(2016, 6, 10, 18, 44, 31, tzinfo=timezone(-timedelta(hours=7))),
            "2016-06-10T18:44:31-07:00",
        ),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00Z"),
    ],
)
def test_format_rfc3339(dt: datetime, text: str) -> None:
    assert render.format_rfc3339(dt) == text
    assert render.parse_time(text) == render.parse_time(render.format_rfc3339(dt))


# ------------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("value", "short"),
    [
        ("sha256:3e23a5875458" + "0" * 52, "3e23a5875458"),
        ("3e23a58754581234", "3e23a5875458"),
        ("<missing>", "<missing>"),
        ("sha512:" + "ab" * 64, "abababababab"),
        ("", ""),
    ],
)
def test_short_id(value: str, short: str) -> None:
    assert render.short_id(value) == short


CREATED_BY = (
    "/bin/sh -c #(nop) ADD file:a3bc1e842b69636f9df5256c49c5374fb4eef1e281fe3f282c65fb853ee171c5"
    " in /"
)


def test_truncate_ascii() -> None:
    out = render.truncate(CREATED_BY)
    assert out == CREATED_BY[:44] + "…"
    assert render.display_width(out) == 45
    assert render.truncate("x" * 45) == "x" * 45
    assert render.truncate("x" * 46) == "x" * 44 + "…"
    assert render.truncate("short") == "short"


def test_truncate_replaces_tabs() -> None:
    assert render.truncate("a\tb") == "a b"
    assert render.truncate("\t" * 50) == " " * 44 + "…"


def test_truncate_counts_wide_characters_twice() -> None:
    wide = "日本語" * 10  # 30 characters, 60 columns
    out = render.truncate(wide)
    assert out == wide[:22] + "…"  # 44 columns + ellipsis
    assert render.display_width(out) == 45
    # A wide character that would straddle column 44 is dropped whole.
    out = render.truncate("x" + wide)
    assert out == "x" + wide[:21] + "…"
    assert render.display_width(out) == 44
    assert render.truncate("日本語" * 7 + "ab") == "日本語" * 7 + "ab"  # exactly 44 columns


def test_truncate_other_widths() -> None:
    assert render.truncate("abcdef", 4) == "abc…"
    assert render.truncate("abcdef", 0) == ""
    assert render.display_width("e\u0301") == 1  # combining accent takes no column
    assert render.display_width("ＡＢ") == 4  # fullwidth


# ----------------------------------------------------------------------------- tables


def test_table_history_golden_human() -> None:
    out = render.table(
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
        [["123456789012", "Less than a second ago", "", "0B", "none"]],
    )
    assert out == (
        "IMAGE          CREATED                  CREATED BY   SIZE      COMMENT\n"
        "123456789012   Less than a second ago                0B        none\n"
    )


def test_table_history_golden_not_human() -> None:
    out = render.table(
        ["IMAGE", "CREATED AT", "CREATED BY", "SIZE", "COMMENT"],
        [["abcdef", "2017-01-01T12:00:03Z", "rose", "0", "new history item!"]],
    )
    assert out == (
        "IMAGE     CREATED AT             CREATED BY   SIZE      COMMENT\n"
        "abcdef    2017-01-01T12:00:03Z   rose         0         new history item!\n"
    )


def test_table_empty_last_cell_keeps_padding() -> None:
    out = render.table(["A", "B"], [["x", ""]])
    assert out == "A         B\nx         \n"


def test_table_headers_only_and_wide_cells() -> None:
    assert render.table(["IMAGE", "ID"], []) == "IMAGE     ID\n"
    out = render.table(["NAME", "X"], [["日本語日本語", "1"]])
    # 12 display columns + 3 padding; the header is padded to the same width.
    assert out == "NAME" + " " * 11 + "X\n" + "日本語日本語" + " " * 3 + "1\n"


def test_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError):
        render.table(["A", "B"], [["only one"]])


# ------------------------------------------------------------------------------- json


def test_json_lines_go_style() -> None:
    rows = [
        {"ID": "<missing>", "CreatedBy": "a && b > c", "Size": "0B"},
        {"ID": "3e23a5875458", "Comment": "日本", "CreatedBy": "x\ty"},
    ]
    out = render.json_lines(rows)
    assert out == (
        '{"CreatedBy":"a \\u0026\\u0026 b \\u003e c","ID":"\\u003cmissing\\u003e","Size":"0B"}\n'
        '{"Comment":"日本","CreatedBy":"x\\ty","ID":"3e23a5875458"}\n'
    )
    assert [json.loads(line) for line in out.splitlines()] == rows


def test_json_line_escapes_line_separators_and_keys() -> None:
    out = render.json_line({"<k>": "a\u2028b\u2029"})
    assert out == '{"\\u003ck\\u003e":"a\\u2028b\\u2029"}'
    assert json.loads(out) == {"<k>": "a\u2028b\u2029"}


def test_json_lines_empty() -> None:
    assert render.json_lines([]) == ""


@pytest.mark.parametrize(
    ("text", "n"),
    [
        ("512", 512),
        ("0", 0),
        ("20MB", 20_000_000),
        ("20 mb", 20_000_000),
        ("1.5kB", 1500),
        ("1k", 1000),
        ("1.5GiB", 3 << 29),
        ("2KiB", 2048),
        ("1TB", 10**12),
        (".5MiB", 1 << 19),
        ("7B", 7),
    ],
)
def test_parse_size(text: str, n: int) -> None:
    assert render.parse_size(text) == n


@pytest.mark.parametrize("text", ["", "MB", "-1", "1..2", "5 parsecs", "1e3", "1 k b"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="is not a size"):
        render.parse_size(text)


def test_format_rfc3339_untrimmed_keeps_six_digits_like_image_format_time() -> None:
    from oci_tools.image import format_time

    dt = datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    assert render.format_rfc3339(dt, trim=False) == "2024-05-06T07:08:09.500000Z"
    assert render.format_rfc3339(dt) == "2024-05-06T07:08:09.5Z"
    for value in (dt, dt.replace(microsecond=0), 1_700_000_000.25, 0):
        assert render.format_rfc3339(
            value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC),
            trim=False,
        ) == format_time(value)
