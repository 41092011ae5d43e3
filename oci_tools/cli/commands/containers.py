"""CLI wiring for containers (argparse only; logic lives in ``oci_tools.containers``).

Every command is under ``container`` (``oci-tools container run …``); the ones
whose names no image command uses are also top level, as in docker: ``run``,
``ps``, ``stop``, ``start``, ``kill``, ``logs``, ``exec``.  Top level, ``rm``,
``commit`` and ``diff`` act on refs and bundles, and on a container when their
argument is no existing path (hooks in the layout and bundle command modules).
"""

from __future__ import annotations

import argparse
import datetime
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oci_tools.cli._common import Console
    from oci_tools.containers import Container, Runtime


def _rt() -> Runtime:
    from oci_tools.containers import Runtime

    return Runtime()


def cmd_run(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.cli._common import parse_platform
    from oci_tools.errors import UsageError
    from oci_tools.layout import Layout, split_image_ref

    if a.publish:
        raise UsageError(
            "-p/--publish: oci-tools has no port forwarding",
            hint="use --network host: the container's ports are then the host's",
        )
    path, ref = split_image_ref(a.image)
    assert ref is not None
    rt = _rt()
    ct = rt.create(
        Layout.open(path),
        ref,
        a.image,
        name=a.name,
        cmd=a.cmd,
        entrypoint=a.entrypoint,
        env=a.env,
        workdir=a.workdir,
        user=a.user,
        network=a.network,
        hostname=a.hostname,
        volumes=a.volume,
        auto_remove=a.rm,
        platform=parse_platform(a.platform),
    )
    if a.detach:
        try:
            rt.start(ct, detach=True)
        except BaseException:
            if a.rm:
                rt.remove(ct, force=True)
            raise
        c.print(ct.id)
        return 0
    c.out.flush()
    try:
        code = rt.start(ct, detach=False, out=c.out)
    finally:
        if a.rm:
            rt.remove(rt.find(ct.id), force=True)
    return code


def _status(rt: Runtime, ct: Container, now: datetime.datetime) -> tuple[str, str]:
    from oci_tools import render

    st = rt.state(ct)
    if st.status in ("running", "paused"):
        up = (now - st.started).total_seconds() if st.started else 0
        text = f"Up {render.human_duration(up)}"
        return st.status, text + (" (Paused)" if st.status == "paused" else "")
    if st.status == "exited":
        ago = render.time_ago(st.finished, now) if st.finished else ""
        return "exited", f"Exited ({st.exit_code}) {ago}".rstrip()
    return "created", "Created"


def cmd_ps(a: argparse.Namespace, c: Console) -> int:
    import os

    from oci_tools import render

    rt = _rt()
    now = datetime.datetime.now(datetime.UTC)
    rows = []
    want = os.path.abspath(a.layout) if a.layout else None
    for ct in rt.all():
        if want is not None and ct.layout != want:
            continue
        state, status = _status(rt, ct, now)
        if not a.all and state not in ("running", "paused"):
            continue
        cmd = " ".join(ct.args)
        row = {
            "ID": ct.id if a.no_trunc else ct.short_id,
            "Image": ct.image,
            "Command": '"' + (cmd if a.no_trunc else render.truncate(cmd, 20)) + '"',
            "CreatedAt": ct.created,
            "RunningFor": render.time_ago(render.parse_time(ct.created), now),
            "State": state,
            "Status": status,
            "Ports": "",
            "Names": ct.name,
        }
        if a.size:
            rw, virtual = rt.sizes(ct)
            row["Size"] = f"{render.human_size(rw)} (virtual {render.human_size(virtual)})"
        rows.append(row)
    if a.quiet:
        for r in rows:
            c.print(r["ID"])
        return 0
    if a.format == "json":
        c.out.write(render.json_lines(rows))
        return 0
    cols = [
        ("CONTAINER ID", "ID"),
        ("IMAGE", "Image"),
        ("COMMAND", "Command"),
        ("CREATED", "RunningFor"),
        ("STATUS", "Status"),
        ("PORTS", "Ports"),
        ("NAMES", "Names"),
    ]
    if a.size:
        cols.append(("SIZE", "Size"))
    c.out.write(render.table([h for h, _ in cols], [[r[k] for _, k in cols] for r in rows]))
    return 0


def _each(a: argparse.Namespace, c: Console, fn: Callable[[Runtime, Container], None]) -> int:
    from oci_tools.errors import OCIToolsError

    rt = _rt()
    failed = 0
    for key in a.containers:
        try:
            fn(rt, rt.find(key))
            c.print(key)
        except OCIToolsError as e:
            c.note(f"oci-tools: error: {e}")
            failed += 1
    return 1 if failed else 0


def cmd_stop(a: argparse.Namespace, c: Console) -> int:
    return _each(a, c, lambda rt, ct: rt.stop(ct, a.time))


def cmd_start(a: argparse.Namespace, c: Console) -> int:
    def start(rt: Runtime, ct: Container) -> None:
        rt.start(ct, detach=True)

    return _each(a, c, start)


def cmd_kill(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.containers import signal_name

    sig = signal_name(a.signal)
    return _each(a, c, lambda rt, ct: rt.kill(ct, sig))


def cmd_rm(a: argparse.Namespace, c: Console) -> int:
    return _each(a, c, lambda rt, ct: rt.remove(ct, force=a.force))


def cmd_logs(a: argparse.Namespace, c: Console) -> int:
    rt = _rt()
    ct = rt.find(a.container)
    try:
        f = open(ct.log, "rb")  # noqa: SIM115 - followed below
    except FileNotFoundError:
        return 0
    with f:
        running = a.follow
        while True:
            data = f.read(1 << 16)
            if data:
                c.out.write(data.decode("utf-8", "replace"))
                continue
            if not running:
                break
            # Once it stopped, one more pass reads what it wrote last.
            running = rt.state(ct).status in ("running", "paused")
            if running:
                c.out.flush()
                time.sleep(0.2)
    return 0


def cmd_exec(a: argparse.Namespace, c: Console) -> int:
    rt = _rt()
    c.out.flush()
    return rt.exec(rt.find(a.container), a.cmd, detach=a.detach)


def cmd_diff(a: argparse.Namespace, c: Console) -> int:
    rt = _rt()
    for ch in rt.changes(rt.find(a.container)):
        c.print(f"{ch.kind} {ch.path}")
    return 0


def cmd_commit(a: argparse.Namespace, c: Console) -> int:
    from oci_tools.containers import commit
    from oci_tools.layout import Layout, split_image_ref

    rt = _rt()
    ct = rt.find(a.container)
    path, ref = split_image_ref(a.image)
    assert ref is not None
    desc = commit(
        rt, ct, Layout.open(path), ref, message=a.message, author=a.author, changes=a.change
    )
    c.print(str(desc.digest))
    return 0


def _targets(sp: Any) -> None:
    sp.add_argument("containers", nargs="+", metavar="CONTAINER")


def _define(add: Callable[..., Any], prefix: str = "") -> None:
    def reg(name: str, handler: Any, help_: str) -> Any:
        return add(prefix + name, handler, help_)

    sp = reg("run", cmd_run, "create and start a container of an image (runc + overlay)")
    sp.add_argument("-d", "--detach", action="store_true", help="print the id, run in background")
    sp.add_argument("--name")
    sp.add_argument("--rm", action="store_true", help="remove the container when it exits")
    sp.add_argument("-e", "--env", action="append", default=[], metavar="K=V")
    sp.add_argument("-w", "--workdir", metavar="DIR")
    sp.add_argument("-u", "--user", metavar="USER[:GROUP]")
    sp.add_argument("--entrypoint", metavar="CMD")
    sp.add_argument("--network", default="none", metavar="none|host")
    sp.add_argument("--hostname")
    sp.add_argument("-v", "--volume", action="append", default=[], metavar="HOST:CTR[:ro]")
    sp.add_argument("-p", "--publish", action="append", default=[], help=argparse.SUPPRESS)
    sp.add_argument(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="pick this platform when the ref is a multi-platform index (default: the host's)",
    )
    sp.add_argument("image", metavar="LAYOUT:REF")
    sp.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")

    sp = reg("ps", cmd_ps, "list containers (running; -a all) with docker's columns")
    sp.add_argument("layout", nargs="?", metavar="LAYOUT", help="only containers of this layout")
    sp.add_argument("-a", "--all", action="store_true")
    sp.add_argument("-s", "--size", action="store_true", help="SIZE: rw (virtual rw + image)")
    sp.add_argument("-q", "--quiet", action="store_true")
    sp.add_argument("--no-trunc", action="store_true")
    sp.add_argument("--format", choices=["table", "json"], default="table")

    sp = reg("stop", cmd_stop, "stop containers: SIGTERM, then SIGKILL after -t seconds")
    sp.add_argument("-t", "--time", type=float, default=10)
    _targets(sp)
    sp = reg("start", cmd_start, "start stopped containers (detached)")
    _targets(sp)
    sp = reg("kill", cmd_kill, "send a signal (default KILL) to containers")
    sp.add_argument("-s", "--signal", default="KILL")
    _targets(sp)
    sp = reg("logs", cmd_logs, "print what a detached container wrote")
    sp.add_argument("-f", "--follow", action="store_true")
    sp.add_argument("container", metavar="CONTAINER")
    sp = reg("exec", cmd_exec, "run a command in a running container")
    sp.add_argument("-d", "--detach", action="store_true")
    sp.add_argument("container", metavar="CONTAINER")
    sp.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD")


def register(add: Callable[..., Any]) -> None:
    """Add the container commands (see the module docstring)."""
    _define(add)
    sp = add("container", None, "manage containers: run, ps, stop, start, kill, rm, logs, exec…")
    if not isinstance(sp, argparse.ArgumentParser):
        return  # another command is being run: its parser only
    sub = sp.add_subparsers(dest="container_command", metavar="SUBCOMMAND", parser_class=type(sp))
    sub.required = True

    def sub_add(name: str, handler: Any, help_: str) -> Any:
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(handler=handler)
        return p

    _define(sub_add)
    p = sub_add("rm", cmd_rm, "remove containers (-f: kill running ones first)")
    p.add_argument("-f", "--force", action="store_true")
    _targets(p)
    p = sub_add("diff", cmd_diff, "what changed in a container's filesystem (A/C/D)")
    p.add_argument("container", metavar="CONTAINER")
    p = sub_add("commit", cmd_commit, "make a container's changes a new image")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("image", metavar="LAYOUT:REF")
    p.add_argument("-m", "--message")
    p.add_argument("-a", "--author")
    p.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION")
