"""Build an image from a Dockerfile, the way Docker's classic builder does.

One stage, one pass over the instructions.  Every step turns the current
image state into a new one, written to the layout as an image with no ref
(its 12-hex id is the manifest digest), so ``history`` of the result reads like
``docker history``:

* metadata steps (ENV, ARG, EXPOSE, CMD, ...) change the config only and add
  an ``empty_layer`` row ``/bin/sh -c #(nop)  ENV K=V``;
* file steps (COPY, ADD, RUN, WORKDIR) change one working bundle and commit it
  exactly as ``oci-tools commit`` does (``bundle.commit``), then ``refresh`` it
  so the next step diffs against the new state.  The bundle is unpacked once,
  lazily, at the first file step that is not cached.

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

import bz2
import contextlib
import dataclasses
import hashlib
import io
import json
import lzma
import os
import posixpath
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO, NoReturn, cast

from oci_tools.apply import ApplyOptions, apply_layer, read_file_in_root
from oci_tools.archive import import_archive
from oci_tools.bundle import (
    RECORD,
    BaseRecord,
    CommitOptions,
    commit,
    refresh,
    remove_tree,
    unpack,
    write_json,
)
from oci_tools.compression import CODECS, Writable, decompressor
from oci_tools.digest import Digest
from oci_tools.errors import NotFoundError, OCIToolsError, UsageError
from oci_tools.image import (
    ConfigEdit,
    Image,
    append_history,
    apply_config_edit,
    created_now,
    nop_created_by,
    write_image,
)
from oci_tools.layer.entry import EntryType, TarEntry
from oci_tools.layer.paths import resolve_in_root
from oci_tools.layer.reader import iter_entries
from oci_tools.layer.writer import write_layer
from oci_tools.layout import PRIVATE_DIR, Layout, check_ref, host_platform, split_image_ref
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, History, ImageConfig, Index
from oci_tools.spec.runtime import resolve_user, runtime_config
from oci_tools.store import put_bytes, put_stream

DEFAULT_SHELL = ("/bin/sh", "-c")
#: Annotation naming the cache key of a state in the cache index.
CACHE_KEY_ANNOTATION = "io.github.oci-tools.build.cache-key"
#: Extra gc root (see ``Layout.add_root``) holding the cache index.
CACHE_ROOT = "build-cache"
#: Oldest cache entries beyond this many are dropped (gc then frees them).
CACHE_MAX_ENTRIES = 4096
#: Bumped whenever what a cache key covers changes meaning.
_CACHE_VERSION = "oci-tools-build-1"
#: A ref that exists only inside one build (not valid ref grammar, so it can
#: never collide with, or be written as, a real ref).
_PRIVATE_REF = ".build"
_RUNTIMES = ("auto", "runc", "chroot", "none")
_NETWORKS = ("none", "host")
#: RUN output kept for the error message when a command fails.
_OUTPUT_TAIL = 16 << 10
#: Docker's default capability set: what a RUN step may expect (chown, setuid...).
_DOCKER_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]


# ---------------------------------------------------------------------------
# errors


class BuildError(OCIToolsError):
    """A build stopped at one instruction of the Dockerfile (``file:line: ...``)."""

    def __init__(self, file: str, line: int, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{file}:{line}: {reason}", hint=hint)
        self.file = file
        self.line = line
        self.reason = reason


class RunFailedError(BuildError):
    """A RUN command exited non-zero; ``status`` is its exit code, ``output``
    the end of what it printed (stdout and stderr interleaved)."""

    def __init__(self, file: str, line: int, command: str, status: int, output: bytes) -> None:
        super().__init__(
            file,
            line,
            f"the command '{command}' returned a non-zero code: {status}",
            hint="the build stopped here; the layout's refs were left as they were",
        )
        self.status = status
        self.output = output


# ---------------------------------------------------------------------------
# parsing


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, continuation lines joined.

    ``args`` is the text after the keyword and its ``--flags``; ``exec_form``
    holds the JSON array form when the arguments are one (``RUN ["a", "b"]``).
    """

    line: int
    keyword: str
    args: str
    flags: tuple[tuple[str, str], ...] = ()
    exec_form: tuple[str, ...] | None = None
    original: str = ""

    def flag(self, name: str) -> str | None:
        """The value of ``--name=value`` (the last one given)."""
        found = None
        for k, v in self.flags:
            if k == name:
                found = v
        return found


@dataclass(frozen=True, slots=True)
class Dockerfile:
    """A parsed Dockerfile: its instructions and its escape character."""

    name: str
    instructions: tuple[Instruction, ...]
    escape: str = "\\"


SUPPORTED = frozenset(
    {
        "FROM",
        "COPY",
        "ADD",
        "RUN",
        "ENV",
        "ARG",
        "WORKDIR",
        "USER",
        "EXPOSE",
        "LABEL",
        "CMD",
        "ENTRYPOINT",
        "VOLUME",
        "STOPSIGNAL",
        "SHELL",
        "MAINTAINER",
    }
)
#: Real Dockerfile instructions this builder refuses (rather than skipping them).
_REFUSED = {
    "HEALTHCHECK": "HEALTHCHECK is not supported",
    "ONBUILD": "ONBUILD is not supported",
}
#: Flags each instruction accepts; any other flag is an error naming it.
_FLAGS: dict[str, frozenset[str]] = {"COPY": frozenset({"chown", "chmod"})}
_FLAGS["ADD"] = _FLAGS["COPY"]
_FLAG_RE = re.compile(r"--([A-Za-z][A-Za-z0-9-]*)(?:=(\S*))?(?:\s+|$)")
_DIRECTIVE_RE = re.compile(r"#\s*([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"(?:^|\s)<<-?(['\"]?)[A-Za-z_][A-Za-z0-9_]*\1")


def _continues(line: str, escape: str) -> tuple[str, bool]:
    """Strip a trailing continuation (escape char, then only blanks)."""
    stripped = line.rstrip(" \t\r")
    if stripped.endswith(escape):
        return stripped[: -len(escape)], True
    return line, False


def parse_dockerfile(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse Dockerfile ``text`` (``name`` is used in error messages).

    Handles parser directives (``# escape=``; ``# syntax=`` is ignored, as the
    classic builder does), comments, blank lines, line continuations (comment
    and blank lines inside one are dropped, like Docker), ``--flags`` and the
    JSON form.  Unknown or unsupported instructions, flags and heredocs raise
    BuildError naming the line.
    """
    lines = text.splitlines()
    escape = "\\"
    i = 0
    # Directives only count before anything else (even a blank line ends them).
    while i < len(lines):
        m = _DIRECTIVE_RE.fullmatch(lines[i].strip())
        if not m or not lines[i].lstrip().startswith("#"):
            break
        key, value = m.group(1).lower(), m.group(2)
        if key == "escape":
            if value not in ("\\", "`"):
                raise BuildError(name, i + 1, f"invalid escape token {value!r}: use \\ or `")
            escape = value
        i += 1
    out: list[Instruction] = []
    while i < len(lines):
        raw = lines[i]
        start = i + 1
        i += 1
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text_, more = _continues(raw.lstrip(), escape)
        while more and i < len(lines):
            nxt = lines[i]
            i += 1
            if not nxt.strip() or nxt.lstrip().startswith("#"):
                continue
            part, more = _continues(nxt, escape)
            text_ += part
        out.append(_instruction(name, start, text_.strip()))
    return Dockerfile(name, tuple(out), escape)


def _instruction(file: str, line: int, text: str) -> Instruction:
    m = re.match(r"(\S+)\s*(.*)", text, re.S)
    assert m is not None
    word, rest = m.group(1), m.group(2)
    kw = word.upper()
    if kw in _REFUSED:
        raise BuildError(file, line, _REFUSED[kw])
    if kw not in SUPPORTED:
        raise BuildError(file, line, f"unknown instruction: {word}")
    flags: list[tuple[str, str]] = []
    if kw in ("FROM", "COPY", "ADD", "RUN"):
        while rest.startswith("--"):
            fm = _FLAG_RE.match(rest)
            if fm is None:
                raise BuildError(file, line, f"malformed flag in {kw}: {rest.split()[0]}")
            flag_name, value = fm.group(1), fm.group(2)
            if flag_name not in _FLAGS.get(kw, frozenset()):
                why = " (multi-stage builds)" if flag_name == "from" else ""
                raise BuildError(file, line, f"{kw} --{flag_name}{why} is not supported")
            if not value:
                raise BuildError(file, line, f"{kw} --{flag_name} needs a value")
            flags.append((flag_name, value))
            rest = rest[fm.end() :]
    exec_form: tuple[str, ...] | None = None
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
            exec_form = tuple(parsed)
    if kw in ("RUN", "COPY", "ADD") and exec_form is None and _HEREDOC_RE.search(rest):
        raise BuildError(file, line, f"heredocs ({kw} <<WORD) are not supported")
    if kw == "SHELL" and exec_form is None:
        raise BuildError(file, line, 'SHELL needs the JSON form, e.g. SHELL ["/bin/sh", "-c"]')
    return Instruction(line, kw, rest, tuple(flags), exec_form, text)


# ---------------------------------------------------------------------------
# words: quotes, escapes and $VARIABLE substitution (Docker's shell lexer)

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BLANK = " \t\r\n"


class _Lexer:
    """Quote removal and variable expansion as the classic builder does it:
    ``$X``, ``${X}``, ``${X:-word}``, ``${X:+word}`` (and without the colon),
    ``${X:?msg}``; single quotes are literal, double quotes expand."""

    def __init__(self, escape: str) -> None:
        self.escape = escape

    def word(self, text: str, env: Mapping[str, str]) -> str:
        """One word: blanks are kept (ProcessWord)."""
        out = self._run(text, env, split=False)
        return out[0] if out else ""

    def words(self, text: str, env: Mapping[str, str]) -> list[str]:
        """Words split on unquoted blanks, after expansion (ProcessWords)."""
        return self._run(text, env, split=True)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of each raw token split on unquoted blanks, quotes kept
        (how ENV, LABEL and ARG find their ``key=value`` pairs)."""
        out: list[tuple[int, int]] = []
        i, n = 0, len(text)
        while i < n:
            while i < n and text[i] in _BLANK:
                i += 1
            if i >= n:
                break
            start = i
            quote = ""
            while i < n:
                c = text[i]
                if quote:
                    if c == self.escape and quote == '"' and i + 1 < n:
                        i += 2
                        continue
                    if c == quote:
                        quote = ""
                elif c == self.escape and i + 1 < n:
                    i += 2
                    continue
                elif c in "'\"":
                    quote = c
                elif c in _BLANK:
                    break
                i += 1
            if quote:
                raise ValueError(f"unterminated {quote} quote in {text!r}")
            out.append((start, i))
        return out

    def _run(self, text: str, env: Mapping[str, str], *, split: bool) -> list[str]:
        out: list[str] = []
        cur: list[str] = []
        started = False
        i, n, esc = 0, len(text), self.escape

        def flush() -> None:
            nonlocal cur, started
            if started:
                out.append("".join(cur))
            cur, started = [], False

        while i < n:
            c = text[i]
            if split and c in _BLANK:
                flush()
                i += 1
            elif c == esc:
                cur.append(text[i + 1] if i + 1 < n else c)
                started = True
                i += 2
            elif c == "'":
                j = text.find("'", i + 1)
                if j < 0:
                    raise ValueError(f"unterminated ' quote in {text!r}")
                cur.append(text[i + 1 : j])
                started = True
                i = j + 1
            elif c == '"':
                i = self._double(text, i + 1, env, cur)
                started = True
            elif c == "$":
                value, i = self._dollar(text, i, env)
                if not split:
                    cur.append(value)
                    started = started or bool(value)
                    continue
                # An unquoted expansion is split into words, as a shell does.
                for k, seg in enumerate(re.split(r"[ \t\r\n]+", value)):
                    if k:
                        flush()
                    if seg:
                        cur.append(seg)
                        started = True
            else:
                cur.append(c)
                started = True
                i += 1
        flush()
        return out

    def _double(self, text: str, i: int, env: Mapping[str, str], cur: list[str]) -> int:
        n = len(text)
        while i < n:
            c = text[i]
            if c == '"':
                return i + 1
            if c == self.escape and i + 1 < n and text[i + 1] in ('"', "$", self.escape):
                cur.append(text[i + 1])
                i += 2
            elif c == "$":
                value, i = self._dollar(text, i, env)
                cur.append(value)
            else:
                cur.append(c)
                i += 1
        raise ValueError(f'unterminated " quote in {text!r}')

    def _dollar(self, text: str, i: int, env: Mapping[str, str]) -> tuple[str, int]:
        n = len(text)
        if i + 1 < n and text[i + 1] == "{":
            m = _NAME_RE.match(text, i + 2)
            if m is None:
                raise ValueError(f"bad substitution in {text!r}")
            name, j = m.group(), m.end()
            if j < n and text[j] == "}":
                return env.get(name, ""), j + 1
            op = next((o for o in (":-", ":+", ":?", "-", "+", "?") if text.startswith(o, j)), "")
            if not op:
                raise ValueError(f"bad substitution in {text!r}")
            depth, k = 1, j + len(op)
            while k < n:
                if text.startswith("${", k):
                    depth += 1
                    k += 1
                elif text[k] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                k += 1
            if depth:
                raise ValueError(f"missing '}}' in {text!r}")
            arg = self.word(text[j + len(op) : k], env)
            is_set, value = name in env, env.get(name, "")
            present = bool(value) if op.startswith(":") else is_set
            if op.endswith("-"):
                return (value if present else arg), k + 1
            if op.endswith("+"):
                return (arg if present else ""), k + 1
            if not present:
                raise ValueError(f"{name}: {arg or 'is not set'}")
            return value, k + 1
        m = _NAME_RE.match(text, i + 1)
        if m is not None:
            return env.get(m.group(), ""), m.end()
        return "$", i + 1


# ---------------------------------------------------------------------------
# .dockerignore


@dataclass(frozen=True, slots=True)
class _Pattern:
    regex: re.Pattern[str]
    exclusion: bool
    depth: int  # number of path components of the pattern


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: ``*`` and ``?`` within a component, ``**`` any
    number of components, ``[...]`` classes, backslash escapes."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 < n:
                out.append(re.escape(pattern[i + 1]))
                i += 1
            else:
                out.append(re.escape(c))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : j]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


class DockerIgnore:
    """The patterns of a ``.dockerignore``; ``ignored(path)`` says whether a
    context path (relative, ``/``-separated) is excluded: the last pattern
    matching it or one of its parent directories wins, ``!`` re-includes."""

    def __init__(self, lines: Sequence[str] = ()) -> None:
        pats: list[_Pattern] = []
        for line in lines:
            p = line.strip()
            if not p or p.startswith("#"):
                continue
            exclusion = p.startswith("!")
            if exclusion:
                p = p[1:].strip()
            p = posixpath.normpath(p)
            if len(p) > 1 and p.startswith("/"):
                p = p.lstrip("/")
            if p == ".":
                continue
            pats.append(_Pattern(_pattern_regex(p), exclusion, len(p.split("/"))))
        self.patterns = tuple(pats)
        self.has_exceptions = any(p.exclusion for p in pats)

    @classmethod
    def load(cls, context: str) -> DockerIgnore:
        """Read ``CONTEXT/.dockerignore`` (no file: nothing is ignored)."""
        try:
            with open(os.path.join(context, ".dockerignore"), encoding="utf-8") as f:
                return cls(f.read().splitlines())
        except FileNotFoundError:
            return cls()

    def ignored(self, path: str) -> bool:
        """Whether context path ``path`` is excluded."""
        if not self.patterns or not path:
            return False
        parents = path.split("/")[:-1]
        matched = False
        for p in self.patterns:
            if p.exclusion != matched:
                continue
            hit = bool(p.regex.match(path))
            if not hit and parents and p.depth <= len(parents):
                hit = bool(p.regex.match("/".join(parents[: p.depth])))
            if hit:
                matched = not p.exclusion
        return matched


# ---------------------------------------------------------------------------
# paths inside a root (the build context, or the rootfs for lookups)


def _resolve_in(root: str, path: str) -> str | None:
    """Host path of ``path`` inside directory ``root``, every symlink (the last
    one included) resolved as if ``root`` were ``/`` (``..`` stops at it);
    None when a component is missing or not a directory.

    For reading only: writes into a rootfs always go through ``apply``.
    """

    def readlink(prefix: str, more: bool) -> str | None:
        host = os.path.join(root, prefix)
        st = os.lstat(host)
        if stat.S_ISLNK(st.st_mode):
            return os.readlink(host)
        if more and not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(host)
        return None

    try:
        rel = resolve_in_root(path, readlink)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if rel is None:
        raise OCIToolsError(f"{path}: too many levels of symbolic links")
    return os.path.join(root, rel) if rel else root


def _rel(path: str) -> str:
    """A container path as a layer entry name: no leading ``/``."""
    return posixpath.normpath("/" + path).lstrip("/")


# ---------------------------------------------------------------------------
# the build context: sources of COPY and ADD


@dataclass(frozen=True, slots=True)
class _Item:
    """One path to copy: ``rel`` is its name below the copied source."""

    rel: str
    host: str
    kind: EntryType
    mode: int
    size: int
    mtime_ns: int
    link: str = ""
    digest: str = ""


@dataclass(frozen=True, slots=True)
class _Source:
    """A resolved COPY/ADD source: a file or a directory with what it holds."""

    name: str
    is_dir: bool
    items: tuple[_Item, ...]
    archive: str | None = None  # ADD: the codec of a local tar archive

    def hash(self) -> str:
        h = hashlib.sha256()
        for it in self.items:
            rec = [it.rel, it.kind.value, f"{it.mode:o}", str(it.size), it.digest or it.link]
            h.update(json.dumps(rec, ensure_ascii=False).encode("utf-8", "surrogateescape"))
            h.update(b"\n")
        if self.archive:
            h.update(b"archive\n")
        return h.hexdigest()


_GLOB_CHARS = re.compile(r"[*?\[]")


class _Context:
    """The build context directory and its .dockerignore."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise NotFoundError(f"build context {root} is not a directory")
        self.root = os.path.abspath(root)
        self.ignore = DockerIgnore.load(self.root)

    def sources(self, pattern: str, keyword: str) -> list[_Source]:
        """The sources named by one COPY/ADD argument (wildcards expanded)."""
        clean = posixpath.normpath(pattern)
        if clean == ".." or clean.startswith("../"):
            raise OCIToolsError(f"forbidden path outside the build context: {pattern}")
        clean = clean.lstrip("/") or "."
        if clean == ".":
            clean = ""
        if _GLOB_CHARS.search(clean):
            rx = _pattern_regex(clean)
            names = [rel for rel in self._walk_names() if rx.match(rel)]
            if not names:
                raise NotFoundError(f"{keyword}: no source files were specified by {pattern!r}")
            return [self._source(n, pattern) for n in names]
        return [self._source(clean, pattern)]

    def _walk_names(self) -> Iterator[str]:
        stack = [""]
        while stack:
            d = stack.pop()
            try:
                entries = sorted(os.scandir(os.path.join(self.root, d)), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                rel = posixpath.join(d, e.name) if d else e.name
                if self.ignore.ignored(rel):
                    continue
                yield rel
                if e.is_dir(follow_symlinks=False):
                    stack.append(rel)

    def _source(self, rel: str, shown: str) -> _Source:
        host = _resolve_in(self.root, rel)
        if host is None or self.ignore.ignored(rel):
            raise NotFoundError(
                f"file not found in build context or excluded by .dockerignore: {shown}",
                hint=f"the context is {self.root}",
            )
        st = os.stat(host)
        name = posixpath.basename(rel) or posixpath.basename(self.root)
        if stat.S_ISDIR(st.st_mode):
            top = _Item("", host, EntryType.DIR, st.st_mode & 0o7777, 0, st.st_mtime_ns)
            return _Source(name, True, (top, *self._tree(host, rel)))
        return _Source(name, False, (self._item("", host, st, rel),))

    def _tree(self, host_dir: str, rel_dir: str) -> Iterator[_Item]:
        """Every kept path below a source directory, depth first, sorted."""
        stack: list[tuple[str, str, str]] = [(host_dir, rel_dir, "")]
        while stack:
            hdir, cdir, sub = stack.pop()
            kids = sorted(os.scandir(hdir), key=lambda e: e.name)
            dirs: list[tuple[str, str, str]] = []
            for e in kids:
                crel = posixpath.join(cdir, e.name) if cdir else e.name
                srel = posixpath.join(sub, e.name) if sub else e.name
                is_dir = e.is_dir(follow_symlinks=False)
                if self.ignore.ignored(crel):
                    # An excluded directory is only entered when a "!" pattern
                    # could bring something below it back.
                    if is_dir and self.ignore.has_exceptions:
                        dirs.append((e.path, crel, srel))
                    continue
                st = e.stat(follow_symlinks=False)
                if stat.S_ISSOCK(st.st_mode):
                    continue
                yield self._item(srel, e.path, st, crel)
                if is_dir:
                    dirs.append((e.path, crel, srel))
            stack.extend(reversed(dirs))

    @staticmethod
    def _item(rel: str, host: str, st: os.stat_result, shown: str) -> _Item:
        mode, mtime = st.st_mode & 0o7777, st.st_mtime_ns
        if stat.S_ISREG(st.st_mode):
            return _Item(rel, host, EntryType.REG, mode, st.st_size, mtime, digest=_hash_file(host))
        if stat.S_ISDIR(st.st_mode):
            return _Item(rel, host, EntryType.DIR, mode, 0, mtime)
        if stat.S_ISLNK(st.st_mode):
            return _Item(rel, host, EntryType.SYMLINK, mode, 0, mtime, link=os.readlink(host))
        raise OCIToolsError(f"cannot copy {shown}: not a regular file, directory or symlink")


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _archive_codec(path: str) -> str | None:
    """The compression of ``path`` if it is a tar archive (ADD unpacks those),
    None otherwise: sniffed from the bytes, as Docker does, not the name."""
    with open(path, "rb") as f:
        magic = f.read(6)
        f.seek(0)
        codec = (
            "gzip"
            if magic.startswith(b"\x1f\x8b")
            else "bzip2"
            if magic.startswith(b"BZh")
            else "xz"
            if magic.startswith(b"\xfd7zXZ\x00")
            else "zstd"
            if magic.startswith(b"\x28\xb5\x2f\xfd")
            else "none"
        )
        try:
            head = _open_archive(codec, cast(BinaryIO, f)).read(512)
        except Exception:  # not decompressible: an ordinary file
            return None
    return codec if len(head) == 512 and head[257:262] == b"ustar" else None


def _open_archive(codec: str, raw: BinaryIO) -> BinaryIO:
    if codec == "bzip2":
        return cast(BinaryIO, bz2.BZ2File(raw))
    if codec == "xz":
        return cast(BinaryIO, lzma.LZMAFile(raw))
    return decompressor(codec, raw)


# ---------------------------------------------------------------------------
# the cache: one index blob of cached states, kept by one gc root


class _Cache:
    """Cached step results of a layout (see the module docstring)."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.entries = self._load()

    def _load(self) -> dict[str, Descriptor]:
        path = os.path.join(self.layout.roots_dir(), CACHE_ROOT + ".json")
        try:
            with open(path, "rb") as f:
                rec = json.loads(f.read(1 << 20))
            idx = Index.parse(self.layout.read_blob(Descriptor.from_dict(rec["descriptor"])))
        except (OSError, ValueError, KeyError, TypeError, OCIToolsError):
            return {}
        return {d.annotations[CACHE_KEY_ANNOTATION]: d for d in idx.manifests if d.annotations}

    def get(self, key: str) -> Descriptor | None:
        """The state cached under ``key``, if all of its blobs are still there."""
        desc = self.entries.get(key)
        if desc is None:
            return None
        try:
            img = Image.from_descriptor(
                self.layout, desc.with_annotations(**{CACHE_KEY_ANNOTATION: None})
            )
        except OCIToolsError:
            return None
        if not all(self.layout.store.has(d.digest) for d in img.layers):
            return None
        return img.descriptor

    def put(self, key: str, desc: Descriptor) -> None:
        """Remember ``desc`` under ``key``.  Call under the layout lock, in the
        same hold as the one that wrote ``desc``'s blobs, so no gc runs between."""
        entries = self._load()  # another build may have added entries meanwhile
        tagged = desc.with_annotations(**{CACHE_KEY_ANNOTATION: key})
        if entries.get(key) == tagged:
            self.entries = entries
            return
        entries.pop(key, None)
        entries[key] = tagged
        while len(entries) > CACHE_MAX_ENTRIES:
            entries.pop(next(iter(entries)))
        idx = Index.build(list(entries.values()))
        put_bytes(self.layout.store, idx.raw)
        self.layout.add_root(CACHE_ROOT, idx.descriptor(mt.OCI_INDEX))
        self.entries = entries


# ---------------------------------------------------------------------------
# a layout view with one in-process ref


class _BuildLayout(Layout):
    """The target layout, where the private ref ``.build`` names the state
    being built without ever being written to index.json: ``bundle.unpack``
    takes a ref to unpack, and ``bundle.commit`` tags its result; through this
    view both work on untagged intermediate states."""

    pinned: Descriptor | None = None

    def lookup(self, ref: str) -> Descriptor:
        if ref == _PRIVATE_REF:
            assert self.pinned is not None
            return self.pinned
        return super().lookup(ref)

    def set_ref(self, ref: str, desc: Descriptor) -> None:
        if ref == _PRIVATE_REF:
            self.pinned = desc
            return
        super().set_ref(ref, desc)


# ---------------------------------------------------------------------------
# running a command in the rootfs


class _Mountpoints:
    """Mount targets runc creates in the rootfs (``/proc``, ``/dev``, ...)
    when the image lacks them.  Docker keeps them out of layers with its init
    layer; we remove what was created once the command is done (and restore
    the parent directory's times), so only the command's own changes remain."""

    def __init__(self, rootfs: str, destinations: Sequence[str]) -> None:
        self.created: dict[str, None] = {}
        self.parents: dict[str, tuple[int, int]] = {}
        dests = [posixpath.normpath(d) for d in destinations]
        for d in dests:
            if any(o != d and d.startswith(o.rstrip("/") + "/") for o in dests):
                continue  # lives inside another mount, not in the rootfs
            comps = [c for c in d.split("/") if c]
            cur = rootfs
            for k, c in enumerate(comps):
                p = os.path.join(cur, c)
                if os.path.lexists(p):
                    if os.path.islink(p) or not os.path.isdir(p):
                        break  # runc resolves it itself; leave it alone
                    cur = p
                    continue
                st = os.stat(cur)
                self.parents.setdefault(cur, (st.st_atime_ns, st.st_mtime_ns))
                for c2 in comps[k:]:
                    cur = os.path.join(cur, c2)
                    self.created[cur] = None
                break

    def cleanup(self) -> None:
        for p in reversed(list(self.created)):
            with contextlib.suppress(OSError):
                st = os.lstat(p)
                if stat.S_ISDIR(st.st_mode):
                    os.rmdir(p)
                elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    os.unlink(p)
        for d, times in self.parents.items():
            with contextlib.suppress(OSError):
                os.utime(d, ns=times, follow_symlinks=False)


def _pump(proc: subprocess.Popen[bytes], output: Callable[[bytes], None] | None) -> bytes:
    """Stream a process's output to ``output``; returns the tail of it."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    tail = bytearray()
    while chunk := os.read(fd, 1 << 16):
        if output is not None:
            output(chunk)
        tail += chunk
        if len(tail) > _OUTPUT_TAIL:
            del tail[:-_OUTPUT_TAIL]
    return bytes(tail)


def _run_runc(
    runc: str, bundle: str, state: str, cid: str, output: Callable[[bytes], None] | None
) -> tuple[int, bytes]:
    base = [runc, "--root", state]
    proc = subprocess.Popen(
        [*base, "run", "--bundle", bundle, cid],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        tail = _pump(proc, output)
        return proc.wait(), tail
    finally:
        if proc.poll() is None:  # interrupted: stop the container first
            subprocess.run([*base, "kill", cid, "KILL"], capture_output=True, check=False)
            proc.kill()
            proc.wait()
        if os.path.exists(os.path.join(state, cid)):
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, check=False)


def _run_chroot(
    rootfs: str, process: Mapping[str, Any], output: Callable[[bytes], None] | None
) -> tuple[int, bytes]:
    user = process["user"]
    groups = list(user.get("additionalGids") or [])

    def enter() -> None:  # in the child, before exec
        os.chroot(rootfs)
        os.chdir(process["cwd"])
        os.setgroups(groups)
        os.setgid(user["gid"])
        os.setuid(user["uid"])

    env = dict(e.split("=", 1) for e in process["env"] if "=" in e)
    proc = subprocess.Popen(
        list(process["args"]),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=enter,
        start_new_session=True,
    )
    try:
        tail = _pump(proc, output)
        return proc.wait(), tail
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)
            proc.wait()


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
    (RUN gets only a loopback) or ``host``.
    """

    context: str = "."
    dockerfile: str | None = None
    tags: tuple[str, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    runtime: str = "auto"
    network: str = "none"
    compress: str = "gzip"


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


def _short(desc: Descriptor) -> str:
    return desc.digest.encoded[:12]


def _chmod(text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"[0-7]{3,4}", text):
        raise OCIToolsError(f"--chmod={text}: use an octal mode such as 755 or 0644")
    return int(text, 8)


class _Builder:
    def __init__(
        self,
        layout: _BuildLayout,
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
        self.lexer = _Lexer(dockerfile.escape)
        self.context = _Context(opts.context)
        self.cache = _Cache(layout)
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
        self.tmp: str | None = None
        self.bundle_layers: tuple[Digest, ...] | None = None
        self.bundle_base: Digest | None = None

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
                getattr(self, "do_" + ins.keyword.lower())(ins)
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
        h = hashlib.sha256()
        for p in (_CACHE_VERSION, str(self.img.descriptor.digest), *parts):
            h.update(p.encode("utf-8", "surrogateescape") + b"\0")
        return h.hexdigest()

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
        self.log(f" ---> {_short(desc)}")

    # -- metadata steps -----------------------------------------------------------

    def meta(self, text: str, edit: Callable[[dict[str, Any]], None] | None = None) -> None:
        created_by = nop_created_by([text])
        key = self.key("meta", created_by)
        if self.cached_step(key):
            return
        doc = self.img.config.as_dict()
        if edit is not None:
            edit(doc)
        when = created_now()
        append_history(doc, History(created=when, created_by=created_by, empty_layer=True))
        doc["created"] = when
        with self.lay.lock():
            desc = write_image(self.lay, doc, list(self.img.layers))
            self.cache.put(key, desc)
        self.advance(desc)

    def edit(self, ed: ConfigEdit) -> Callable[[dict[str, Any]], None]:
        def run(doc: dict[str, Any]) -> None:
            apply_config_edit(doc, ed)

        return run

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
        self.meta("ENV " + " ".join(items), self.edit(ConfigEdit(env=items)))

    def do_label(self, ins: Instruction) -> None:
        pairs = self.pairs(ins)
        items = tuple(f"{k}={v}" for k, v in pairs)
        self.meta("LABEL " + " ".join(items), self.edit(ConfigEdit(labels=items)))

    def do_maintainer(self, ins: Instruction) -> None:
        self.meta(f"MAINTAINER {ins.args}", self.edit(ConfigEdit(author=ins.args)))

    def do_arg(self, ins: Instruction) -> None:
        spans = self.lexer.spans(ins.args)
        if not spans:
            self.fail(ins, "ARG needs a NAME[=default]")
        env = self.env() if self.image is not None else dict(self._meta_env())
        shown = []
        for a, b in spans:
            name, eq, default = ins.args[a:b].partition("=")
            if not _NAME_RE.fullmatch(name):
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
        self.meta(f"USER {user}", self.edit(ConfigEdit(user=user)))

    def do_expose(self, ins: Instruction) -> None:
        ports = self.lexer.words(ins.args, self.env())
        if not ports:
            self.fail(ins, "EXPOSE needs at least one port")
        self.meta("EXPOSE " + " ".join(ports), self.edit(ConfigEdit(expose=tuple(ports))))

    def do_volume(self, ins: Instruction) -> None:
        env = self.env()
        if ins.exec_form is not None:
            vols = [self.lexer.word(v, env) for v in ins.exec_form]
        else:
            vols = self.lexer.words(ins.args, env)
        if not vols or not all(vols):
            self.fail(ins, "VOLUME needs at least one non-empty path")
        self.meta("VOLUME [" + " ".join(vols) + "]", self.edit(ConfigEdit(volumes=tuple(vols))))

    def do_stopsignal(self, ins: Instruction) -> None:
        sig = self.lexer.word(ins.args, self.env())
        if not sig:
            self.fail(ins, "STOPSIGNAL needs a signal")
        self.meta(f"STOPSIGNAL {sig}", self.edit(ConfigEdit(stop_signal=sig)))

    def command(self, ins: Instruction) -> list[str]:
        if ins.exec_form is not None:
            return list(ins.exec_form)
        if not ins.args:
            self.fail(ins, f"{ins.keyword} needs a command")
        return [*self.shell, ins.args]

    def do_cmd(self, ins: Instruction) -> None:
        cmd = self.command(ins)
        self.cmd_set = True
        self.meta("CMD " + _docker_list(cmd), self.edit(ConfigEdit(cmd=cmd)))

    def do_entrypoint(self, ins: Instruction) -> None:
        ep = self.command(ins)
        # As Docker: a new ENTRYPOINT drops a CMD inherited from the base image.
        ed = ConfigEdit(entrypoint=ep, clear_cmd=not self.cmd_set)
        self.meta("ENTRYPOINT " + _docker_list(ep), self.edit(ed))

    def do_shell(self, ins: Instruction) -> None:
        assert ins.exec_form is not None
        if not ins.exec_form:
            self.fail(ins, "SHELL needs at least the shell program")
        self.shell = list(ins.exec_form)
        # The shell is build state (OCI configs have no field for it).
        self.meta("SHELL [" + " ".join(self.shell) + "]")

    # -- FROM -------------------------------------------------------------------------

    def do_from(self, ins: Instruction) -> None:
        words = self.lexer.words(ins.args, self._meta_env())
        if len(words) == 3 and words[1].lower() == "as":
            words = words[:1]
        if len(words) != 1:
            self.fail(ins, "FROM takes one image (and an optional AS name)")
        desc = self.base(words[0])
        self.image = Image.from_descriptor(self.lay, desc)
        self.image.check_consistent()
        self.shell = list(self.image.config.config.get("Shell") or DEFAULT_SHELL)
        self.log(f" ---> {_short(desc)}")

    def base(self, src: str) -> Descriptor:
        """The manifest descriptor of the FROM image, in the target layout."""
        if src == "scratch":
            p = host_platform()
            doc: dict[str, Any] = {"architecture": p.architecture, "os": p.os}
            if p.variant:
                doc["variant"] = p.variant
            # No "created": the same empty start state in every build, so the
            # cache keys of the steps on top of it stay stable.
            doc.update(config={}, rootfs={"type": "layers", "diff_ids": []}, history=[])
            with self.lay.lock():
                desc = write_image(self.lay, doc, [])
                self.cache.put("from:" + str(desc.digest), desc)
            return desc
        if os.path.isfile(src):
            return self.from_archive(src)
        if ":" not in src and not os.path.isdir(src):
            # A bare name: a ref in the layout being built into.
            return self.lay.resolve(check_ref(src)).manifest_descriptor
        path, ref = split_image_ref(src)
        assert ref is not None
        if os.path.isdir(path) and os.path.samefile(path, self.lay.path):
            return self.lay.resolve(ref).manifest_descriptor
        return self.copy_from(Layout.open(path), ref)

    def copy_from(self, other: Layout, ref: str) -> Descriptor:
        """Copy image ``ref`` of another layout here, blob by blob (blobs
        already here are not copied again: same digest, stored once)."""
        img = Image.load(other, ref)
        img.check_consistent()
        assert img.manifest.config is not None
        with self.lay.lock():
            for d in [img.descriptor, img.manifest.config, *img.layers]:
                if self.lay.store.has(d.digest):
                    continue
                r = other.store.open(d.digest, d.size)
                try:
                    put_stream(self.lay.store, cast(BinaryIO, r), d.digest, d.size)
                finally:
                    r.close()
            self.cache.put("from:" + str(img.descriptor.digest), img.descriptor)
        return img.descriptor

    def from_archive(self, path: str) -> Descriptor:
        tmp = Layout.init(os.path.join(self.workdir(), "from-archive"))
        try:
            import_archive(path, tmp, "base")
            return self.copy_from(tmp, "base")
        finally:
            with contextlib.suppress(OSError):
                remove_tree(tmp.path)

    # -- the working bundle -----------------------------------------------------------

    def workdir(self) -> str:
        if self.tmp is None:
            parent = os.path.join(self.lay.path, PRIVATE_DIR, "build")
            os.makedirs(parent, exist_ok=True)
            _clean_stale(parent)
            self.tmp = tempfile.mkdtemp(prefix=f"b-{os.getpid()}-", dir=parent)
        return self.tmp

    def bundle(self) -> str:
        """The working bundle, holding the current state's filesystem and
        based on the current state (unpacked or re-based as needed)."""
        path = os.path.join(self.workdir(), "bundle")
        img = self.img
        if self.bundle_layers != img.config.diff_ids:
            self.lay.pinned = img.descriptor
            unpack(self.lay, _PRIVATE_REF, path, rootless=self.rootless, force=True)
            self.bundle_layers = img.config.diff_ids
        elif self.bundle_base != img.descriptor.digest:
            # Same files, newer config (metadata steps ran since): re-point the
            # base record, keeping the snapshot (no walk of the rootfs needed).
            rec = BaseRecord.load(path)
            new = BaseRecord(rec.layout, img.descriptor, rec.ref, rec.rootless)
            write_json(os.path.join(path, RECORD), new.to_dict())
        self.bundle_base = img.descriptor.digest
        return path

    def file_step(
        self,
        key: str,
        created_by: str,
        change: Callable[[str], None],
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        """Run ``change(bundle)``, commit what it changed as one layer (an
        ``empty_layer`` row when nothing changed), then apply ``edit`` to the
        config of the result."""
        bundle = self.bundle()
        change(bundle)
        opts = CommitOptions(compress=self.opts.compress, created_by=created_by, allow_empty=True)
        with self.lay.lock():
            desc = commit(bundle, self.lay, _PRIVATE_REF, opts).descriptor
            if edit is not None:
                img = Image.from_descriptor(self.lay, desc)
                doc = img.config.as_dict()
                edit(doc)
                desc = write_image(self.lay, doc, list(img.layers))
            self.cache.put(key, desc)
        refresh(bundle, self.lay, desc, None)
        self.advance(desc)
        self.bundle_layers = self.img.config.diff_ids
        self.bundle_base = desc.digest

    def apply_entries(
        self, rootfs: str, entries: Iterator[tuple[TarEntry, BinaryIO | None]]
    ) -> None:
        """Apply ``entries`` to the rootfs as a layer would be: every name
        resolves inside the rootfs, whatever symlinks it holds."""
        with tempfile.SpooledTemporaryFile(max_size=32 << 20, dir=self.workdir()) as spool:
            write_layer(entries, cast(Writable, spool), "none")
            spool.seek(0)
            apply_layer(
                cast(BinaryIO, spool),
                rootfs,
                codec="none",
                diff_id=None,
                options=ApplyOptions(rootless=self.rootless),
            )

    def mkdir(self, rootfs: str, path: str) -> None:
        """Create directory ``path`` (and missing parents) in the rootfs."""
        found = _resolve_in(rootfs, path)
        if found is not None:
            if not os.path.isdir(found):
                raise OCIToolsError(f"{path} exists in the image and is not a directory")
            return
        entry = TarEntry(_rel(path), EntryType.DIR, 0o755, 0, 0, 0, time.time_ns())
        self.apply_entries(rootfs, iter([(entry, None)]))

    # -- WORKDIR, RUN -------------------------------------------------------------------

    def do_workdir(self, ins: Instruction) -> None:
        word = self.lexer.word(ins.args, self.env())
        if not word:
            self.fail(ins, "WORKDIR needs a path")
        cur = str(self.img.config.config.get("WorkingDir") or "/")
        new = "/" + posixpath.normpath(posixpath.join(cur, word)).lstrip("/")
        created_by = nop_created_by([f"WORKDIR {new}"])
        key = self.key("workdir", created_by)
        if self.cached_step(key):
            return
        self.file_step(
            key,
            created_by,
            lambda b: self.mkdir(os.path.join(b, "rootfs"), new),
            self.edit(ConfigEdit(workdir=new)),
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

    def runtime(self, ins: Instruction) -> str:
        rt = self.opts.runtime
        runc = shutil.which("runc")
        if rt == "auto":
            if runc:
                return runc
            if os.geteuid() == 0:
                return "chroot"
            self.fail(ins, "RUN needs runc, or root for --runtime chroot", "install runc")
        if rt == "runc":
            if not runc:
                self.fail(ins, "runc is not installed", "install runc or use --runtime chroot")
            assert runc is not None
            return runc
        if os.geteuid() != 0:
            self.fail(ins, "--runtime chroot needs root")
        return "chroot"

    def execute(self, ins: Instruction, bundle: str, argv: list[str], build_env: list[str]) -> None:
        """Run ``argv`` in the bundle's rootfs with the image's Env (plus the
        build args), WorkingDir and User; RunFailedError when it fails."""
        runtime = self.runtime(ins)
        rootfs = os.path.join(bundle, "rootfs")
        doc = self.img.config.as_dict()
        conf = doc.setdefault("config", {})
        conf["Env"] = [*build_env, *(conf.get("Env") or [])]
        host_net = self.opts.network == "host"
        spec = runtime_config(
            ImageConfig.from_dict(doc),
            lambda p: read_file_in_root(rootfs, p),
            rootless=self.rootless,
            args=argv,
            network_host=host_net,
        )
        proc = spec["process"]
        self.mkdir(rootfs, proc["cwd"])  # as runc would, but visible to the diff
        proc["capabilities"] = {
            k: list(_DOCKER_CAPS) for k in ("bounding", "effective", "permitted")
        }
        proc["noNewPrivileges"] = False
        etc = os.path.join(rootfs, "etc")
        if host_net and os.path.isdir(etc) and not os.path.islink(etc):
            # Name resolution as on the host (Docker bind-mounts these too);
            # only over a plain file or nothing, never through a symlink.
            for f in ("/etc/resolv.conf", "/etc/hosts"):
                inside = os.path.join(etc, os.path.basename(f))
                plain = os.path.isfile(inside) and not os.path.islink(inside)
                if os.path.isfile(f) and (plain or not os.path.lexists(inside)):
                    spec["mounts"].append(
                        {"destination": f, "type": "bind", "source": f, "options": ["rbind", "ro"]}
                    )
        write_json(os.path.join(bundle, "config.json"), spec)
        cid = secrets.token_hex(6)
        self.log(f" ---> Running in {cid}")
        if runtime == "chroot":
            status, tail = _run_chroot(rootfs, proc, self.output)
        else:
            points = _Mountpoints(rootfs, [m["destination"] for m in spec["mounts"]])
            state = os.path.join(self.workdir(), "runc")
            try:
                status, tail = _run_runc(
                    runtime, bundle, state, "oci-tools-build-" + cid, self.output
                )
            finally:
                points.cleanup()
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
        sources: list[_Source] = []
        for w in words[:-1]:
            if re.match(r"[a-z][a-z0-9+.-]*://", w) or w.startswith("git@"):
                self.fail(ins, f"{ins.keyword} from a URL is not supported: {w}")
            sources += self.context.sources(w, ins.keyword)
        if unpack_archives:
            sources = [
                dataclasses.replace(s, archive=_archive_codec(s.items[0].host))
                if not s.is_dir
                else s
                for s in sources
            ]
        if chmod is not None:
            sources = [s if s.archive else _with_mode(s, chmod) for s in sources]
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
        shown_dest = dest_abs + ("/" if dest.endswith("/") and dest_abs != "/" else "")
        if many:
            h = hashlib.sha256("".join(s.hash() for s in sources).encode()).hexdigest()
            what = f"multi:{h}"
        else:
            what = f"{'dir' if sources[0].is_dir else 'file'}:{sources[0].hash()}"
        opts = "".join(
            f"--{k}={v} " for k, v in (("chown", chown), ("chmod", ins.flag("chmod"))) if v
        )
        # Docker's classic builder: one space after #(nop) here (two for
        # metadata steps), and a trailing space after the destination.
        created_by = f"/bin/sh -c #(nop) {ins.keyword} {opts}{what} in {shown_dest} "
        key = self.key("copy", created_by)
        if self.cached_step(key):
            return

        def change(bundle: str) -> None:
            rootfs = os.path.join(bundle, "rootfs")
            uid, gid = self.owner(rootfs, chown)
            self.apply_entries(
                rootfs, self.copy_entries(rootfs, sources, dest_abs, as_dir or many, uid, gid)
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

    def copy_entries(
        self,
        rootfs: str,
        sources: Sequence[_Source],
        dest: str,
        into_dir: bool,
        uid: int,
        gid: int,
    ) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
        found = _resolve_in(rootfs, dest)
        dest_is_dir = found is not None and os.path.isdir(found)
        for src in sources:
            if src.archive is not None:
                yield from _archive_entries(src.items[0].host, src.archive, _rel(dest))
                continue
            if src.is_dir:
                base = _rel(dest)
                items = src.items if not dest_is_dir else src.items[1:]
            else:
                base = (
                    _rel(posixpath.join(dest, src.name)) if into_dir or dest_is_dir else _rel(dest)
                )
                items = src.items
            for it in items:
                yield from _copy_entry(
                    it, posixpath.join(base, it.rel) if it.rel else base, uid, gid
                )


def _with_mode(src: _Source, mode: int) -> _Source:
    """``--chmod``: files and directories get ``mode``; symlinks keep theirs."""
    items = tuple(
        dataclasses.replace(it, mode=mode) if it.kind in (EntryType.REG, EntryType.DIR) else it
        for it in src.items
    )
    return dataclasses.replace(src, items=items)


def _copy_entry(
    it: _Item, name: str, uid: int, gid: int
) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
    if any(c.startswith(".wh.") for c in name.split("/")):
        raise OCIToolsError(f"cannot copy {it.host}: names starting with .wh. mark whiteouts")
    if not name:
        return  # the rootfs itself: its attributes are the image's, not the source's
    if it.kind is not EntryType.REG:
        yield TarEntry(name, it.kind, it.mode, uid, gid, 0, it.mtime_ns, it.link), None
        return
    fd = os.open(it.host, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    f = io.FileIO(fd, "rb", closefd=True)
    try:
        if os.fstat(fd).st_size != it.size:
            raise OCIToolsError(f"{it.host} changed while building; build again")
        yield (
            TarEntry(name, EntryType.REG, it.mode, uid, gid, it.size, it.mtime_ns),
            cast(BinaryIO, f),
        )
    finally:
        f.close()


def _archive_entries(
    path: str, codec: str, dest: str
) -> Iterator[tuple[TarEntry, BinaryIO | None]]:
    """The members of a local tar archive, moved below ``dest`` (ADD)."""
    with open(path, "rb") as f:
        stream = _open_archive(codec, cast(BinaryIO, f))
        for e, content in iter_entries(stream):
            if not e.name:
                continue
            if any(c.startswith(".wh.") for c in e.name.split("/")):
                raise OCIToolsError(
                    f"archive {path}: member {e.name!r} is a whiteout name, which ADD refuses"
                )
            name = posixpath.join(dest, e.name) if dest else e.name
            link = e.linkname
            if e.type is EntryType.HARDLINK:
                link = posixpath.join(dest, link) if dest else link
            yield dataclasses.replace(e, name=name, linkname=link), cast(BinaryIO, content)


# ---------------------------------------------------------------------------
# housekeeping


def _clean_stale(parent: str) -> None:
    """Remove the working directories of builds whose process is gone."""
    for name in os.listdir(parent):
        m = re.fullmatch(r"b-(\d+)-.*", name)
        if m is None:
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # still running
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, someone else's
        with contextlib.suppress(OSError):
            remove_tree(os.path.join(parent, name))


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
    if opts.runtime not in _RUNTIMES:
        raise UsageError(f"--runtime {opts.runtime!r}: choose one of {', '.join(_RUNTIMES)}")
    if opts.network not in _NETWORKS:
        raise UsageError(f"--network {opts.network!r}: choose one of {', '.join(_NETWORKS)}")
    if opts.compress not in (*CODECS, "auto"):
        raise UsageError(f"--compress {opts.compress!r}: choose gzip, zstd, none or auto")
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
    if os.path.exists(layout_path):
        lay = _BuildLayout.open(layout_path)
    else:
        lay = _BuildLayout.init(layout_path)
    assert isinstance(lay, _BuildLayout)
    builder = _Builder(lay, dockerfile, opts, say, output)
    builder.check()
    try:
        img = builder.run()
        for t in opts.tags:
            lay.set_ref(t, img.descriptor)
    finally:
        if builder.tmp is not None:
            with contextlib.suppress(OSError):
                remove_tree(builder.tmp)
    say(f"Successfully built {_short(img.descriptor)}")
    for t in opts.tags:
        say(f"Successfully tagged {layout_path}:{t}")
    return BuildResult(
        img.descriptor, len(dockerfile.instructions), builder.cached, tuple(opts.tags)
    )


__all__ = [
    "CACHE_KEY_ANNOTATION",
    "CACHE_ROOT",
    "SUPPORTED",
    "BuildError",
    "BuildOptions",
    "BuildResult",
    "DockerIgnore",
    "Dockerfile",
    "Instruction",
    "RunFailedError",
    "build",
    "parse_build_args",
    "parse_dockerfile",
]
