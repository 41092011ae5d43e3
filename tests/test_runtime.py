"""spec.runtime: image config -> runtime-spec config.json (env, user, cwd,
entrypoint + cmd, annotations, volumes, rootless)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from oci_tools.errors import NotFoundError
from oci_tools.spec.model import ImageConfig
from oci_tools.spec.runtime import User, resolve_user, runtime_config

FILES = {
    "/etc/passwd": b"root:x:0:0:root:/root:/bin/sh\n# comment\n"
    b"app:x:1000:1000::/home/app:/bin/sh\n",
    "/etc/group": b"root:x:0:\napp:x:1000:\nwheel:x:10:app\naudio:x:29:app,other\n",
}


def read_file(path: str) -> bytes | None:
    return FILES.get(path)


def _cfg(**config: Any) -> ImageConfig:
    return ImageConfig.from_dict(
        {
            "architecture": "arm64",
            "os": "linux",
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": []},
        }
    )


def test_defaults_for_an_empty_config() -> None:
    spec = runtime_config(_cfg(), read_file)
    proc = spec["process"]
    assert proc["args"] == ["sh"]
    assert proc["cwd"] == "/"
    assert proc["user"] == {"uid": 0, "gid": 0}
    assert proc["env"][0].startswith("PATH=") and "TERM=xterm" in proc["env"]
    assert spec["annotations"]["org.opencontainers.image.architecture"] == "arm64"


def test_env_overrides_the_template_and_keeps_image_order() -> None:
    env = runtime_config(_cfg(Env=["PATH=/x", "B=2", "A=1"]), read_file)["process"]["env"]
    assert env == ["TERM=xterm", "PATH=/x", "B=2", "A=1"]


def test_entrypoint_and_cmd_become_args_and_explicit_args_win() -> None:
    cfg = _cfg(Entrypoint=["/bin/app", "--flag"], Cmd=["serve"])
    assert runtime_config(cfg, read_file)["process"]["args"] == ["/bin/app", "--flag", "serve"]
    assert runtime_config(_cfg(Cmd=["ls"]), read_file)["process"]["args"] == ["ls"]
    assert runtime_config(cfg, read_file, args=["true"])["process"]["args"] == ["true"]


def test_working_dir_becomes_an_absolute_cwd() -> None:
    assert runtime_config(_cfg(WorkingDir="/srv"), read_file)["process"]["cwd"] == "/srv"
    assert runtime_config(_cfg(WorkingDir="srv"), read_file)["process"]["cwd"] == "/srv"


def test_user_is_resolved_through_the_rootfs_passwd_and_group() -> None:
    proc = runtime_config(_cfg(User="app"), read_file)["process"]
    assert proc["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10, 29]}
    assert "HOME=/home/app" in proc["env"]
    assert resolve_user("app:wheel", read_file) == User(1000, 10, (), "/home/app")
    assert resolve_user("4242", read_file) == User(4242, 0, (), None)
    assert resolve_user("4242:7", read_file) == User(4242, 7, (), None)
    with pytest.raises(NotFoundError, match="unable to find user 'nobody'"):
        resolve_user("nobody", read_file)
    with pytest.raises(NotFoundError, match="unable to find group 'staff'"):
        resolve_user("app:staff", read_file)


def test_rootless_drops_additional_gids_and_maps_the_caller() -> None:
    spec = runtime_config(_cfg(User="app"), read_file, rootless=True)
    assert "additionalGids" not in spec["process"]["user"]
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert {"type": "user"} in spec["linux"]["namespaces"]


def test_labels_volumes_and_ports() -> None:
    cfg = _cfg(
        Labels={"org.opencontainers.image.os": "label wins", "x": "1"},
        Volumes={"/data": {}},
        ExposedPorts={"80/tcp": {}, "53/udp": {}},
        StopSignal="SIGTERM",
    )
    spec = runtime_config(cfg, read_file)
    ann = spec["annotations"]
    assert ann["org.opencontainers.image.os"] == "label wins" and ann["x"] == "1"
    assert ann["org.opencontainers.image.exposedPorts"] == "53/udp,80/tcp"
    assert ann["org.opencontainers.image.stopSignal"] == "SIGTERM"
    assert next(m for m in spec["mounts"] if m["destination"] == "/data")["type"] == "tmpfs"
