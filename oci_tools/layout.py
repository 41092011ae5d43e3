"""OCI image layouts on disk: ``oci-layout``, ``index.json``, refs, gc, checks.

``index.json`` is only ever replaced whole (temp file, fsync, rename) while
holding an exclusive ``flock`` on ``.oci-tools/lock`` inside the layout, and
every update re-reads the index under that lock, so concurrent writers never
lose each other's refs.  Blobs are always written before the index entry that
makes them reachable: a crash at any point leaves the previous state readable.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from oci_tools import fsutil
from oci_tools.digest import Digest
from oci_tools.errors import (
    ClobberError,
    InvalidDocumentError,
    InvalidLayoutError,
    NotFoundError,
    OCIToolsError,
    RefNotFoundError,
    UsageError,
)
from oci_tools.fsutil import atomic_write, private_path
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import (
    Descriptor,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    dump_json,
    with_ref,
)
from oci_tools.spec.schema import parse_json
from oci_tools.store import DirStore, read_small

LAYOUT_VERSION = "1.0.0"
DEFAULT_REF = "latest"
_REF_RE = re.compile(
    r"[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*(?:/[A-Za-z0-9]+(?:(?:[-._:@+]|--)[A-Za-z0-9]+)*)*"
)
#: Directory (inside the layout) for our lock, temp files and records.
PRIVATE_DIR = fsutil.PRIVATE_DIR  # re-exported for callers of the layout
#: Temp files older than this are assumed abandoned by a crashed writer.
STALE_TMP_SECONDS = 3600

_GOARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_platform() -> Platform:
    """The platform of this machine in Go's GOOS/GOARCH terms."""
    machine = os.uname().machine.lower()  # what platform.machine() returns, without its import
    arch = _GOARCH.get(machine, machine)
    variant = {"armv7l": "v7", "armv6l": "v6"}.get(machine, "")
    return Platform("linux", arch, variant)


def check_ref(ref: str) -> str:
    """Validate a ref name against the image-spec grammar."""
    if not _REF_RE.fullmatch(ref):
        raise UsageError(
            f"invalid ref name {ref!r}",
            hint="refs are alphanumeric components joined by - . _ : @ + or --, "
            "optionally separated by /",
        )
    return ref


def split_image_ref(text: str, default: str | None = DEFAULT_REF) -> tuple[str, str | None]:
    """Split ``LAYOUT[:REF]`` into (layout path, ref).

    The layout path cannot contain ``:`` unless the whole argument is an
    existing directory (ref names may contain ``:`` themselves, so the split is
    at the first one, as umoci does).
    """
    if not text:
        raise UsageError("empty image reference", hint="use LAYOUT[:REF]")
    if os.path.isdir(text) or ":" not in text:
        return text, default
    path, _, ref = text.partition(":")
    if not path:
        raise UsageError(f"no layout path in {text!r}", hint="use LAYOUT[:REF]")
    if not ref:
        raise UsageError(f"empty ref in {text!r}", hint="use LAYOUT[:REF] or just LAYOUT")
    return path, check_ref(ref)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A ref resolved to a single image manifest.

    ``descriptor`` is the index.json entry the ref names (it may point at an
    index); ``manifest_descriptor`` is the selected manifest's descriptor.
    """

    ref: str
    descriptor: Descriptor
    manifest_descriptor: Descriptor
    manifest: Manifest


class Layout:
    """An opened, validated OCI image layout."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.store = DirStore(path)
        self._lock_depth = 0

    # -- creation and opening -------------------------------------------------

    @classmethod
    def init(cls, path: str) -> Layout:
        """Create a new empty layout; refuses a non-empty existing directory."""
        if os.path.lexists(path) and (not os.path.isdir(path) or os.listdir(path)):
            raise ClobberError(path, hint="init needs a new or empty directory")
        os.makedirs(os.path.join(path, "blobs", "sha256"), exist_ok=True)
        lay = cls(path)
        lay._atomic_write("oci-layout", dump_json({"imageLayoutVersion": LAYOUT_VERSION}))
        lay._atomic_write("index.json", Index.build([]).raw)
        return lay

    @classmethod
    def open(cls, path: str) -> Layout:
        """Open an existing layout, checking its header and index."""
        if not os.path.exists(path):
            raise InvalidLayoutError(
                path, "no such directory", hint="create it with: oci-tools init"
            )
        if not os.path.isdir(path):
            raise InvalidLayoutError(path, "not a directory")
        lay = cls(path)
        header_path = os.path.join(path, "oci-layout")
        try:
            with open(header_path, "rb") as f:
                raw = f.read(1 << 16)
        except FileNotFoundError:
            raise InvalidLayoutError(
                path, "missing oci-layout file", hint="is this an OCI image layout?"
            ) from None
        try:
            header = parse_json(raw, "oci-layout")
        except InvalidDocumentError as e:
            raise InvalidLayoutError(path, f"oci-layout: {e.problems[0]}") from None
        version = header.get("imageLayoutVersion") if isinstance(header, dict) else None
        if version != LAYOUT_VERSION:
            raise InvalidLayoutError(
                path, f"unsupported imageLayoutVersion {version!r} (expected {LAYOUT_VERSION!r})"
            )
        if not os.path.isdir(os.path.join(path, "blobs")):
            raise InvalidLayoutError(path, "missing blobs directory")
        lay.index()  # parse now so a broken index.json fails early
        return lay

    # -- index.json ------------------------------------------------------------

    def index(self) -> Index:
        """The current ``index.json``."""
        try:
            with open(os.path.join(self.path, "index.json"), "rb") as f:
                raw = f.read(16 << 20)
        except FileNotFoundError:
            raise InvalidLayoutError(self.path, "missing index.json") from None
        try:
            return Index.parse(raw, mt.OCI_INDEX, what="index.json")
        except InvalidDocumentError as e:
            raise InvalidLayoutError(self.path, f"index.json: {e.problems[0]}") from None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the layout's exclusive writer lock (re-entrant in one process:
        a commit holds it from its first blob to its final tag, and ``set_ref``
        inside takes it again)."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        d = private_path(self.path)
        os.makedirs(d, exist_ok=True)
        fd = os.open(os.path.join(d, fsutil.LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)

    def update_index(self, change: Callable[[list[Descriptor]], list[Descriptor]]) -> Index:
        """Re-read index.json under the lock, apply ``change`` to its entries and
        replace it atomically.  Returns the new index."""
        with self.lock():
            current = self.index()
            entries = change(list(current.manifests))
            doc = current.as_dict()
            doc["schemaVersion"] = 2
            doc["mediaType"] = mt.OCI_INDEX
            doc["manifests"] = [d.to_dict() for d in entries]
            new = Index.parse(dump_json(doc), mt.OCI_INDEX, what="index.json")
            # A writer killed mid-replace left its temp index.json beside it.
            fsutil.remove_abandoned(self.path, ".index.json")
            self._atomic_write("index.json", new.raw)
            return new

    def _atomic_write(self, name: str, data: bytes) -> None:
        atomic_write(os.path.join(self.path, name), data)

    # -- refs --------------------------------------------------------------------

    def refs(self) -> list[tuple[str, Descriptor]]:
        """(ref name, descriptor) for every named entry, in index order."""
        return [(d.ref_name, d) for d in self.index().manifests if d.ref_name]

    def lookup(self, ref: str) -> Descriptor:
        """The index.json entry for ``ref`` (the last one wins if duplicated)."""
        found = None
        for name, desc in self.refs():
            if name == ref:
                found = desc
        if found is None:
            raise RefNotFoundError(ref, (n for n, _ in self.refs()), layout=self.path)
        return found

    def set_ref(self, ref: str, desc: Descriptor) -> None:
        """Point ``ref`` at ``desc`` (replacing any entry with that name)."""
        check_ref(ref)
        new = with_ref(desc, ref)

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            kept = [d for d in entries if d.ref_name != ref]
            return [*kept, new]

        self.update_index(change)

    def remove_ref(self, ref: str) -> Descriptor:
        """Remove every entry named ``ref``; returns the one removed."""
        removed: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            removed.extend(d for d in entries if d.ref_name == ref)
            if not removed:
                raise RefNotFoundError(
                    ref, (d.ref_name or "" for d in entries if d.ref_name), layout=self.path
                )
            return [d for d in entries if d.ref_name != ref]

        self.update_index(change)
        return removed[-1]

    # -- documents ---------------------------------------------------------------

    def read_blob(self, desc: Descriptor) -> bytes:
        """A small blob's verified bytes."""
        return read_small(self.store, desc.digest, desc.size)

    def manifest(self, desc: Descriptor) -> Manifest:
        """Read and parse the manifest ``desc`` points at."""
        return Manifest.parse(self.read_blob(desc), desc.media_type)

    def config(self, manifest: Manifest) -> ImageConfig:
        """Read and parse an image manifest's config."""
        assert manifest.config is not None
        if manifest.config.media_type not in mt.CONFIG_TYPES:
            raise InvalidDocumentError(
                "manifest",
                [f"config media type {manifest.config.media_type!r} is not an image config"],
            )
        return ImageConfig.parse(self.read_blob(manifest.config))

    def select(self, desc: Descriptor, platform: Platform | None = None) -> Descriptor:
        """Follow indexes from ``desc`` down to one image manifest descriptor,
        choosing the entry for ``platform`` (default: this host)."""
        want = platform or host_platform()
        seen = 0
        while desc.media_type in mt.INDEX_TYPES:
            seen += 1
            if seen > 8:
                raise InvalidDocumentError("index", ["nested indexes deeper than 8 levels"])
            idx = Index.parse(self.read_blob(desc), desc.media_type)
            candidates = [
                d for d in idx.manifests if d.media_type in mt.INDEX_TYPES | mt.MANIFEST_TYPES
            ]
            match = [d for d in candidates if d.platform is None or d.platform.matches(want)]
            # Prefer an exact platform match over entries without a platform.
            exact = [d for d in match if d.platform is not None]
            pick = exact or match
            if not pick:
                have = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
                raise NotFoundError(
                    f"no manifest for platform {want} in index {desc.digest}",
                    hint=f"available platforms: {have}; choose one of them",
                )
            desc = pick[0]
        if desc.media_type not in mt.MANIFEST_TYPES:
            raise InvalidDocumentError(
                "reference", [f"{desc.digest} has media type {desc.media_type!r}, not an image"]
            )
        return desc

    def resolve(self, ref: str, platform: Platform | None = None) -> Resolved:
        """Resolve ``ref`` to a single image manifest."""
        top = self.lookup(ref)
        mdesc = self.select(top, platform)
        return Resolved(ref, top, mdesc, self.manifest(mdesc))

    # -- reachability, gc, checks ---------------------------------------------------

    def children(self, desc: Descriptor, *, subjects: bool = False) -> list[tuple[Descriptor, str]]:
        """The descriptors an index or image manifest points at, each with where
        it was found (``"<digest> manifests[i]"``, ``"<digest> config"``,
        ``"<digest> layers[i]"``, ``"<digest> subject"``); ``[]`` for other blobs.

        A manifest's ``subject`` is followed only with ``subjects``: it names
        the image a referrer describes, which need not be in the layout.
        """
        out: list[tuple[Descriptor, str]] = []
        if desc.media_type in mt.INDEX_TYPES:
            idx = Index.parse(self.read_blob(desc), desc.media_type)
            out += [(d, f"{desc.digest} manifests[{i}]") for i, d in enumerate(idx.manifests)]
        elif desc.media_type in mt.MANIFEST_TYPES:
            m = self.manifest(desc)
            if m.config is not None:
                out.append((m.config, f"{desc.digest} config"))
            out += [(d, f"{desc.digest} layers[{i}]") for i, d in enumerate(m.layers)]
            if subjects and m.subject is not None:
                out.append((m.subject, f"{desc.digest} subject"))
        return out

    def walk(
        self,
        roots: Iterable[tuple[Descriptor, str]],
        visit: Callable[[Descriptor, str], bool],
        *,
        subjects: bool = False,
    ) -> None:
        """THE walk of the blob graph (gc, validate and import all use it).

        Depth first from ``roots`` (descriptor, where it was found), each digest
        once.  ``visit(desc, where)`` sees every new digest; when it returns
        True the children of an index or manifest (see :meth:`children`) are
        visited next.  ``visit`` decides what a missing or damaged blob means:
        return False to stop below it, or raise.
        """
        seen: set[Digest] = set()
        stack = list(roots)
        while stack:
            desc, where = stack.pop()
            if desc.digest in seen:
                continue
            seen.add(desc.digest)
            if visit(desc, where):
                stack += self.children(desc, subjects=subjects)

    def reachable(self, roots: list[Descriptor]) -> set[Digest]:
        """Every blob digest reachable from ``roots`` (missing blobs included)."""
        marked: set[Digest] = set()

        def mark(desc: Descriptor, _where: str) -> bool:
            marked.add(desc.digest)
            return self.store.has(desc.digest)

        self.walk([(d, "root") for d in roots], mark, subjects=True)
        return marked

    def extra_roots(self) -> list[Descriptor]:
        """Roots kept alive besides index.json: bases of live bundles and build
        cache records (see ``roots_dir``)."""
        out: list[Descriptor] = []
        d = self.roots_dir()
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return out
        for name in names:
            p = os.path.join(d, name)
            try:
                with open(p, "rb") as f:
                    rec = json.loads(f.read(1 << 20))
                owner = rec.get("owner")
                if owner and not os.path.exists(owner):
                    # The bundle that registered this root is gone.
                    os.unlink(p)
                    continue
                out.append(Descriptor.from_dict(rec["descriptor"]))
            except (OSError, ValueError, KeyError, OCIToolsError):
                continue
        return out

    def roots_dir(self) -> str:
        """Where extra gc roots are recorded (one JSON file each)."""
        return private_path(self.path, fsutil.ROOTS)

    def add_root(self, key: str, desc: Descriptor, owner: str = "") -> None:
        """Record an extra gc root named ``key`` (``owner``: a path whose
        disappearance releases the root)."""
        d = self.roots_dir()
        os.makedirs(d, exist_ok=True)
        rec = {"descriptor": desc.to_dict(), "owner": owner}
        name = re.sub(r"[^A-Za-z0-9._-]", "_", key)
        atomic_write(os.path.join(d, name + ".json"), dump_json(rec))

    def gc(self) -> list[tuple[Digest, int]]:
        """Delete every blob not reachable from index.json or an extra root.

        Returns (digest, size) of each blob removed.  Runs under the layout
        lock so no tag can appear half-way.
        """
        freed: list[tuple[Digest, int]] = []
        with self.lock():
            roots = list(self.index().manifests) + self.extra_roots()
            live = self.reachable(roots)
            for dg in list(self.store.digests()):
                if dg not in live:
                    size = self.store.stat_size(dg)
                    self.store.delete(dg)
                    freed.append((dg, size))
            self._clean_tmp()
        return freed

    def _clean_tmp(self) -> None:
        tmp = self.store.tmp_dir
        now = time.time()
        try:
            names = os.listdir(tmp)
        except FileNotFoundError:
            return
        for n in names:
            p = os.path.join(tmp, n)
            with contextlib.suppress(OSError):
                if now - os.lstat(p).st_mtime > STALE_TMP_SECONDS:
                    os.unlink(p)


__all__ = [
    "DEFAULT_REF",
    "LAYOUT_VERSION",
    "Layout",
    "Resolved",
    "check_ref",
    "host_platform",
    "split_image_ref",
]
