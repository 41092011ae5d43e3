"""Containers on runc + overlay: run, ps, stop, start, kill, rm, logs, exec, diff, commit.

Where things live:

* the **state directory** (``$OCI_TOOLS_STATE``, else ``/var/lib/oci-tools`` as
  root, ``$XDG_DATA_HOME/oci-tools`` otherwise) holds every container, whatever
  layout its image is in: ``containers/<id>/`` with ``container.json`` (our
  record), ``config.json`` (the runtime-spec config runc reads), ``log`` (what
  a detached container prints), ``exit`` (its exit code, written by the
  monitor), and the bundle record ``oci-tools.json`` that ``commit`` reads.
  runc's own state is under ``runc/`` there (``runc --root``).
* the container's **writable layer** lives beside its image's layer store:
  ``<layout>/.oci-tools/containers/<id>/{upper,work,rootfs}``; ``rootfs`` is
  the overlay mount (lowers = the image's stored layers).

A container runs under a tiny monitor (``sh -c 'runc run …; echo $? > exit'``
in its own session) so the exit code is kept after ``oci-tools`` returns.
Status always comes from ``runc state`` and is reconciled on every command: a
container runc no longer knows is exited (code from ``exit``), its mount is
released, leftovers of a crashed run are deleted.  Nothing here keeps state
in memory between commands.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import re
import time
from collections.abc import Iterator, Sequence

# subprocess, secrets, shutil and signal are imported where runc is called, an
# id is made or a signal parsed: ``df`` and ``ps`` read records without them.
from typing import IO, TYPE_CHECKING, Any

from oci_tools.containers.initlayer import make_init_layer, plan_init_layer
from oci_tools.errors import ClobberError, NotFoundError, OCIToolsError, UsageError
from oci_tools.fsutil import CONTAINERS, private_path, remove_tree, write_json
from oci_tools.image import Image
from oci_tools.layout import Layout
from oci_tools.records import field_names, record
from oci_tools.snapshots import LayerStore, content_size, is_mounted, mount_overlay, unmount
from oci_tools.snapshots.overlay import lower_dirs, upper_changes

if TYPE_CHECKING:
    from oci_tools.spec.model import Platform

RECORD = "container.json"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_ADJ = ["brave", "calm", "eager", "fond", "happy", "jolly", "keen", "nifty", "quirky", "sharp"]
_NOUN = ["babbage", "curie", "darwin", "euler", "gauss", "hopper", "lovelace", "noether", "turing"]


def state_dir() -> str:
    """Where containers are recorded (see the module docstring)."""
    env = os.environ.get("OCI_TOOLS_STATE")
    if env:
        return os.path.abspath(env)
    if os.geteuid() == 0:
        return "/var/lib/oci-tools"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(base, "oci-tools")


def _runc() -> str:
    import shutil

    path = os.environ.get("OCI_TOOLS_RUNC") or shutil.which("runc")
    if not path:
        raise NotFoundError("runc is not installed", hint="containers run on runc")
    return path


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    from oci_tools.render import parse_time

    try:
        return parse_time(text)
    except (ValueError, OCIToolsError):
        return None


@record(frozen=False)
class Container:
    """One container's record (``container.json``) plus where it lives."""

    id: str
    name: str
    image: str  # as the user named it (LAYOUT:REF)
    image_id: str
    layout: str
    manifest: dict[str, Any]
    args: list[str]
    cmd: list[str]  # the Cmd part (what Docker's commit writes as created_by)
    created: str
    lowers: list[str]  # chain ids, bottom first
    rw: str  # <layout>/.oci-tools/containers/<id>
    auto_remove: bool = False
    started: str | None = None
    finished: str | None = None
    exit_code: int | None = None
    dir: str = ""

    # -- paths -----------------------------------------------------------

    @property
    def upper(self) -> str:
        return os.path.join(self.rw, "upper")

    @property
    def work(self) -> str:
        return os.path.join(self.rw, "work")

    @property
    def init(self) -> str:
        return os.path.join(self.rw, "init")

    @property
    def rootfs(self) -> str:
        return os.path.join(self.rw, "rootfs")

    @property
    def log(self) -> str:
        return os.path.join(self.dir, "log")

    @property
    def exit_file(self) -> str:
        return os.path.join(self.dir, "exit")

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "image_id": self.image_id,
            "layout": self.layout,
            "manifest": self.manifest,
            "args": self.args,
            "cmd": self.cmd,
            "created": self.created,
            "lowers": self.lowers,
            "rw": self.rw,
            "auto_remove": self.auto_remove,
            "started": self.started,
            "finished": self.finished,
            "exit_code": self.exit_code,
        }

    @classmethod
    def load(cls, d: str) -> Container:
        with open(os.path.join(d, RECORD), "rb") as f:
            doc = json.loads(f.read(1 << 20))
        keys = {k: doc[k] for k in field_names(cls) if k in doc and k not in ("dir",)}
        return cls(**keys, dir=d)

    def save(self) -> None:
        write_json(os.path.join(self.dir, RECORD), self.to_dict())


@record
class State:
    """A container's reconciled status."""

    status: str  # created | running | paused | exited
    pid: int
    exit_code: int | None
    started: datetime.datetime | None
    finished: datetime.datetime | None


class Runtime:
    """The containers of one state directory."""

    def __init__(self, root: str | None = None) -> None:
        self.root = root or state_dir()
        self.containers_dir = os.path.join(self.root, "containers")
        self.runc_root = os.path.join(self.root, "runc")

    # -- helpers -------------------------------------------------------------

    def _runc_cmd(self, *args: str) -> list[str]:
        return [_runc(), "--root", self.runc_root, *args]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The state directory's lock (names stay unique)."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def all(self) -> list[Container]:
        """Every recorded container, newest first."""
        self._sweep()
        out = []
        try:
            names = os.listdir(self.containers_dir)
        except FileNotFoundError:
            return []
        for n in names:
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                out.append(Container.load(os.path.join(self.containers_dir, n)))
        out.sort(key=lambda c: c.created, reverse=True)
        return out

    def find(self, key: str) -> Container:
        """A container by name, full id or unique id prefix."""
        cs = self.all()
        for c in cs:
            if c.name == key or c.id == key:
                return c
        hits = [c for c in cs if key and c.id.startswith(key)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise UsageError(f"multiple containers match {key!r}: use more of the id")
        raise NotFoundError(f"no such container: {key}")

    def runc_state(self, c: Container) -> dict[str, Any] | None:
        import subprocess

        p = subprocess.run(
            self._runc_cmd("state", c.id), capture_output=True, text=True, check=False
        )
        if p.returncode != 0:
            return None
        try:
            d = json.loads(p.stdout)
        except ValueError:
            return None
        return d if isinstance(d, dict) else None

    def state(self, c: Container) -> State:
        """Status from runc, reconciled with our record (see the module docstring)."""
        import subprocess

        st = self.runc_state(c)
        started = _parse_time(c.started)
        if st is not None and st.get("status") in ("running", "paused", "created"):
            status = "running" if st["status"] == "created" else st["status"]
            return State(status, int(st.get("pid") or 0), None, started, None)
        if st is not None:  # stopped but not yet deleted (the monitor is finishing)
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(self._runc_cmd("delete", "-f", c.id), capture_output=True)
        if c.started is None:
            return State("created", 0, None, None, None)
        self._finish(c)
        return State("exited", 0, c.exit_code, started, _parse_time(c.finished))

    def _finish(self, c: Container) -> None:
        """Record the exit of a container runc no longer runs; release its mount."""
        if not os.path.isdir(c.dir):
            return  # removed meanwhile (``--rm``, another ``rm``): nothing to record
        if c.finished is None:
            code = None
            for _ in range(50):  # the monitor writes it as soon as runc returns
                with contextlib.suppress(OSError, ValueError), open(c.exit_file) as f:
                    code = int(f.read().strip() or "-1")
                if code is not None or not self._monitor_alive(c):
                    break
                time.sleep(0.02)
            if code is None:
                # The monitor is gone (killed, host rebooted): the code is lost.
                code = 255
            c.exit_code = code
            try:
                c.finished = datetime.datetime.fromtimestamp(
                    os.stat(c.exit_file).st_mtime, datetime.UTC
                ).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            except OSError:
                c.finished = _now()
            with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                c.save()
        with contextlib.suppress(OCIToolsError, OSError):
            unmount(c.rootfs)

    def _monitor_alive(self, c: Container) -> bool:
        try:
            with open(os.path.join(c.dir, "monitor.pid")) as f:
                pid = int(f.read().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return c.id.encode() in f.read()
        except OSError:
            return False

    # -- create / start ---------------------------------------------------------

    def create(
        self,
        layout: Layout,
        ref: str,
        image_name: str,
        *,
        name: str | None = None,
        cmd: Sequence[str] = (),
        entrypoint: str | None = None,
        env: Sequence[str] = (),
        workdir: str | None = None,
        user: str | None = None,
        network: str = "none",
        hostname: str | None = None,
        volumes: Sequence[str] = (),
        auto_remove: bool = False,
        platform: Platform | None = None,
    ) -> Container:
        """Record a container of image ``ref`` and mount its rootfs; an index
        gives its entry for ``platform`` (default: this host's)."""
        from oci_tools.apply import read_file_in_root
        from oci_tools.bundle import RECORD as BUNDLE_RECORD
        from oci_tools.bundle import BaseRecord
        from oci_tools.snapshots import overlay_supported
        from oci_tools.spec.runtime import resolve_user, runtime_config

        if network not in ("none", "host"):
            raise UsageError(
                f"--network {network!r}: only 'none' and 'host' are supported",
                hint="use --network host to reach the container's ports",
            )
        if not overlay_supported():
            raise OCIToolsError(
                "containers need root and overlayfs", hint="run as root on a kernel with overlay"
            )
        img = Image.load(layout, ref, platform)
        img.check_consistent()
        if not img.layers:
            raise UsageError(f"{image_name} has no layers: nothing to run")
        c_cfg = img.config.config or {}
        if entrypoint is not None:
            entry = [entrypoint] if entrypoint else []
            the_cmd = list(cmd)
        else:
            entry = list(c_cfg.get("Entrypoint") or [])
            the_cmd = list(cmd) if cmd else list(c_cfg.get("Cmd") or [])
        args = entry + the_cmd
        if not args:
            raise UsageError("no command specified", hint="give one after the image, or set CMD")
        binds = [_bind(v) for v in volumes]
        import secrets  # here, not at the top: listing (ps, df) starts faster without it

        cid = secrets.token_hex(32)
        with self.lock():
            taken = {c.name for c in self.all()}
            if name is None:
                name = _random_name(taken)
            elif not NAME_RE.match(name):
                raise UsageError(f"invalid container name {name!r}")
            elif name in taken:
                raise ClobberError(
                    f"container name {name!r}", hint="remove that container or choose another name"
                )
            d = os.path.join(self.containers_dir, cid)
            os.makedirs(d, mode=0o700)
            rw = private_path(layout.path, CONTAINERS, cid)
            c = Container(
                id=cid,
                name=name,
                image=image_name,
                image_id=str(img.id),
                layout=os.path.abspath(layout.path),
                manifest=img.descriptor.to_dict(),
                args=args,
                cmd=the_cmd,
                created=_now(),
                lowers=[],
                rw=os.path.abspath(rw),
                auto_remove=auto_remove,
                dir=d,
            )
            c.save()  # first: it owns the gc root below
        try:
            os.makedirs(rw, mode=0o700)
            for p in (c.upper, c.work, c.rootfs, c.init):
                os.mkdir(p, 0o755)
            with layout.lock():
                layout.add_root("container-" + cid, img.descriptor, owner=os.path.join(d, RECORD))
                recs = LayerStore(layout).ensure(img)
                c.lowers = [r.chain_id for r in recs]
                c.save()
            lowers = [r.diff for r in reversed(recs)]
            rootfs = c.rootfs
            mount_overlay(lowers, c.upper, c.work, rootfs)
            spec = runtime_config(
                img.config,
                lambda p: read_file_in_root(rootfs, p),
                args=args,
                network_host=network == "host",
            )
            proc = spec["process"]
            if env:
                proc["env"] = _merge_env(proc["env"], env)
            if workdir:
                proc["cwd"] = workdir if workdir.startswith("/") else "/" + workdir
            if user is not None:
                u = resolve_user(user, lambda p: read_file_in_root(rootfs, p))
                proc["user"] = {"uid": u.uid, "gid": u.gid}
                if u.additional_gids:
                    proc["user"]["additionalGids"] = list(u.additional_gids)
            spec["root"] = {"path": rootfs, "readonly": False}
            spec["hostname"] = hostname or cid[:12]
            spec["mounts"].extend(binds)
            if network == "host":
                # A new sysfs needs a network namespace of its own: bind the host's.
                for m in spec["mounts"]:
                    if m["destination"] == "/sys":
                        m.update(
                            type="bind",
                            source="/sys",
                            options=["rbind", "nosuid", "noexec", "nodev", "ro"],
                        )
                for f in ("/etc/resolv.conf", "/etc/hosts"):
                    if os.path.exists(f):
                        spec["mounts"].append(
                            {
                                "destination": f,
                                "type": "bind",
                                "source": f,
                                "options": ["rbind", "ro"],
                            }
                        )
            # Docker's init layer: mount points runc would otherwise create in
            # the upper dir (so a fresh container's rw size is 0B and its diff
            # and commit hold only what its processes wrote).
            plan = plan_init_layer(rootfs, spec["mounts"])
            unmount(rootfs)
            make_init_layer(c.init, plan)
            mount_overlay([c.init, *lowers], c.upper, c.work, c.rootfs)
            write_json(os.path.join(d, "config.json"), spec)
            # The bundle record ``commit`` reads (its rootfs is a link to the mount).
            os.symlink(c.rootfs, os.path.join(d, "rootfs"))
            rec = BaseRecord(c.layout, img.descriptor, ref, False)
            write_json(os.path.join(d, BUNDLE_RECORD), rec.to_dict())
        except BaseException:
            self._destroy(c)
            raise
        return c

    def _mount(self, c: Container) -> None:
        if is_mounted(c.rootfs):
            return
        lowers = lower_dirs(c.layout, c.lowers)
        missing = [p for p in lowers if not os.path.isdir(p)]
        if missing:
            lay = Layout.open(c.layout)
            from oci_tools.spec.model import Descriptor

            LayerStore(lay).ensure(Image.from_descriptor(lay, Descriptor.from_dict(c.manifest)))
        mount_overlay([c.init, *lowers], c.upper, c.work, c.rootfs)

    def start(self, c: Container, *, detach: bool, out: IO[str] | None = None) -> int:
        """Start ``c``: detached, wait until it runs (returns 0); else attach
        its output and return its exit code."""
        import subprocess

        if c.started is not None:  # a restart: runc may still know it
            if self.state(c).status in ("running", "paused"):
                return 0
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(
                    self._runc_cmd("delete", "-f", c.id), capture_output=True, check=False
                )
        self._mount(c)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(c.exit_file)
        c.started, c.finished, c.exit_code = _now(), None, None
        c.save()
        pid_file = os.path.join(c.dir, "pid")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(pid_file)
        run = self._runc_cmd("run", "--bundle", c.dir, "--pid-file", pid_file, c.id)
        script = '"$@"; code=$?; echo $code > "$EXIT.tmp" && mv "$EXIT.tmp" "$EXIT"'
        envv = {**os.environ, "EXIT": c.exit_file, "OCI_TOOLS_STATE": self.root}
        if detach and c.auto_remove:
            # --rm -d: the monitor removes the container once it exited.
            import sys

            script += '; "$PY" -m oci_tools container rm -f "$CID" >/dev/null 2>&1'
            envv.update(PY=sys.executable, CID=c.id)
        script += "; exit $code"
        cmd = ["sh", "-c", script, "oci-tools-monitor", *run]
        if detach:
            with open(c.log, "ab") as logf, open(os.devnull, "rb") as null:
                p = subprocess.Popen(
                    cmd,
                    stdin=null,
                    stdout=logf,
                    stderr=logf,
                    start_new_session=True,
                    close_fds=True,
                    env=envv,
                )
            with open(os.path.join(c.dir, "monitor.pid"), "w") as f:
                f.write(str(p.pid))
            # Wait until runc reports the process started (or the monitor ended).
            while p.poll() is None and not os.path.exists(pid_file):
                time.sleep(0.01)
            if p.poll() is not None and not os.path.exists(pid_file):
                self._finish(c)
                tail = _tail(c.log)
                raise OCIToolsError(f"container {c.short_id} failed to start: {tail}")
            return 0
        fd_out: Any
        try:
            fd_out = out.fileno() if out is not None else None
        except (AttributeError, OSError, ValueError):
            fd_out = None
        if out is None or fd_out is not None:
            p2 = subprocess.run(cmd, env=envv, check=False, stdin=subprocess.DEVNULL)
        else:
            p2 = subprocess.run(
                cmd, env=envv, check=False, stdin=subprocess.DEVNULL, capture_output=True
            )
            out.write(p2.stdout.decode("utf-8", "replace"))
            out.write(p2.stderr.decode("utf-8", "replace"))
        self._finish(c)
        return p2.returncode

    # -- signals, stop, rm ---------------------------------------------------------

    def kill(self, c: Container, sig: str = "KILL") -> None:
        """Send ``sig`` to a running container."""
        import subprocess

        if self.state(c).status not in ("running", "paused"):
            raise OCIToolsError(f"container {c.name} is not running")
        p = subprocess.run(self._runc_cmd("kill", c.id, sig), capture_output=True, text=True)
        if p.returncode != 0:
            raise OCIToolsError(f"runc kill {c.name}: {p.stderr.strip()}")

    def wait(self, c: Container, timeout: float | None) -> bool:
        """Wait until ``c`` is no longer running; False on timeout."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.state(c).status in ("running", "paused"):
            if end is not None and time.monotonic() >= end:
                return False
            time.sleep(0.05)
        # Let the monitor write the exit code.
        for _ in range(100):
            if c.exit_code is not None or not self._monitor_alive(c):
                break
            time.sleep(0.02)
            self.state(c)
        return True

    def stop(self, c: Container, timeout: float = 10) -> None:
        """SIGTERM (or the image's stop signal), then SIGKILL after ``timeout`` s."""
        if self.state(c).status not in ("running", "paused"):
            return
        sig = "TERM"
        with contextlib.suppress(OSError, ValueError, KeyError, OCIToolsError):
            with open(os.path.join(c.dir, "config.json"), "rb") as f:
                ann = json.loads(f.read(1 << 20)).get("annotations") or {}
            sig = signal_name(ann.get("org.opencontainers.image.stopSignal") or "TERM")
        with contextlib.suppress(OCIToolsError):
            self.kill(c, sig)
        if not self.wait(c, timeout):
            with contextlib.suppress(OCIToolsError):
                self.kill(c, "KILL")
            self.wait(c, None)

    def remove(self, c: Container, *, force: bool = False) -> None:
        """Remove ``c`` (``force``: kill it first when running)."""
        if self.state(c).status in ("running", "paused"):
            if not force:
                raise OCIToolsError(
                    f"cannot remove running container {c.name}", hint="stop it first, or use -f"
                )
            with contextlib.suppress(OCIToolsError):
                self.kill(c, "KILL")
            self.wait(c, 10)
        self._destroy(c)

    def _destroy(self, c: Container) -> None:
        """Delete everything of ``c``: runc state, mount, writable layer, record."""
        import subprocess

        with contextlib.suppress(subprocess.SubprocessError, OSError, OCIToolsError):
            subprocess.run(self._runc_cmd("delete", "-f", c.id), capture_output=True)
        with contextlib.suppress(OCIToolsError, OSError):
            unmount(c.rootfs)
        if os.path.isdir(c.rw):
            remove_tree(c.rw)
        # The gc root goes with the container (a root whose owner merely went
        # missing is kept until an explicit prune: a moved bundle's is).
        with contextlib.suppress(OCIToolsError, OSError):
            Layout.open(c.layout).remove_root("container-" + c.id)
        if os.path.isdir(c.dir):
            # The record goes last: until then ``ps -a`` and ``rm`` still see the
            # container and finish the job after a kill; a kill after it leaves
            # a directory without a record, which the next listing sweeps.
            for n in os.listdir(c.dir):
                p = os.path.join(c.dir, n)
                if n == RECORD:
                    continue
                if os.path.isdir(p) and not os.path.islink(p):
                    remove_tree(p)
                else:
                    os.unlink(p)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(c.dir, RECORD))
            with contextlib.suppress(FileNotFoundError):  # a listing's sweep got there first
                remove_tree(c.dir)  # with any temp file a late ``save`` made meanwhile

    def _sweep(self) -> None:
        """Delete container directories without a record (what a ``create`` or
        ``remove`` killed between its first and last step left).  Only when the
        state lock is free: ``create`` makes a directory and then its record
        under it, so a held lock may mean one is half made right now."""
        try:
            names = os.listdir(self.containers_dir)
            fd = os.open(os.path.join(self.root, "lock"), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return
        try:
            for n in names:
                d = os.path.join(self.containers_dir, n)
                if os.path.isdir(d) and not os.path.lexists(os.path.join(d, RECORD)):
                    with contextlib.suppress(OSError):
                        remove_tree(d)
        finally:
            os.close(fd)

    # -- exec, diff, sizes --------------------------------------------------------------

    def exec(self, c: Container, argv: Sequence[str], *, detach: bool = False) -> int:
        """Run ``argv`` in running container ``c``; its exit code."""
        import subprocess

        if self.state(c).status != "running":
            raise OCIToolsError(f"container {c.name} is not running")
        if not argv:
            raise UsageError("exec needs a command")
        cmd = self._runc_cmd("exec", *(["-d"] if detach else []), c.id, *argv)
        return subprocess.run(cmd, check=False).returncode

    def changes(self, c: Container) -> list[Any]:
        """``docker diff`` of ``c``."""
        return upper_changes(c.upper, lower_dirs(c.layout, c.lowers))

    def sizes(self, c: Container) -> tuple[int, int]:
        """(rw, virtual): the writable layer's and that plus the image's
        layers, in Docker's units (content bytes, each inode once)."""
        rw = content_size(c.upper) if os.path.isdir(c.upper) else 0
        store = LayerStore(Layout(c.layout))
        from oci_tools.digest import Digest

        base = 0
        for chain in c.lowers:
            rec = store.get(Digest.parse(chain))
            base += rec.size if rec is not None else 0
        return rw, base + rw


def _tail(path: str, n: int = 400) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace").strip() or "no output"
    except OSError:
        return "no output"


def _merge_env(base: list[str], extra: Sequence[str]) -> list[str]:
    out = list(base)
    for e in extra:
        if "=" not in e:
            if e in os.environ:
                e = f"{e}={os.environ[e]}"
            else:
                continue
        k = e.split("=", 1)[0]
        out = [x for x in out if x.split("=", 1)[0] != k] + [e]
    return out


def _bind(spec: str) -> dict[str, Any]:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] not in ("ro", "rw")):
        raise UsageError(f"-v {spec!r}: expected HOST:CONTAINER[:ro]")
    host, ctr = parts[0], parts[1]
    if not os.path.isabs(host) or not os.path.exists(host):
        raise UsageError(f"-v {spec!r}: the host path must be an existing absolute path")
    if not ctr.startswith("/"):
        raise UsageError(f"-v {spec!r}: the container path must be absolute")
    opts = ["rbind"] + (["ro"] if len(parts) == 3 and parts[2] == "ro" else [])
    return {"destination": ctr, "type": "bind", "source": os.path.abspath(host), "options": opts}


def _random_name(taken: set[str]) -> str:
    import secrets

    for _ in range(100):
        n = f"{secrets.choice(_ADJ)}_{secrets.choice(_NOUN)}"
        if n not in taken:
            return n
    return "c_" + secrets.token_hex(4)


def lookup(key: str) -> Container | None:
    """The container named ``key`` (name, id or unique id prefix) in the
    state directory, or None: lets ``commit``/``diff``/``rm`` take a
    container where a path or ref names nothing."""
    if not key or "/" in key or ":" in key or not os.path.isdir(state_dir()):
        return None
    try:
        return Runtime().find(key)
    except (NotFoundError, UsageError):
        return None


def signal_name(text: str) -> str:
    """Validate a signal given as a name (``TERM``, ``SIGTERM``) or number."""
    import signal

    t = text.upper().removeprefix("SIG")
    if t.isdigit():
        return t
    if not hasattr(signal, "SIG" + t):
        raise UsageError(f"invalid signal: {text}")
    return t


def commit(
    rt: Runtime,
    c: Container,
    layout: Layout,
    ref: str,
    *,
    message: str | None = None,
    author: str | None = None,
    changes: Sequence[str] = (),
) -> Any:
    """``docker commit``: the container's upper dir becomes a new layer on its
    image; history ``created_by`` is the container's Cmd, as Docker writes it."""
    from oci_tools.bundle import CommitOptions
    from oci_tools.bundle import commit as bundle_commit

    opts = CommitOptions(
        created_by=" ".join(c.cmd),
        comment=message,
        author=author,
        from_upper=c.upper,
        allow_empty=True,
    )
    res = bundle_commit(c.dir, layout, ref, opts)
    if changes:
        # docker commit -c changes the config without a history row of its own.
        from oci_tools.mutate import edit_config, write

        img = edit_config(Image.from_descriptor(layout, res.descriptor), _parse_changes(changes))
        desc = write(layout, img)
        layout.set_ref(ref, desc)
        return desc
    return res.descriptor


def _parse_changes(changes: Sequence[str]) -> Any:
    """``-c`` instructions (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL)."""
    from oci_tools.mutate import ConfigEdit

    kw: dict[str, Any] = {}
    env: list[str] = []
    labels: list[str] = []
    expose: list[str] = []
    for ch in changes:
        word, _, rest = ch.strip().partition(" ")
        word, rest = word.upper(), rest.strip()
        if word in ("CMD", "ENTRYPOINT"):
            if rest.startswith("["):
                try:
                    val = json.loads(rest)
                except ValueError:
                    raise UsageError(f"-c {ch!r}: bad JSON list") from None
            else:
                val = ["/bin/sh", "-c", rest]
            kw["cmd" if word == "CMD" else "entrypoint"] = val
        elif word == "ENV":
            env.extend(rest.split())
        elif word == "LABEL":
            labels.extend(rest.split())
        elif word == "EXPOSE":
            expose.extend(rest.split())
        elif word == "WORKDIR":
            kw["workdir"] = rest
        elif word == "USER":
            kw["user"] = rest
        else:
            raise UsageError(f"-c {ch!r}: unsupported instruction {word}")
    return ConfigEdit(env=tuple(env), labels=tuple(labels), expose=tuple(expose), **kw)


__all__ = ["Container", "Runtime", "State", "commit", "lookup", "signal_name", "state_dir"]
