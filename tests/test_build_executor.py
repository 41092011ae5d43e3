"""Running RUN steps (``oci_tools.build.executor``): choosing runc or
chroot, the runtime spec, host resolver mounts and runc's mount targets."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from oci_tools.build.executor import (
    DOCKER_CAPS,
    Mountpoints,
    host_resolver_mounts,
    run_spec,
    select_runtime,
)
from oci_tools.errors import OCIToolsError
from oci_tools.spec.model import ImageConfig


def _host(monkeypatch: pytest.MonkeyPatch, *, runc: str | None, uid: int) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: runc)
    monkeypatch.setattr(os, "geteuid", lambda: uid)


def test_select_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    _host(monkeypatch, runc="/x/runc", uid=1000)
    assert select_runtime("auto") == "/x/runc" and select_runtime("runc") == "/x/runc"
    with pytest.raises(OCIToolsError, match="--runtime chroot needs root"):
        select_runtime("chroot")
    _host(monkeypatch, runc=None, uid=0)
    assert select_runtime("auto") == "chroot" and select_runtime("chroot") == "chroot"
    with pytest.raises(OCIToolsError, match="runc is not installed") as ei:
        select_runtime("runc")
    assert ei.value.hint == "install runc or use --runtime chroot"
    _host(monkeypatch, runc=None, uid=1000)
    with pytest.raises(OCIToolsError, match="RUN needs runc"):
        select_runtime("auto")


def test_run_spec_has_the_image_process_and_docker_capabilities(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nnode:x:1000:1001::/h:/bin/sh\n")
    cfg = ImageConfig.from_dict(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["A=1"], "WorkingDir": "/w", "User": "node"},
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )
    spec = run_spec(cfg, str(rootfs), ["sh", "-c", "true"], rootless=False, network_host=False)
    proc = spec["process"]
    assert proc["args"] == ["sh", "-c", "true"] and proc["cwd"] == "/w"
    assert "A=1" in proc["env"]
    assert (proc["user"]["uid"], proc["user"]["gid"]) == (1000, 1001)
    assert proc["capabilities"]["bounding"] == DOCKER_CAPS
    assert proc["noNewPrivileges"] is False


def test_host_resolver_mounts_only_over_plain_files(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    assert host_resolver_mounts(str(rootfs)) == []  # no /etc
    (rootfs / "etc").symlink_to("/etc")
    assert host_resolver_mounts(str(rootfs)) == []  # never through a symlink
    (rootfs / "etc").unlink()
    (rootfs / "etc").mkdir()
    (rootfs / "etc/hosts").symlink_to("/elsewhere")
    got = {m["destination"] for m in host_resolver_mounts(str(rootfs))}
    expected = {"/etc/resolv.conf"} if os.path.isfile("/etc/resolv.conf") else set()
    assert got == expected
    for m in host_resolver_mounts(str(rootfs)):
        assert m["type"] == "bind" and m["options"] == ["rbind", "ro"]


def test_mountpoints_remove_only_what_the_runtime_created(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "dev").mkdir(parents=True)
    (rootfs / "dev" / "null").write_text("")  # the image's own, kept
    os.utime(rootfs, ns=(1_000_000_000, 2_000_000_000))
    points = Mountpoints(str(rootfs), ["/proc", "/dev", "/dev/pts", "/sys/fs/cgroup"])
    # What runc would create:
    (rootfs / "proc").mkdir()
    (rootfs / "sys" / "fs" / "cgroup").mkdir(parents=True)
    (rootfs / "dev" / "pts").mkdir()
    points.cleanup()
    assert sorted(os.listdir(rootfs)) == ["dev"]
    # /dev/pts lives inside the /dev mount, not in the rootfs: not ours to remove.
    assert sorted(os.listdir(rootfs / "dev")) == ["null", "pts"]
    assert os.stat(rootfs).st_mtime_ns == 2_000_000_000  # the parent's times restored


def test_network_files_are_put_back_after_a_step(tmp_path: Path) -> None:
    """Issue 15 #4: what a RUN step writes to /etc/hosts, hostname and
    resolv.conf never reaches its layer (Docker bind-mounts them)."""
    from oci_tools.build.executor import NetworkFiles, network_file_texts

    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    hosts = rootfs / "etc/hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    os.utime(hosts, ns=(1, 2))
    os.utime(rootfs / "etc", ns=(3, 4))
    guard = NetworkFiles(str(rootfs))
    guard.provide(network_file_texts("abc", network_host=False))
    assert (rootfs / "etc/hostname").read_text() == "abc\n"
    assert hosts.read_text() == "127.0.0.1 localhost\n"  # the image's own stays
    hosts.write_text("1.2.3.4 x\n")
    (rootfs / "etc/resolv.conf").write_text("nameserver 9.9.9.9\n")
    (rootfs / "etc/other").write_text("kept")
    guard.restore()
    assert sorted(os.listdir(rootfs / "etc")) == ["hosts", "other"]
    assert hosts.read_text() == "127.0.0.1 localhost\n"
    assert os.stat(hosts).st_mtime_ns == 2 and os.stat(rootfs / "etc").st_mtime_ns == 4


def test_network_files_remove_a_made_etc_and_never_follow_a_symlinked_etc(
    tmp_path: Path,
) -> None:
    from oci_tools.build.executor import NetworkFiles, network_file_mounts

    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    guard = NetworkFiles(str(rootfs))
    guard.provide({"hosts": "h\n"})
    assert (rootfs / "etc/hosts").read_text() == "h\n"
    guard.restore()
    assert not (rootfs / "etc").exists()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "hosts").write_text("host's")
    (rootfs / "etc").symlink_to(outside)
    guard = NetworkFiles(str(rootfs))
    guard.provide({"hosts": "x"})
    guard.restore()
    assert (outside / "hosts").read_text() == "host's"
    assert network_file_mounts(str(rootfs), str(tmp_path / "w"), "c", False) == []
    (rootfs / "etc").unlink()
    (rootfs / "etc").mkdir()
    mounts = network_file_mounts(str(rootfs), str(tmp_path / "w"), "c", False)
    assert [m["destination"] for m in mounts] == ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"]
    assert all(os.path.isabs(m["source"]) for m in mounts)
