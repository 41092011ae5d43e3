"""Change an image: every function returns a NEW ``Image``; only ``write`` touches disk.

Images are values (``oci_tools.image``).  The functions here derive a new image
from an old one -- its config serialized once into new bytes, a new manifest
over them -- and leave the old one as it was.  A derived image is held in
memory until ``write(layout, image)`` puts its config and manifest blobs into a
layout (its layer blobs must already be there, or in the layout the image was
read from).  Tagging is a separate step: ``layout.set_ref(ref, descriptor)``.
Digests are always those of the bytes that are stored.

This is the one module that edits a config document; nothing else does.

Typical use (what ``bundle.commit`` does, and how ``build`` steps map onto it)::

    from oci_tools import mutate
    from oci_tools.image import Image, Layer, created_now
    from oci_tools.spec.model import History

    base = Image.load(layout, "base")
    when = created_now()                        # SOURCE_DATE_EPOCH honoured

    # RUN / COPY / ADD: write the layer blob to the store first (diff.write_diff
    # or layer.writer.write_layer into layout.store.writer()), then:
    layer = Layer.create(media_type, info.digest, info.size, info.diff_id,
                         info.uncompressed_size)
    img = mutate.append_layer(base, layer,
                              history=History(created=when, created_by="/bin/sh -c make"))

    # ENV / LABEL / CMD / USER / WORKDIR ...: a config edit plus an
    # empty_layer history row describing it
    edit = mutate.ConfigEdit(env=("PATH=/usr/bin",))
    img = mutate.edit_config(img, edit)
    img = mutate.add_history(img, History(created=when,
                                          created_by=mutate.nop_created_by(edit.describe()),
                                          empty_layer=True))
    img = mutate.set_created(img, when)

    desc = mutate.write(layout, img)            # blobs only: nothing is tagged
    layout.set_ref("app", desc)                 # tagging is its own step

A builder keeps intermediate states as ``Image`` values (or just their
descriptors, after ``write``), so it needs no fake ref to pass between steps.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from oci_tools.errors import BlobNotFoundError, InvalidDocumentError, UsageError
from oci_tools.image import Image, Layer, created_now, format_time
from oci_tools.layout import Layout, host_platform
from oci_tools.records import record
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    Descriptor,
    History,
    ImageConfig,
    Manifest,
    Platform,
    merge_annotations,
)
from oci_tools.store import put_stream

# ---------------------------------------------------------------------------
# assembling an image value from a config document


def _assemble(
    layout: Layout,
    config_doc: Mapping[str, Any],
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """The image made of ``config_doc`` (serialized once, here) and ``layers``,
    with a new OCI manifest over them; nothing is written."""
    config = ImageConfig.from_dict(config_doc)
    if len(config.diff_ids) != len(layers):
        raise InvalidDocumentError(
            "image", [f"{len(layers)} layers but {len(config.diff_ids)} diff_ids"]
        )
    manifest = Manifest.build(config.descriptor(mt.OCI_CONFIG), list(layers), annotations)
    desc = Descriptor(
        mt.OCI_MANIFEST,
        manifest.digest,
        manifest.size,
        platform=Platform(config.os, config.architecture, config.variant),
    )
    return Image(layout, desc, manifest, config, None)


def _change(image: Image, change: Callable[[dict[str, Any]], None]) -> Image:
    """``image`` with its config document changed by ``change`` (on a copy);
    the layers stay as they are."""
    doc = image.config.as_dict()
    change(doc)
    return _assemble(image.layout, doc, image.layers)


def empty_config(platform: Platform | None = None, created: str | None = None) -> dict[str, Any]:
    """The config document of an image with no layers (what ``new`` writes);
    ``created`` defaults to ``created_now()``."""
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


def empty_image(
    layout: Layout, *, platform: Platform | None = None, created: str | None = None
) -> Image:
    """An image with no layers and an empty config (``FROM scratch``), for
    ``platform`` (default: this host).  Without ``created`` the config has no
    ``created`` field at all, so the same empty start has the same digest
    every time; ``set_created`` adds one."""
    p = platform or host_platform()
    doc: dict[str, Any] = {}
    if created is not None:
        doc["created"] = created_now(created)
    doc["architecture"] = p.architecture
    doc["os"] = p.os
    if p.variant:
        doc["variant"] = p.variant
    doc.update(config={}, rootfs={"type": "layers", "diff_ids": []}, history=[])
    return _assemble(layout, doc, [])


def assemble(
    layout: Layout,
    config_doc: Mapping[str, Any],
    layers: Sequence[Descriptor],
    annotations: Mapping[str, str] | None = None,
) -> Image:
    """The image made of ``config_doc`` (serialized once, here), ``layers``
    and manifest ``annotations``, with a new OCI manifest over them; nothing
    is written.  For operations that rebuild an image's layer list (squash,
    rebase); InvalidDocumentError when layers and diff_ids do not pair up."""
    return _assemble(layout, config_doc, layers, annotations)


# ---------------------------------------------------------------------------
# the changes


def _append_row(doc: dict[str, Any], row: History) -> None:
    hist = doc.get("history")
    if not isinstance(hist, list):
        hist = []
    hist.append(row.to_dict())
    doc["history"] = hist


def append_layer(image: Image, layer: Layer, *, history: History | None = None) -> Image:
    """``image`` with ``layer`` on top: its descriptor appended to the
    manifest, its diff_id to the config's ``rootfs.diff_ids``, and one history
    row (``history``, or an empty row) for it.  The layer's blob must be in the
    layout the image is written to (``write`` copies it from ``image.layout``
    when it is only there)."""
    row = history if history is not None else History()
    if row.empty_layer:
        raise UsageError(
            "append_layer needs a history row for the layer, not an empty_layer row",
            hint="add empty_layer rows with add_history",
        )
    image.check_consistent()
    doc = image.config.as_dict()
    _append_row(doc, row)
    rootfs = doc["rootfs"]  # present: the config parsed
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), str(layer.diff_id)]
    return _assemble(image.layout, doc, [*image.layers, layer.descriptor])


def add_history(image: Image, row: History) -> Image:
    """``image`` with history row ``row`` appended; it must be an
    ``empty_layer`` row (a layer's row comes with ``append_layer``)."""
    if not row.empty_layer:
        raise UsageError(
            "add_history takes empty_layer rows only",
            hint="a row for a new layer is added by append_layer",
        )
    return _change(image, lambda doc: _append_row(doc, row))


def set_created(image: Image, when: str | float | _dt.datetime | None = None) -> Image:
    """``image`` with its config's ``created`` time set to ``when``: an RFC
    3339 string, a Unix time or a datetime; None means SOURCE_DATE_EPOCH when
    set, else now (see ``image.created_now``)."""
    text = created_now(when) if isinstance(when, str) or when is None else format_time(when)

    def change(doc: dict[str, Any]) -> None:
        doc["created"] = text

    return _change(image, change)


@record
class ConfigEdit:
    """Changes to an image config: what ``edit_config`` applies.

    ``env`` and ``labels`` are ``KEY=VALUE`` items (re-setting a variable
    replaces it in place); ``expose`` is ``PORT[/tcp|udp|sctp]``; ``volumes``
    are absolute paths; ``entrypoint``/``cmd`` replace the exec form (the
    ``clear_*`` flags remove it); ``author`` sets the config's author.
    """

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
    #: Docker's ``Shell`` (the SHELL instruction): the shell form's program.
    shell: list[str] | None = None

    def describe(self) -> list[str]:
        """The Docker-style instruction texts for this edit (``ENV K=V``,
        ``EXPOSE 80``, ...), in the order they apply, for ``created_by``."""
        steps: list[str] = []
        if self.env:
            steps.append("ENV " + " ".join(self.env))
        if self.unset_env:
            steps.append("UNSET " + " ".join(self.unset_env))
        if self.clear_entrypoint:
            steps.append("ENTRYPOINT []")
        if self.entrypoint is not None:
            steps.append("ENTRYPOINT " + _docker_list(self.entrypoint))
        if self.clear_cmd:
            steps.append("CMD []")
        if self.cmd is not None:
            steps.append("CMD " + _docker_list(self.cmd))
        if self.workdir is not None:
            steps.append(f"WORKDIR {self.workdir}")
        if self.user is not None:
            steps.append(f"USER {self.user}")
        if self.labels:
            steps.append("LABEL " + " ".join(self.labels))
        if self.expose:
            steps.append("EXPOSE " + " ".join(self.expose))
        if self.volumes:
            steps.append("VOLUME " + _docker_list(self.volumes))
        if self.stop_signal is not None:
            steps.append(f"STOPSIGNAL {self.stop_signal}")
        if self.author is not None:
            steps.append(f"MAINTAINER {self.author}")
        if self.shell is not None:
            steps.append("SHELL [" + " ".join(self.shell) + "]")
        return steps


def _docker_list(items: Sequence[str]) -> str:
    """How Docker's classic builder prints an exec-form list in created_by."""
    return "[" + " ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]"


def _split_kv(text: str, what: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"{what} {text!r} must be KEY=VALUE")
    return key, value


def _apply_edit(doc: dict[str, Any], edit: ConfigEdit) -> None:
    """Apply ``edit`` to a config document in place (validating its items)."""
    conf = doc.get("config")
    if not isinstance(conf, dict):
        conf = {}
        doc["config"] = conf
    if edit.env or edit.unset_env:
        env = [e for e in (conf.get("Env") or []) if isinstance(e, str)]
        for k in edit.unset_env:
            env = [e for e in env if e.split("=", 1)[0] != k]
        for item in edit.env:
            k, _ = _split_kv(item, "environment variable")
            # Re-setting a variable replaces it in place (as docker/umoci do).
            idx = next((i for i, e in enumerate(env) if e.split("=", 1)[0] == k), None)
            if idx is None:
                env.append(item)
            else:
                env[idx] = item
        conf["Env"] = env
    if edit.clear_entrypoint:
        conf.pop("Entrypoint", None)
    if edit.entrypoint is not None:
        conf["Entrypoint"] = list(edit.entrypoint)
    if edit.clear_cmd:
        conf.pop("Cmd", None)
    if edit.cmd is not None:
        conf["Cmd"] = list(edit.cmd)
    if edit.workdir is not None:
        conf["WorkingDir"] = edit.workdir
    if edit.user is not None:
        conf["User"] = edit.user
    if edit.labels:
        labels = dict(conf.get("Labels") or {})
        for item in edit.labels:
            k, v = _split_kv(item, "label")
            labels[k] = v
        conf["Labels"] = labels
    if edit.expose:
        ports = dict(conf.get("ExposedPorts") or {})
        for p in edit.expose:
            port, _, proto = p.partition("/")
            if (
                not port.isdigit()
                or not 0 < int(port) < 65536
                or proto not in ("", "tcp", "udp", "sctp")
            ):
                raise UsageError(f"exposed port {p!r} is not PORT[/tcp|udp|sctp]")
            ports[f"{port}/{proto or 'tcp'}"] = {}
        conf["ExposedPorts"] = ports
    if edit.volumes:
        vols = dict(conf.get("Volumes") or {})
        for v in edit.volumes:
            if not v.startswith("/"):
                raise UsageError(f"volume {v!r} must be an absolute path")
            vols[v] = {}
        conf["Volumes"] = vols
    if edit.stop_signal is not None:
        conf["StopSignal"] = edit.stop_signal
    if edit.author is not None:
        doc["author"] = edit.author
    if edit.shell is not None:
        conf["Shell"] = list(edit.shell)
    if edit.os is not None:
        doc["os"] = edit.os
    if edit.arch is not None:
        doc["architecture"] = edit.arch


def edit_config(image: Image, edit: ConfigEdit) -> Image:
    """``image`` with ``edit`` applied to its config; layers and history are
    unchanged (add a row describing the edit with ``add_history``).
    UsageError when an item of the edit is malformed."""
    return _change(image, lambda doc: _apply_edit(doc, edit))


def set_platform(image: Image, platform: Platform) -> Image:
    """``image`` with its config's ``os``, ``architecture`` and ``variant``
    set to ``platform`` (a variant the platform lacks is removed), as
    ``docker build --platform`` stamps a build's config; layers and history
    are unchanged, and so is an image already of that platform."""
    if Platform(image.config.os, image.config.architecture, image.config.variant) == Platform(
        platform.os, platform.architecture, platform.variant
    ):
        return image

    def change(doc: dict[str, Any]) -> None:
        doc["os"] = platform.os
        doc["architecture"] = platform.architecture
        if platform.variant:
            doc["variant"] = platform.variant
        else:
            doc.pop("variant", None)

    return _change(image, change)


def set_annotations(image: Image, changes: Mapping[str, str | None]) -> Image:
    """``image`` with its manifest annotations changed (a value of None
    removes the key).  The config keeps its exact bytes; only the manifest
    (and so the image digest) is new."""
    if any(not k for k in changes):
        raise UsageError("an annotation needs a non-empty key")
    ann = merge_annotations(image.manifest.annotations, changes)
    assert image.manifest.config is not None
    manifest = Manifest.build(image.manifest.config, list(image.layers), ann)
    desc = Descriptor(mt.OCI_MANIFEST, manifest.digest, manifest.size, platform=image.platform)
    return Image(image.layout, desc, manifest, image.config, None)


def set_labels(image: Image, labels: Mapping[str, str], *, remove: Sequence[str] = ()) -> Image:
    """``image`` with config labels set (``labels``) and removed (``remove``);
    the manifest annotations are kept.  No history row is added (``label``
    is metadata, as ``crane mutate --label`` does)."""

    def change(doc: dict[str, Any]) -> None:
        conf = doc.get("config")
        if not isinstance(conf, dict):
            conf = {}
            doc["config"] = conf
        cur = dict(conf.get("Labels") or {})
        for k in remove:
            cur.pop(k, None)
        for k, v in labels.items():
            if not k:
                raise UsageError("a label needs a non-empty key")
            cur[k] = v
        if cur:
            conf["Labels"] = cur
        else:
            conf.pop("Labels", None)

    doc = image.config.as_dict()
    change(doc)
    return _assemble(image.layout, doc, image.layers, image.manifest.annotations)


def nop_created_by(steps: Sequence[str]) -> str:
    """Docker classic builder's ``created_by`` for metadata-only steps."""
    return "/bin/sh -c #(nop)  " + "; ".join(steps)


# ---------------------------------------------------------------------------
# writing


def write(layout: Layout, image: Image) -> Descriptor:
    """Put ``image`` into ``layout``: its layer blobs (copied, verified, from
    ``image.layout`` when missing), then its config, then its manifest, each
    under the digest of the exact bytes held.  Nothing is tagged; returns the
    manifest descriptor to tag with ``layout.set_ref``.

    Untagged blobs are fair game for gc; hold ``layout.lock()`` around
    ``write`` and ``set_ref`` to make the pair atomic against a collector.
    """
    assert image.manifest.config is not None
    with layout.lock():
        for d in image.layers:
            if not layout.store.has(d.digest):
                _copy_blob(image.layout, layout, d)
        _put_exact(layout, image.manifest.config, image.config.raw)
        _put_exact(layout, image.descriptor, image.manifest.raw)
    return image.descriptor


def _put_exact(layout: Layout, desc: Descriptor, raw: bytes) -> None:
    if layout.store.has(desc.digest):
        return
    w = layout.store.writer()
    try:
        w.write(raw)
        w.commit(desc.digest, desc.size)  # refuses bytes that do not match
    except BaseException:
        w.abort()
        raise


def _copy_blob(src: Layout, dst: Layout, d: Descriptor) -> None:
    if src is dst or not src.store.has(d.digest):
        raise BlobNotFoundError(
            str(d.digest),
            hint=f"a layer blob must be in {dst.path} (or the image's own layout) before write",
        )
    r = src.store.open(d.digest, d.size)
    try:
        put_stream(dst.store, r, d.digest, d.size)  # type: ignore[arg-type]
    finally:
        r.close()


# ---------------------------------------------------------------------------
# document-level helpers and whole operations, kept for existing callers:
# the CLI (new_image, edit_image), and tests and bench that assemble test
# images from config documents (empty_config, append_history, write_image)


def append_history(doc: dict[str, Any], row: History) -> None:
    """Append a history row to a config document being built."""
    _append_row(doc, row)


def write_image(
    layout: Layout,
    config_doc: Mapping[str, Any],
    layers: Sequence[Descriptor],
    *,
    ref: str | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Write the image made of ``config_doc`` and ``layers`` (blob-first), then
    point ``ref`` at it when given.  Returns the manifest descriptor (with
    platform, without ref annotation)."""
    desc = write(layout, _assemble(layout, config_doc, layers, annotations))
    if ref is not None:
        layout.set_ref(ref, desc)
    return desc


def new_image(
    layout: Layout, ref: str, *, platform: Platform | None = None, replace: bool = True
) -> Descriptor:
    """Create an empty image (config with no layers) and tag it ``ref``.

    With ``replace=False`` an existing ``ref`` naming another image is kept
    and ClobberError is raised (the new image's blobs stay until gc)."""
    with layout.lock():
        desc = write(layout, _assemble(layout, empty_config(platform), []))
        layout.put_ref(ref, desc, replace=replace)
    return desc


def edit_image(
    layout: Layout,
    image: Image,
    edit: ConfigEdit,
    *,
    ref: str | None,
    created: str | None = None,
    created_by: str | None = None,
) -> Descriptor:
    """Write a copy of ``image`` with its config edited and one empty_layer
    history row appended (layers untouched), and point ``ref`` at it when
    given.  Returns the new manifest descriptor."""
    img = edit_config(image, edit)
    when = created_now(created)
    row = History(
        created=when,
        created_by=created_by or nop_created_by(edit.describe() or ["(no change)"]),
        author=edit.author,
        empty_layer=True,
    )
    img = set_created(add_history(img, row), when)
    with layout.lock():
        desc = write(layout, img)
        if ref is not None:
            layout.set_ref(ref, desc)
    return desc


__all__ = [
    "ConfigEdit",
    "add_history",
    "append_history",
    "append_layer",
    "assemble",
    "edit_config",
    "edit_image",
    "empty_config",
    "empty_image",
    "new_image",
    "nop_created_by",
    "set_annotations",
    "set_created",
    "set_labels",
    "set_platform",
    "write",
    "write_image",
]
