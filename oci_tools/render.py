"""Human and machine output in docker's conventions (pure presentation, L1).

Everything here turns values into text: sizes (``183MB``), relative times
(``About a minute ago``), short ids, truncated text, tab-aligned tables and
JSON Lines.  The rules follow docker/cli and docker/go-units so that output
looks exactly like ``docker history`` / ``docker images``; the research notes
in cli-conventions.md list them.  Nothing here reads files, the clock or the
environment: callers pass ``now`` and the rows.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")

#: docker history shows "N/A" for images created at or before this instant
#: (reproducible builds with SOURCE_DATE_EPOCH=0 land here).
HISTORY_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

# docker's table writer: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0).
_MIN_WIDTH = 10
_PADDING = 3

_NS_PER_SECOND = 1_000_000_000
_NS_PER_MINUTE = 60 * _NS_PER_SECOND
_NS_PER_HOUR = 60 * _NS_PER_MINUTE


# ------------------------------------------------------------------------------ sizes


def human_size(n: int | float, precision: int = 3) -> str:
    """A byte count in decimal units, docker style: ``0B``, ``1.02kB``, ``183MB``.

    ``precision`` is the number of significant digits (``%g``): 3 for the SIZE
    columns of docker history/images/ps, 4 for docker system df and umoci.
    Like docker, 999,500 bytes and up (below 1 MB) print as ``1e+03kB`` at
    three digits: the unit is chosen before rounding.
    """
    size = float(n)
    unit = 0
    while size >= 1000.0 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        unit += 1
    # Python's "g" follows the same C rules as Go's %g (trailing zeros
    # dropped, exponent form when the exponent reaches the precision).
    return f"{size:.{precision}g}{_DECIMAL_UNITS[unit]}"


_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
}


def parse_size(text: str) -> int:
    """``20MB`` -> 20000000, ``1.5GiB`` -> 1610612736, ``512`` -> 512.

    Decimal units as docker prints them (kB, MB, GB, TB; case-insensitive)
    and binary ones (KiB, MiB, GiB, TiB).  ValueError for anything else.
    """
    m = _SIZE_RE.fullmatch(text)
    unit = _SIZE_UNITS.get(m.group(2).lower()) if m else None
    if m is None or unit is None:
        raise ValueError(f"{text!r} is not a size (such as 512, 20MB or 1.5GiB)")
    return int(float(m.group(1)) * unit)


# ------------------------------------------------------------------------------ times


def human_duration(seconds: float) -> str:
    """A duration in words, as go-units ``HumanDuration``: ``About an hour``, ``3 weeks``.

    Negative durations (timestamps in the future) read "Less than a second".
    """
    # Go's time.Duration is whole nanoseconds; work in those so the
    # truncation and the +0.5 hour rounding land on the same boundaries.
    ns = round(seconds * _NS_PER_SECOND)
    if ns < _NS_PER_SECOND:
        return "Less than a second"
    whole_seconds = ns // _NS_PER_SECOND
    if whole_seconds == 1:
        return "1 second"
    if whole_seconds < 60:
        return f"{whole_seconds} seconds"
    minutes = ns // _NS_PER_MINUTE
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = (ns + _NS_PER_HOUR // 2) // _NS_PER_HOUR  # rounded to the nearest hour
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    # Years use the truncated (not rounded) hour count, as go-units does.
    return f"{(ns // _NS_PER_HOUR) // (24 * 365)} years"


def time_ago(ts: datetime | None, now: datetime) -> str:
    """``<human_duration> ago`` for the CREATED column; ``N/A`` when unknown.

    ``N/A`` is printed for a missing timestamp and, as docker history does, for
    one at or before 2000-01-01 (SOURCE_DATE_EPOCH=0 builds).  A timestamp in
    the future reads "Less than a second ago".  Naive datetimes are UTC.
    """
    if ts is None:
        return "N/A"
    ts, now = _aware(ts), _aware(now)
    if ts <= HISTORY_EPOCH:
        return "N/A"
    return human_duration((now - ts).total_seconds()) + " ago"


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_time(s: str) -> datetime:
    """Parse an RFC 3339 date-time (``2015-10-31T22:22:56.015925234Z``) to an aware datetime.

    Fractions beyond microseconds (Go writes nanoseconds) are truncated.
    Raises ValueError for anything else, including a leap second (``:60``),
    which neither Python's datetime nor Go's time.Parse accepts.
    """
    m = _RFC3339.fullmatch(s)
    if m is None:
        raise ValueError(f"not an RFC 3339 date-time: {s!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, zulu, sign, off_h, off_m = m.groups()[6:]
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    if zulu:
        tz = UTC
    else:
        if int(off_h) > 23 or int(off_m) > 59:
            raise ValueError(f"offset out of range in {s!r}")
        offset = timedelta(hours=int(off_h), minutes=int(off_m))
        tz = timezone(-offset if sign == "-" else offset)
    try:
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError as exc:
        raise ValueError(f"not an RFC 3339 date-time: {s!r} ({exc})") from None


def format_rfc3339(dt: datetime, *, trim: bool = True) -> str:
    """Format like Go's ``time.RFC3339Nano``: ``2017-01-01T12:00:03Z``, ``…:03.5+02:00``.

    The fraction is printed only when non-zero, without trailing zeros (all six
    microsecond digits with ``trim=False``, as image configs we write carry
    them); a zero UTC offset is ``Z``.  Naive datetimes are taken as UTC.  The
    one RFC 3339 formatter of the package.
    """
    dt = _aware(dt)
    # Not strftime: glibc's %Y does not zero-pad years before 1000.
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
    )
    if dt.microsecond:
        fraction = f".{dt.microsecond:06d}"
        text += fraction.rstrip("0") if trim else fraction
    offset = dt.utcoffset() or timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{text}{sign}{hours:02d}:{mins:02d}"


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------- text


def short_id(digest: str) -> str:
    """docker's 12-character id: drop ``algorithm:`` and keep 12 characters.

    Strings without a colon (``<missing>``) are only shortened to 12.
    """
    _, colon, encoded = digest.partition(":")
    return (encoded if colon else digest)[:12]


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: East-Asian wide/fullwidth count 2, marks 0."""
    if text.isascii() and text.isprintable():
        return len(text)  # the common case: one column per character
    return sum(_char_width(c) for c in text)


def _char_width(c: str) -> int:
    import unicodedata  # only for text beyond printable ASCII (start-up)

    if unicodedata.combining(c) or unicodedata.category(c) in ("Mn", "Me", "Cf", "Cc"):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def truncate(text: str, width: int = 45) -> str:
    """Fit ``text`` into ``width`` display columns, ending with ``…`` when cut.

    This is docker's CREATED BY rule: tabs become spaces, then text wider than
    45 columns keeps its first 44 columns plus ``…``.  A wide character that
    would straddle the limit is dropped whole.
    """
    text = text.replace("\t", " ")
    if width <= 0:
        return ""
    if display_width(text) <= width:
        return text
    budget = width - 1  # one column for the ellipsis
    used = 0
    end = 0
    for i, c in enumerate(text):
        w = _char_width(c)
        if used + w > budget:
            break
        used += w
        end = i + 1
    return text[:end] + "…"


# ----------------------------------------------------------------------------- tables


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A docker-style aligned table, one ``\\n``-terminated line per row.

    Every column but the last is padded to ``max(widest cell + 3, 10)``
    display columns (Go's tabwriter with minwidth 10, padding 3); the last
    column is written as is, so an empty last cell leaves the previous
    column's padding as trailing spaces, exactly as docker prints it.
    Headers are printed as given (docker's are upper case).  Cells must not
    contain tabs or newlines.
    """
    lines = [headers, *rows]
    columns = len(headers)
    for row in rows:
        if len(row) != columns:
            raise ValueError(f"row has {len(row)} cells, expected {columns}: {row!r}")
    widths = [
        max(_MIN_WIDTH, max(display_width(line[col]) for line in lines) + _PADDING)
        for col in range(columns - 1)
    ]
    out = []
    for line in lines:
        cells = [
            cell + " " * (widths[col] - display_width(cell)) for col, cell in enumerate(line[:-1])
        ]
        cells.extend(line[-1:])
        out.append("".join(cells) + "\n")
    return "".join(out)


# ------------------------------------------------------------------------------- json


_GO_HTML_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_HTML_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def json_line(obj: Any) -> str:
    """One compact JSON text as Go's json.Marshal writes it (no newline).

    Keys sorted; non-ASCII kept as UTF-8; ``<``, ``>``, ``&``, U+2028 and
    U+2029 escaped as ``\\u003c`` etc. (Go's HTML-safe default, which docker's
    ``--format json`` output has).
    """
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    # These characters can only occur inside JSON strings, so a textual
    # replacement is safe.
    return _GO_HTML_ESCAPE_RE.sub(lambda m: _GO_HTML_ESCAPES[m.group()], text)


def json_lines(rows: list[dict[str, Any]]) -> str:
    """JSON Lines: one :func:`json_line` object per row, each ending in ``\\n``."""
    return "".join(json_line(row) + "\n" for row in rows)


__all__ = [
    "HISTORY_EPOCH",
    "display_width",
    "format_rfc3339",
    "human_duration",
    "human_size",
    "json_line",
    "json_lines",
    "parse_size",
    "parse_time",
    "short_id",
    "table",
    "time_ago",
    "truncate",
]
