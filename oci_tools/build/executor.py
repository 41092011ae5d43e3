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


#: The files Docker bind-mounts over a RUN container's own (its daemon keeps
#: them): what a RUN step writes to them never reaches the layer.
NETWORK_FILES = ("hosts", "hostname", "resolv.conf")
#: Larger files are not saved for restoring (they are not real network files).
_SAVE_MAX = 1 << 20


class NetworkFiles:
    """``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf`` of the rootfs,
    saved before a RUN step and put back after it, as Docker's bind mounts
    keep them out of the step's layer: a file the image lacked is removed
    (``/etc`` too when it was missing and is left empty), one it had gets its
    bytes, mode, owner and times back, and ``/etc`` its times.

    Every operation goes through a descriptor of ``/etc`` opened without
    following symlinks, so a RUN step that swapped ``/etc`` for a symlink
    cannot make the restore write outside the rootfs (then nothing is done).
    """

    def __init__(self, rootfs: str) -> None:
        self.rootfs = rootfs
        self.etc = os.path.join(rootfs, "etc")
        self.etc_times: tuple[int, int] | None = None
        self.etc_existed = os.path.lexists(self.etc)
        self.saved: dict[str, tuple[os.stat_result, bytes | str | None] | None] = {}
        fd = self._open_etc()
        if fd is None:
            return
        try:
            st = os.fstat(fd)
            self.etc_times = (st.st_atime_ns, st.st_mtime_ns)
            for name in NETWORK_FILES:
                self.saved[name] = self._save(fd, name)
        finally:
            os.close(fd)

    def provide(self, texts: dict[str, str]) -> None:
        """Make ``/etc`` and the files the image lacks (chroot has no bind
        mounts; Docker's init layer has them): ``restore`` removes them again."""
        if not self.etc_existed:
            with contextlib.suppress(OSError):
                os.mkdir(self.etc, 0o755)
        fd = self._open_etc()
        if fd is None:
            return
        try:
            for name, text in texts.items():
                if self.saved.get(name) is not None:
                    continue
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                with contextlib.suppress(OSError):
                    f = os.open(name, flags, 0o644, dir_fd=fd)
                    with os.fdopen(f, "w") as fh:
                        fh.write(text)
        finally:
            os.close(fd)

    def _open_etc(self) -> int | None:
        try:
            return os.open(self.etc, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None

    @staticmethod
    def _save(fd: int, name: str) -> tuple[os.stat_result, bytes | str | None] | None:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return st, os.readlink(name, dir_fd=fd)
        if stat.S_ISREG(st.st_mode) and st.st_size <= _SAVE_MAX:
            f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            with os.fdopen(f, "rb") as fh:
                return st, fh.read()
        return st, None  # something else: left as the step leaves it

    def restore(self) -> None:
        """Put the three files (and ``/etc``'s times) back as they were."""
        fd = self._open_etc()
        if fd is None:
            return
        try:
            for name in NETWORK_FILES:
                # Best effort: a file that cannot be put back stays in the
                # layer as the step left it, never fails the step.
                with contextlib.suppress(OSError):
                    self._restore(fd, name, self.saved.get(name))
            if not self.etc_existed:
                with contextlib.suppress(OSError):
                    if not os.listdir(fd):
                        os.rmdir(self.etc)
                        return
            if self.etc_times is not None:
                with contextlib.suppress(OSError):
                    os.utime(fd, ns=self.etc_times)
        finally:
            os.close(fd)

    @staticmethod
    def _restore(
        fd: int, name: str, saved: tuple[os.stat_result, bytes | str | None] | None
    ) -> None:
        try:
            cur = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            cur = None
        if saved is not None and saved[1] is None:
            return  # not a file we saved
        if saved is not None and cur is not None:
            old = saved[0]
            if (cur.st_ino, cur.st_mtime_ns, cur.st_size, cur.st_mode, cur.st_ctime_ns) == (
                old.st_ino,
                old.st_mtime_ns,
                old.st_size,
                old.st_mode,
                old.st_ctime_ns,
            ):
                return  # untouched
        if cur is not None:
            if stat.S_ISDIR(cur.st_mode):
                return  # the step made a directory there: its own change
            os.unlink(name, dir_fd=fd)
        if saved is None:
            return
        st, data = saved
        if isinstance(data, str):
            os.symlink(data, name, dir_fd=fd)
        else:
            assert data is not None
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            f = os.open(name, flags, 0o600, dir_fd=fd)
            with os.fdopen(f, "wb") as fh:
                fh.write(data)
                with contextlib.suppress(OSError):  # rootless: may not chown
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
        with contextlib.suppress(OSError):
            os.chown(name, st.st_uid, st.st_gid, dir_fd=fd, follow_symlinks=False)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=fd, follow_symlinks=False)


def network_file_texts(hostname: str, network_host: bool) -> dict[str, str]:
    """What a RUN step finds in ``/etc/hosts``, ``/etc/hostname`` and
    ``/etc/resolv.conf`` (Docker's daemon writes its own): loopback names, the
    step's container id, and no name servers; the host's hosts and
    resolv.conf on the host network."""
    texts = {
        "hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
        "hostname": hostname + "\n",
        "resolv.conf": "",
    }
    if network_host:
        for name in ("hosts", "resolv.conf"):
            with contextlib.suppress(OSError), open(f"/etc/{name}") as fh:
                texts[name] = fh.read()
    return texts


def network_file_mounts(
    rootfs: str, workdir: str, hostname: str, network_host: bool
) -> list[dict[str, Any]]:
    """Bind mounts of ``/etc/hosts``, ``/etc/hostname`` and ``/etc/resolv.conf``
    from files in ``workdir`` (as Docker's daemon-held files): the RUN
    step may read and write them, its layer never sees them.  On the host
    network, hosts and resolv.conf are the host's, as ``host_resolver_mounts``.
    Only over a plain file or nothing, never through a symlink (``/etc``
    included): such a file is left to ``NetworkFiles``."""
    etc = os.path.join(rootfs, "etc")
    if os.path.islink(etc) or (os.path.lexists(etc) and not os.path.isdir(etc)):
        return []
    workdir = os.path.abspath(workdir)
    os.makedirs(workdir, exist_ok=True)
    mounts = []
    for name, text in network_file_texts(hostname, network_host).items():
        inside = os.path.join(etc, name)
        if os.path.islink(inside) or (os.path.lexists(inside) and not os.path.isfile(inside)):
            continue
        src = os.path.join(workdir, name)
        with open(src, "w") as fh:
            fh.write(text)
        mounts.append(
            {"destination": f"/etc/{name}", "type": "bind", "source": src, "options": ["rbind"]}
        )
    return mounts


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
    # Docker's bind mounts keep these out of the layer; under runc ours do the
    # same, and under chroot (no mounts) the saved files are put back.
    etc = NetworkFiles(rootfs)
    try:
        if runtime == "chroot":
            etc.provide(network_file_texts(cid, network_host=False))
            return run_chroot(rootfs, spec["process"], output)
        points = Mountpoints(rootfs, [m["destination"] for m in spec["mounts"]])
        try:
            return run_runc(runtime, bundle, state, "oci-tools-build-" + cid, output)
        finally:
            points.cleanup()
    finally:
        etc.restore()


__all__ = [
    "DOCKER_CAPS",
    "NETWORK_FILES",
    "OUTPUT_TAIL",
    "RUNTIMES",
    "Mountpoints",
    "NetworkFiles",
    "host_resolver_mounts",
    "network_file_mounts",
    "network_file_texts",
    "run_chroot",
    "run_process",
    "run_runc",
    "run_spec",
    "select_runtime",
]
