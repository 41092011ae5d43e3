"""The builder (``oci_tools.build.builder``): its dispatch table, options,
the checks it makes before any work, and how its metadata steps map onto the
mutate API (no image or root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oci_tools.build import SUPPORTED, BuildError, BuildOptions, build, parse_build_args
from oci_tools.build.builder import DEFAULT_PATH, STEP_KEYWORDS
from oci_tools.errors import NotFoundError, UsageError
from oci_tools.image import Image, created_now
from oci_tools.layout import Layout
from oci_tools.mutate import (
    ConfigEdit,
    add_history,
    edit_config,
    empty_image,
    nop_created_by,
    set_created,
)
from oci_tools.spec.model import History


def test_every_parsed_keyword_has_a_step() -> None:
    assert STEP_KEYWORDS == SUPPORTED


def test_parse_build_args() -> None:
    assert parse_build_args(["A=1", "B", "C=", "D=x=y"]) == {
        "A": "1",
        "B": None,
        "C": "",
        "D": "x=y",
    }
    with pytest.raises(UsageError, match="must be KEY=VALUE or KEY"):
        parse_build_args(["=x"])


@pytest.mark.parametrize(
    ("opts", "what"),
    [
        (BuildOptions(runtime="docker"), "--runtime 'docker'"),
        (BuildOptions(network="bridge"), "--network 'bridge'"),
        (BuildOptions(compress="lz4"), "layer compression 'lz4'"),
    ],
)
def test_bad_options_are_usage_errors(tmp_path: Path, opts: BuildOptions, what: str) -> None:
    with pytest.raises(UsageError, match=what):
        build(str(tmp_path / "lay"), opts)
    assert not (tmp_path / "lay").exists()


def test_missing_dockerfile(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no Dockerfile at") as ei:
        build(str(tmp_path / "lay"), BuildOptions(context=str(tmp_path)))
    assert ei.value.hint == "use -f PATH"


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ("ARG A\n", 1, "no FROM instruction"),
        ("ENV A=1\nFROM scratch\n", 1, "ENV before FROM"),
        ("FROM scratch\nFROM scratch\n", 2, "multi-stage builds"),
        ("FROM scratch\nRUN true\n", 2, "RUN is disabled (--runtime none)"),
    ],
)
def test_structure_is_checked_before_any_step(
    tmp_path: Path, text: str, line: int, what: str
) -> None:
    (tmp_path / "Dockerfile").write_text(text)
    log: list[str] = []
    with pytest.raises(BuildError) as ei:
        build(
            str(tmp_path / "lay"),
            BuildOptions(context=str(tmp_path), runtime="none"),
            log=log.append,
        )
    assert ei.value.line == line and what in ei.value.reason
    assert log == []  # not one step ran


# ---------------------------------------------------------------------------
# every step is a mutate operation; tags only at the end

META_DOCKERFILE = """\
FROM scratch
ENV A=1
USER app
CMD ["run"]
"""


def test_metadata_steps_are_the_mutate_operations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metadata-only build gives, step for step, the images that mutate's
    edit_config + add_history + set_created give (same digests)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    (tmp_path / "Dockerfile").write_text(META_DOCKERFILE)
    lay_path = str(tmp_path / "lay")
    log: list[str] = []
    res = build(
        lay_path,
        BuildOptions(context=str(tmp_path), runtime="none", tags=("app",)),
        log=log.append,
    )
    lay = Layout.open(lay_path)
    when = created_now()
    img = empty_image(lay)
    states = [img]
    # Docker's default PATH joins the Env at FROM, without a history row.
    img = edit_config(img, ConfigEdit(env=(DEFAULT_PATH,)))
    for text, edit in [
        ("ENV A=1", ConfigEdit(env=("A=1",))),
        ("USER app", ConfigEdit(user="app")),
        ('CMD ["run"]', ConfigEdit(cmd=["run"])),
    ]:
        img = edit_config(img, edit)
        row = History(created=when, created_by=nop_created_by([text]), empty_layer=True)
        img = set_created(add_history(img, row), when)
        states.append(img)
    ids = [line.removeprefix(" ---> ") for line in log if line.startswith(" ---> ")]
    assert ids == [s.id.short for s in states]  # config ids, as Docker prints
    assert res.descriptor.digest == img.digest
    assert Image.load(lay, "app").config.raw == img.config.raw


def test_only_the_tags_are_refs_and_a_failed_build_keeps_them(tmp_path: Path) -> None:
    """Intermediate states are untagged images (no private ref is ever
    written); a build that fails part-way changes no ref."""
    (tmp_path / "Dockerfile").write_text(META_DOCKERFILE)
    lay_path = str(tmp_path / "lay")
    first = build(lay_path, BuildOptions(context=str(tmp_path), runtime="none", tags=("app",)))
    lay = Layout.open(lay_path)
    assert [r for r, _ in lay.refs()] == ["app"]
    (tmp_path / "Dockerfile").write_text(META_DOCKERFILE + "ENV B=2\nEXPOSE 99999\n")
    with pytest.raises(BuildError, match="exposed port"):
        build(lay_path, BuildOptions(context=str(tmp_path), runtime="none", tags=("app", "new")))
    lay = Layout.open(lay_path)
    assert [r for r, _ in lay.refs()] == ["app"]
    assert lay.lookup("app").digest == first.descriptor.digest


# ---------------------------------------------------------------- Docker fidelity


def _history(lay_path: str, ref: str) -> list[str]:
    return [h.created_by or "" for h in Image.load(Layout.open(lay_path), ref).config.history]


def test_shell_path_expose_workdir_rows_as_docker(tmp_path: Path) -> None:
    """Issue 15 #1 #2 #5: SHELL is in the config and later rows start with it;
    PATH is added at FROM; EXPOSE sorted; WORKDIR with one space."""
    (tmp_path / "Dockerfile").write_text(
        "FROM scratch\nENV A=1\nEXPOSE 443/udp 80 8080/tcp 22\n"
        'SHELL ["/bin/bash", "-c"]\nCMD echo hi\nWORKDIR /app\n'
    )
    lay = str(tmp_path / "lay")
    build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("x",)))
    assert _history(lay, "x") == [
        "/bin/sh -c #(nop)  ENV A=1",
        "/bin/sh -c #(nop)  EXPOSE 22 443/udp 80 8080/tcp",
        "/bin/bash -c #(nop)  SHELL [/bin/bash -c]",
        '/bin/bash -c #(nop)  CMD ["/bin/bash" "-c" "echo hi"]',
        "/bin/bash -c #(nop) WORKDIR /app",
    ]
    conf = Image.load(Layout.open(lay), "x").config.config
    assert conf["Shell"] == ["/bin/bash", "-c"]
    assert conf["Env"] == [DEFAULT_PATH, "A=1"]
    # A child built FROM it keeps the shell (and the PATH it already has).
    (tmp_path / "Dockerfile").write_text("FROM x\nLABEL k=v\n")
    build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("y",)))
    assert _history(lay, "y")[-1] == "/bin/bash -c #(nop)  LABEL k=v"
    assert Image.load(Layout.open(lay), "y").config.config["Env"] == [DEFAULT_PATH, "A=1"]


def test_only_from_keeps_the_base_as_is(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    lay = str(tmp_path / "lay")
    build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("x",)))
    assert "Env" not in Image.load(Layout.open(lay), "x").config.config


def test_bare_from_name_is_a_ref_even_next_to_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 #7: ``FROM base`` is the target layout's ref ``base``, even
    when ./base exists; ``./base:ref`` names the layout directory."""
    lay = str(tmp_path / "lay")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL which=target\n")
    build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("base",)))
    other = str(tmp_path / "base")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL which=dir\n")
    build(other, BuildOptions(context=str(tmp_path), runtime="none", tags=("base",)))
    monkeypatch.chdir(tmp_path)
    for line, which in (("FROM base", "target"), ("FROM ./base:base", "dir")):
        (tmp_path / "Dockerfile").write_text(line + "\n")
        build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("out",)))
        labels = Image.load(Layout.open(lay), "out").config.config["Labels"]
        assert labels == {"which": which}, line


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz", "zstd"])
def test_add_unpacks_ordinary_tarballs(tmp_path: Path, mode: str) -> None:
    """Issue 15 #3: tarballs with directories, symlinks and hardlinks."""
    import io
    import tarfile

    from oci_tools.compression import compressor

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w" if mode == "zstd" else mode) as tf:
        for name, kind, link, data in (
            ("x", tarfile.DIRTYPE, "", b""),
            ("x/d", tarfile.DIRTYPE, "", b""),
            ("x/d/f", tarfile.REGTYPE, "", b"data\n"),
            ("x/s", tarfile.SYMTYPE, "d/f", b""),
            ("x/h", tarfile.LNKTYPE, "x/d/f", b""),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            tf.addfile(info, io.BytesIO(data) if data else None)
    blob = raw.getvalue()
    if mode == "zstd":
        out = io.BytesIO()
        w = compressor("zstd", out)
        w.write(blob)
        w.close()
        blob = out.getvalue()
    (tmp_path / "t.tar").write_bytes(blob)
    (tmp_path / "Dockerfile").write_text("FROM scratch\nADD t.tar /dst/\n")
    lay = str(tmp_path / "lay")
    build(lay, BuildOptions(context=str(tmp_path), runtime="none", tags=("x",)))
    from oci_tools.bundle import unpack

    b = tmp_path / "b"
    unpack(Layout.open(lay), Image.load(Layout.open(lay), "x"), str(b))
    root = b / "rootfs/dst/x"
    assert (root / "d/f").read_text() == "data\n"
    assert (root / "s").readlink() == Path("d/f")
    assert (root / "h").stat().st_ino == (root / "d/f").stat().st_ino
