"""Running a RUN step's process in the working bundle: with runc, or with a
plain chroot (root only), output streamed and its tail kept."""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oci_tools.errors import OCIToolsError

#: How RUN may execute (``BuildOptions.runtime``).
RUNTIMES = ("auto", "runc", "chroot", "none")

#: RUN output kept for the error message when a command fails.
OUTPUT_TAIL = 16 << 10
#: Docker's default capability set: what a RUN step may expect (chown, setuid...).
DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


class Mountpoints:
    """Mount targets runc creates in the rootfs (``/proc``, ``/dev``, ...)
    when the image lacks them.  Docker keeps them out of layers with its init
    layer; we remove what was created once the command is done (and restore
    the parent directory's times), so only the command's own changes remain."""

    def __init__(self, rootfs: str, destinations: Sequence[str]) -> None:
        self.created: dict[str, None] = {}
        self.parents: dict[str, tuple[int, int]] = {}
        dests = [posixpath.normpath(d) for d in destinations]
        for d in dests:
            if any(o != d and d.startswith(o.rstrip("/") + "/") for o in dests):
                continue  # lives inside another mount, not in the rootfs
            comps = [c for c in d.split("/") if c]
            cur = rootfs
            for k, c in enumerate(comps):
                p = os.path.join(cur, c)
                if os.path.lexists(p):
                    if os.path.islink(p) or not os.path.isdir(p):
                        break  # runc resolves it itself; leave it alone
                    cur = p
                    continue
                st = os.stat(cur)
                self.parents.setdefault(cur, (st.st_atime_ns, st.st_mtime_ns))
                for c2 in comps[k:]:
                    cur = os.path.join(cur, c2)
                    self.created[cur] = None
                break

    def cleanup(self) -> None:
        for p in reversed(list(self.created)):
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(p)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(p)
        for d, times in self.parents.items():
            with contextlib.suppress(OSError):
                os.utime(d, ns=times, follow_symlinks=False)


def _pump(proc: subprocess.Popen[bytes], output: Callable[[bytes], None] | None) -> bytes:
    """Stream a process's output to ``output``; returns the tail of it."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    tail = bytearray()
    while chunk := os.read(fd, 1 << 16):
        if output is not None:
            output(chunk)
        tail += chunk
        if len(tail) > OUTPUT_TAIL:
            del tail[:-OUTPUT_TAIL]
    return bytes(tail)


def run_runc(
    runc: str, bundle: str, state: str, cid: str, output: Callable[[bytes], None] | None
) -> tuple[int, bytes]:
    base = [runc, "--root", state]
    proc = subprocess.Popen(
        [*base, "run", "--bundle", bundle, cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        tail = _pump(proc, output)
        return proc.wait(), tail
    finally:
        if proc.poll() is None:  # interrupted: stop the container first
            subprocess.run([*base, "kill", cid, "KILL"], capture_output=True, check=False)
            proc.kill()
            proc.wait()
        if os.path.exists(os.path.join(state, cid)):
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, check=False)


def run_chroot(
    rootfs: str, process: Mapping[str, Any], output: Callable[[bytes], None] | None
) -> tuple[int, bytes]:
    user = process["user"]
    groups = list(user.get("additionalGids") or [])

    def enter() -> None:  # in the child, before exec
        os.chroot(rootfs)
        os.chdir(process["cwd"])
        os.setgroups(groups)
        os.setgid(user["gid"])
        os.setuid(user["uid"])

    env = dict(e.split("=", 1) for e in process["env"] if "=" in e)
    proc = subprocess.Popen(
        list(process["args"]),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=enter,
        start_new_session=True,
    )
    try:
        tail = _pump(proc, output)
        return proc.wait(), tail
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()


def select_runtime(choice: str) -> str:
    """The runc binary to run a RUN step with, or ``"chroot"``, for runtime
    ``choice`` (``auto``: runc when installed, else chroot when root)."""
    runc = shutil.which("runc")
    if choice == "auto":
        if runc:
            return runc
        if os.geteuid() == 0:
            return "chroot"
        raise OCIToolsError("RUN needs runc, or root for --runtime chroot", hint="install runc")
    if choice == "runc":
        if not runc:
            raise OCIToolsError(
                "runc is not installed", hint="install runc or use --runtime chroot"
            )
        return runc
    if os.geteuid() != 0:
        raise OCIToolsError("--runtime chroot needs root")
    return "chroot"


__all__ = [
    "DOCKER_CAPS",
    "OUTPUT_TAIL",
    "RUNTIMES",
    "Mountpoints",
    "run_chroot",
    "run_runc",
    "select_runtime",
]
