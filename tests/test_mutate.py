"""mutate: every change returns a new Image, the old one stays; write does not tag."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from builders import directory, file, make_layer
from verify import assert_valid_layout

from oci_tools.bundle import unpack
from oci_tools.digest import Digest
from oci_tools.errors import BlobNotFoundError, NotFoundError, UsageError
from oci_tools.image import Image, Layer
from oci_tools.layout import Layout
from oci_tools.mutate import (
    ConfigEdit,
    add_history,
    append_layer,
    edit_config,
    edit_image,
    empty_image,
    nop_created_by,
    set_created,
    write,
)
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import History, Platform
from oci_tools.store import put_bytes

T0 = "2024-01-01T00:00:00Z"
PLAT = Platform("linux", "amd64")


def _layer(lay: Layout, *members: object, codec: str = "gzip", put: bool = True) -> Layer:
    built = make_layer(list(members), codec)  # type: ignore[arg-type]
    if put:
        put_bytes(lay.store, built.blob)
    return Layer.create(
        mt.OCI_LAYER_FOR_CODEC[codec],
        Digest.parse(built.digest),
        len(built.blob),
        Digest.parse(built.diff_id),
        len(built.tar),
    )


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    return Layout.init(str(tmp_path / "lay"))


@pytest.fixture
def base(lay: Layout) -> Image:
    """An image with one layer, not written yet."""
    img = empty_image(lay, platform=PLAT, created=T0)
    layer = _layer(lay, directory("etc"), file("etc/hostname", b"base\n"))
    return append_layer(img, layer, history=History(created=T0, created_by="base step"))


def _snapshot(img: Image) -> tuple[bytes, bytes, object]:
    return img.manifest.raw, img.config.raw, img.descriptor


def test_append_layer_returns_a_new_image(lay: Layout, base: Image) -> None:
    before = _snapshot(base)
    layer = _layer(lay, file("app", b"app\n"))
    row = History(created=T0, created_by="COPY app /")
    new = append_layer(base, layer, history=row)
    assert _snapshot(base) == before
    assert new is not base and new.digest != base.digest and new.id != base.id
    assert new.layers == (*base.layers, layer.descriptor)
    assert new.config.diff_ids == (*base.config.diff_ids, layer.diff_id)
    assert new.config.history == (*base.config.history, row)
    assert new.layer(-1) == layer
    # nothing touched the disk: the new image is not in the layout
    assert not lay.store.has(new.digest) and not lay.store.has(new.id)
    assert new.ref is None


def test_append_layer_wants_a_layer_row(lay: Layout, base: Image) -> None:
    layer = _layer(lay, file("x"))
    with pytest.raises(UsageError):
        append_layer(base, layer, history=History(empty_layer=True))
    plain = append_layer(base, layer)  # default: an empty row, still one per layer
    assert plain.config.history[-1] == History()


def test_edit_config_returns_a_new_image(base: Image) -> None:
    before = _snapshot(base)
    edit = ConfigEdit(
        env=("A=1", "PATH=/bin"),
        labels=("k=v",),
        cmd=["sh", "-c", "x"],
        entrypoint=["/init"],
        workdir="/w",
        user="app",
        expose=("8080", "53/udp"),
        volumes=("/data",),
        author="me",
    )
    new = edit_config(base, edit)
    assert _snapshot(base) == before and base.config.config == {}
    c = new.config.config
    assert c["Env"] == ["A=1", "PATH=/bin"] and c["Labels"] == {"k": "v"}
    assert c["Cmd"] == ["sh", "-c", "x"] and c["Entrypoint"] == ["/init"]
    assert c["WorkingDir"] == "/w" and c["User"] == "app"
    assert c["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}} and c["Volumes"] == {"/data": {}}
    assert new.config.author == "me"
    # layers and history untouched
    assert new.layers == base.layers and new.config.history == base.config.history
    again = edit_config(new, ConfigEdit(env=("A=2",), unset_env=("PATH",), clear_cmd=True))
    assert again.config.config["Env"] == ["A=2"] and "Cmd" not in again.config.config
    assert new.config.config["Env"] == ["A=1", "PATH=/bin"]


def test_edit_describe_is_what_docker_records() -> None:
    edit = ConfigEdit(env=("A=1", "B=2"), cmd=["a", "b"], expose=("80",))
    assert edit.describe() == ["ENV A=1 B=2", 'CMD ["a" "b"]', "EXPOSE 80"]
    assert (
        nop_created_by(edit.describe())
        == '/bin/sh -c #(nop)  ENV A=1 B=2; CMD ["a" "b"]; EXPOSE 80'
    )


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (ConfigEdit(env=("NOVALUE",)), "environment variable"),
        (ConfigEdit(labels=("=v",)), "label"),
        (ConfigEdit(expose=("99999",)), "exposed port"),
        (ConfigEdit(volumes=("rel",)), "volume"),
    ],
)
def test_bad_edits_speak_of_the_operation(base: Image, edit: ConfigEdit, words: str) -> None:
    with pytest.raises(UsageError) as e:
        edit_config(base, edit)
    assert words in e.value.message and "--" not in e.value.message


def test_add_history_and_set_created(base: Image) -> None:
    before = _snapshot(base)
    row = History(created=T0, created_by=nop_created_by(["USER app"]), empty_layer=True)
    new = add_history(base, row)
    assert new.config.history == (*base.config.history, row) and new.layers == base.layers
    with pytest.raises(UsageError):
        add_history(base, History(created_by="RUN x"))
    later = set_created(new, "2025-02-03T04:05:06Z")
    assert later.config.created == "2025-02-03T04:05:06Z" and new.config.created == T0
    assert set_created(new, 0).config.created == "1970-01-01T00:00:00Z"
    when = dt.datetime(2020, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    assert set_created(new, when).config.created == "2020-05-06T07:08:09Z"
    with pytest.raises(UsageError) as e:
        set_created(new, "not a time")
    assert "--" not in e.value.message
    assert _snapshot(base) == before


def test_set_created_honours_source_date_epoch(
    base: Image, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert set_created(base).config.created == "2023-11-14T22:13:20Z"


def test_write_puts_blobs_and_does_not_tag(lay: Layout, base: Image) -> None:
    refs_before = lay.refs()
    desc = write(lay, base)
    assert desc == base.descriptor and desc.platform == PLAT
    assert lay.refs() == refs_before == []
    # the stored bytes are the image's own bytes
    assert lay.read_blob(desc) == base.manifest.raw
    assert base.manifest.config is not None
    assert lay.read_blob(base.manifest.config) == base.config.raw
    assert_valid_layout(lay.path)  # reads every blob, including untagged ones
    assert write(lay, base) == desc  # idempotent
    lay.set_ref("t", desc)  # tagging is its own step
    back = Image.load(lay, "t")
    assert back.digest == base.digest and back.id == base.id
    assert back.layer_values() == base.layer_values()
    assert_valid_layout(lay.path)


def test_write_needs_the_layer_blobs(lay: Layout, base: Image) -> None:
    missing = _layer(lay, file("ghost"), put=False)
    img = append_layer(base, missing, history=History(created_by="ghost"))
    with pytest.raises(BlobNotFoundError):
        write(lay, img)
    assert not lay.store.has(img.digest)


def test_write_copies_layers_from_the_images_own_layout(
    tmp_path: Path, lay: Layout, base: Image
) -> None:
    other = Layout.init(str(tmp_path / "other"))
    desc = write(other, base)
    other.set_ref("copied", desc)
    assert Image.load(other, "copied").layer_values() == base.layer_values()
    assert_valid_layout(other.path)


def test_append_layer_and_write_round_trip_through_unpack(
    tmp_path: Path, lay: Layout, base: Image
) -> None:
    top = _layer(lay, directory("app"), file("app/run", b"#!/bin/sh\n", mode=0o755))
    img = append_layer(base, top, history=History(created=T0, created_by="COPY app /app"))
    img = edit_config(img, ConfigEdit(cmd=["/app/run"]))
    lay.set_ref("app", write(lay, img))
    assert_valid_layout(lay.path)
    res = unpack(lay, "app", str(tmp_path / "bundle"), rootless=True)
    assert res.layers == 2 and res.image.digest == img.digest
    rootfs = tmp_path / "bundle" / "rootfs"
    assert (rootfs / "etc/hostname").read_bytes() == b"base\n"
    assert (rootfs / "app/run").read_bytes() == b"#!/bin/sh\n"
    spec = json.loads((tmp_path / "bundle" / "config.json").read_text())
    assert spec["process"]["args"] == ["/app/run"]


def test_same_inputs_give_the_same_manifest_digest(tmp_path: Path) -> None:
    digests = set()
    for name in ("one", "two"):
        lay = Layout.init(str(tmp_path / name))
        img = empty_image(lay, platform=PLAT, created=T0)
        img = append_layer(img, _layer(lay, file("f", b"x")), history=History(created=T0))
        img = add_history(
            edit_config(img, ConfigEdit(env=("A=1",))),
            History(created=T0, created_by=nop_created_by(["ENV A=1"]), empty_layer=True),
        )
        img = set_created(img, T0)
        digests.add(write(lay, img).digest)
    assert len(digests) == 1
    # and without "created", the empty start is the same on every call
    lay = Layout.init(str(tmp_path / "three"))
    assert empty_image(lay, platform=PLAT).digest == empty_image(lay, platform=PLAT).digest
    assert empty_image(lay, platform=PLAT).config.created is None


def test_edit_image_writes_and_tags_only_when_asked(lay: Layout, base: Image) -> None:
    write(lay, base)
    desc = edit_image(lay, base, ConfigEdit(user="app"), ref=None, created=T0)
    assert lay.refs() == []
    img = Image.from_descriptor(lay, desc)
    assert img.config.config["User"] == "app" and img.config.created == T0
    assert img.config.history[-1].created_by == "/bin/sh -c #(nop)  USER app"
    assert img.config.history[-1].empty_layer
    tagged = edit_image(lay, base, ConfigEdit(user="app"), ref="u", created=T0)
    assert tagged == desc and lay.lookup("u").digest == desc.digest
    assert_valid_layout(lay.path)


def test_an_untagged_image_can_be_unpacked_and_committed(
    tmp_path: Path, lay: Layout, base: Image
) -> None:
    from oci_tools.bundle import commit

    write(lay, base)
    b = tmp_path / "b"
    res = unpack(lay, base, str(b), rootless=True)
    assert res.image.digest == base.digest and lay.refs() == []
    (b / "rootfs" / "new").write_text("new\n")
    out = commit(str(b), lay, None)
    img = Image.from_descriptor(lay, out.descriptor)
    assert img.layers[:-1] == base.layers and lay.refs() == []
    with pytest.raises(NotFoundError, match="not in"):
        unpack(Layout.init(str(tmp_path / "other")), base, str(tmp_path / "c"))
