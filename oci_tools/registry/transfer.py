"""Pull, push and copy whole images between registries and layouts.

* **pull** follows an index to one platform (or keeps all of them), fetches
  every blob the layout lacks in parallel (largest first; configs beside
  the big ones), each through the store's writer (temp file → verified →
  fsync → rename; the blobs directory fsynced once for all of them), then
  stores manifests and index with the exact bytes received, and tags last.  On failure the layout is
  as it was: index.json untouched, blobs this pull added removed.
* **push** mounts, in parallel, every blob the layout knows another
  repository of the same registry holds (a 201 needs no HEAD first; a
  refused mount's upload session is used unless a HEAD finds the blob),
  skips blobs the registry has (HEAD) and uploads the others in parallel,
  then PUTs each manifest, an index after its manifests, so no reader ever
  sees a manifest whose blobs are missing.
* **copy** registry → registry mounts blobs across repositories of one
  registry (the same way) and otherwise streams them through without
  touching disk.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from typing import IO

from oci_tools.digest import Digest
from oci_tools.errors import InvalidDocumentError, NotFoundError, OCIToolsError
from oci_tools.fsutil import CACHE, private_path, write_json
from oci_tools.layout import Layout, check_ref, host_platform
from oci_tools.records import field, record
from oci_tools.registry.reference import RemoteRef
from oci_tools.registry.remote import RemoteManifest, Repository, VerifyingStream
from oci_tools.registry.transport import Options, Transport, new_pool
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Index, Manifest, Platform
from oci_tools.store import MAX_DOCUMENT_SIZE, put_bytes

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


class Client:
    """Talks to registries for one command: one connection pool, one
    :class:`Transport` (auth state, token cache) per host."""

    def __init__(self, options: Options | None = None) -> None:
        self.options = options or Options()
        self._pool = new_pool(self.options)
        self._transports: dict[str, Transport] = {}
        self._lock = threading.Lock()

    def transport(self, host: str) -> Transport:
        """The transport for ``host`` (made on first use)."""
        with self._lock:
            t = self._transports.get(host)
            if t is None:
                t = self._transports[host] = Transport(host, self.options, self._pool)
            return t

    def repository(self, ref: RemoteRef) -> Repository:
        """The repository ``ref`` names."""
        return Repository(self.transport(ref.host), ref.repository)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- selection


def _select(index: Index, platform: Platform) -> Descriptor:
    candidates = [d for d in index.manifests if d.media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES]
    match = [d for d in candidates if d.platform is None or d.platform.matches(platform)]
    exact = [d for d in match if d.platform is not None]
    pick = exact or match
    if not pick:
        have = ", ".join(str(d.platform) for d in candidates if d.platform) or "none"
        raise NotFoundError(
            f"no manifest for platform {platform} in the index",
            hint=f"available platforms: {have}; choose one with --platform, or --all-platforms",
        )
    return pick[0]


@record(frozen=False)
class _Plan:
    """What one image needs: documents (stored last, children first) and blobs."""

    documents: list[tuple[Descriptor, bytes]] = field(default_factory=list)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)


def _plan_manifest(desc: Descriptor, raw: bytes, plan: _Plan) -> None:
    m = Manifest.parse(raw, desc.media_type)
    for d in (m.config, *m.layers):
        if d is not None:
            plan.blobs.setdefault(d.digest, d)
    plan.documents.append((desc, raw))


def _resolve(
    repo: Repository,
    top: RemoteManifest,
    plan: _Plan,
    *,
    platform: Platform | None,
    all_platforms: bool,
    depth: int = 0,
) -> Descriptor:
    """Walk ``top`` into ``plan``; returns the descriptor to tag."""
    desc = Descriptor(top.media_type, top.digest, len(top.raw))
    if top.media_type in mt.MANIFEST_TYPES:
        _plan_manifest(desc, top.raw, plan)
        return desc
    if top.media_type not in mt.INDEX_TYPES:
        raise InvalidDocumentError("manifest", [f"unsupported media type {top.media_type!r}"])
    if depth > 4:
        raise InvalidDocumentError("index", ["nested indexes deeper than 4 levels"])
    index = Index.parse(top.raw, top.media_type)
    if not all_platforms:
        child = _select(index, platform or host_platform())
        got = repo.get_manifest(str(child.digest))
        sub = _resolve(repo, got, plan, platform=platform, all_platforms=False, depth=depth + 1)
        # Keep the index's platform on the descriptor we tag.
        return Descriptor(sub.media_type, sub.digest, sub.size, platform=child.platform)
    for child in index.manifests:
        if child.media_type not in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            plan.blobs.setdefault(child.digest, child)  # an artifact: fetch as a blob
            continue
        got = repo.get_manifest(str(child.digest))
        if got.digest != child.digest or len(got.raw) != child.size:
            raise InvalidDocumentError("index", [f"entry {child.digest} does not match its bytes"])
        _resolve(repo, got, plan, platform=platform, all_platforms=True, depth=depth + 1)
    plan.documents.append((desc, top.raw))
    return desc


#: Blobs up to this size (configs, small layers) do not count against ``-j``:
#: they move few bytes, and queued behind big layers they would only add a
#: round trip at the end.
SMALL_BLOB = 1 << 20


def _parallel(jobs: int, work: Iterable[tuple[int, Callable[[], None]]]) -> None:
    """Run ``(size, job)`` pairs, ``jobs`` big ones at a time, largest first
    (so the longest transfer starts at once instead of last), with the small
    ones in workers of their own beside them.  After a failure no new job
    starts; the running ones finish, then the first failure is raised.

    Plain threads rather than concurrent.futures, whose import costs a
    registry command 1-1.5 ms (threading is loaded already, by urllib3)."""
    items = sorted(work, key=lambda w: -w[0])
    if len(items) <= 1 or jobs <= 1:
        for _, w in items:
            w()
        return
    queues = [
        [w for size, w in items if size > SMALL_BLOB],
        [w for size, w in items if size <= SMALL_BLOB],
    ]
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(queue: list[Callable[[], None]]) -> None:
        while True:
            with lock:
                if errors or not queue:
                    return
                job = queue.pop(0)
            try:
                job()
            except BaseException as e:
                with lock:
                    errors.append(e)
                return

    threads = [
        threading.Thread(target=worker, args=(q,), name=f"blob-{n}", daemon=True)
        for q in queues
        for n in range(min(jobs, len(q)))
    ]
    for t in threads:
        t.start()
    try:
        for t in threads:
            t.join()
    except BaseException as e:
        # Interrupted while waiting: no new job starts, and the running ones
        # end before the caller cleans up after them.
        with lock:
            errors.insert(0, e)
        for t in threads:
            t.join()
        raise
    if errors:
        raise errors[0]


# ---------------------------------------------------------- blob sources

#: Where a layout remembers which registry repositories hold its blobs
#: (``{digest: ["host/repo", ...]}``, newest last), so a push to another
#: repository of the same registry can mount instead of upload.
_SOURCES = "registry-blobs.json"
_SOURCES_KEPT = 4


def _sources_path(layout: Layout) -> str:
    return private_path(layout.path, CACHE, _SOURCES)


def _load_sources(layout: Layout) -> dict[str, list[str]]:
    try:
        with open(_sources_path(layout), "rb") as f:
            doc = json.loads(f.read(64 << 20))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _record_sources(layout: Layout, digests: Iterable[Digest], where: str) -> None:
    """Remember that ``where`` (``host/repo``) holds ``digests`` (a cache:
    losing it costs only uploads that could have been mounts)."""
    with contextlib.suppress(OSError), layout.lock():
        doc = _load_sources(layout)
        for dg in digests:
            seen = [w for w in doc.get(str(dg), []) if isinstance(w, str) and w != where]
            doc[str(dg)] = [*seen, where][-_SOURCES_KEPT:]
        os.makedirs(os.path.dirname(_sources_path(layout)), exist_ok=True)
        write_json(_sources_path(layout), doc, indent=None, sync=False)


# ---------------------------------------------------------------------- pull


def pull(
    client: Client,
    ref: RemoteRef,
    layout: Layout,
    dest_ref: str | None = None,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    progress: Progress = _quiet,
) -> tuple[str, Descriptor]:
    """Pull ``ref`` into ``layout`` as ``dest_ref`` (default: the tag, else
    the digest).  Returns (ref name, descriptor tagged)."""
    name = dest_ref or ref.tag or str(ref.digest)
    check_ref(name)
    repo = client.repository(ref)
    top = repo.get_manifest(ref.reference)
    plan = _Plan()
    desc = _resolve(repo, top, plan, platform=platform, all_platforms=all_platforms)
    store = layout.store
    added: list[Digest] = []
    added_lock = threading.Lock()

    def fetch(d: Descriptor) -> Callable[[], None]:
        def run() -> None:
            w = store.writer()
            try:
                repo.fetch_blob(d.digest, d.size, w)
                w.commit(d.digest, d.size)
            except BaseException:
                w.abort()
                raise
            with added_lock:
                added.append(d.digest)
            progress(f"Copied blob {d.digest.short} ({d.size} bytes)")

        return run

    with layout.lock():
        try:
            todo = []
            for d in plan.blobs.values():
                if store.has(d.digest):
                    progress(f"Blob {d.digest.short} already present")
                else:
                    todo.append(d)
            # One fsync of blobs/sha256 for every blob this pull renames into
            # it, before index.json names any of them (see batched_dir_sync).
            with store.batched_dir_sync():
                _parallel(client.options.jobs, [(d.size, fetch(d)) for d in todo])
                for d, raw in plan.documents:
                    if not store.has(d.digest):
                        put_bytes(store, raw)
                        added.append(d.digest)
            layout.set_ref(name, desc)
        except BaseException:
            for dg in added:
                store.delete(dg)
            raise
        _record_sources(layout, plan.blobs, ref.name)
    progress(f"Stored {desc.digest} as {name}")
    return name, desc


# ---------------------------------------------------------------------- push


def _layout_opener(layout: Layout, d: Descriptor) -> Callable[[int], IO[bytes]]:
    def open_at(offset: int) -> IO[bytes]:
        if offset == 0:
            # From the start: verified as it is read (a rotten blob fails).
            return layout.store.open(d.digest, d.size)  # type: ignore[return-value]
        fd = os.open(layout.store.path_of(d.digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        f = os.fdopen(fd, "rb")
        f.seek(offset)
        return f

    return open_at


def _layout_tree(layout: Layout, desc: Descriptor, plan: _Plan, depth: int = 0) -> None:
    raw = layout.read_blob(desc)
    if desc.media_type in mt.MANIFEST_TYPES:
        _plan_manifest(desc, raw, plan)
        return
    if desc.media_type not in mt.INDEX_TYPES or depth > 4:
        raise InvalidDocumentError("image", [f"cannot push media type {desc.media_type!r}"])
    for child in Index.parse(raw, desc.media_type).manifests:
        if child.media_type in mt.MANIFEST_TYPES | mt.INDEX_TYPES:
            if not layout.store.has(child.digest):
                raise NotFoundError(
                    f"index {desc.digest} lists {child.digest}, which is not in the layout",
                    hint="pull it with --all-platforms, or push one platform's manifest",
                )
            _layout_tree(layout, child, plan, depth + 1)
        else:
            plan.blobs.setdefault(child.digest, child)
    plan.documents.append((desc, raw))


def push(
    client: Client,
    layout: Layout,
    ref: str,
    dest: RemoteRef,
    *,
    progress: Progress = _quiet,
) -> Digest:
    """Push layout image ``ref`` (a manifest, or an index with its manifests)
    to ``dest``; returns the pushed top-level digest (bytes unchanged)."""
    desc = layout.lookup(ref)
    plan = _Plan()
    _layout_tree(layout, desc, plan)
    repo = client.repository(dest)
    known = _load_sources(layout)
    prefix = dest.host + "/"

    def upload(d: Descriptor) -> Callable[[], None]:
        def run() -> None:
            sources = [
                where.removeprefix(prefix)
                for where in reversed(known.get(str(d.digest), []))
                if where.startswith(prefix)
            ]
            session = None
            if sources and dest.repository not in sources:
                # A mount answers "have it" by itself (201): no HEAD first.
                # Only the newest source is asked; a refusal opens an
                # upload session, used below unless the blob is there after all.
                session = _mount_or_session(repo, d, sources[0], progress)
                if session is None:
                    return
            elif repo.has_blob(d.digest):
                progress(f"Blob {d.digest.short} already in {dest.name}")
                return
            repo.upload_blob(d.digest, d.size, _layout_opener(layout, d), location=session)
            progress(f"Pushed blob {d.digest.short} ({d.size} bytes)")

        return run

    _parallel(client.options.jobs, [(d.size, upload(d)) for d in plan.blobs.values()])
    digest = _put_documents(repo, plan, dest)
    _record_sources(layout, plan.blobs, dest.name)
    return digest


def _mount_or_session(
    repo: Repository, d: Descriptor, source: str, progress: Progress
) -> str | None:
    """Mount ``d`` from ``source`` (same registry): None when the
    destination has the blob now, else an open upload session for it."""
    session = repo.mount_blob(d.digest, source)
    if session is None:
        progress(f"Mounted blob {d.digest.short} from {source}")
        return None
    # Refused (the source lost it, or no pull right there): the destination
    # may hold it anyway, and then nothing is uploaded.
    if repo.has_blob(d.digest):
        repo.cancel_upload(session)
        progress(f"Blob {d.digest.short} already in {repo.name}")
        return None
    return session


def _put_documents(repo: Repository, plan: _Plan, dest: RemoteRef) -> Digest:
    *children, (top, raw) = plan.documents
    for d, child_raw in children:
        repo.put_manifest(str(d.digest), child_raw, d.media_type)
    return repo.put_manifest(dest.reference, raw, top.media_type)


# ---------------------------------------------------------------------- copy


def copy_remote(
    client: Client,
    src: RemoteRef,
    dest: RemoteRef,
    *,
    platform: Platform | None = None,
    all_platforms: bool = False,
    progress: Progress = _quiet,
) -> Digest:
    """Registry → registry: mount within one registry, else stream through."""
    src_repo = client.repository(src)
    dst_repo = client.repository(dest)
    top = src_repo.get_manifest(src.reference)
    plan = _Plan()
    _resolve(src_repo, top, plan, platform=platform, all_platforms=all_platforms)
    same_host = src.host == dest.host

    def move(d: Descriptor) -> Callable[[], None]:
        def run() -> None:
            session = None
            if same_host and src.repository != dest.repository:
                session = _mount_or_session(dst_repo, d, src.repository, progress)
                if session is None:
                    return
            elif dst_repo.has_blob(d.digest):
                return
            _stream_blob(src_repo, dst_repo, d, session)
            progress(f"Copied blob {d.digest.short} ({d.size} bytes)")

        return run

    _parallel(client.options.jobs, [(d.size, move(d)) for d in plan.blobs.values()])
    return _put_documents(dst_repo, plan, dest)


def _stream_blob(src: Repository, dst: Repository, d: Descriptor, session: str | None) -> None:
    policy = src.t.options.retry
    for attempt in range(1, policy.attempts + 1):
        resp = src.open_blob(d.digest)
        try:
            stream = VerifyingStream(resp, d.digest, d.size)
            dst.upload_stream(d.digest, d.size, stream, location=session)  # type: ignore[arg-type]
            return
        except OCIToolsError:
            session = None  # a failed session is not reused
            if attempt == policy.attempts:
                raise
        finally:
            with contextlib.suppress(Exception):
                resp.release_conn()


# ------------------------------------------------------------------- inspect


@record
class RemoteImage:
    """What ``inspect docker://…`` shows: the top document, the manifest
    chosen for the platform and its config."""

    top: RemoteManifest
    manifest: RemoteManifest
    config: bytes | None

    def summary(self, name: str) -> dict[str, object]:
        """What ``inspect docker://…`` prints (skopeo inspect's main fields)."""
        cfg = json.loads(self.config) if self.config else {}
        inner = cfg.get("config") or {}
        man = json.loads(self.manifest.raw)
        return {
            "Name": name,
            "Digest": str(self.top.digest),
            "ManifestDigest": str(self.manifest.digest),
            "MediaType": self.manifest.media_type,
            "Created": cfg.get("created"),
            "Architecture": cfg.get("architecture"),
            "Os": cfg.get("os"),
            "Layers": [d.get("digest") for d in man.get("layers", [])],
            "Labels": inner.get("Labels"),
            "Env": inner.get("Env"),
        }


def inspect(
    client: Client, ref: RemoteRef, *, platform: Platform | None = None, raw: bool = False
) -> RemoteImage:
    """Fetch a remote image's documents (``raw``: the top document only)."""
    repo = client.repository(ref)
    top = repo.get_manifest(ref.reference)
    if raw:
        return RemoteImage(top, top, None)
    current = top
    for _ in range(5):
        if current.media_type not in mt.INDEX_TYPES:
            break
        child = _select(Index.parse(current.raw, current.media_type), platform or host_platform())
        current = repo.get_manifest(str(child.digest))
    m = Manifest.parse(current.raw, current.media_type)
    config = None
    if m.config is not None and m.config.media_type in mt.CONFIG_TYPES:
        if m.config.size > MAX_DOCUMENT_SIZE:
            raise InvalidDocumentError("config", [f"{m.config.size} bytes is over the size cap"])
        from oci_tools.store import MemoryStore

        mem = MemoryStore()
        w = mem.writer()
        repo.fetch_blob(m.config.digest, m.config.size, w)
        w.commit(m.config.digest, m.config.size)
        config = mem.blobs[m.config.digest]
    return RemoteImage(top, current, config)


# ------------------------------------------------------------ login, tags


def login(client: Client, host: str) -> None:
    """Check that the client's credential is accepted by ``host`` (raises
    AuthError when refused)."""
    t = client.transport(host)
    # The first request finds the scheme and the challenge (a 401, then the
    # same GET again with the credential): no separate ping.
    resp = t.request("GET", "/v2/", scope="", what=f"login to {host}", ok=(200, 404), stream=False)
    resp.release_conn()


def list_tags(client: Client, ref: RemoteRef) -> list[str]:
    """The repository's tags, sorted (the spec asks registries for lexical
    order; distribution 2.8 answers in directory order)."""
    return sorted(set(client.repository(ref).tags()))


__all__ = [
    "Client",
    "RemoteImage",
    "copy_remote",
    "inspect",
    "list_tags",
    "login",
    "pull",
    "push",
]
