"""Image config -> runtime-spec ``config.json`` (image-spec conversion.md).

The template follows what ``runc spec``/umoci generate so that ``runc run``
starts the bundle; the image's fields override it as conversion.md says:
Env verbatim, Entrypoint+Cmd -> args, WorkingDir -> cwd, User resolved
through the rootfs's /etc/passwd and /etc/group (an unknown user is an error),
labels and platform fields -> annotations, Volumes -> tmpfs mounts.

Files from the rootfs are read through a caller-supplied function that must
resolve paths inside the rootfs (never following a symlink out of it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oci_tools.errors import InvalidDocumentError, NotFoundError
from oci_tools.records import record
from oci_tools.spec.model import ImageConfig

RUNTIME_SPEC_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_ID = 2**31 - 1

ReadFile = Callable[[str], bytes | None]


@record
class User:
    """A resolved ``process.user``."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str | None = None


def _parse_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    n = int(text)
    if n > MAX_ID:
        raise InvalidDocumentError("config", [f"User id {text} is out of range"])
    return n


def _lines(data: bytes | None) -> list[list[str]]:
    if not data:
        return []
    out = []
    for line in data.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        out.append(line.split(":"))
    return out


def resolve_user(spec: str, read_file: ReadFile) -> User:
    """Resolve ``Config.User`` (``user``, ``uid``, ``user:group``, ...) against
    the rootfs's passwd and group files (moby/sys GetExecUser semantics)."""
    if not spec:
        return User(0, 0, (), None)
    user_part, _, group_part = spec.partition(":")
    passwd = [p for p in _lines(read_file("/etc/passwd")) if len(p) >= 7]
    groups = [g for g in _lines(read_file("/etc/group")) if len(g) >= 4]

    uid_num = _parse_id(user_part)
    entry = None
    for p in passwd:
        if (uid_num is not None and p[2] == str(uid_num)) or (
            uid_num is None and p[0] == user_part
        ):
            entry = p
            break
    if entry is None:
        if uid_num is None:
            raise NotFoundError(
                f"unable to find user {user_part!r} in the image's /etc/passwd",
                hint="use a numeric uid or add the user to the image",
            )
        uid, gid, home, name = uid_num, 0, None, None
    else:
        uid = _parse_id(entry[2]) or 0
        gid = _parse_id(entry[3]) or 0
        home, name = entry[5], entry[0]

    extra: tuple[int, ...] = ()
    if group_part:
        gid_num = _parse_id(group_part)
        found = next(
            (g for g in groups if (g[2] if gid_num is not None else g[0]) == group_part), None
        )
        if found is not None:
            gid = _parse_id(found[2]) or 0
        elif gid_num is not None:
            gid = gid_num
        else:
            raise NotFoundError(f"unable to find group {group_part!r} in the image's /etc/group")
    elif name is not None:
        extra = tuple(
            sorted(
                {
                    gnum
                    for g in groups
                    if name in g[3].split(",")
                    and (gnum := _parse_id(g[2])) is not None
                    and gnum != gid
                }
            )
        )
    return User(uid, gid, extra, home)


def _template(terminal: bool) -> dict[str, Any]:
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": RUNTIME_SPEC_VERSION,
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "oci-tools",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": [
                    "nosuid",
                    "noexec",
                    "newinstance",
                    "ptmxmode=0666",
                    "mode=0620",
                    "gid=5",
                ],
            },
            {
                "destination": "/dev/shm",
                "type": "tmpfs",
                "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
            {
                "destination": "/dev/mqueue",
                "type": "mqueue",
                "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            },
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/sys/firmware",
                "/proc/scsi",
            ],
            "readonlyPaths": [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ],
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        },
    }


def _merge_env(base: list[str], image_env: list[str]) -> list[str]:
    names = {e.split("=", 1)[0] for e in image_env}
    return [e for e in base if e.split("=", 1)[0] not in names] + list(image_env)


def runtime_config(
    cfg: ImageConfig,
    read_file: ReadFile,
    *,
    terminal: bool = False,
    rootless: bool = False,
    args: list[str] | None = None,
    network_host: bool = False,
    extra_env: Sequence[str] = (),
) -> dict[str, Any]:
    """The runtime-spec ``config.json`` for a bundle of image ``cfg``;
    ``extra_env`` items go before the image's Env (as if listed first in it)."""
    spec = _template(terminal)
    proc = spec["process"]
    c: Mapping[str, Any] = cfg.config or {}
    env = [*extra_env, *(e for e in (c.get("Env") or []) if isinstance(e, str))]
    proc["env"] = _merge_env(proc["env"], env)
    entry = list(c.get("Entrypoint") or [])
    cmd = list(c.get("Cmd") or [])
    if args is not None:
        proc["args"] = args
    elif entry or cmd:
        proc["args"] = entry + cmd
    workdir = c.get("WorkingDir") or "/"
    proc["cwd"] = workdir if workdir.startswith("/") else "/" + workdir
    user = resolve_user(str(c.get("User") or ""), read_file)
    proc["user"] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids and not rootless:
        proc["user"]["additionalGids"] = list(user.additional_gids)
    if user.home and not any(e.startswith("HOME=") for e in proc["env"]):
        proc["env"].append(f"HOME={user.home}")

    ann: dict[str, str] = {
        "org.opencontainers.image.os": cfg.os,
        "org.opencontainers.image.architecture": cfg.architecture,
    }
    if cfg.variant:
        ann["org.opencontainers.image.variant"] = cfg.variant
    if cfg.author:
        ann["org.opencontainers.image.author"] = cfg.author
    if cfg.created:
        ann["org.opencontainers.image.created"] = cfg.created
    if c.get("StopSignal"):
        ann["org.opencontainers.image.stopSignal"] = str(c["StopSignal"])
    ports = c.get("ExposedPorts") or {}
    if ports:
        ann["org.opencontainers.image.exposedPorts"] = ",".join(sorted(ports))
    ann.update({k: str(v) for k, v in (c.get("Labels") or {}).items()})  # labels win
    spec["annotations"] = {k: v for k, v in ann.items() if v}

    for vol in sorted(c.get("Volumes") or {}):
        spec["mounts"].append(
            {
                "destination": vol,
                "type": "tmpfs",
                "source": "none",
                "options": ["rw", "nosuid", "nodev", "noexec", "relatime"],
            }
        )
    if network_host:
        spec["linux"]["namespaces"] = [
            n for n in spec["linux"]["namespaces"] if n["type"] != "network"
        ]
    if rootless:
        _to_rootless(spec)
    return spec


def _to_rootless(spec: dict[str, Any]) -> None:
    import os

    linux = spec["linux"]
    linux["namespaces"] = [n for n in linux["namespaces"] if n["type"] != "network"]
    linux["namespaces"].append({"type": "user"})
    linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    linux.pop("resources", None)
    for m in spec["mounts"]:
        if "options" in m:
            m["options"] = [o for o in m["options"] if not o.startswith(("uid=", "gid="))]
        if m["destination"] == "/sys":
            m.update(
                {
                    "type": "none",
                    "source": "/sys",
                    "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
                }
            )
    spec["mounts"] = [m for m in spec["mounts"] if m["destination"] != "/sys/fs/cgroup"]


__all__ = ["User", "resolve_user", "runtime_config"]
