"""Images in a layout: small read-only views, and mutations that return new images.

An ``Image`` is (layout, manifest descriptor, manifest, config).  Nothing here
edits a document in place: a change builds a new config and manifest, writes
them blob-first, and only then (optionally) points a ref at the result.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError, UsageError
from oci_tools.layout import Layout, Resolved, host_platform
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, ImageConfig, Manifest, Platform, dump_json
from oci_tools.store import put_bytes

#: Layer descriptor annotation caching the uncompressed size (a hint only).
UNCOMPRESSED_SIZE = "io.github.oci-tools.uncompressed-size"


def source_date_epoch() -> int | None:
    """SOURCE_DATE_EPOCH from the environment, validated."""
    v = os.environ.get("SOURCE_DATE_EPOCH")
    if v is None or v == "":
        return None
    try:
        n = int(v)
    except ValueError:
        raise UsageError(f"SOURCE_DATE_EPOCH={v!r} is not an integer") from None
    if n < 0:
        raise UsageError(f"SOURCE_DATE_EPOCH={v!r} is negative")
    return n


def format_time(ts: float | _dt.datetime) -> str:
    """RFC 3339 UTC with ``Z`` (seconds precision unless fractional)."""
    dt = ts if isinstance(ts, _dt.datetime) else _dt.datetime.fromtimestamp(ts, _dt.UTC)
    dt = dt.astimezone(_dt.UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def created_now(explicit: str | None = None) -> str:
    """The ``created`` value for a new step: explicit, SOURCE_DATE_EPOCH, or now."""
    if explicit:
        try:
            _dt.datetime.fromisoformat(explicit.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--created {explicit!r} is not an RFC 3339 time") from None
        return explicit
    sde = source_date_epoch()
    if sde is not None:
        return format_time(sde)
    return format_time(_dt.datetime.now(_dt.UTC).replace(microsecond=0))


@dataclass(frozen=True, slots=True)
class Image:
    """A read-only view of one image manifest in a layout."""

    layout: Layout
    descriptor: Descriptor  # the manifest's descriptor
    manifest: Manifest
    config: ImageConfig
    ref: str | None = None

    @classmethod
    def load(cls, layout: Layout, ref: str, platform: Platform | None = None) -> Image:
        """Resolve ``ref`` and read its manifest and config."""
        r: Resolved = layout.resolve(ref, platform)
        return cls.from_descriptor(layout, r.manifest_descriptor, ref)

    @classmethod
    def from_descriptor(cls, layout: Layout, desc: Descriptor, ref: str | None = None) -> Image:
        """Read the image a manifest descriptor points at."""
        m = layout.manifest(desc)
        return cls(layout, desc, m, layout.config(m), ref)

    @property
    def id(self) -> Digest:
        """The image id oci-tools shows: the manifest digest (what skopeo and
        the containerd image store report)."""
        return self.descriptor.digest

    @property
    def layers(self) -> tuple[Descriptor, ...]:
        return self.manifest.layers

    def check_consistent(self) -> None:
        """Layers and diff_ids must pair up."""
        if len(self.manifest.layers) != len(self.config.diff_ids):
            raise InvalidDocumentError(
                "image",
                [
                    f"{len(self.manifest.layers)} layers but "
                    f"{len(self.config.diff_ids)} diff_ids in the config"
                ],
            )

    def uncompressed_size(self, i: int) -> int | None:
        """Cached uncompressed size of layer ``i`` if known."""
        d = self.manifest.layers[i]
        v = d.annotations.get(UNCOMPRESSED_SIZE)
        if v is not None and v.isdigit():
            return int(v)
        if mt.LAYER_CODECS.get(d.media_type) == "none":
            return d.size
        return None


def write_image(
    layout: Layout,
    config_doc: Mapping[str, Any],
    layers: Sequence[Descriptor],
    *,
    ref: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Write config then manifest (blob-first), then point ``ref`` at it.

    Returns the manifest descriptor (with platform, without ref annotation).
    """
    config = ImageConfig.from_dict(config_doc)
    if len(config.diff_ids) != len(layers):
        raise InvalidDocumentError(
            "image", [f"{len(layers)} layers but {len(config.diff_ids)} diff_ids"]
        )
    cdesc = config.descriptor(mt.OCI_CONFIG)
    put_bytes(layout.store, config.raw)
    manifest = Manifest.build(cdesc, list(layers), annotations)
    put_bytes(layout.store, manifest.raw)
    mdesc = Descriptor(
        mt.OCI_MANIFEST,
        manifest.digest,
        manifest.size,
        platform=Platform(config.os, config.architecture, config.variant),
    )
    if ref is not None:
        layout.set_ref(ref, mdesc)
    return mdesc


def empty_config(platform: Platform | None = None, created: str | None = None) -> dict[str, Any]:
    """The config of an image with no layers (what ``new`` writes)."""
    p = platform or host_platform()
    doc: dict[str, Any] = {"created": created or created_now()}
    doc["architecture"] = p.architecture
    doc["os"] = p.os
    if p.variant:
        doc["variant"] = p.variant
    doc["config"] = {}
    doc["rootfs"] = {"type": "layers", "diff_ids": []}
    doc["history"] = []
    return doc


def new_image(layout: Layout, ref: str, *, platform: Platform | None = None) -> Descriptor:
    """Create an empty image (config with no layers) and tag it ``ref``."""
    return write_image(layout, empty_config(platform), [], ref=ref)


def append_history(doc: dict[str, Any], row: History) -> None:
    """Append a history row to a config document being built."""
    hist = doc.get("history")
    if not isinstance(hist, list):
        hist = []
    hist.append(row.to_dict())
    doc["history"] = hist


def config_bytes(doc: Mapping[str, Any]) -> bytes:
    """How a config document is serialized (shared by every writer)."""
    return dump_json(doc)


__all__ = [
    "UNCOMPRESSED_SIZE",
    "ConfigEdit",
    "Image",
    "append_history",
    "apply_config_edit",
    "created_now",
    "edit_image",
    "empty_config",
    "format_time",
    "new_image",
    "nop_created_by",
    "source_date_epoch",
    "write_image",
]


# ---------------------------------------------------------------------------
# config edits (``oci-tools config``)


@dataclass(frozen=True, slots=True)
class ConfigEdit:
    """Changes to an image config, as the ``config`` command takes them."""

    env: tuple[str, ...] = ()
    unset_env: tuple[str, ...] = ()
    entrypoint: list[str] | None = None
    clear_entrypoint: bool = False
    cmd: list[str] | None = None
    clear_cmd: bool = False
    workdir: str | None = None
    user: str | None = None
    labels: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    stop_signal: str | None = None
    author: str | None = None
    os: str | None = None
    arch: str | None = None


def _docker_list(items: Sequence[str]) -> str:
    """How Docker's classic builder prints an exec-form list in created_by."""
    return "[" + " ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]"


def _split_kv(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{what} {text!r} must be KEY=VALUE")
    return key, value


def apply_config_edit(doc: dict[str, Any], edit: ConfigEdit) -> list[str]:
    """Apply ``edit`` to a config document in place.

    Returns the Docker-style instruction texts (``ENV K=V``, ``EXPOSE 80``,
    ...) describing it, for the history row's ``created_by``.
    """
    conf = doc.get("config")
    if not isinstance(conf, dict):
        conf = {}
        doc["config"] = conf
    steps: list[str] = []
    if edit.env or edit.unset_env:
        env = [e for e in (conf.get("Env") or []) if isinstance(e, str)]
        for k in edit.unset_env:
            env = [e for e in env if e.split("=", 1)[0] != k]
        for item in edit.env:
            k, _ = _split_kv(item, "--env")
            # Re-setting a variable replaces it in place (as docker/umoci do).
            idx = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == k), None)
            if idx is None:
                env.append(item)
            else:
                env[idx] = item
        conf["Env"] = env
        if edit.env:
            steps.append("ENV " + " ".join(edit.env))
        if edit.unset_env:
            steps.append("UNSET " + " ".join(edit.unset_env))
    if edit.clear_entrypoint:
        conf.pop("Entrypoint", None)
        steps.append("ENTRYPOINT []")
    if edit.entrypoint is not None:
        conf["Entrypoint"] = list(edit.entrypoint)
        steps.append("ENTRYPOINT " + _docker_list(edit.entrypoint))
    if edit.clear_cmd:
        conf.pop("Cmd", None)
        steps.append("CMD []")
    if edit.cmd is not None:
        conf["Cmd"] = list(edit.cmd)
        steps.append("CMD " + _docker_list(edit.cmd))
    if edit.workdir is not None:
        conf["WorkingDir"] = edit.workdir
        steps.append(f"WORKDIR {edit.workdir}")
    if edit.user is not None:
        conf["User"] = edit.user
        steps.append(f"USER {edit.user}")
    if edit.labels:
        labels = dict(conf.get("Labels") or {})
        for item in edit.labels:
            k, v = _split_kv(item, "--label")
            labels[k] = v
        conf["Labels"] = labels
        steps.append("LABEL " + " ".join(edit.labels))
    if edit.expose:
        ports = dict(conf.get("ExposedPorts") or {})
        for p in edit.expose:
            port, _, proto = p.partition("/")
            if (
                not port.isdigit()
                or not 0 < int(port) < 65536
                or proto not in ("", "tcp", "udp", "sctp")
            ):
                raise UsageError(f"--expose {p!r} is not PORT[/tcp|udp|sctp]")
            ports[f"{port}/{proto or 'tcp'}"] = {}
        conf["ExposedPorts"] = ports
        steps.append("EXPOSE " + " ".join(edit.expose))
    if edit.volumes:
        vols = dict(conf.get("Volumes") or {})
        for v in edit.volumes:
            if not v.startswith("/"):
                raise UsageError(f"--volume {v!r} must be an absolute path")
            vols[v] = {}
        conf["Volumes"] = vols
        steps.append("VOLUME " + _docker_list(edit.volumes))
    if edit.stop_signal is not None:
        conf["StopSignal"] = edit.stop_signal
        steps.append(f"STOPSIGNAL {edit.stop_signal}")
    if edit.author is not None:
        doc["author"] = edit.author
        steps.append(f"MAINTAINER {edit.author}")
    if edit.os is not None:
        doc["os"] = edit.os
    if edit.arch is not None:
        doc["architecture"] = edit.arch
    return steps


def nop_created_by(steps: Sequence[str]) -> str:
    """Docker classic builder's ``created_by`` for metadata-only steps."""
    return "/bin/sh -c #(nop)  " + "; ".join(steps)


def edit_image(
    layout: Layout,
    image: Image,
    edit: ConfigEdit,
    *,
    ref: str,
    created: str | None = None,
    created_by: str | None = None,
) -> Descriptor:
    """Write a copy of ``image`` with its config edited and one empty_layer
    history row appended; layers are untouched.  Points ``ref`` at it."""
    doc = image.config.as_dict()
    steps = apply_config_edit(doc, edit)
    when = created_now(created)
    append_history(
        doc,
        History(
            created=when,
            created_by=created_by or nop_created_by(steps or ["(no change)"]),
            author=edit.author,
            empty_layer=True,
        ),
    )
    doc["created"] = when
    return write_image(layout, doc, list(image.layers), ref=ref)
