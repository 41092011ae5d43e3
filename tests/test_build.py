"""``oci-tools build`` end to end: steps, history rows, cache, RUN, COPY/ADD, errors.

The parts have their own modules: test_build_dockerfile, test_build_words,
test_build_dockerignore, test_build_context, test_build_cache, test_build_executor,
test_build_builder, test_build_package."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path

import pytest
from helpers import Result, cli, need_root, need_tool
from verify import assert_valid_layout

from oci_tools.build.builder import DEFAULT_PATH

SDE = "1700000000"
APPLETS = ("sh", "mkdir", "cat", "echo", "ls", "id", "pwd", "env", "touch", "rm", "false")

SEED = """\
# the node.js example, with busybox
FROM base
RUN mkdir -p /usr/src/app
WORKDIR /usr/src/app
COPY app/package.json .
RUN echo installed > installed.txt && \\
    mkdir -p node_modules/dep && echo 'module.exports = 1' > node_modules/dep/index.js
COPY app/ .
EXPOSE 8080
CMD ["sh","-c","cat server.js"]
"""


def ok(*argv: str) -> str:
    r = cli(*argv)
    assert r.code == 0, f"{argv}: {r.err}"
    return r.out


def build(lay: Path, ctx: Path, *extra: str, ref: str = "app") -> Result:
    return cli("build", "-t", f"{lay}:{ref}", *extra, str(ctx))


def built(lay: Path, ctx: Path, *extra: str, ref: str = "app") -> str:
    r = build(lay, ctx, *extra, ref=ref)
    assert r.code == 0, r.err + r.out
    return r.out


def history(image: str) -> list[dict[str, str]]:
    out = ok("history", "--format", "json", "--no-human", "--no-trunc", image)
    return [json.loads(line) for line in out.splitlines()][::-1]  # oldest first


def config(image: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok("inspect", "--config", image))  # type: ignore[no-any-return]


def layer_members(lay: Path, image: str, i: int) -> dict[str, tarfile.TarInfo]:
    man = json.loads(ok("inspect", image))
    d = man["layers"][i]["digest"].split(":")[1]
    with tarfile.open(lay / "blobs" / "sha256" / d) as t:
        return {m.name.rstrip("/"): m for m in t.getmembers()}


@pytest.fixture(scope="module")
def base_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A layout with ref `base`: busybox with applet links, passwd, /tmp."""
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    top = tmp_path_factory.mktemp("base")
    lay = top / "lay"
    ok("new", f"{lay}:empty")
    b = top / "b0"
    ok("unpack", f"{lay}:empty", str(b))
    r = b / "rootfs"
    for d in ("bin", "etc", "tmp"):
        (r / d).mkdir()
    os.chmod(r / "tmp", 0o1777)
    shutil.copy2("/bin/busybox", r / "bin/busybox")
    for a in APPLETS:
        (r / "bin" / a).symlink_to("busybox")
    (r / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnode:x:1000:1000::/home/node:/bin/sh\n"
    )
    (r / "etc/group").write_text("root:x:0:\nnode:x:1000:\n")
    ok("commit", str(b), f"{lay}:base", "--created-by", "/bin/sh -c #(nop) ADD file:busybox in / ")
    ok("config", f"{lay}:base", "--env", "PATH=/usr/sbin:/usr/bin:/sbin:/bin")
    shutil.rmtree(b)
    ok("gc", str(lay))  # also drops the gc root of the removed bundle
    return lay


@pytest.fixture
def lay(base_layout: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "lay"
    shutil.copytree(base_layout, dst, symlinks=True)
    return dst


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    c = tmp_path / "ctx"
    (c / "app").mkdir(parents=True)
    (c / "app/package.json").write_text('{"name": "demo", "version": "1.0.0"}\n')
    (c / "app/server.js").write_text("console.log('hello');\n")
    (c / "Dockerfile").write_text(SEED)
    return c


@pytest.fixture
def sde(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clamp times: whole seconds, so layer sizes are exact (no PAX mtimes)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", SDE)


# ---------------------------------------------------------------------------
# the seed example


def rows_added(image: str, base_rows: int = 2) -> list[dict[str, str]]:
    return history(image)[base_rows:]


@pytest.mark.root
def test_seed_build_steps_history_and_sizes(lay: Path, ctx: Path, sde: None) -> None:
    need_root()
    out = built(lay, ctx, "--runtime", "chroot")
    steps = re.findall(r"^Step (\d+)/(\d+) : (.*)$", out, re.M)
    assert [(int(a), int(b)) for a, b, _ in steps] == [(i, 8) for i in range(1, 9)]
    assert steps[4][2].startswith("RUN echo installed > installed.txt &&     mkdir -p")
    ids = re.findall(r"^ ---> ([0-9a-f]{12})$", out, re.M)
    assert len(ids) == 8  # one state per step, FROM included
    top = re.search(r"^Successfully built ([0-9a-f]{12})$", out, re.M)
    assert top is not None and top.group(1) == ids[-1]
    assert f"Successfully tagged {lay}:app" in out
    assert "Using cache" not in out

    rows = rows_added(f"{lay}:app")
    by = [r["CreatedBy"] for r in rows]
    assert by[0] == "/bin/sh -c mkdir -p /usr/src/app"
    assert by[1] == "/bin/sh -c #(nop) WORKDIR /usr/src/app"  # one space, as Docker
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY file:[0-9a-f]{64} in \. ", by[2])
    assert by[3] == (
        "/bin/sh -c echo installed > installed.txt &&     mkdir -p node_modules/dep"
        " && echo 'module.exports = 1' > node_modules/dep/index.js"
    )
    assert re.fullmatch(r"/bin/sh -c #\(nop\) COPY dir:[0-9a-f]{64} in \. ", by[4])
    assert by[5] == "/bin/sh -c #(nop)  EXPOSE 8080"
    assert by[6] == '/bin/sh -c #(nop)  CMD ["sh" "-c" "cat server.js"]'
    # Layers for the file-changing steps only; sizes are Docker's: the
    # regular-file bytes (mkdir: 0B; package.json 37; installed.txt and
    # index.js 10 + 19; server.js 22, package.json being unchanged).
    sizes = [int(r["Size"]) for r in rows]
    assert sizes == [0, 0, 37, 10 + 19, 22, 0, 0]
    cfg = config(f"{lay}:app")
    empties = [bool(h.get("empty_layer")) for h in cfg["history"][2:]]
    assert empties == [False, True, False, False, False, True, True]
    assert len(cfg["rootfs"]["diff_ids"]) == 1 + 4
    assert cfg["config"]["WorkingDir"] == "/usr/src/app"
    assert cfg["config"]["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["config"]["Cmd"] == ["sh", "-c", "cat server.js"]
    assert cfg["created"] == "2023-11-14T22:13:20Z"
    run = layer_members(lay, f"{lay}:app", 3)
    assert set(run) == {
        "usr",
        "usr/src",
        "usr/src/app",
        "usr/src/app/installed.txt",
        "usr/src/app/node_modules",
        "usr/src/app/node_modules/dep",
        "usr/src/app/node_modules/dep/index.js",
    }
    # COPY app/ . re-copies package.json unchanged: only server.js is new.
    assert "usr/src/app/server.js" in layer_members(lay, f"{lay}:app", 4)
    assert "usr/src/app/package.json" not in layer_members(lay, f"{lay}:app", 4)
    assert_valid_layout(str(lay))


@pytest.mark.root
def test_cache_second_build_and_one_edited_file(lay: Path, ctx: Path) -> None:
    need_root()
    first = built(lay, ctx, "--runtime", "chroot")
    digest = ok("inspect", f"{lay}:app")
    second = built(lay, ctx, "--runtime", "chroot")
    assert second.count(" ---> Using cache") == 7  # every step after FROM
    assert "Running in" not in second
    assert re.findall(r"---> ([0-9a-f]{12})", first) == re.findall(r"---> ([0-9a-f]{12})", second)
    assert ok("inspect", f"{lay}:app") == digest
    # mtimes are not part of the cache key, content is
    os.utime(ctx / "app/server.js", (1, 1))
    assert built(lay, ctx, "--runtime", "chroot").count("Using cache") == 7
    (ctx / "app/server.js").write_text("console.log('changed');\n")
    third = built(lay, ctx, "--runtime", "chroot")
    cached = [int(n) for n in re.findall(r"^Step (\d+)/8 .*\n ---> Using cache", third, re.M)]
    assert cached == [2, 3, 4, 5]  # rebuilt from COPY app/ . on
    nocache = built(lay, ctx, "--runtime", "chroot", "--no-cache")
    assert "Using cache" not in nocache and nocache.count("Running in") == 2
    assert_valid_layout(str(lay))


def ref_digest(lay: Path, ref: str) -> str:
    rows = [json.loads(x) for x in ok("ls", "--format", "json", str(lay)).splitlines()]
    return str(next(r["Digest"] for r in rows if r["Ref"] == ref))


@pytest.mark.root
def test_cache_survives_gc_is_no_ref_and_quiet_prints_digest(lay: Path, ctx: Path) -> None:
    need_root()
    built(lay, ctx, "--runtime", "chroot")
    ok("gc", str(lay))
    assert ok("ls", "-q", str(lay)).split() == ["empty", "base", "app"]  # no cache refs
    assert built(lay, ctx, "--runtime", "chroot").count("Using cache") == 7
    r = build(lay, ctx, "-q", "--runtime", "chroot")
    assert r.code == 0 and r.out == ref_digest(lay, "app") + "\n"
    assert_valid_layout(str(lay))


@pytest.mark.root
def test_image_from_built_image_shares_layers(lay: Path, ctx: Path, tmp_path: Path) -> None:
    need_root()
    built(lay, ctx, "--runtime", "chroot")
    ctx2 = tmp_path / "ctx2"
    ctx2.mkdir()
    (ctx2 / "extra.txt").write_text("more\n")
    (ctx2 / "Dockerfile").write_text("FROM app\nCOPY extra.txt /\nLABEL tier=web\n")
    built(lay, ctx2, ref="web")
    app = config(f"{lay}:app")
    web = config(f"{lay}:web")
    assert web["rootfs"]["diff_ids"][:-1] == app["rootfs"]["diff_ids"]
    images = {
        row["Ref"]: row
        for row in map(json.loads, ok("images", "--format", "json", str(lay)).split("\n")[:-1])
    }
    assert images["app"]["SharedSize"] != "0B" and images["web"]["SharedSize"] != "0B"
    assert images["web"]["UniqueSize"] != "0B"
    df = [json.loads(x) for x in ok("df", "--format", "json", str(lay)).splitlines()]
    layers = next(x for x in df if x["Type"] == "Layers")
    assert layers["TotalCount"] == str(1 + 4 + 1)  # each layer stored once
    assert_valid_layout(str(lay))


# ---------------------------------------------------------------------------
# RUN


RUN_DF = """\
FROM base
ARG V=1
ENV E=x
WORKDIR /work
USER node
RUN echo "uid=$(id -u) cwd=$(pwd) v=$V e=$E" && ls /sys/class/net && echo ran > /tmp/run.txt
"""


@pytest.mark.root
@pytest.mark.interop
def test_run_via_runc(lay: Path, tmp_path: Path) -> None:
    need_root()
    need_tool("runc")
    c = tmp_path / "c"
    c.mkdir()
    (c / "Dockerfile").write_text(RUN_DF)
    out = built(lay, c, "--runtime", "runc", "--build-arg", "V=2")
    assert "uid=1000 cwd=/work v=2 e=x\nlo\n" in out  # streamed; only a loopback
    by = rows_added(f"{lay}:app")[-1]["CreatedBy"]
    assert by.startswith('|1 V=2 /bin/sh -c echo "uid=$(id -u)')
    members = layer_members(lay, f"{lay}:app", -1)
    assert set(members) == {"tmp", "tmp/run.txt"}  # no /proc, /dev, /sys mountpoints
    assert members["tmp/run.txt"].uid == 1000
    # --network host: the host's interfaces
    host = built(lay, c, "--runtime", "runc", "--network", "host", "--no-cache", ref="h")
    listed = host.split("e=x\n", 1)[1].split("Removing intermediate")[0].split()
    assert sorted(listed) == sorted(os.listdir("/sys/class/net"))
    assert_valid_layout(str(lay))


@pytest.mark.root
def test_run_via_chroot(lay: Path, tmp_path: Path) -> None:
    need_root()
    c = tmp_path / "c"
    c.mkdir()
    (c / "Dockerfile").write_text(
        RUN_DF.replace(" && ls /sys/class/net", "") + 'RUN ["sh", "-c", "echo exec form"]\n'
    )
    out = built(lay, c, "--runtime", "chroot")
    assert "uid=1000 cwd=/work v=1 e=x\n" in out and "exec form\n" in out
    rows = rows_added(f"{lay}:app")
    assert rows[-1]["CreatedBy"] == "|1 V=1 sh -c echo exec form"
    assert set(layer_members(lay, f"{lay}:app", -1)) == {"tmp", "tmp/run.txt"}  # exec: no change


@pytest.mark.root
def test_failing_run_shows_code_and_output_and_keeps_tags(lay: Path, ctx: Path) -> None:
    need_root()
    built(lay, ctx, "--runtime", "chroot")
    before = (lay / "index.json").read_bytes()
    (ctx / "Dockerfile").write_text(SEED.replace("EXPOSE 8080", "RUN echo oops; exit 3"))
    r = build(lay, ctx, "--runtime", "chroot")
    assert r.code == 1
    assert "oops\n" in r.out  # streamed as it ran
    assert (
        "Dockerfile:9: the command '/bin/sh -c echo oops; exit 3' returned a non-zero code: 3"
        in (r.err)
    )
    assert (lay / "index.json").read_bytes() == before
    q = build(lay, ctx, "--runtime", "chroot", "-q")
    assert q.code == 1 and q.out == "" and "oops" in q.err  # quiet: the output goes with the error
    assert not any((lay / ".oci-tools/build").iterdir())  # the working bundle is gone


def test_runtime_none_refuses_run(lay: Path, ctx: Path) -> None:
    r = build(lay, ctx, "--runtime", "none")
    assert r.code == 1 and "Dockerfile:3: RUN is disabled (--runtime none)" in r.err


# ---------------------------------------------------------------------------
# COPY, ADD, FROM


def test_copy_chown_chmod_dockerignore(lay: Path, ctx: Path) -> None:
    (ctx / "app/debug.log").write_text("noise\n")
    (ctx / "app/lib").mkdir()
    (ctx / "app/lib/util.js").write_text("x\n")
    (ctx / "app/lib/link").symlink_to("util.js")
    (ctx / ".dockerignore").write_text("**/*.log\n")
    (ctx / "Dockerfile").write_text(
        "FROM base\n"
        "COPY --chown=node --chmod=640 app/package.json /data/\n"
        "COPY app /srv/app\n"
        "COPY app/*.json app/server.js /multi/\n"
    )
    built(lay, ctx)
    m = layer_members(lay, f"{lay}:app", 1)
    assert set(m) == {"data", "data/package.json"}
    f = m["data/package.json"]
    assert (f.uid, f.gid, f.mode) == (1000, 1000, 0o640)
    assert (m["data"].uid, m["data"].mode) == (0, 0o755)
    tree = layer_members(lay, f"{lay}:app", 2)
    assert set(tree) == {
        "srv",
        "srv/app",
        "srv/app/package.json",
        "srv/app/server.js",
        "srv/app/lib",
        "srv/app/lib/util.js",
        "srv/app/lib/link",
    }
    assert tree["srv/app/lib/link"].issym() and tree["srv/app/lib/link"].linkname == "util.js"
    assert set(layer_members(lay, f"{lay}:app", 3)) == {
        "multi",
        "multi/package.json",
        "multi/server.js",
    }
    assert re.search(
        r"COPY multi:[0-9a-f]{64} in /multi/ $", rows_added(f"{lay}:app")[-1]["CreatedBy"]
    )
    (ctx / "Dockerfile").write_text("FROM base\nCOPY app/debug.log /\n")
    r = build(lay, ctx)
    assert r.code == 1 and "Dockerfile:2: file not found in build context or excluded" in r.err


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> None:
    with tarfile.open(path, mode) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_600_000_000
            t.addfile(info, io.BytesIO(data))


def test_add_unpacks_local_archives_safely(lay: Path, tmp_path: Path) -> None:
    c = tmp_path / "c"
    c.mkdir()
    _tar(c / "pkg.tar.gz", {"pkg/a.txt": b"a\n", "pkg/b/c.txt": b"c\n"})
    _tar(c / "plain.tar", {"p.txt": b"p\n"}, "w")
    (c / "data.gz").write_bytes(b"\x1f\x8b not a tar at all")
    (c / "Dockerfile").write_text("FROM base\nADD pkg.tar.gz plain.tar data.gz /opt/\n")
    built(lay, c)
    assert set(layer_members(lay, f"{lay}:app", 1)) == {
        "opt",
        "opt/pkg",
        "opt/pkg/a.txt",
        "opt/pkg/b",
        "opt/pkg/b/c.txt",
        "opt/p.txt",
        "opt/data.gz",  # not an archive: copied as is
    }
    assert re.search(
        r"#\(nop\) ADD multi:[0-9a-f]{64} in /opt/ $", rows_added(f"{lay}:app")[-1]["CreatedBy"]
    )
    _tar(c / "evil.tar", {"../../escape.txt": b"x"}, "w")
    (c / "Dockerfile").write_text("FROM base\nADD evil.tar /opt/\n")
    r = build(lay, c, ref="evil")
    assert r.code == 1 and "Dockerfile:2:" in r.err and "escapes the root" in r.err
    assert not (tmp_path / "escape.txt").exists() and "evil" not in ok("ls", "-q", str(lay))


def test_copy_errors(lay: Path, ctx: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM base\n\nCOPY missing.txt /\n")
    r = build(lay, ctx)
    assert r.code == 1 and "Dockerfile:3: file not found in build context" in r.err
    (ctx / "Dockerfile").write_text("FROM base\nCOPY ../etc/passwd /\n")
    r = build(lay, ctx)
    assert r.code == 1 and "forbidden path outside the build context: ../etc/passwd" in r.err
    (ctx / "evil").symlink_to("/etc/passwd")  # resolved inside the context: missing there
    (ctx / "Dockerfile").write_text("FROM base\nCOPY evil /\n")
    assert "Dockerfile:2: file not found" in build(lay, ctx).err
    (ctx / "Dockerfile").write_text("FROM base\nCOPY app/package.json app/server.js /x\n")
    assert "must be a directory and end with a /" in build(lay, ctx).err
    (ctx / "Dockerfile").write_text("FROM base\nCOPY app/ .\nFROM base\n")
    assert "Dockerfile:3: multi-stage builds" in build(lay, ctx).err
    (ctx / "Dockerfile").write_text("FROM base\n\n\nFOO bar\n")
    r = build(lay, ctx)
    assert r.code == 1 and "Dockerfile:4: unknown instruction: FOO" in r.err
    assert ok("ls", "-q", str(lay)).split() == ["empty", "base"]


def test_from_unknown_ref_and_missing_layout(lay: Path, ctx: Path, tmp_path: Path) -> None:
    (ctx / "Dockerfile").write_text("FROM nope\nCOPY app/ /app/\n")
    r = build(lay, ctx)
    assert r.code == 1 and "Dockerfile:1: unknown ref 'nope'" in r.err and "base" in r.err
    (ctx / "Dockerfile").write_text(f"FROM {tmp_path}/nowhere:base\n")
    r = build(lay, ctx)
    assert r.code == 1 and "Dockerfile:1: " in r.err


def test_from_other_layout_and_archive_copy_blobs(lay: Path, ctx: Path, tmp_path: Path) -> None:
    archive = tmp_path / "base.tar"
    ok("export", f"{lay}:base", str(archive))
    base_layers = json.loads(ok("inspect", f"{lay}:base"))["layers"]
    for i, src in enumerate([f"{lay}:base", str(archive)]):
        (ctx / "Dockerfile").write_text("ARG SRC\nFROM $SRC\nCOPY app/ /app/\n")
        fresh = tmp_path / f"fresh{i}"
        out = built(fresh, ctx, "--build-arg", f"SRC={src}")
        assert "Step 1/3 : ARG SRC" in out
        man = json.loads(ok("inspect", f"{fresh}:app"))
        assert man["layers"][:-1] == base_layers  # the same blobs, by digest
        assert len(history(f"{fresh}:app")) == 3
        assert ok("ls", "-q", str(fresh)).split() == ["app"]
        assert_valid_layout(str(fresh))


def test_reproducible_with_source_date_epoch(tmp_path: Path, ctx: Path, sde: None) -> None:
    (ctx / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY app/ /app/\n"
        "ENV NODE_ENV=production\n"
        "WORKDIR /srv/data\n"
        "COPY --chmod=600 app/package.json .\n"
        'LABEL org.example.title="demo app"\n'
        'ENTRYPOINT ["/app/server.js"]\n'
    )
    a = cli("build", "-q", "-t", f"{tmp_path}/one:x", str(ctx))
    os.utime(ctx / "app")  # a newer mtime than SOURCE_DATE_EPOCH: clamped
    b = cli("build", "-q", "-t", f"{tmp_path}/two:x", "--no-cache", str(ctx))
    assert a.code == b.code == 0, a.err + b.err
    assert a.out == b.out
    cfg = config(f"{tmp_path}/two:x")
    assert cfg["config"]["Labels"] == {"org.example.title": "demo app"}
    # Docker's default PATH comes first (added at FROM), then the ENV.
    assert cfg["config"]["Env"] == [DEFAULT_PATH, "NODE_ENV=production"]
    assert len(cfg["rootfs"]["diff_ids"]) == 3
