"""Distribution-spec operations on one repository: manifests, blobs, uploads, tags.

Manifests are returned and sent as the exact bytes the registry holds, so
their digests are preserved.  Blob downloads stream into a store writer (a
temp file that becomes visible only when digest and size match) and resume
with ``Range`` after a dropped connection.  Uploads are monolithic (one PUT)
for small blobs and chunked (PATCH with ``Content-Range``, resumed from the
offset the registry reports) for large ones; the manifest is always PUT last.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from typing import IO, Protocol, cast

import urllib3
from urllib3.exceptions import HTTPError

from oci_tools.digest import Digest, Hasher
from oci_tools.errors import DigestMismatchError, InvalidDocumentError, RegistryError
from oci_tools.records import record
from oci_tools.registry.transport import RETRY_STATUSES, Transport, _reason
from oci_tools.spec import mediatype as mt

#: Media types asked for (a registry hides an OCI document whose type is not listed).
ACCEPT = ", ".join([mt.OCI_MANIFEST, mt.OCI_INDEX, mt.DOCKER_MANIFEST, mt.DOCKER_MANIFEST_LIST])
#: Manifests larger than this are refused (the size containers/image uses).
MAX_MANIFEST = 4 << 20
#: Blobs up to this size are uploaded with one PUT; larger ones in chunks.
MONOLITHIC_MAX = 32 << 20
#: Bytes per PATCH of a chunked upload (the unit of resume).
CHUNK_SIZE = 64 << 20
READ = 1 << 20


class Sink(Protocol):
    """Where a downloaded blob goes (a store's BlobWriter)."""

    def write(self, data: bytes | memoryview, /) -> int: ...


@record
class RemoteManifest:
    """A manifest or index as the registry sent it."""

    raw: bytes
    media_type: str
    digest: Digest

    def __repr__(self) -> str:
        return f"RemoteManifest({self.media_type!r}, {self.digest})"


def _media_type(raw: bytes, header: str | None) -> str:
    import json

    try:
        doc = json.loads(raw)
    except ValueError:
        raise InvalidDocumentError("manifest", ["not valid JSON"]) from None
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    ctype = (header or "").split(";")[0].strip()
    if isinstance(declared, str) and declared:
        return declared
    if ctype in mt.INDEX_TYPES | mt.MANIFEST_TYPES:
        return ctype
    if isinstance(doc, dict) and "manifests" in doc:
        return mt.OCI_INDEX
    return mt.OCI_MANIFEST


class Repository:
    """One repository on one registry."""

    def __init__(self, transport: Transport, name: str) -> None:
        self.t = transport
        self.name = name

    @property
    def pull_scope(self) -> str:
        """The token scope for reading."""
        return f"repository:{self.name}:pull"

    @property
    def push_scope(self) -> str:
        """The token scope for writing."""
        return f"repository:{self.name}:pull,push"

    def _where(self, suffix: str = "") -> str:
        return f"{self.t.host}/{self.name}{suffix}"

    # -- manifests -----------------------------------------------------------------

    def get_manifest(self, reference: str, *, scope: str | None = None) -> RemoteManifest:
        """GET a manifest or index; verified against a digest reference and
        the ``Docker-Content-Digest`` header; refused above 4 MiB."""
        sep = "@" if ":" in reference else ":"
        what = f"manifest {self._where(sep + reference)}"
        resp = self.t.request(
            "GET",
            f"/v2/{self.name}/manifests/{reference}",
            scope=scope or self.pull_scope,
            what=what,
            headers={"Accept": ACCEPT},
            stream=True,
        )
        try:
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > MAX_MANIFEST:
                raise RegistryError(
                    f"{what}: {int(length)} bytes is over the {MAX_MANIFEST >> 20} MiB manifest cap"
                )
            raw = _read_capped(resp, MAX_MANIFEST, what)
        finally:
            resp.release_conn()
        digest = Digest.of_bytes(raw)
        if ":" in reference and Digest.parse(reference) != digest:
            raise DigestMismatchError(what, expected=reference, actual=str(digest))
        header = resp.headers.get("Docker-Content-Digest")
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatchError(what, expected=header, actual=str(digest))
        return RemoteManifest(raw, _media_type(raw, resp.headers.get("Content-Type")), digest)

    def put_manifest(self, reference: str, raw: bytes, media_type: str) -> Digest:
        """PUT a manifest's exact bytes under a tag or its digest."""
        digest = Digest.of_bytes(raw)
        sep = "@" if ":" in reference else ":"
        resp = self.t.request(
            "PUT",
            f"/v2/{self.name}/manifests/{reference}",
            scope=self.push_scope,
            what=f"push manifest {self._where(sep + reference)}",
            headers={"Content-Type": media_type, "Content-Length": str(len(raw))},
            body=lambda: raw,
            ok=(200, 201, 202),
            stream=False,
        )
        header = resp.headers.get("Docker-Content-Digest")
        resp.release_conn()
        if header and header.startswith("sha256:") and header != str(digest):
            raise DigestMismatchError(
                f"manifest digest reported by {self.t.host}", expected=str(digest), actual=header
            )
        return digest

    def tags(self) -> list[str]:
        """Every tag, following ``Link`` pagination on the same registry."""
        out: list[str] = []
        path: str | None = f"/v2/{self.name}/tags/list"
        seen = 0
        import json

        while path is not None and seen < 1000:
            seen += 1
            resp = self.t.request(
                "GET", path, scope=self.pull_scope, what=f"tags of {self._where()}", stream=True
            )
            try:
                body = _read_capped(resp, 16 << 20, f"tags of {self._where()}")
                link = resp.headers.get("Link")
            finally:
                resp.release_conn()
            try:
                doc = json.loads(body)
            except ValueError:
                raise RegistryError(f"tags of {self._where()}: answer is not JSON") from None
            out.extend(t for t in (doc.get("tags") or []) if isinstance(t, str))
            path = _next_link(link)
        return out

    # -- blobs ----------------------------------------------------------------------

    def has_blob(self, digest: Digest, *, scope: str | None = None) -> bool:
        """HEAD a blob: True when the repository has it."""
        resp = self.t.request(
            "HEAD",
            f"/v2/{self.name}/blobs/{digest}",
            scope=scope or self.push_scope,
            what=f"blob {digest} in {self._where()}",
            ok=(200, 404),
            stream=False,
        )
        resp.release_conn()
        return resp.status == 200

    def open_blob(self, digest: Digest, offset: int = 0) -> urllib3.BaseHTTPResponse:
        """A streaming GET of a blob (from ``offset`` when not 0)."""
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        return self.t.request(
            "GET",
            f"/v2/{self.name}/blobs/{digest}",
            scope=self.pull_scope,
            what=f"blob {digest} from {self._where()}",
            headers=headers,
            ok=(200, 206),
            stream=True,
        )

    def fetch_blob(self, digest: Digest, size: int, sink: Sink) -> None:
        """Stream a blob into ``sink``; a dropped connection is resumed with
        ``Range`` (or by skipping what was received when the registry ignores
        it).  The caller verifies digest and size at commit; more bytes than
        ``size`` are refused here."""
        policy = self.t.options.retry
        deadline = time.monotonic() + policy.total
        got = 0
        attempt = 0
        what = f"blob {digest} from {self._where()}"
        while True:
            attempt += 1
            resp = self.open_blob(digest, got)
            try:
                skip = 0
                if got and resp.status == 200:
                    skip = got  # no Range support: read past what we have
                elif got:
                    start = _content_range_start(resp.headers.get("Content-Range"))
                    if start != got:
                        raise RegistryError(f"{what}: resumed at byte {start}, asked {got}")
                while True:
                    data = resp.read(READ)
                    if not data:
                        break
                    if skip:
                        cut = min(skip, len(data))
                        data = data[cut:]
                        skip -= cut
                        if not data:
                            continue
                    got += len(data)
                    if got > size:
                        raise DigestMismatchError(
                            f"size of {what}", expected=str(size), actual=f"more than {size}"
                        )
                    sink.write(data)
                return
            except HTTPError as e:
                wait = policy.delay(attempt)
                if attempt < policy.attempts and time.monotonic() + wait < deadline:
                    time.sleep(wait)
                    continue
                raise RegistryError(
                    f"{what}: {_reason(e)} after {attempt} attempts ({got} of {size} bytes)"
                ) from None
            finally:
                resp.release_conn()

    def mount_blob(self, digest: Digest, source: str) -> str | None:
        """Ask for a cross-repository mount from ``source``: None when the
        blob was mounted, else the upload session the registry opened."""
        scope = f"{self.push_scope} repository:{source}:pull"
        query = urllib.parse.urlencode({"mount": str(digest), "from": source})
        resp = self.t.request(
            "POST",
            f"/v2/{self.name}/blobs/uploads/?{query}",
            scope=scope,
            what=f"mount {digest} into {self._where()}",
            ok=(201, 202),
            stream=False,
        )
        resp.release_conn()
        if resp.status == 201:
            return None
        return self._location(resp, f"/v2/{self.name}/blobs/uploads/")

    def cancel_upload(self, location: str) -> None:
        """DELETE an upload session that is not needed (best effort: the
        registry expires it anyway)."""
        with contextlib.suppress(RegistryError):
            self.t.request(
                "DELETE",
                location,
                scope=self.push_scope,
                what=f"cancel upload to {self._where()}",
                ok=(200, 202, 204, 404),
                retry=False,
            ).release_conn()

    def _location(self, resp: urllib3.BaseHTTPResponse, base: str) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"upload to {self._where()}: the registry sent no Location")
        return urllib.parse.urljoin(self.t.url(base), loc)

    def start_upload(self) -> str:
        """POST a new upload session; returns its absolute URL."""
        resp = self.t.request(
            "POST",
            f"/v2/{self.name}/blobs/uploads/",
            scope=self.push_scope,
            what=f"start upload to {self._where()}",
            headers={"Content-Length": "0"},
            ok=(202,),
            stream=False,
        )
        resp.release_conn()
        return self._location(resp, f"/v2/{self.name}/blobs/uploads/")

    def upload_blob(
        self,
        digest: Digest,
        size: int,
        opener: Callable[[int], IO[bytes]],
        *,
        location: str | None = None,
        chunk_size: int | None = None,
        monolithic_max: int | None = None,
    ) -> None:
        """Upload a blob read from ``opener(offset)`` (a stream positioned at
        ``offset``).  Small blobs go in one PUT; larger ones in PATCH chunks,
        each failure resumed from the offset the registry reports.  The
        registry checks the digest at the final PUT."""
        what = f"upload {digest} to {self._where()}"
        policy = self.t.options.retry
        chunk_size = chunk_size or CHUNK_SIZE
        monolithic_max = MONOLITHIC_MAX if monolithic_max is None else monolithic_max
        for attempt in range(1, policy.attempts + 1):
            loc = location or self.start_upload()
            location = None
            try:
                if size <= monolithic_max:
                    self._put(
                        loc, digest, size, functools.partial(_limited, opener, 0, size), retry=False
                    )
                else:
                    self._chunked(loc, digest, size, opener, chunk_size)
                return
            except RegistryError as e:
                # A session the registry lost (or whose bytes it rejected) is
                # started afresh; authorization problems are final.
                retryable = e.status is None or e.status in (400, 404, 416, *RETRY_STATUSES)
                if not retryable or attempt == policy.attempts:
                    raise
                time.sleep(policy.delay(attempt))
        raise RegistryError(f"{what}: gave up")  # pragma: no cover - loop returns or raises

    def _put(
        self,
        loc: str,
        digest: Digest,
        size: int,
        body: Callable[[], IO[bytes] | bytes | None],
        *,
        retry: bool = True,
    ) -> None:
        resp = self.t.request(
            "PUT",
            _with_digest(loc, digest),
            scope=self.push_scope,
            what=f"upload {digest} to {self._where()}",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body,
            ok=(201, 204),
            stream=False,
            retry=retry,
        )
        resp.release_conn()

    def _status(self, loc: str) -> tuple[str, int]:
        """(location, next offset) of an upload session (GET status)."""
        resp = self.t.request(
            "GET",
            loc,
            scope=self.push_scope,
            what=f"upload status in {self._where()}",
            ok=(204, 200),
            stream=False,
        )
        resp.release_conn()
        return self._location(resp, loc) if resp.headers.get("Location") else loc, _range_end(
            resp.headers.get("Range")
        )

    def _chunked(
        self,
        loc: str,
        digest: Digest,
        size: int,
        opener: Callable[[int], IO[bytes]],
        chunk_size: int,
    ) -> None:
        policy = self.t.options.retry
        deadline = time.monotonic() + policy.total
        offset = 0
        failures = 0
        while offset < size:
            n = min(chunk_size, size - offset)
            start = offset
            try:
                resp = self.t.request(
                    "PATCH",
                    loc,
                    scope=self.push_scope,
                    what=f"upload {digest} to {self._where()}",
                    headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Length": str(n),
                        "Content-Range": f"{start}-{start + n - 1}",
                    },
                    body=functools.partial(_limited, opener, start, n),
                    ok=(202, 204),
                    stream=False,
                    retry=False,
                )
            except RegistryError as e:
                if e.status is not None and e.status not in (500, 502, 503, 504):
                    raise
                failures += 1
                wait = policy.delay(failures)
                if failures >= policy.attempts or time.monotonic() + wait > deadline:
                    raise
                time.sleep(wait)
                # Resume where the registry says it is, not where we think.
                loc, offset = self._status(loc)
                continue
            resp.release_conn()
            loc = self._location(resp, loc)
            end = _range_end(resp.headers.get("Range"))
            offset = end if end > start else start + n
        self._put(loc, digest, 0, lambda: b"")

    def upload_stream(
        self, digest: Digest, size: int, src: IO[bytes], *, location: str | None = None
    ) -> None:
        """Upload from a stream that can be read once (registry → registry
        copy): one PATCH with the whole blob, then the closing PUT (into the
        session ``location`` when one is open)."""
        loc = location or self.start_upload()
        resp = self.t.request(
            "PATCH",
            loc,
            scope=self.push_scope,
            what=f"upload {digest} to {self._where()}",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=lambda: src,
            ok=(202, 204),
            stream=False,
            retry=False,
        )
        resp.release_conn()
        self._put(self._location(resp, loc), digest, 0, lambda: b"")


def _limited(opener: Callable[[int], IO[bytes]], offset: int, n: int) -> IO[bytes]:
    return cast(IO[bytes], _Limited(opener(offset), n))


class _Limited:
    """At most ``n`` bytes of a stream (a PATCH chunk); closes it at the end."""

    def __init__(self, raw: IO[bytes], n: int) -> None:
        self._raw = raw
        self._left = n

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            self._raw.close()
            return b""
        want = self._left if size is None or size < 0 else min(size, self._left)
        data = self._raw.read(want)
        self._left -= len(data)
        if not data:
            self._raw.close()
            self._left = 0
        return data


class VerifyingStream:
    """A response body read once, hashed, with its size checked, so a copy
    between registries notices a source that lies."""

    def __init__(self, resp: urllib3.BaseHTTPResponse, digest: Digest, size: int) -> None:
        self._resp = resp
        self._digest = digest
        self._size = size
        self._h = Hasher(digest.algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self._resp.read(READ if n is None or n < 0 else n)
        self._h.update(data)
        if self._h.size > self._size:
            raise DigestMismatchError(
                f"size of blob {self._digest}", expected=str(self._size), actual="more"
            )
        if not data and self._h.digest() != self._digest:
            raise DigestMismatchError(
                f"blob {self._digest}", expected=str(self._digest), actual=str(self._h.digest())
            )
        return data


def _read_capped(resp: urllib3.BaseHTTPResponse, cap: int, what: str) -> bytes:
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            data = resp.read(READ)
            if not data:
                break
            total += len(data)
            if total > cap:
                raise RegistryError(f"{what}: over the {cap >> 20} MiB size cap")
            parts.append(data)
    except HTTPError as e:
        raise RegistryError(f"{what}: {_reason(e)}") from None
    return b"".join(parts)


def _with_digest(loc: str, digest: Digest) -> str:
    parts = urllib.parse.urlsplit(loc)
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    query.append(("digest", str(digest)))
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def _range_end(value: str | None) -> int:
    """Next offset from an upload ``Range: 0-<last>`` header (0 when absent;
    a registry says ``0-0`` for an empty session, taken as empty)."""
    m = re.fullmatch(r"(?:bytes=)?0-(\d+)", (value or "").strip())
    if not m:
        return 0
    last = int(m.group(1))
    return last + 1 if last > 0 else 0


def _content_range_start(value: str | None) -> int:
    m = re.fullmatch(r"bytes (\d+)-\d+/(?:\d+|\*)", (value or "").strip())
    return int(m.group(1)) if m else -1


def _next_link(value: str | None) -> str | None:
    """The path+query of a ``Link: <url>; rel="next"`` header (same registry)."""
    if not value:
        return None
    m = re.search(r'<([^>]+)>\s*;\s*rel="?next"?', value)
    if not m:
        return None
    parts = urllib.parse.urlsplit(m.group(1))
    return parts.path + (f"?{parts.query}" if parts.query else "")


def iter_chunks(resp: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """The body of a streaming response in 1 MiB pieces."""
    while True:
        data = resp.read(READ)
        if not data:
            return
        yield data


__all__ = [
    "ACCEPT",
    "MAX_MANIFEST",
    "RemoteManifest",
    "Repository",
    "VerifyingStream",
]
