"""Real registries for the registry tests: ``docker-registry`` (distribution
2.8) on 127.0.0.1 free ports, open, with htpasswd Basic auth, or with token
auth from a small token server signing ES256 JWTs; plus a fault-injecting
reverse proxy.  Nothing here contacts any other host."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGISTRY = shutil.which("docker-registry")
HTPASSWD = shutil.which("htpasswd")

needs_registry = pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("docker-registry exited:\n" + log.read_text()[-3000:])
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("docker-registry did not start:\n" + log.read_text()[-3000:])


@dataclass
class Registry:
    """A running docker-registry."""

    host: str
    root: Path
    proc: subprocess.Popen[bytes]

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"docker://{self.host}/{repo}:{tag}"


@contextlib.contextmanager
def run_registry(
    tmp: Path, auth: dict[str, Any] | None = None, *, tls: bool = False
) -> Iterator[Registry]:
    """Start docker-registry with ``auth`` (the config's auth section)."""
    assert REGISTRY is not None
    port = free_port()
    store = tmp / "storage"
    store.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {
            "filesystem": {"rootdirectory": str(store)},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": "test-secret"},
    }
    if auth:
        cfg["auth"] = auth
    if tls:
        cert, key = self_signed(tmp, "127.0.0.1")
        cfg["http"]["tls"] = {"certificate": str(cert), "key": str(key)}
    conf = tmp / "config.yml"
    conf.write_text(json.dumps(cfg))  # JSON is YAML
    log = tmp / "registry.log"
    with open(log, "wb") as lf:
        proc = subprocess.Popen(
            [REGISTRY, "serve", str(conf)], stdout=lf, stderr=subprocess.STDOUT, cwd=tmp
        )
    try:
        _wait_port(port, proc, log)
        yield Registry(f"127.0.0.1:{port}", store, proc)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def self_signed(tmp: Path, ip: str) -> tuple[Path, Path]:
    """A self-signed server certificate for ``ip`` (PEM cert, PEM key)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ip)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "server.crt", tmp / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def htpasswd_file(path: Path, user: str, password: str) -> Path:
    """A bcrypt htpasswd file made by apache2-utils' htpasswd."""
    assert HTPASSWD is not None, "htpasswd (apache2-utils) is needed"
    out = subprocess.run([HTPASSWD, "-Bbn", user, password], check=True, capture_output=True).stdout
    path.write_bytes(out)
    return path


# ----------------------------------------------------------------- token server


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def libtrust_key_id(der_spki: bytes) -> str:
    """distribution's key id: base32 of the first 30 bytes of sha256(SPKI),
    12 groups of 4 joined by ':'."""
    b32 = base64.b32encode(hashlib.sha256(der_spki).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i : i + 4] for i in range(0, 48, 4))


@dataclass
class TokenServer:
    """Issues ES256 JWTs for docker-registry's token auth."""

    port: int
    cert_path: Path
    users: dict[str, str]
    service: str = "test-registry"
    issuer: str = "test-issuer"
    requests: list[dict[str, Any]] = field(default_factory=list)
    anonymous_pull: bool = False
    server: http.server.ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def auth_config(self) -> dict[str, Any]:
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert_path),
            }
        }


@contextlib.contextmanager
def run_token_server(tmp: Path, users: dict[str, str]) -> Iterator[TokenServer]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path = tmp / "token.crt"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kid = libtrust_key_id(spki)
    ts = TokenServer(free_port(), cert_path, users)
    refresh_tokens: dict[str, str] = {f"refresh-{u}": u for u in users}

    def sign(claims: dict[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "ES256", "kid": kid}
        signing = (
            _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        ).encode()
        r, s = decode_dss_signature(key.sign(signing, ec.ECDSA(hashes.SHA256())))
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return signing.decode() + "." + _b64(sig)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            """OAuth2 refresh-token grant (an identity token from a login)."""
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            user = refresh_tokens.get((form.get("refresh_token") or [""])[0])
            if form.get("grant_type") != ["refresh_token"] or user is None:
                self.send_response(401)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._grant(form, user, "POST")

        def do_GET(self) -> None:
            q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            auth = self.headers.get("Authorization", "")
            user = ""
            if auth.startswith("Basic "):
                u, _, p = base64.b64decode(auth[6:]).decode().partition(":")
                if ts.users.get(u) != p:
                    self.send_response(401)
                    self.end_headers()
                    return
                user = u
            self._grant(q, user, "GET", bool(auth))

        def _grant(
            self, q: dict[str, list[str]], user: str, method: str, auth: bool = True
        ) -> None:
            ts.requests.append(
                {"scope": q.get("scope", []), "user": user, "auth": auth, "method": method}
            )
            access = []
            for scope in q.get("scope", []):
                for part in scope.split(" "):
                    kind, _, rest = part.partition(":")
                    repo, _, actions = rest.rpartition(":")
                    granted = actions.split(",") if user else []
                    if not user and ts.anonymous_pull:
                        granted = [a for a in actions.split(",") if a == "pull"]
                    access.append({"type": kind, "name": repo, "actions": granted})
            t = int(time.time())
            claims = {
                "iss": ts.issuer,
                "sub": user,
                "aud": ts.service,
                "exp": t + 300,
                "nbf": t - 10,
                "iat": t,
                "jti": os.urandom(8).hex(),
                "access": access,
            }
            body = json.dumps({"token": sign(claims), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", ts.port), Handler)
    ts.server = srv
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield ts
    finally:
        srv.shutdown()
        srv.server_close()


# -------------------------------------------------------------- fault proxy

#: A fault decides what to do with one request: return None to forward it
#: normally, or a callable that answers it.
Fault = Callable[
    ["ProxyHandler"], Callable[["ProxyHandler", http.client.HTTPResponse], None] | None
]


class ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        px = self.proxy
        px.log.append((self.command, self.path, dict(self.headers.items())))
        action = px.decide(self)
        if action == "pass" or action is None:
            self._forward(None)
        elif action == "drop":
            # Swallow the request (and its body) and hang up without answering.
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        elif isinstance(action, tuple) and action[0] == "delay":
            time.sleep(action[1])
            self._forward(None)
        elif isinstance(action, tuple) and action[0] == "status":
            _, code, headers = action
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            body = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "injected"}]})
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
        else:
            self._forward(action)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

    def _forward(self, mangle: Any) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy.upstream_port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read() if self.command != "HEAD" else b""
        conn.close()
        if callable(mangle):
            mangle(self, resp, data)
            return
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length"):
                self.send_header(k, v)
        if self.command == "HEAD":
            self.send_header("Content-Length", resp.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)


class FaultProxy:
    """A reverse proxy in front of a registry; ``rules`` are consulted per
    request: a rule is (predicate, action, count) with action ``"pass"``,
    ("status", code, headers) or a callable mangling the upstream answer."""

    def __init__(self, upstream: Registry) -> None:
        self.upstream_port = int(upstream.host.rsplit(":", 1)[1])
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.rules: list[list[Any]] = []
        self.log: list[tuple[str, str, dict[str, str]]] = []
        self._lock = threading.Lock()
        handler = type("H", (ProxyHandler,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, pred: Callable[[str, str], bool], action: Any, count: int = 1) -> None:
        with self._lock:
            self.rules.append([pred, action, count])

    def decide(self, h: ProxyHandler) -> Any:
        with self._lock:
            for rule in self.rules:
                pred, action, count = rule
                if count != 0 and pred(h.command, h.path):
                    rule[2] = count - 1
                    return action
        return "pass"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def drop_mid_body(h: ProxyHandler, resp: http.client.HTTPResponse, data: bytes) -> None:
    """Send the headers and half the body, then cut the connection."""
    h.send_response(resp.status)
    for k, v in resp.getheaders():
        if k.lower() not in ("connection", "transfer-encoding"):
            h.send_header(k, v)
    h.end_headers()
    h.wfile.write(data[: len(data) // 2])
    h.wfile.flush()
    h.close_connection = True
    with contextlib.suppress(OSError):
        h.connection.shutdown(socket.SHUT_RDWR)


def corrupt_body(h: ProxyHandler, resp: http.client.HTTPResponse, data: bytes) -> None:
    """Same length, one byte flipped."""
    bad = bytearray(data)
    if bad:
        bad[len(bad) // 2] ^= 0xFF
    h.send_response(resp.status)
    for k, v in resp.getheaders():
        if k.lower() not in ("connection", "transfer-encoding", "content-length"):
            h.send_header(k, v)
    h.send_header("Content-Length", str(len(bad)))
    h.end_headers()
    h.wfile.write(bytes(bad))


def huge_manifest(h: ProxyHandler, resp: http.client.HTTPResponse, data: bytes) -> None:
    """A 5 MiB manifest body (over the 4 MiB cap)."""
    body = b" " * (5 << 20)
    h.send_response(200)
    h.send_header("Content-Type", resp.getheader("Content-Type") or "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


# ------------------------------------------------------------------ images


def make_image(
    layout: Any,
    ref: str | None,
    contents: list[bytes],
    *,
    arch: str = "amd64",
    variant: str = "",
) -> Any:
    """An image of gzip layers, one file each; tagged ``ref`` (if given).
    Returns its manifest descriptor (with platform)."""
    from builders import file, make_layer

    from oci_tools.spec import mediatype as mt
    from oci_tools.spec.model import Descriptor, Manifest, Platform
    from oci_tools.store import put_bytes

    layers = [make_layer([file(f"f{i}", data)]) for i, data in enumerate(contents)]
    descs = []
    for layer in layers:
        put_bytes(layout.store, layer.blob)
        descs.append(Descriptor(mt.OCI_LAYER_GZIP, _dg(layer.digest), len(layer.blob)))
    cfg: dict[str, Any] = {
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin"]},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
    }
    if variant:
        cfg["variant"] = variant
    raw = json.dumps(cfg).encode()
    cd = put_bytes(layout.store, raw)
    m = Manifest.build(Descriptor(mt.OCI_CONFIG, cd, len(raw)), descs)
    md = put_bytes(layout.store, m.raw)
    desc = Descriptor(mt.OCI_MANIFEST, md, len(m.raw), platform=Platform("linux", arch, variant))
    if ref:
        layout.set_ref(ref, desc)
    return desc


def make_index(layout: Any, ref: str, manifests: list[Any]) -> Any:
    from oci_tools.spec import mediatype as mt
    from oci_tools.spec.model import Index
    from oci_tools.store import put_bytes

    idx = Index.build(manifests)
    dg = put_bytes(layout.store, idx.raw)
    desc = idx.descriptor(mt.OCI_INDEX)
    assert desc.digest == dg
    layout.set_ref(ref, desc)
    return desc


def _dg(text: str) -> Any:
    from oci_tools.digest import Digest

    return Digest.parse(text)


def layout_state(path: Path) -> dict[str, bytes]:
    """index.json and every blob file name (what a failed pull must not change)."""
    out = {"index.json": (path / "index.json").read_bytes()}
    blobs = path / "blobs"
    for p in sorted(blobs.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(path))] = b""
    return out
