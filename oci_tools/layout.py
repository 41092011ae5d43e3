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
from oci_tools.records import record
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


#: ``LAYOUT@<digest>``: the part after ``@`` (a manifest or index digest).
_DIGEST_REF_RE = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
#: An image id prefix as docker accepts it: 4 or more hex digits.
_ID_PREFIX_RE = re.compile(r"(?:sha256:)?[0-9a-f]{4,64}")


def is_layout(path: str) -> bool:
    """Whether ``path`` looks like an image layout (has ``oci-layout``)."""
    return os.path.isfile(os.path.join(path, "oci-layout"))


def split_image_ref(
    text: str, default: str | None = DEFAULT_REF, *, creating: bool = False
) -> tuple[str, str | None]:
    """Split ``LAYOUT[:REF]`` or ``LAYOUT@DIGEST`` into (layout path, ref).

    A digest comes back as ``"@sha256:…"`` (what :meth:`Layout.lookup` takes).
    Ref names may contain ``:`` and so may paths: the split is at the last
    ``:`` whose right side is a valid ref and whose left side is an existing
    layout; the whole argument is the layout when it is one (``creating``:
    when it is an existing directory, for commands that make a layout).  When
    no layout exists, one ``:`` splits there; more than one is ambiguous (a
    usage error), so a command never creates a layout the user did not mean.
    """
    if not text:
        raise UsageError("empty image reference", hint="use LAYOUT[:REF]")
    at = text.rfind("@")
    if at > 0 and _DIGEST_REF_RE.fullmatch(text[at + 1 :]) and not is_layout(text):
        return text[:at], text[at:]
    whole = is_layout(text) or ((creating or ":" not in text) and os.path.isdir(text))
    cuts = [i for i, ch in enumerate(text) if ch == ":"]
    valid = [(text[:i], text[i + 1 :]) for i in cuts if i > 0 and _REF_RE.fullmatch(text[i + 1 :])]
    existing = [(p, r) for p, r in valid if is_layout(p)]
    if whole and existing:
        raise UsageError(
            f"ambiguous image reference {text!r}: {text} is a layout and so is {existing[-1][0]}",
            hint=f"write {existing[-1][0]}:{existing[-1][1]} as ./PATH:REF with the path you mean",
        )
    if whole or not cuts:
        return text, default
    if existing:
        path, ref = existing[-1]
        return path, ref
    if len(valid) > 1:
        raise UsageError(
            f"ambiguous image reference {text!r}: no layout exists at "
            + " or ".join(p for p, _ in valid),
            hint="create the layout first (oci-tools init PATH); then PATH:REF splits at PATH",
        )
    path, _, ref = text.partition(":") if not valid else (valid[0][0], ":", valid[0][1])
    if not path:
        raise UsageError(f"no layout path in {text!r}", hint="use LAYOUT[:REF]")
    if not ref:
        raise UsageError(f"empty ref in {text!r}", hint="use LAYOUT[:REF] or just LAYOUT")
    return path, check_ref(ref)


@record
class Resolved:
    """A ref resolved to a single image manifest.

    ``descriptor`` is the index.json entry the ref names (it may point at an
    index); ``manifest_descriptor`` is the selected manifest's descriptor.
    """

    ref: str
    descriptor: Descriptor
    manifest_descriptor: Descriptor
    manifest: Manifest


@record
class RootRecord:
    """One extra gc root: its key, the image it keeps, the file of its owner
    (empty: none) and whether that owner was found."""

    key: str
    descriptor: Descriptor
    owner: str
    found: bool


def _root_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def _owner_found(owner: str, owner_id: str) -> bool:
    """Whether a root's owner file is there (and, given an id, holds it)."""
    if not owner:
        return True
    if not owner_id:
        return os.path.exists(owner)
    try:
        with open(owner, "rb") as f:
            rec = json.loads(f.read(1 << 20))
    except (OSError, ValueError):
        return False
    return isinstance(rec, dict) and rec.get("id") == owner_id


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

    def is_same(self, other: Layout) -> bool:
        """Whether ``other`` is this layout (the same directory, however named)."""
        return self is other or os.path.realpath(self.path) == os.path.realpath(other.path)

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
        """The index.json entry for ``ref`` (the last one wins if duplicated).

        ``ref`` may also be ``@<digest>`` (an image manifest or index in the
        layout, tagged or not) or, when no ref has that name, an image id
        prefix as docker takes it: 4 or more hex digits of a config digest
        (the IMAGE ID) or of a manifest digest.  An ambiguous prefix is a
        usage error listing the candidates."""
        if ref.startswith("@"):
            return self._by_digest(ref[1:])
        found = None
        refs = self.refs()
        for name, desc in refs:
            if name == ref:
                found = desc
        if found is None and _ID_PREFIX_RE.fullmatch(ref):
            found = self._by_prefix(ref.removeprefix("sha256:"))
        if found is None:
            raise RefNotFoundError(ref, (n for n, _ in refs), layout=self.path)
        return found

    def _document(self, dg: Digest, size: int) -> Descriptor | None:
        """A stored blob as a descriptor when it is an image manifest or
        index (its media type read from the document), else None."""
        if size > 4 << 20:
            return None
        try:
            doc = json.loads(read_small(self.store, dg, size))
        except (ValueError, OCIToolsError):
            return None
        if not isinstance(doc, dict):
            return None
        mtype = doc.get("mediaType")
        if mtype not in mt.INDEX_TYPES | mt.MANIFEST_TYPES:
            if "manifests" in doc:
                mtype = mt.OCI_INDEX
            elif "config" in doc and "layers" in doc:
                mtype = mt.OCI_MANIFEST
            else:
                return None
        return Descriptor(str(mtype), dg, size)

    def _by_digest(self, text: str) -> Descriptor:
        try:
            dg = Digest.parse(text)
        except InvalidDocumentError as e:
            raise UsageError(f"invalid digest {text!r}: {e.problems[0]}") from None
        for d in self.index().manifests:
            if d.digest == dg:
                return d
        if not self.store.has(dg):
            raise NotFoundError(
                f"no image {dg} in {self.path}", hint="list the images with: oci-tools images"
            )
        desc = self._document(dg, self.store.stat_size(dg))
        if desc is None:
            raise UsageError(
                f"{dg} in {self.path} is not an image manifest or index",
                hint="LAYOUT@DIGEST takes a manifest digest (images --digests shows them)",
            )
        return desc

    def _by_prefix(self, prefix: str) -> Descriptor | None:
        """The one image whose manifest or config digest starts with the hex
        ``prefix``: tagged images first, then untagged manifests in the store."""
        hits: dict[Digest, Descriptor] = {}

        def consider(desc: Descriptor, depth: int = 0) -> None:
            if desc.digest.encoded.startswith(prefix):
                hits.setdefault(desc.digest, desc)
            try:
                for child, _ in self.children(desc):
                    if child.media_type in mt.INDEX_TYPES | mt.MANIFEST_TYPES and depth < 8:
                        consider(child, depth + 1)
                    elif (
                        child.media_type in mt.CONFIG_TYPES
                        and child.digest.encoded.startswith(prefix)
                        and desc.media_type in mt.MANIFEST_TYPES
                    ):
                        hits.setdefault(desc.digest, desc)
            except OCIToolsError:
                pass

        for d in self.index().manifests:
            consider(d)
        if not hits:
            # Untagged images (a ref removed by mistake): manifests in the store.
            stored = list(self.store.digests())
            configs = []
            for dg in stored:
                if dg.encoded.startswith(prefix):
                    desc = self._document(dg, self.store.stat_size(dg))
                    if desc is not None:
                        hits.setdefault(dg, desc)
                    else:
                        configs.append(dg)
            if configs:
                # Manifests are small: larger blobs (layers) are not read.
                small = [dg for dg in stored if self.store.stat_size(dg) <= 256 << 10]
                for dg in small:
                    desc = self._document(dg, self.store.stat_size(dg))
                    if desc is not None and desc.media_type in mt.MANIFEST_TYPES:
                        with contextlib.suppress(OCIToolsError):
                            m = self.manifest(desc)
                            if m.config is not None and m.config.digest in configs:
                                hits.setdefault(dg, desc)
        if len(hits) > 1:
            raise UsageError(
                f"ambiguous image id prefix {prefix!r} in {self.path}: matches "
                + ", ".join(sorted(str(d) for d in hits)),
                hint="give more digits",
            )
        return next(iter(hits.values()), None)

    def set_ref(self, ref: str, desc: Descriptor) -> None:
        """Point ``ref`` at ``desc`` (replacing any entry with that name)."""
        self.put_ref(ref, desc)

    def put_ref(self, ref: str, desc: Descriptor, *, replace: bool = True) -> Descriptor | None:
        """Point ``ref`` at ``desc`` (replacing any entry with that name) and
        return the entry it replaced (None when the ref is new).

        With ``replace=False`` a ref that already names another image is left
        alone and ClobberError is raised (checked under the lock, so two
        writers cannot both create it)."""
        check_ref(ref)
        new = with_ref(desc, ref)
        old: list[Descriptor] = []

        def change(entries: list[Descriptor]) -> list[Descriptor]:
            old.extend(d for d in entries if d.ref_name == ref)
            if old and not replace and old[-1].digest != desc.digest:
                raise ClobberError(
                    f"ref {ref!r} in {self.path}",
                    hint=f"it already names {old[-1].digest}",
                )
            kept = [d for d in entries if d.ref_name != ref]
            return [*kept, new]

        self.update_index(change)
        return old[-1] if old else None

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

    def root_records(self) -> list[RootRecord]:
        """Every extra gc root, with its owner and whether it was found."""
        d = self.roots_dir()
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        out: list[RootRecord] = []
        for name in names:
            if not name.endswith(".json"):
                continue
            try:
                with open(os.path.join(d, name), "rb") as f:
                    rec = json.loads(f.read(1 << 20))
                desc = Descriptor.from_dict(rec["descriptor"])
                owner = str(rec.get("owner") or "")
                owner_id = str(rec.get("owner_id") or "")
            except (OSError, ValueError, KeyError, TypeError, AttributeError, OCIToolsError):
                continue
            found = _owner_found(owner, owner_id)
            out.append(RootRecord(name[: -len(".json")], desc, owner, found))
        return out

    def extra_roots(self) -> list[Descriptor]:
        """Roots kept alive besides index.json: bases of bundles and build
        cache records (see ``roots_dir``).  A root whose owner cannot be
        found (a bundle moved or deleted) is kept too, until
        :meth:`prune_missing_roots`."""
        return [r.descriptor for r in self.root_records()]

    def missing_roots(self) -> list[RootRecord]:
        """The extra roots whose owner is not where it was recorded (a bundle
        moved without being used since, or deleted): kept, and reported."""
        return [r for r in self.root_records() if not r.found]

    def prune_missing_roots(self) -> list[RootRecord]:
        """Forget the roots :meth:`missing_roots` lists; returns them."""
        pruned = self.missing_roots()
        for r in pruned:
            self.remove_root(r.key)
        return pruned

    def roots_dir(self) -> str:
        """Where extra gc roots are recorded (one JSON file each)."""
        return private_path(self.path, fsutil.ROOTS)

    def add_root(self, key: str, desc: Descriptor, owner: str = "", owner_id: str = "") -> None:
        """Record an extra gc root named ``key``.  ``owner``: the file whose
        presence shows the root is still wanted (a bundle's record);
        ``owner_id``: the id that file must hold (so a different bundle
        unpacked at the old place does not count)."""
        d = self.roots_dir()
        os.makedirs(d, exist_ok=True)
        rec = {"descriptor": desc.to_dict(), "owner": owner, "owner_id": owner_id}
        atomic_write(os.path.join(d, _root_name(key) + ".json"), dump_json(rec))

    def remove_root(self, key: str) -> None:
        """Forget the extra gc root named ``key`` (no error when absent)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.roots_dir(), _root_name(key) + ".json"))

    def gc(self, *, dry_run: bool = False, prune_missing: bool = False) -> list[tuple[Digest, int]]:
        """Delete every blob not reachable from index.json or an extra root.

        Returns (digest, size) of each blob removed (``dry_run``: of each
        blob that would be, deleting nothing).  ``prune_missing`` first
        forgets the roots whose owner cannot be found.  Runs under the
        layout lock so no tag can appear half-way.
        """
        freed: list[tuple[Digest, int]] = []
        with self.lock():
            records = self.root_records()
            if prune_missing:
                gone = [r for r in records if not r.found]
                if not dry_run:
                    for r in gone:
                        self.remove_root(r.key)
                records = [r for r in records if r.found]
            roots = list(self.index().manifests) + [r.descriptor for r in records]
            live = self.reachable(roots)
            for dg in list(self.store.digests()):
                if dg not in live:
                    freed.append((dg, self.store.stat_size(dg)))
                    if not dry_run:
                        self.store.delete(dg)
            if not dry_run:
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
    "RootRecord",
    "check_ref",
    "host_platform",
    "is_layout",
    "split_image_ref",
]
