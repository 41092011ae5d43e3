"""Containers on runc + overlay, and the seed's story end to end.

Root, runc, overlayfs and busybox-static are needed.  Every test gets its
own state directory (``OCI_TOOLS_STATE``), hence its own ``runc --root``.
The CLI runs as a subprocess where a container's output reaches our fds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli, need_root, need_tool

from oci_tools.snapshots import overlay_supported


@pytest.fixture(autouse=True)
def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    need_root()
    need_tool("runc")
    if not overlay_supported():
        pytest.skip("the kernel has no overlayfs")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    state = tmp_path / "state"
    monkeypatch.setenv("OCI_TOOLS_STATE", str(state))
    yield
    # Nothing may outlive a test: remove every container, check no mount is left.
    r = cli("ps", "-a", "-q", "--no-trunc")
    for cid in r.out.split():
        cli("container", "rm", "-f", cid)
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(tmp_path) not in mounts


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess (a container's own output reaches its stdout)."""
    p = subprocess.run(
        [sys.executable, "-m", "oci_tools", *argv], capture_output=True, text=True, check=False
    )
    if check:
        assert p.returncode == 0, f"{argv}: {p.stderr}"
    return p


APPLETS = ["sh", "echo", "cat", "ls", "httpd", "sleep", "id", "pwd", "mkdir", "wget"]


@pytest.fixture
def lay(tmp_path: Path) -> Path:
    """A layout with ``base``: busybox, passwd, a web root with index.html."""
    lay = tmp_path / "lay"
    ok("new", f"{lay}:empty")
    b = tmp_path / "b0"
    ok("unpack", f"{lay}:empty", str(b))
    r = b / "rootfs"
    for d in ("bin", "etc", "tmp"):
        (r / d).mkdir()
    os.chmod(r / "tmp", 0o1777)
    shutil.copy2("/bin/busybox", r / "bin/busybox")
    for a in APPLETS:
        (r / "bin" / a).symlink_to("busybox")
    (r / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nweb:x:33:33::/:/bin/sh\n")
    (r / "etc/group").write_text("root:x:0:\nweb:x:33:\n")
    ok("commit", str(b), f"{lay}:base", "--created-by", "/bin/sh -c #(nop) ADD file:bb in / ")
    shutil.rmtree(b)
    return lay


def test_run_foreground_returns_the_exit_code_and_output(lay: Path) -> None:
    p = sh("run", "--rm", "-e", "A=42", "-w", "/tmp", "-u", "web", f"{lay}:base", "sh", "-c",
           'echo "$A $(pwd) $(id -u)"; exit 3', check=False)  # fmt: skip
    assert p.returncode == 3
    assert p.stdout.strip() == "42 /tmp 33"
    assert ok("ps", "-a", "-q") == ""  # --rm removed it


def test_detached_lifecycle(lay: Path, tmp_path: Path) -> None:
    cid = ok("run", "-d", "--name", "sleeper", f"{lay}:base", "sh", "-c", "echo started; sleep 60")
    cid = cid.strip()
    assert len(cid) == 64
    rows = [json.loads(x) for x in ok("ps", "--format", "json").splitlines()]
    assert [(r["ID"], r["Names"], r["State"]) for r in rows] == [(cid[:12], "sleeper", "running")]
    assert rows[0]["Status"].startswith("Up ")
    # Names are unique; any unique id prefix names the container.
    assert cli("run", "-d", "--name", "sleeper", f"{lay}:base", "true").code == 1
    assert ok("exec", cid[:5], "sh", "-c", "echo hi > /tmp/x") == ""
    assert ok("container", "diff", "sleeper").splitlines() == ["C /tmp", "A /tmp/x"]
    assert ok("diff", "sleeper") == ok("container", "diff", "sleeper")
    assert "started" in ok("logs", "sleeper")
    assert cli("container", "rm", "sleeper").code == 1  # running: needs -f
    ok("kill", "-s", "KILL", "sleeper")
    for _ in range(100):
        if "Exited (137)" in ok("ps", "-a"):
            break
        time.sleep(0.05)
    assert "Exited (137)" in ok("ps", "-a")
    assert ok("ps", "-q") == ""
    # start again: the writable layer survived.
    ok("start", "sleeper")
    assert ok("ps", "-q").strip() == cid[:12]
    assert cli("rm", "sleeper").code == 1  # running: needs -f
    ok("rm", "-f", "sleeper")  # rm -f of a running container
    assert ok("ps", "-a", "-q") == ""
    assert not (lay / ".oci-tools/containers" / cid).exists()


def test_publish_is_refused_with_a_hint(lay: Path) -> None:
    r = cli("run", "-p", "80:80", f"{lay}:base")
    assert r.code == 2 and "--network host" in r.err


def test_a_container_keeps_its_image_alive(lay: Path) -> None:
    ok("run", "-d", "--name", "c", f"{lay}:base", "sleep", "60")
    ok("rm", f"{lay}:base")
    ok("gc", str(lay))
    ok("stop", "-t", "0", "c")
    ok("start", "c")  # its layers are still there
    ok("container", "rm", "-f", "c")
    out = ok("gc", str(lay))
    assert "deleted layer" in out


def test_a_crashed_monitor_is_reconciled(lay: Path) -> None:
    cid = ok("run", "-d", "--name", "c", f"{lay}:base", "sleep", "60").strip()
    state = Path(os.environ["OCI_TOOLS_STATE"])
    pid = int((state / "containers" / cid / "monitor.pid").read_text())
    os.kill(pid, 9)  # the monitor dies; runc keeps the container running
    time.sleep(0.1)
    assert "Up " in ok("ps")
    ok("stop", "-t", "0", "c")
    assert "Exited (" in ok("ps", "-a")
    mounts = Path("/proc/self/mountinfo").read_text()
    assert cid not in mounts


def history(image: str) -> list[dict[str, str]]:
    return [json.loads(x) for x in ok("history", "--format", "json", image).splitlines()]


def _fetch(url: str) -> str:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return str(r.read().decode())
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{url} never answered")


def test_the_seed_story(lay: Path, tmp_path: Path) -> None:
    """expressweb: build, extend, share layers, run, ps -s, fetch, exec, stop, commit, rm."""
    ctx = tmp_path / "app"
    ctx.mkdir()
    (ctx / "index.html").write_text("<h1>expressweb</h1>\n")
    (ctx / "Dockerfile").write_text(
        "FROM base\nWORKDIR /app\nCOPY index.html /app/\nRUN echo ok > /app/health\n"
        'CMD ["httpd", "-f", "-p", "18081", "-h", "/app"]\n'
    )
    ok("build", "-t", f"{lay}:expressweb", str(ctx))
    ext = tmp_path / "ext"
    ext.mkdir()
    (ext / "Dockerfile").write_text(
        'FROM expressweb\nCMD ["httpd", "-f", "-p", "18082", "-h", "/app"]\n'
    )
    ok("build", "-t", f"{lay}:extending-expressweb", str(ext))
    h1 = history(f"{lay}:expressweb")
    h2 = history(f"{lay}:extending-expressweb")
    assert len(h2) == len(h1) + 1  # only the CMD row is new (an empty layer)
    images = ok("images", str(lay))
    assert "extending-expressweb" in images
    name = "extending-expressweb-container"
    cid = ok(
        "run", "-d", "--name", name, "--network", "host", f"{lay}:extending-expressweb"
    ).strip()
    rows = [json.loads(x) for x in ok("ps", "-s", "--format", "json").splitlines()]
    assert rows[0]["Names"] == name
    assert rows[0]["Size"].startswith("0B (virtual ")
    assert _fetch("http://127.0.0.1:18082/index.html") == "<h1>expressweb</h1>\n"
    ok("exec", name, "sh", "-c", "echo 'written inside' > /app/note.txt")
    rows = [json.loads(x) for x in ok("ps", "-s", "--format", "json").splitlines()]
    assert rows[0]["Size"].startswith("15B (virtual ")
    ok("stop", "-t", "1", name)
    out = ok("commit", name, f"{lay}:committed", "-m", "seed",
             "-c", 'CMD ["httpd", "-f", "-p", "18083", "-h", "/app"]')  # fmt: skip
    assert out.startswith("sha256:")
    hist = history(f"{lay}:committed")
    assert hist[0]["CreatedBy"] == "httpd -f -p 18082 -h /app"
    assert hist[0]["Comment"] == "seed"
    assert len(hist) == len(h2) + 1  # -c adds no history row of its own
    cfg = json.loads(ok("inspect", "--config", f"{lay}:committed"))
    assert cfg["config"]["Cmd"] == ["httpd", "-f", "-p", "18083", "-h", "/app"]
    assert cli("rm", name).code == 0  # docker's rm CONTAINER
    assert ok("ps", "-a", "-q") == ""
    b = tmp_path / "check"
    ok("unpack", f"{lay}:committed", str(b))
    assert (b / "rootfs/app/note.txt").read_text() == "written inside\n"
    assert cid not in Path("/proc/self/mountinfo").read_text()


def test_logs_follow_and_detached_rm(lay: Path) -> None:
    ok("run", "-d", "--rm", "--name", "talker", f"{lay}:base", "sh", "-c",
       "echo one; sleep 0.5; echo two")  # fmt: skip
    p = sh("logs", "-f", "talker")
    assert p.stdout.splitlines() == ["one", "two"]
    for _ in range(100):  # --rm: the monitor removes it after it exited
        if ok("ps", "-a", "-q") == "":
            break
        time.sleep(0.05)
    assert ok("ps", "-a", "-q") == ""


def test_volumes_env_and_network_none(lay: Path, tmp_path: Path) -> None:
    host = tmp_path / "shared"
    host.mkdir()
    (host / "in.txt").write_text("from host\n")
    p = sh("run", "--rm", "-v", f"{host}:/mnt/shared", "-v", f"{host}:/ro:ro",
           "--hostname", "box", f"{lay}:base", "sh", "-c",
           "cat /mnt/shared/in.txt; echo out > /mnt/shared/out.txt; hostname; "
           "ls /sys/class/net; echo x > /ro/y || echo readonly")  # fmt: skip
    lines = p.stdout.splitlines()
    assert lines[0] == "from host"
    assert lines[1] == "box"
    assert lines[2:4] == ["lo", "readonly"]  # --network none: only loopback
    assert (host / "out.txt").read_text() == "out\n"
    r = cli("run", "-v", "relative:/x", f"{lay}:base", "true")
    assert r.code == 2


def test_df_shows_containers_and_stored_layers(lay: Path) -> None:
    ok("run", "-d", "--name", "c", f"{lay}:base", "sh", "-c", "echo 12345 > /f; sleep 60")
    for _ in range(100):
        if "6B" in ok("ps", "-s"):
            break
        time.sleep(0.05)
    lines = ok("df", "--format", "json", str(lay)).splitlines()
    rows = {r["Type"]: r for r in map(json.loads, lines) if "Type" in r}
    assert rows["Containers"]["TotalCount"] == "1" and rows["Containers"]["Active"] == "1"
    assert rows["Containers"]["Size"] == "6B"
    assert rows["Stored layers"]["TotalCount"] == "1"
    out = ok("df", "-v", str(lay))
    assert "Containers space usage:" in out and "Stored layers (" in out


def test_exec_returns_its_exit_code_and_sees_the_containers_env(lay: Path) -> None:
    ok("run", "-d", "--name", "c", "-e", "MARK=here", f"{lay}:base", "sleep", "60")
    p = sh("exec", "c", "sh", "-c", 'echo "$MARK"; exit 7', check=False)
    assert p.returncode == 7
    assert p.stdout == "here\n"
    assert cli("exec", "nope", "true").code == 1  # no such container
    ok("kill", "-s", "TERM", "c")  # sleep as pid 1 ignores TERM: still running
    time.sleep(0.2)
    assert "Up " in ok("ps")
    ok("stop", "-t", "0.2", "c")
    assert "Exited (137)" in ok("ps", "-a")


def test_entrypoint_names_and_ps_layout_filter(lay: Path, tmp_path: Path) -> None:
    p = sh("run", "--rm", "--entrypoint", "echo", f"{lay}:base", "a", "b")
    assert p.stdout == "a b\n"
    ok("run", "-d", f"{lay}:base", "sleep", "60")  # a generated name
    other = tmp_path / "other"
    shutil.copytree(lay, other, symlinks=True)
    ok("run", "-d", "--name", "o", f"{other}:base", "sleep", "60")
    rows = [json.loads(x) for x in ok("ps", "--format", "json").splitlines()]
    assert len(rows) == 2 and all(r["Names"] for r in rows)
    mine = ok("ps", "--format", "json", str(other)).splitlines()
    assert [json.loads(x)["Names"] for x in mine] == ["o"]
    assert cli("run", "--network", "bridge", f"{lay}:base", "true").code == 2


def test_a_crash_after_mounting_is_cleaned_by_the_next_command(lay: Path) -> None:
    # oci-tools dies between mounting the rootfs and starting runc.
    code = (
        "import os\n"
        "from oci_tools.containers import Runtime\n"
        "from oci_tools.layout import Layout\n"
        f"c = Runtime().create(Layout.open({str(lay)!r}), 'base', 'x', name='crashed', "
        "cmd=['true'])\n"
        "print(c.rootfs, flush=True)\n"
        "os._exit(9)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert p.returncode == 9, p.stderr
    rootfs = p.stdout.strip()
    assert rootfs in Path("/proc/self/mountinfo").read_text()
    assert "Created" in ok("ps", "-a")
    ok("rm", "crashed")
    assert rootfs not in Path("/proc/self/mountinfo").read_text()
    assert not Path(rootfs).exists()
