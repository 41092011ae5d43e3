"""HTTP to one registry: scheme detection, auth, redirects and retries.

Built on urllib3 2.x (pooled, thread-safe connections; bodies streamed in
both directions).  What this module adds on top:

* **Scheme.**  ``https`` by default.  Plain ``http`` is used only with
  ``plain_http=True``; as a fallback after a failed TLS handshake when TLS
  verification is off (``tls_verify=False``) or the registry is named in
  ``$OCI_TOOLS_INSECURE_REGISTRIES`` (comma-separated ``HOST[:PORT]``); and
  for loopback registries (this machine), where it is tried first, before
  ``https``.
* **No ping.**  The first request to a host is the command's first real
  one: it finds the scheme (the other one is tried after a TLS or protocol
  failure, or, for plain HTTP, a 400 that a ``/v2/`` ping then explains) and,
  from a 401, the auth challenge; one round trip fewer than a ping first.
  It runs alone (the others wait for it), so parallel blob workers never
  race to discover the same things.
* **Auth.**  The ``WWW-Authenticate`` challenge picks Basic
  (credentials on every request) or Bearer (a token per scope from the
  realm, cached until it expires, fetched again on a 401).  Credentials and
  tokens go to the registry host and its token realm only: a redirect to
  another host (registries send blob GETs to storage) is followed without
  them.
* **Retries.**  Connection failures, 408/429/500/502/503/504 are retried with
  exponential backoff (``Retry-After`` honoured) while attempts and the
  policy's total time last; then one :class:`RegistryError` says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import IO, Any

import urllib3
from urllib3.exceptions import HTTPError, ProtocolError, SSLError

from oci_tools.errors import AuthError, RegistryError
from oci_tools.records import field, record
from oci_tools.registry.auth import Challenge, Credential, lookup, parse_challenge
from oci_tools.registry.reference import is_loopback

USER_AGENT = "oci-tools"
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: Error bodies and token answers larger than this are not read whole.
_SMALL_BODY = 1 << 20

Body = bytes | IO[bytes] | None
BodyFactory = Callable[[], Body]


@record
class RetryPolicy:
    """How hard to try: ``attempts`` per request, backoff ``base * 2**n``
    seconds (capped at ``cap``, with 10 % jitter), all within ``total``
    seconds from the first attempt."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0
    total: float = 120.0

    def delay(self, attempt: int) -> float:
        """Backoff before retry number ``attempt`` (1-based)."""
        d: float = min(self.cap, self.base * (2.0 ** (attempt - 1)))
        return d * (1.0 + random.uniform(0.0, 0.1))


@record(frozen=False)
class Options:
    """Connection settings shared by every registry a command talks to."""

    plain_http: bool = False
    tls_verify: bool = True
    creds: Credential | None = None
    authfile: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    connect_timeout: float = 15.0
    read_timeout: float = 60.0
    jobs: int = 4
    insecure: tuple[str, ...] = ()

    def insecure_host(self, host: str) -> bool:
        """True when plain HTTP is allowed to ``host`` without a flag."""
        named = self.insecure or tuple(
            h.strip()
            for h in os.environ.get("OCI_TOOLS_INSECURE_REGISTRIES", "").split(",")
            if h.strip()
        )
        return is_loopback(host) or host in named


@record(frozen=False)
class _Token:
    value: str
    expires: float


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _reason(exc: BaseException) -> str:
    """A short, credential-free description of a connection-level failure."""
    inner = getattr(exc, "reason", None) or exc
    text = str(inner)
    # urllib3 prefixes messages with the connection object's repr.
    if ">: " in text:
        text = text.split(">: ", 1)[1]
    text = re.sub(r"^\w*Connection(?:Pool)?\([^)]*\):\s*", "", text)
    return _one_line(text or type(inner).__name__, 160)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from(resp: urllib3.BaseHTTPResponse, what: str) -> RegistryError:
    """The :class:`RegistryError` for an unexpected response (its JSON error
    body, when there is one, gives the code and message)."""
    code = None
    message = ""
    try:
        body = resp.read(_SMALL_BODY, decode_content=True) if resp.status != 204 else b""
        doc = json.loads(body) if body else None
        errs = doc.get("errors") if isinstance(doc, dict) else None
        if isinstance(errs, list) and errs and isinstance(errs[0], dict):
            code = str(errs[0].get("code") or "") or None
            message = str(errs[0].get("message") or "")
    except (ValueError, HTTPError):
        pass
    finally:
        with contextlib.suppress(HTTPError):
            resp.drain_conn()
        resp.release_conn()
    detail = message or (code or "").lower().replace("_", " ") or resp.reason or "error"
    tag = f"{code}, HTTP {resp.status}" if code else f"HTTP {resp.status}"
    text = f"{what}: {_one_line(detail)} ({tag})"
    if resp.status in (401, 403):
        return AuthError(
            text,
            status=resp.status,
            code=code,
            hint="log in with: oci-tools login HOST, or pass --creds USER:PASS",
        )
    return RegistryError(text, status=resp.status, code=code)


class Transport:
    """Requests to one registry host (thread-safe; one per host per command)."""

    def __init__(self, host: str, options: Options, pool: urllib3.PoolManager) -> None:
        self.host = host
        self.options = options
        self._pool = pool
        # Re-entrant: the first request holds it while it finds the scheme.
        self._lock = threading.RLock()
        self._token_lock = threading.Lock()
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._cred: Credential | None = options.creds
        self._cred_loaded = options.creds is not None

    # -- setup -------------------------------------------------------------------

    @property
    def credential(self) -> Credential | None:
        """The credential for this host (``--creds``, else the auth files)."""
        if not self._cred_loaded:
            self._cred = lookup(self.host, self.options.authfile)
            self._cred_loaded = True
        return self._cred

    def _schemes(self) -> list[str]:
        if self.options.plain_http:
            return ["http"]
        if is_loopback(self.host):
            # This machine: plain HTTP first (no TLS set-up for the common
            # local registry), HTTPS when the port speaks only TLS.
            return ["http", "https"]
        if not self.options.tls_verify or self.options.insecure_host(self.host):
            return ["https", "http"]
        return ["https"]

    def base(self) -> str:
        """``scheme://host``, after a ``/v2/`` ping (done once)."""
        with self._lock:
            if self._base is None:
                self._ping()
            assert self._base is not None
            return self._base

    def _ping(self) -> None:
        schemes = self._schemes()
        last: BaseException | None = None
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            fallback = scheme != schemes[-1]
            try:
                resp = self._send_retrying(
                    "GET",
                    base + "/v2/",
                    {},
                    None,
                    f"registry {self.host}",
                    retry=not fallback,
                )
            except RegistryError as e:
                last = e
                # A TLS handshake with a plain-HTTP server (or the reverse)
                # fails one way or another; try the other scheme next.
                if fallback and isinstance(e.__cause__, (SSLError, ProtocolError)):
                    continue
                raise
            if fallback and scheme == "http" and resp.status == 400:
                # A TLS port answering a plain HTTP request: use HTTPS.
                resp.drain_conn()
                resp.release_conn()
                continue
            self._base = base
            if resp.status == 401:
                self._challenge = _pick_challenge(resp.headers.getlist("WWW-Authenticate"))
            elif resp.status not in (200, 404):
                # Some registries answer /v2/ with 404; the API still works.
                raise error_from(resp, f"registry {self.host}")
            resp.drain_conn()
            resp.release_conn()
            return
        assert last is not None
        raise last

    # -- auth ----------------------------------------------------------------------

    def _authorization(self, scope: str) -> str | None:
        ch = self._challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            cred = self.credential
            return cred.basic() if cred is not None else None
        if ch.scheme == "bearer":
            # One fetch per scope even when parallel blob workers all start
            # at once: the check and the fetch share a lock.
            with self._token_lock:
                tok = self._tokens.get(scope)
                if tok is not None and tok.expires > time.monotonic():
                    return f"Bearer {tok.value}"
                value, ttl = self._fetch_token(ch, scope)
                self._tokens[scope] = _Token(value, time.monotonic() + ttl - 10)
                return f"Bearer {value}"
        return None

    def _fetch_token(self, ch: Challenge, scope: str) -> tuple[str, float]:
        realm = ch.params.get("realm")
        if not realm or not realm.startswith(("https://", "http://")):
            raise AuthError(f"registry {self.host} sent a bearer challenge without a usable realm")
        query: list[tuple[str, str]] = []
        if ch.params.get("service"):
            query.append(("service", ch.params["service"]))
        for s in scope.split():
            query.append(("scope", s))
        cred = self.credential
        headers = {"User-Agent": USER_AGENT}
        body: bytes | None = None
        method = "GET"
        if cred is not None and cred.identity_token:
            method = "POST"
            form = [
                *query,
                ("grant_type", "refresh_token"),
                ("refresh_token", cred.secret),
                ("client_id", USER_AGENT),
            ]
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            url = realm
        else:
            if cred is not None:
                headers["Authorization"] = cred.basic()
                query.append(("account", cred.username))
            sep = "&" if "?" in realm else "?"
            url = realm + (sep + urllib.parse.urlencode(query) if query else "")
        resp = self._send_retrying(method, url, headers, lambda: body, "token request")
        what = f"token for {self.host}"
        if resp.status != 200:
            err = error_from(resp, what)
            if resp.status in (401, 403):
                raise AuthError(
                    f"{what}: credentials refused (HTTP {resp.status})",
                    status=resp.status,
                    hint="check the user and password (oci-tools login, --creds)",
                ) from None
            raise err
        try:
            doc = json.loads(resp.read(_SMALL_BODY))
        except ValueError:
            raise AuthError(f"{what}: the token server's answer is not JSON") from None
        finally:
            resp.release_conn()
        value = doc.get("token") or doc.get("access_token") if isinstance(doc, dict) else None
        if not isinstance(value, str) or not value:
            raise AuthError(f"{what}: the token server sent no token")
        ttl = doc.get("expires_in", 60)
        ttl = float(ttl) if isinstance(ttl, (int, float)) and not isinstance(ttl, bool) else 60.0
        return value, max(60.0, ttl)

    def _forget(self, scope: str, header: list[str]) -> None:
        with self._token_lock:
            self._tokens.pop(scope, None)
            ch = _pick_challenge(header)
            if ch is not None:
                self._challenge = ch

    # -- requests ------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` (or ``path`` itself when already absolute)."""
        if path.startswith(("http://", "https://")):
            return path
        return self.base() + path

    def request(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        body: BodyFactory | None = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
        retry: bool = True,
    ) -> urllib3.BaseHTTPResponse:
        """Send a request with auth, redirects and retries; returns a response
        whose status is in ``ok`` (else raises).  ``body`` is a factory called
        for every attempt, so a retry sends the body again from the start;
        ``retry=False`` for bodies that cannot be replayed."""
        args = (method, path, scope, what, headers, body, ok, stream, retry)
        if self._base is None and not path.startswith(("http://", "https://")):
            with self._lock:
                if self._base is None:
                    return self._first(*args)
        resp = self._request_at(self.url(path), method, *args[2:])
        assert resp is not None  # only a probe answers None
        return resp

    def _first(self, method: str, path: str, *rest: Any) -> urllib3.BaseHTTPResponse:
        """The first request to this host, which also finds its scheme and
        (from a 401) its auth challenge: no separate ``/v2/`` ping, one round
        trip fewer for every command."""
        schemes = self._schemes()
        for scheme in schemes:
            base = f"{scheme}://{self.host}"
            probe = scheme != schemes[-1]
            try:
                resp = self._request_at(base + path, method, *rest, probe=probe)
            except RegistryError as e:
                # A TLS handshake with a plain-HTTP server (or the reverse)
                # fails one way or another; try the other scheme next.
                if probe and isinstance(e.__cause__, (SSLError, ProtocolError)):
                    continue
                raise
            if resp is None:
                # A plain HTTP request answered 400: maybe a TLS port, maybe
                # a request the registry refuses; the ping tells which.
                self._ping()
                assert self._base is not None
                resp = self._request_at(self._base + path, method, *rest)
                assert resp is not None
                return resp
            self._base = base
            return resp
        raise RegistryError(f"registry {self.host}: no usable scheme")  # pragma: no cover

    def _request_at(
        self,
        url: str,
        method: str,
        scope: str,
        what: str,
        headers: Mapping[str, str] | None,
        body: BodyFactory | None,
        ok: tuple[int, ...],
        stream: bool,
        retry: bool,
        *,
        probe: bool = False,
    ) -> urllib3.BaseHTTPResponse | None:
        """One request at an absolute URL; None only for a ``probe`` of plain
        HTTP that a server answered 400 (perhaps a TLS port)."""
        refreshed = False
        while True:
            h = dict(headers or {})
            auth = self._authorization(scope)
            if auth is not None:
                h["Authorization"] = auth
            resp = self._send_retrying(method, url, h, body, what, retry=retry, ok=ok, probe=probe)
            if probe and resp.status == 400 and url.startswith("http:"):
                resp.drain_conn()
                resp.release_conn()
                return None
            challenged = bool(resp.headers.get("WWW-Authenticate"))
            if resp.status == 401 and not refreshed and (challenged or self._challenge):
                # Expired or too narrow token (or a challenge we had not seen,
                # as on the first request): take the new challenge, get a
                # fresh token once, try again.
                refreshed = True
                header = resp.headers.getlist("WWW-Authenticate")
                resp.drain_conn()
                resp.release_conn()
                self._forget(scope, header)
                continue
            if resp.status not in ok:
                raise error_from(resp, what)
            if not stream:
                resp.drain_conn()  # only the headers are wanted
                resp.release_conn()
            return resp

    def _send_retrying(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: BodyFactory | None,
        what: str,
        *,
        retry: bool = True,
        ok: tuple[int, ...] = (200,),
        probe: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        """``probe``: the scheme is a guess; a TLS or protocol failure is
        raised at once (the caller tries the other scheme), not retried."""
        policy = self.options.retry
        deadline = time.monotonic() + policy.total
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = self._send(method, url, headers, body() if body else None)
            except HTTPError as e:
                wait = policy.delay(attempt)
                # A certificate problem does not go away by asking again.
                mismatch = isinstance(e, SSLError) or (probe and isinstance(e, ProtocolError))
                again = retry and not mismatch and attempt < policy.attempts
                if again and time.monotonic() + wait < deadline:
                    time.sleep(wait)
                    continue
                tries = f" after {attempt} attempts" if attempt > 1 else ""
                hint = (
                    "--tls-verify=false skips the certificate check (trusted networks only)"
                    if isinstance(e, SSLError)
                    else None
                )
                raise RegistryError(f"{what}: {_reason(e)}{tries}", hint=hint) from e
            if resp.status in RETRY_STATUSES and resp.status not in ok:
                asked = retry_after(resp.headers.get("Retry-After"))
                wait = policy.delay(attempt) if asked is None else min(asked, policy.cap * 4)
                if retry and attempt < policy.attempts and time.monotonic() + wait < deadline:
                    resp.drain_conn()
                    resp.release_conn()
                    time.sleep(wait)
                    continue
                err = error_from(resp, what)
                if attempt > 1:
                    err.message += f" after {attempt} attempts"
                    err.args = (err.message,)
                raise err
            return resp

    def _send(
        self, method: str, url: str, headers: Mapping[str, str], body: Body
    ) -> urllib3.BaseHTTPResponse:
        # Always streaming: error bodies and token answers are read with a
        # size limit, blobs in pieces; request() drains what nobody reads.
        h = {"User-Agent": USER_AGENT, **headers}
        origin = _origin(url)
        for _ in range(10):
            resp = self._pool.request(
                method,
                url,
                headers=h,
                body=body,
                redirect=False,
                retries=False,
                preload_content=False,
                decode_content=False,
            )
            location = resp.headers.get("Location")
            if resp.status not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return resp
            resp.drain_conn()
            resp.release_conn()
            url = urllib.parse.urljoin(url, location)
            if _origin(url) != origin:
                # Never hand registry credentials to another host (storage).
                h = {k: v for k, v in h.items() if k.lower() != "authorization"}
        raise RegistryError(f"too many redirects from {self.host}")


def _origin(url: str) -> tuple[str, str]:
    p = urllib.parse.urlsplit(url)
    return p.scheme, p.netloc.lower()


def _pick_challenge(headers: list[str]) -> Challenge | None:
    found = [c for c in (parse_challenge(h) for h in headers) if c is not None]
    for c in found:
        if c.scheme in ("bearer", "basic"):
            return c
    return found[0] if found else None


def new_pool(options: Options) -> urllib3.PoolManager:
    """The connection pool one command shares between its registries."""
    kw: dict[str, Any] = {
        # Big and small blobs move in two worker groups of up to ``jobs``
        # each (transfer._parallel); every worker keeps its connection.
        "maxsize": max(4, 2 * options.jobs + 2),
        "block": False,
        "timeout": urllib3.Timeout(connect=options.connect_timeout, read=options.read_timeout),
        # Big send blocks: uploads stream from files at disk speed.
        "blocksize": 1 << 20,
    }
    if not options.tls_verify:
        kw["cert_reqs"] = "CERT_NONE"
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return urllib3.PoolManager(**kw)


__all__ = ["Options", "RetryPolicy", "Transport", "error_from", "new_pool", "retry_after"]
