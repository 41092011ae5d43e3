"""Progress of long byte-moving work: one hook the library calls, one
terminal display the CLI switches on.

The library reports bytes at its two chokepoints — the verifying reader of
every stored blob (``digest.VerifyingReader``: unpack, validate, the layers
index, export) and the blob writer (``store``: commit, import, build's layer
writes) — through :func:`task`.  Nothing is shown unless a reporter is
active: the CLI activates :class:`TerminalReporter` only when stderr is a
terminal and ``-q`` was not given, so piped output and scripts never see
progress and the library pays one global lookup per blob.

The display is tqdm's (imported on the first bar, so commands that show
none never load it): bytes done, rate and, when the total is known, ETA,
one bar per blob (so per layer), each drawn only once it has run for
:data:`DELAY` seconds so quick commands stay quiet.

Imports nothing from oci_tools (L0).  The reporter is a plain global, not a
context variable, because commit writes its layer on a worker thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Protocol, TextIO

#: Blobs smaller than this get no bar (documents, small layers).
MIN_BYTES = 1 << 20
#: Seconds a bar waits before it is first drawn (OCI_TOOLS_PROGRESS_DELAY overrides).
DELAY = 0.5


class Task(Protocol):
    """One bar: bytes of one blob read or written."""

    def advance(self, n: int) -> None:
        """``n`` more bytes done."""

    def close(self) -> None:
        """The work is over (the bar goes away)."""


class Reporter(Protocol):
    """Makes a :class:`Task` per blob."""

    def task(self, label: str, total: int | None) -> Task:
        """A new bar for ``label`` (``total`` bytes, None when unknown)."""
        ...


class _NoTask:
    def advance(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


NO_TASK: Task = _NoTask()
_reporter: Reporter | None = None


def active() -> bool:
    """Whether progress is being shown (callers may skip work otherwise)."""
    return _reporter is not None


def task(label: str, total: int | None = None) -> Task:
    """A bar for one blob, or a no-op when no reporter is active."""
    r = _reporter
    if r is None:
        return NO_TASK
    return r.task(label, total)


@contextlib.contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Show progress through ``reporter`` while the block runs."""
    global _reporter
    previous, _reporter = _reporter, reporter
    try:
        yield
    finally:
        _reporter = previous
        closer = getattr(reporter, "close", None)
        if closer is not None:
            closer()


class TerminalReporter:
    """Bars on a terminal (``stream``, normally stderr) drawn by tqdm."""

    def __init__(self, stream: TextIO) -> None:
        import threading  # only when progress is shown (start-up of the views)

        self._stream = stream
        self._open: list[Any] = []
        self._lock = threading.Lock()
        try:
            self._delay = float(os.environ.get("OCI_TOOLS_PROGRESS_DELAY", DELAY))
        except ValueError:
            self._delay = DELAY

    def task(self, label: str, total: int | None) -> Task:
        """A tqdm bar in bytes (SI units, as docker prints sizes)."""
        from tqdm import tqdm  # type: ignore[import-untyped]  # only once a bar is needed

        # A terminal that reports no size (a bare pty) would hide every bar.
        sized = self._sized()
        bar = tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            file=self._stream,
            leave=False,
            delay=self._delay,
            dynamic_ncols=sized,
            ncols=None if sized else 80,
            nrows=None if sized else 24,
            mininterval=0.2,
        )
        with self._lock:
            self._open.append(bar)
        return _Bar(bar, self)

    def _sized(self) -> bool:
        try:
            cols, rows = os.get_terminal_size(self._stream.fileno())
        except (AttributeError, ValueError, OSError):
            return False
        return cols > 0 and rows > 0

    def _forget(self, bar: Any) -> None:
        with self._lock:
            if bar in self._open:
                self._open.remove(bar)

    def close(self) -> None:
        """Take down any bar left open (a command that stopped half-way)."""
        with self._lock:
            bars, self._open = self._open, []
        for b in bars:
            with contextlib.suppress(Exception):
                b.close()


class _Bar:
    def __init__(self, bar: Any, owner: TerminalReporter) -> None:
        self._bar = bar
        self._owner = owner
        self._closed = False

    def advance(self, n: int) -> None:
        if n and not self._closed:
            self._bar.update(n)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bar.close()
            self._owner._forget(self._bar)


__all__ = [
    "DELAY",
    "MIN_BYTES",
    "NO_TASK",
    "Reporter",
    "Task",
    "TerminalReporter",
    "active",
    "reporting",
    "task",
]
