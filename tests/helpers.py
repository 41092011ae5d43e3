"""Small helpers shared by tests: tool and privilege checks, running the CLI."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from oci_tools.cli.app import main


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


def canary_state(top: Path) -> dict[str, tuple[object, ...]]:
    """Every path under ``top`` (``top`` included, keyed relative to its
    parent) with mode, owner, link count, mtime, inode, content and xattr
    names: a canary that a breakout cannot touch without changing this."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for n in [".", *dirnames, *filenames]:
            p = os.path.normpath(os.path.join(dirpath, n))
            st = os.lstat(p)
            data = Path(p).read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[os.path.relpath(p, top.parent)] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                st.st_nlink,
                st.st_mtime_ns,
                st.st_ino,
                data,
                sorted(os.listxattr(p, follow_symlinks=False)),
            )
    return out
