"""Errors of a build: every one names the Dockerfile line it stopped at."""

from __future__ import annotations

from oci_tools.errors import OCIToolsError


class BuildError(OCIToolsError):
    """A build stopped at one instruction of the Dockerfile (``file:line: ...``)."""

    def __init__(self, file: str, line: int, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{file}:{line}: {reason}", hint=hint)
        self.file = file
        self.line = line
        self.reason = reason


class RunFailedError(BuildError):
    """A RUN command exited non-zero; ``status`` is its exit code, ``output``
    the end of what it printed (stdout and stderr interleaved)."""

    def __init__(self, file: str, line: int, command: str, status: int, output: bytes) -> None:
        super().__init__(
            file,
            line,
            f"the command '{command}' returned a non-zero code: {status}",
            hint="the build stopped here; the layout's refs were left as they were",
        )
        self.status = status
        self.output = output


__all__ = ["BuildError", "RunFailedError"]
