"""Small helpers shared by tests: tool and privilege checks, running the CLI."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from dataclasses import dataclass

import pytest

from oci_tools.cli import main


def need_tool(name: str) -> str:
    """Path of an external tool, or skip the test saying which is missing."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def need_root() -> None:
    """Skip unless running as root."""
    if os.geteuid() != 0:
        pytest.skip("needs root")


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(*argv: str) -> Result:
    """Run ``oci-tools`` in-process and capture what it prints."""
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return Result(code, out.getvalue(), err.getvalue())


def run(*cmd: str, check: bool = True, **kw: object) -> subprocess.CompletedProcess[str]:
    """Run an external command, failing the test with its output on error."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, **kw)  # type: ignore[call-overload]
    if check and p.returncode != 0:
        pytest.fail(
            f"{' '.join(cmd)} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
        )
    return p  # type: ignore[no-any-return]
