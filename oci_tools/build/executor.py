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

from oci_tools.apply import read_file_in_root
from oci_tools.errors import OCIToolsError
from oci_tools.spec.model import ImageConfig
from oci_tools.spec.runtime import runtime_config

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


def run_spec(
    config: ImageConfig,
    rootfs: str,
    args: Sequence[str],
    *,
    rootless: bool,
    network_host: bool,
    build_env: Sequence[str] = (),
) -> dict[str, Any]:
    """The runtime spec (``config.json``) that runs ``args`` in ``rootfs`` with
    ``config``'s Env, WorkingDir and User (looked up in the rootfs's passwd and
    group files) and Docker's default capabilities.  ``build_env``
    (``K=V`` items: the build args a RUN step sees) come before the Env."""
    spec = runtime_config(
        config,
        lambda p: read_file_in_root(rootfs, p),
        rootless=rootless,
        args=list(args),
        network_host=network_host,
        extra_env=build_env,
    )
    proc = spec["process"]
    proc["capabilities"] = {k: list(DOCKER_CAPS) for k in ("bounding", "effective", "permitted")}
    proc["noNewPrivileges"] = False
    return spec


def host_resolver_mounts(rootfs: str) -> list[dict[str, Any]]:
    """Read-only bind mounts of the host's ``/etc/resolv.conf`` and
    ``/etc/hosts`` for a RUN step on the host network: name resolution as on
    the host (Docker bind-mounts these too); only over a plain file or
    nothing, never through a symlink."""
    mounts: list[dict[str, Any]] = []
    etc = os.path.join(rootfs, "etc")
    if not os.path.isdir(etc) or os.path.islink(etc):
        return mounts
    for f in ("/etc/resolv.conf", "/etc/hosts"):
        inside = os.path.join(etc, os.path.basename(f))
        plain = os.path.isfile(inside) and not os.path.islink(inside)
        if os.path.isfile(f) and (plain or not os.path.lexists(inside)):
            mounts.append(
                {"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}
            )
    return mounts


def run_process(
    runtime: str,
    bundle: str,
    spec: Mapping[str, Any],
    state: str,
    cid: str,
    output: Callable[[bytes], None] | None,
) -> tuple[int, bytes]:
    """Run the bundle's process (its ``config.json`` is ``spec``, already
    written) with ``runtime`` (a runc binary or ``"chroot"``); returns the exit
    status and the tail of the output.  ``state`` is runc's state directory."""
    rootfs = os.path.join(bundle, "rootfs")
    if runtime == "chroot":
        return run_chroot(rootfs, spec["process"], output)
    points = Mountpoints(rootfs, [m["destination"] for m in spec["mounts"]])
    try:
        return run_runc(runtime, bundle, state, "oci-tools-build-" + cid, output)
    finally:
        points.cleanup()


__all__ = [
    "DOCKER_CAPS",
    "OUTPUT_TAIL",
    "RUNTIMES",
    "Mountpoints",
    "host_resolver_mounts",
    "run_chroot",
    "run_process",
    "run_runc",
    "run_spec",
    "select_runtime",
]
