"""Build an image from a Dockerfile, the way Docker's classic builder does.

One stage, one pass over the instructions.  Every step turns the current
image state into a new one, written to the layout as an image with no ref
(its 12-hex id is the manifest digest), so ``history`` of the result reads like
``docker history``:

* metadata steps (ENV, ARG, EXPOSE, CMD, ...) change the config only and add
  an ``empty_layer`` row ``/bin/sh -c #(nop)  ENV K=V``;
* file steps (COPY, ADD, RUN, WORKDIR) change one working bundle and commit it
  exactly as ``oci-tools commit`` does (``bundle.commit``, untagged), then
  ``refresh`` it so the next step diffs against the new state.  The bundle is
  unpacked once, lazily, at the first file step that is not cached.

Every state is an ``Image`` value: a step derives the next one with
``oci_tools.mutate`` (``edit_config``, ``add_history``, ``set_created``;
``bundle.commit`` does ``append_layer``) and writes it with ``mutate.write``.
Nothing is tagged until the whole build succeeded; then ``Layout.set_ref``
points every ``-t`` tag at the last state.

COPY and ADD never write into the rootfs themselves: they turn the context
files into a tar stream and apply it with ``apply.apply_layer``, so every path
resolves inside the rootfs the way a layer's would (no escape through a
symlink, ``..`` or an absolute name), and ADD's local archives get the same
strict tar reader and checks.

The cache maps (parent state, instruction text after ARG/ENV substitution,
content hash of the copied files) to the resulting state.  It lives in the
layout as one OCI index blob listing every cached state, annotated with its
key, kept alive for gc by one extra root (``Layout.add_root``): not a ref, so
``ls`` and ``images`` do not show it, and not a root per image, so ``df`` does
not count cached images as in use by a bundle.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import posixpath
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from oci_tools.apply import read_file_in_root
from oci_tools.archive import import_archive
from oci_tools.build.cache import Cache, cache_key
from oci_tools.build.context import (
    BuildContext,
    Source,
    archive_codec,
    copy_entries,
    with_mode,
)
from oci_tools.build.dockerfile import Dockerfile, Instruction, parse_dockerfile
from oci_tools.build.executor import (
    RUNTIMES,
    network_file_mounts,
    run_process,
    run_spec,
    select_runtime,
)
from oci_tools.build.sourcehash import ContextHasher
from oci_tools.build.words import NAME_RE, Lexer
from oci_tools.build.workspace import WorkingBundle
from oci_tools.bundle import CommitOptions, commit, refresh
from oci_tools.compression import CODECS
from oci_tools.errors import BuildError, NotFoundError, OCIToolsError, RunFailedError, UsageError
from oci_tools.fsutil import remove_tree, write_json
from oci_tools.image import Image, created_now
from oci_tools.layout import Layout, check_ref, split_image_ref
from oci_tools.mutate import (
    ConfigEdit,
    add_history,
    edit_config,
    empty_image,
    set_created,
    set_platform,
    write,
)
from oci_tools.spec.model import Descriptor, History, Platform
from oci_tools.spec.runtime import resolve_user

#: The shell of RUN/CMD/ENTRYPOINT's shell form until a SHELL instruction.
DEFAULT_SHELL = ("/bin/sh", "-c")
#: What Docker adds to the Env at every FROM when the image has no PATH
#: (``setDefaultPath``; it lands in the next committed config).
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_NETWORKS = ("none", "host")


# ---------------------------------------------------------------------------
# the builder


@dataclass(frozen=True, slots=True)
class BuildOptions:
    """What ``build`` builds and how.

    ``tags``: refs in the target layout to point at the result (only once the
    whole build succeeded).  ``build_args``: ``--build-arg`` values (a None
    value is taken from the environment, as Docker does).  ``runtime``: how
    RUN executes: ``auto`` (runc if installed, else chroot when root),
    ``runc``, ``chroot`` or ``none`` (RUN is an error).  ``network``: ``none``
    (RUN gets only a loopback) or ``host``.  ``platform``: the image's
    ``os/arch[/variant]`` (``--platform``): FROM picks that entry of an
    index and the config is stamped with it; RUN is not emulated.
    """

    context: str = "."
    dockerfile: str | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    runtime: str = "auto"
    network: str = "none"
    compress: str = "gzip"
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class BuildResult:
    """The built image, how many steps ran, and how many came from the cache."""

    descriptor: Descriptor
    steps: int
    cached: int
    tags: tuple[str, ...]


def parse_build_args(items: Sequence[str]) -> dict[str, str | None]:
    """``K=V`` (or ``K``: the value comes from the environment) to a mapping."""
    out: dict[str, str | None] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not k:
            raise UsageError(f"--build-arg {item!r} must be KEY=VALUE or KEY")
        out[k] = v if eq else None
    return out


def _docker_list(items: Sequence[str]) -> str:
    return "[" + " ".join(json.dumps(x, ensure_ascii=False) for x in items) + "]"


def _chmod(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise OCIToolsError(f"--chmod={text}: use an octal mode such as 755 or 0644")
    return int(text, 8)


class _Builder:
    """One build: the state being built, the variables in scope, and a
    ``do_*`` method per instruction (dispatched through :data:`_STEPS`)."""

    def __init__(
        self,
        layout: Layout,
        dockerfile: Dockerfile,
        opts: BuildOptions,
        log: Callable[[str], None],
        output: Callable[[bytes], None] | None,
    ) -> None:
        self.lay = layout
        self.df = dockerfile
        self.opts = opts
        self.log = log
        self.output = output
        self.lexer = Lexer(dockerfile.escape)
        self.context = BuildContext(opts.context)
        self.hasher = ContextHasher(self.context.root, self.context.ignore)
        #: The FROM image as it is (the result when nothing follows FROM).
        self.from_image: Image | None = None
        self.cache = Cache(layout)
        self.rootless = os.geteuid() != 0
        self.build_args = {
            k: (v if v is not None else os.environ.get(k)) for k, v in opts.build_args.items()
        }
        self.meta_args: dict[str, str | None] = {}
        self.args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.image: Image | None = None
        self.shell: list[str] = list(DEFAULT_SHELL)
        self.cmd_set = False
        self.cached = 0
        self.work = WorkingBundle(layout, rootless=self.rootless)

    # -- driving ----------------------------------------------------------------

    def check(self) -> None:
        """Structural checks before any work: one FROM first, RUN allowed."""
        seen_from = False
        for ins in self.df.instructions:
            if ins.keyword == "FROM":
                if seen_from:
                    self.fail(ins, "multi-stage builds (a second FROM) are not supported")
                seen_from = True
            elif not seen_from and ins.keyword != "ARG":
                self.fail(ins, f"{ins.keyword} before FROM: the first instruction must be FROM")
            elif ins.keyword == "RUN" and self.opts.runtime == "none":
                self.fail(ins, "RUN is disabled (--runtime none)")
        if not seen_from:
            raise BuildError(self.df.name, 1, "no FROM instruction")

    def fail(self, ins: Instruction, reason: str, hint: str | None = None) -> NoReturn:
        raise BuildError(self.df.name, ins.line, reason, hint=hint)

    def run(self) -> Image:
        total = len(self.df.instructions)
        for n, ins in enumerate(self.df.instructions, 1):
            self.log(f"Step {n}/{total} : {ins.original}")
            try:
                _STEPS[ins.keyword](self, ins)
            except BuildError:
                raise
            except ValueError as e:  # from the lexer: quoting and substitution
                self.fail(ins, str(e))
            except OCIToolsError as e:
                self.fail(ins, e.message, e.hint)
        unused = sorted(set(self.build_args) - self.used_args)
        if unused:
            self.log(f"[Warning] One or more build-args {unused} were not consumed")
        assert self.image is not None
        if self.df.instructions[-1].keyword == "FROM" and self.from_image is not None:
            return self.from_image  # nothing committed the default PATH
        return self.image

    @property
    def img(self) -> Image:
        assert self.image is not None
        return self.image

    def env(self) -> dict[str, str]:
        """Variables for substitution: ARGs in scope, then ENV (which wins)."""
        env = {k: v for k, v in self.args.items() if v is not None}
        for e in self.img.config.config.get("Env") or []:
            k, _, v = str(e).partition("=")
            env[k] = v
        return env

    def key(self, *parts: str) -> str:
        """The cache key of a step on top of the current state."""
        return cache_key(self.img.descriptor.digest, *parts)

    def cached_step(self, key: str) -> bool:
        if self.opts.no_cache:
            return False
        desc = self.cache.get(key)
        if desc is None:
            return False
        self.log(" ---> Using cache")
        self.cached += 1
        self.advance(desc)
        return True

    def advance(self, desc: Descriptor) -> None:
        self.image = Image.from_descriptor(self.lay, desc)
        self.image.check_consistent()
        self.log(f" ---> {self.image.id.short}")

    def nop(self, text: str, *, one_space: bool = False) -> str:
        """Docker's ``created_by`` of a step that runs nothing: the current
        shell, ``#(nop)``, then two spaces before ``text`` (``withCmdComment``)
        or one (``withCmdCommentString``: WORKDIR, COPY and ADD)."""
        if one_space:
            return " ".join([*self.shell, "#(nop) " + text])
        return " ".join([*self.shell, "#(nop) ", text])

    # -- metadata steps -----------------------------------------------------------

    def meta(self, text: str, edit: ConfigEdit | None = None) -> None:
        """A metadata step: ``edit`` (if any) applied to the config, plus an
        ``empty_layer`` history row ``/bin/sh -c #(nop)  TEXT``."""
        created_by = self.nop(text)
        key = self.key("meta", created_by)
        if self.cached_step(key):
            return
        img = self.img if edit is None else edit_config(self.img, edit)
        when = created_now()
        img = add_history(img, History(created=when, created_by=created_by, empty_layer=True))
        img = set_created(img, when)
        with self.lay.lock():
            desc = write(self.lay, img)
            self.cache.put(key, desc)
        self.advance(desc)

    def pairs(self, ins: Instruction) -> list[tuple[str, str]]:
        """``K=V ...`` (or the legacy ``K V``) of ENV and LABEL; every value
        sees the variables as they were before this instruction."""
        env = self.env()
        spans = self.lexer.spans(ins.args)
        if not spans:
            self.fail(ins, f"{ins.keyword} needs at least one KEY=VALUE")
        first = ins.args[spans[0][0] : spans[0][1]]
        if "=" not in first:
            if len(spans) < 2:
                self.fail(ins, f"{ins.keyword} {first} needs a value")
            value = ins.args[spans[1][0] :]
            return [(self.lexer.word(first, env), self.lexer.word(value, env))]
        out = []
        for a, b in spans:
            tok = ins.args[a:b]
            k, eq, v = tok.partition("=")
            key = self.lexer.word(k, env)
            if not eq or not key:
                self.fail(ins, f"{ins.keyword}: {tok!r} is not KEY=VALUE")
            out.append((key, self.lexer.word(v, env)))
        return out

    def do_env(self, ins: Instruction) -> None:
        pairs = self.pairs(ins)
        items = tuple(f"{k}={v}" for k, v in pairs)
        self.meta("ENV " + " ".join(items), ConfigEdit(env=items))

    def do_label(self, ins: Instruction) -> None:
        pairs = self.pairs(ins)
        items = tuple(f"{k}={v}" for k, v in pairs)
        self.meta("LABEL " + " ".join(items), ConfigEdit(labels=items))

    def do_maintainer(self, ins: Instruction) -> None:
        self.meta(f"MAINTAINER {ins.args}", ConfigEdit(author=ins.args))

    def do_arg(self, ins: Instruction) -> None:
        spans = self.lexer.spans(ins.args)
        if not spans:
            self.fail(ins, "ARG needs a NAME[=default]")
        env = self.env() if self.image is not None else dict(self._meta_env())
        shown = []
        for a, b in spans:
            name, eq, default = ins.args[a:b].partition("=")
            if not NAME_RE.fullmatch(name):
                self.fail(ins, f"ARG: invalid name {name!r}")
            dflt = self.lexer.word(default, env) if eq else None
            if name in self.build_args:
                value = self.build_args[name]
                self.used_args.add(name)
            elif eq:
                value = dflt
            else:
                value = self.meta_args.get(name)
            shown.append(f"{name}={dflt}" if eq else name)
            if self.image is None:
                self.meta_args[name] = value
            else:
                self.args[name] = value
                if value is not None:
                    env[name] = value
        if self.image is not None:
            self.meta("ARG " + " ".join(shown))

    def _meta_env(self) -> dict[str, str]:
        return {k: v for k, v in self.meta_args.items() if v is not None}

    def do_user(self, ins: Instruction) -> None:
        user = self.lexer.word(ins.args, self.env())
        if not user:
            self.fail(ins, "USER needs a user name or id")
        self.meta(f"USER {user}", ConfigEdit(user=user))

    def do_expose(self, ins: Instruction) -> None:
        ports = self.lexer.words(ins.args, self.env())
        if not ports:
            self.fail(ins, "EXPOSE needs at least one port")
        # Docker's history lists the ports sorted as strings.
        self.meta("EXPOSE " + " ".join(sorted(ports)), ConfigEdit(expose=tuple(ports)))

    def do_volume(self, ins: Instruction) -> None:
        env = self.env()
        if ins.exec_form is not None:
            vols = [self.lexer.word(v, env) for v in ins.exec_form]
        else:
            vols = self.lexer.words(ins.args, env)
        if not vols or not all(vols):
            self.fail(ins, "VOLUME needs at least one non-empty path")
        self.meta("VOLUME [" + " ".join(vols) + "]", ConfigEdit(volumes=tuple(vols)))

    def do_stopsignal(self, ins: Instruction) -> None:
        sig = self.lexer.word(ins.args, self.env())
        if not sig:
            self.fail(ins, "STOPSIGNAL needs a signal")
        self.meta(f"STOPSIGNAL {sig}", ConfigEdit(stop_signal=sig))

    def command(self, ins: Instruction) -> list[str]:
        if ins.exec_form is not None:
            return list(ins.exec_form)
        if not ins.args:
            self.fail(ins, f"{ins.keyword} needs a command")
        return [*self.shell, ins.args]

    def do_cmd(self, ins: Instruction) -> None:
        cmd = self.command(ins)
        self.cmd_set = True
        self.meta("CMD " + _docker_list(cmd), ConfigEdit(cmd=cmd))

    def do_entrypoint(self, ins: Instruction) -> None:
        ep = self.command(ins)
        # As Docker: a new ENTRYPOINT drops a CMD inherited from the base image.
        ed = ConfigEdit(entrypoint=ep, clear_cmd=not self.cmd_set)
        self.meta("ENTRYPOINT " + _docker_list(ep), ed)

    def do_shell(self, ins: Instruction) -> None:
        assert ins.exec_form is not None
        if not ins.exec_form:
            self.fail(ins, "SHELL needs at least the shell program")
        # Set first: the SHELL row itself starts with the new shell (Docker).
        self.shell = list(ins.exec_form)
        self.meta("SHELL [" + " ".join(self.shell) + "]", ConfigEdit(shell=self.shell))

    # -- FROM -------------------------------------------------------------------------

    def do_from(self, ins: Instruction) -> None:
        words = self.lexer.words(ins.args, self._meta_env())
        if len(words) == 3 and words[1].lower() == "as":
            words = words[:1]
        if len(words) != 1:
            self.fail(ins, "FROM takes one image (and an optional AS name)")
        desc = self.base(words[0])
        self.image = self.from_image = Image.from_descriptor(self.lay, desc)
        self.image.check_consistent()
        if self.opts.platform is not None:
            self.stamp(words[0], self.opts.platform)
        self.shell = list(self.image.config.config.get("Shell") or DEFAULT_SHELL)
        self.log(f" ---> {self.image.id.short}")
        env = self.image.config.config.get("Env") or []
        if not any(str(e).partition("=")[0] == "PATH" for e in env):
            # Docker's default PATH, appended to the Env: the next step's
            # config carries it (no history row of its own).
            with self.lay.lock():
                pdesc = write(self.lay, edit_config(self.image, ConfigEdit(env=(DEFAULT_PATH,))))
                self.cache.put("from:" + str(pdesc.digest), pdesc)
            self.image = Image.from_descriptor(self.lay, pdesc)

    def stamp(self, src: str, want: Platform) -> None:
        """``--platform``: a FROM image of another platform gets ``want`` in
        its config (as ``docker build --platform`` warns and goes on); the
        stamped state is the one the steps build on."""
        img = set_platform(self.img, want)
        if img is self.img:
            return
        have = Platform(self.img.config.os, self.img.config.architecture, self.img.config.variant)
        self.log(
            f'[Warning] InvalidBaseImagePlatform: base image {src} has platform "{have}", '
            f'expected "{want}" for current build: its config is stamped "{want}"'
        )
        with self.lay.lock():
            desc = write(self.lay, img)
            self.cache.put("from:" + str(desc.digest), desc)
        self.image = self.from_image = Image.from_descriptor(self.lay, desc)

    def base(self, src: str) -> Descriptor:
        """The manifest descriptor of the FROM image, in the target layout."""
        if src == "scratch":
            # No "created" (empty_image adds none): the same empty start state
            # in every build, so the cache keys of the steps on top of it stay
            # stable.
            with self.lay.lock():
                desc = write(self.lay, empty_image(self.lay, platform=self.opts.platform))
                self.cache.put("from:" + str(desc.digest), desc)
            return desc
        if "/" not in src:
            # A bare name is an image first, as Docker treats it: a ref of the
            # layout being built into, even when a directory of that name
            # exists here (a layout path needs ./ or a /).
            try:
                return self.lay.resolve(check_ref(src), self.opts.platform).manifest_descriptor
            except OCIToolsError:
                if ":" not in src and not os.path.isfile(src):
                    raise
        if os.path.isfile(src):
            return self.from_archive(src)
        path, ref = split_image_ref(src)
        assert ref is not None
        if os.path.isdir(path) and os.path.samefile(path, self.lay.path):
            return self.lay.resolve(ref, self.opts.platform).manifest_descriptor
        return self.copy_from(Layout.open(path), ref)

    def copy_from(self, other: Layout, ref: str) -> Descriptor:
        """Copy image ``ref`` of another layout here, blob by blob (blobs
        already here are not copied again: same digest, stored once)."""
        img = Image.load(other, ref, self.opts.platform)
        img.check_consistent()
        with self.lay.lock():
            # The manifest and config as stored (same digests), and every
            # layer blob not here yet, copied from ``other`` and verified.
            desc = write(self.lay, img)
            self.cache.put("from:" + str(desc.digest), desc)
        return desc

    def from_archive(self, path: str) -> Descriptor:
        tmp = Layout.init(os.path.join(self.work.workdir(), "from-archive"))
        try:
            import_archive(path, tmp, "base")
            return self.copy_from(tmp, "base")
        finally:
            with contextlib.suppress(OSError):
                remove_tree(tmp.path)

    # -- file steps -------------------------------------------------------------------

    def file_step(
        self,
        key: str,
        created_by: str,
        change: Callable[[str], None],
        edit: ConfigEdit | None = None,
    ) -> None:
        """Run ``change(bundle)``, commit what it changed as one layer (an
        ``empty_layer`` row when nothing changed), then apply ``edit`` to the
        config of the result."""
        bundle = self.work.prepare(self.img)
        change(bundle)
        opts = CommitOptions(compress=self.opts.compress, created_by=created_by, allow_empty=True)
        with self.lay.lock():
            # Untagged: the new state is named by its descriptor alone.
            desc = commit(bundle, self.lay, None, opts).descriptor
            if edit is not None:
                desc = write(self.lay, edit_config(Image.from_descriptor(self.lay, desc), edit))
            self.cache.put(key, desc)
        refresh(bundle, self.lay, desc, None)
        self.advance(desc)
        self.work.committed(self.img)

    # -- WORKDIR, RUN -------------------------------------------------------------------

    def do_workdir(self, ins: Instruction) -> None:
        word = self.lexer.word(ins.args, self.env())
        if not word:
            self.fail(ins, "WORKDIR needs a path")
        cur = str(self.img.config.config.get("WorkingDir") or "/")
        new = "/" + posixpath.normpath(posixpath.join(cur, word)).lstrip("/")
        created_by = self.nop(f"WORKDIR {new}", one_space=True)
        key = self.key("workdir", created_by)
        if self.cached_step(key):
            return
        self.file_step(
            key,
            created_by,
            lambda b: self.work.mkdir(os.path.join(b, "rootfs"), new),
            ConfigEdit(workdir=new),
        )

    def do_run(self, ins: Instruction) -> None:
        argv = self.command(ins)
        conf_env = {str(e).partition("=")[0] for e in self.img.config.config.get("Env") or []}
        build_env = sorted(
            (k, v) for k, v in self.args.items() if v is not None and k not in conf_env
        )
        shown = [f"{k}={v}" for k, v in build_env]
        prefix = [f"|{len(shown)}", *shown] if shown else []
        created_by = " ".join([*prefix, *argv])
        key = self.key("run", created_by)
        if self.cached_step(key):
            return
        self.file_step(key, created_by, lambda b: self.execute(ins, b, argv, shown))

    def execute(self, ins: Instruction, bundle: str, argv: list[str], build_env: list[str]) -> None:
        """Run ``argv`` in the bundle's rootfs with the image's Env (plus the
        build args), WorkingDir and User; RunFailedError when it fails."""
        runtime = select_runtime(self.opts.runtime)
        rootfs = os.path.join(bundle, "rootfs")
        host_net = self.opts.network == "host"
        spec = run_spec(
            self.img.config,
            rootfs,
            argv,
            rootless=self.rootless,
            network_host=host_net,
            build_env=build_env,
        )
        # As runc would, but visible to the diff.
        self.work.mkdir(rootfs, spec["process"]["cwd"])
        cid = secrets.token_hex(6)
        if runtime != "chroot":
            # Docker's daemon-held /etc/hosts, hostname and resolv.conf.
            etc_dir = os.path.join(self.work.workdir(), f"etc-{cid}")
            spec["mounts"].extend(network_file_mounts(rootfs, etc_dir, cid, host_net))
        write_json(os.path.join(bundle, "config.json"), spec)
        self.log(f" ---> Running in {cid}")
        state = os.path.join(self.work.workdir(), "runc")
        status, tail = run_process(runtime, bundle, spec, state, cid, self.output)
        if status != 0:
            raise RunFailedError(self.df.name, ins.line, " ".join(argv), status, tail)
        self.log(f"Removing intermediate container {cid}")

    # -- COPY, ADD ------------------------------------------------------------------------

    def do_copy(self, ins: Instruction) -> None:
        self.copy(ins, unpack_archives=False)

    def do_add(self, ins: Instruction) -> None:
        self.copy(ins, unpack_archives=True)

    def copy(self, ins: Instruction, *, unpack_archives: bool) -> None:
        env = self.env()
        if ins.exec_form is not None:
            words = [self.lexer.word(w, env) for w in ins.exec_form]
        else:
            words = self.lexer.words(ins.args, env)
        if len(words) < 2:
            self.fail(ins, f"{ins.keyword} needs at least one source and a destination")
        chown = ins.flag("chown")
        chmod = _chmod(ins.flag("chmod"))
        dest = words[-1]
        sources: list[Source] = []
        for w in words[:-1]:
            if re.match(r"[a-z][a-z0-9+.-]*://", w) or w.startswith("git@"):
                self.fail(ins, f"{ins.keyword} from a URL is not supported: {w}")
            sources += self.context.sources(w, ins.keyword)
        if unpack_archives:
            sources = [
                dataclasses.replace(s, archive=archive_codec(s.items[0].host))
                if not s.is_dir
                else s
                for s in sources
            ]
        if chmod is not None:
            sources = [s if s.archive else with_mode(s, chmod) for s in sources]
        many = len(sources) > 1
        if many and not dest.endswith("/"):
            self.fail(
                ins,
                f"when {ins.keyword} has more than one source, the destination must be "
                "a directory and end with a /",
            )
        workdir = str(self.img.config.config.get("WorkingDir") or "/")
        dest_abs = "/" + posixpath.normpath(posixpath.join(workdir, dest)).lstrip("/")
        as_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
        # Docker's content hash of the sources (tarsum of the context entries).
        what = self.hasher.hash_sources(words[:-1])
        # --chmod is ours (the classic builder has none); --chown is glued to
        # the hash, as Docker prints it ("--chown=1000:1000file:...").
        opts = f"--chmod={ins.flag('chmod')} " if ins.flag("chmod") else ""
        opts += f"--chown={chown}" if chown else ""
        # One space after #(nop) (two for metadata steps), the destination as
        # written, and a trailing space: Docker's bytes.
        created_by = self.nop(f"{ins.keyword} {opts}{what} in {dest} ", one_space=True)
        # The key also covers what Docker's hash does not (symlinks' own
        # targets, names of the copied files, ADD's archive detection).
        key = self.key("copy", created_by, *(s.hash() for s in sources))
        if self.cached_step(key):
            return

        def change(bundle: str) -> None:
            rootfs = os.path.join(bundle, "rootfs")
            uid, gid = self.owner(rootfs, chown)
            self.work.apply_entries(
                rootfs, copy_entries(rootfs, sources, dest_abs, as_dir or many, uid, gid)
            )

        self.file_step(key, created_by, change)

    def owner(self, rootfs: str, chown: str | None) -> tuple[int, int]:
        """``--chown=user[:group]`` against the image's passwd and group files;
        without a group, the gid is the uid (as Docker does)."""
        if not chown:
            return 0, 0
        user, sep, group = chown.partition(":")
        u = resolve_user(chown if sep else user, lambda p: read_file_in_root(rootfs, p))
        return u.uid, (u.gid if group else u.uid)


#: What each instruction keyword does: one entry per keyword the parser
#: accepts (``dockerfile.SUPPORTED``; a test keeps the two equal).
_STEPS: dict[str, Callable[[_Builder, Instruction], None]] = {
    "FROM": _Builder.do_from,
    "ARG": _Builder.do_arg,
    "ENV": _Builder.do_env,
    "LABEL": _Builder.do_label,
    "MAINTAINER": _Builder.do_maintainer,
    "USER": _Builder.do_user,
    "EXPOSE": _Builder.do_expose,
    "VOLUME": _Builder.do_volume,
    "STOPSIGNAL": _Builder.do_stopsignal,
    "CMD": _Builder.do_cmd,
    "ENTRYPOINT": _Builder.do_entrypoint,
    "SHELL": _Builder.do_shell,
    "WORKDIR": _Builder.do_workdir,
    "RUN": _Builder.do_run,
    "COPY": _Builder.do_copy,
    "ADD": _Builder.do_add,
}
#: The keywords the builder dispatches (for tests and docs).
STEP_KEYWORDS = frozenset(_STEPS)


def build(
    layout_path: str,
    opts: BuildOptions,
    *,
    log: Callable[[str], None] | None = None,
    output: Callable[[bytes], None] | None = None,
) -> BuildResult:
    """Build the Dockerfile ``opts.dockerfile`` (default ``CONTEXT/Dockerfile``)
    into the layout at ``layout_path`` (created when missing) and point every
    ref of ``opts.tags`` at the result.

    ``log`` receives Docker-style progress lines (``Step 3/8 : ...``), ``output``
    what RUN commands print.  The layout's refs change only after every step
    succeeded.  Raises BuildError (``file:line: reason``), RunFailedError for a
    failing RUN.
    """
    if opts.runtime not in RUNTIMES:
        raise UsageError(f"--runtime {opts.runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if opts.network not in _NETWORKS:
        raise UsageError(f"--network {opts.network!r}: choose one of {', '.join(_NETWORKS)}")
    if opts.compress not in (*CODECS, "auto"):
        raise UsageError(f"layer compression {opts.compress!r}: choose gzip, zstd, none or auto")
    for t in opts.tags:
        check_ref(t)
    say = log or (lambda _s: None)
    df_path = opts.dockerfile or os.path.join(opts.context, "Dockerfile")
    try:
        with open(df_path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise NotFoundError(f"no Dockerfile at {df_path}", hint="use -f PATH") from None
    dockerfile = parse_dockerfile(text, df_path)
    lay = Layout.open(layout_path) if os.path.exists(layout_path) else Layout.init(layout_path)
    builder = _Builder(lay, dockerfile, opts, say, output)
    builder.check()
    try:
        img = builder.run()
        # Every state is already written; tagging is the last step, so a
        # failed build leaves the layout's refs as they were.
        for t in opts.tags:
            lay.set_ref(t, img.descriptor)
    finally:
        builder.work.remove()
    say(f"Successfully built {img.id.short}")
    for t in opts.tags:
        say(f"Successfully tagged {layout_path}:{t}")
    return BuildResult(
        img.descriptor, len(dockerfile.instructions), builder.cached, tuple(opts.tags)
    )


__all__ = [
    "DEFAULT_SHELL",
    "STEP_KEYWORDS",
    "BuildOptions",
    "BuildResult",
    "build",
    "parse_build_args",
]
