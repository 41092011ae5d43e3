"""Registry client pieces that need no server: references, challenges, auth
files and credential helpers, header parsing."""

from __future__ import annotations

import base64
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import cli

from oci_tools.errors import UsageError
from oci_tools.registry import auth
from oci_tools.registry.reference import is_loopback, parse_reference
from oci_tools.registry.remote import _content_range_start, _next_link, _range_end, _with_digest
from oci_tools.registry.transport import retry_after


@pytest.mark.parametrize(
    ("text", "host", "repo", "ref"),
    [
        ("debian", "docker.io", "library/debian", "latest"),
        ("docker://debian:12", "docker.io", "library/debian", "12"),
        ("user/app", "docker.io", "user/app", "latest"),
        ("localhost/app:v1", "localhost", "app", "v1"),
        ("localhost:5000/a/b/c:t", "localhost:5000", "a/b/c", "t"),
        ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest"),
        ("example.com/ns/app@sha256:" + "a" * 64, "example.com", "ns/app", "sha256:" + "a" * 64),
        ("[::1]:5000/app:1", "[::1]:5000", "app", "1"),
    ],
)
def test_reference_normalization(text: str, host: str, repo: str, ref: str) -> None:
    r = parse_reference(text)
    assert (r.host, r.repository, r.reference) == (host, repo, ref)


@pytest.mark.parametrize(
    "text",
    ["", "docker://", "Upper/Case", "host:5000/a:bad tag", "a/b@sha256:zz", "a//b", "x:"],
)
def test_reference_errors_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_reference(text)


def test_loopback() -> None:
    assert is_loopback("127.0.0.1:5000")
    assert is_loopback("localhost")
    assert is_loopback("[::1]:5000")
    assert not is_loopback("registry.example:5000")
    assert not is_loopback("10.0.0.1")


def test_challenge_parsing() -> None:
    ch = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull,push"'
    )
    assert ch is not None and ch.scheme == "bearer"
    assert ch.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    basic = auth.parse_challenge('Basic realm="Registry Realm"')
    assert basic is not None and basic.scheme == "basic"
    assert basic.params["realm"] == "Registry Realm"
    esc = auth.parse_challenge(r'Bearer realm="a\"b", error=invalid_token')
    assert esc is not None and esc.params == {"realm": 'a"b', "error": "invalid_token"}


def test_credential_never_shows_its_secret() -> None:
    c = auth.Credential("alice", "s3cret")
    assert "s3cret" not in repr(c) and "s3cret" not in str(c)
    assert c.basic() == "Basic " + base64.b64encode(b"alice:s3cret").decode()


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path


def test_docker_config_auths(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = clean_env / "docker" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(
        json.dumps(
            {
                "auths": {
                    "https://reg.example:5000/v1/": {"auth": _b64("bob:pw:with:colons")},
                    "docker.io": {"auth": _b64("hub:hubpw")},
                }
            }
        )
    )
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg.parent))
    found = auth.lookup("reg.example:5000")
    assert found == auth.Credential("bob", "pw:with:colons")
    assert auth.lookup("docker.io") == auth.Credential("hub", "hubpw")
    assert auth.lookup("other.example") is None


def test_containers_auth_json_wins_over_docker(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = clean_env / "run" / "containers"
    runtime.mkdir(parents=True)
    (runtime / "auth.json").write_text(json.dumps({"auths": {"r.example": {"auth": _b64("a:1")}}}))
    docker = clean_env / "home" / ".docker"
    docker.mkdir(parents=True)
    (docker / "config.json").write_text(json.dumps({"auths": {"r.example": {"auth": _b64("b:2")}}}))
    assert auth.lookup("r.example") == auth.Credential("a", "1")
    # REGISTRY_AUTH_FILE (like --authfile) is the only file read.
    only = clean_env / "only.json"
    only.write_text(json.dumps({"auths": {"r.example": {"auth": _b64("c:3")}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(only))
    assert auth.lookup("r.example") == auth.Credential("c", "3")
    assert auth.lookup("r.example", str(clean_env / "missing.json")) is None


def _helper(bindir: Path, name: str, store: Path) -> None:
    """A docker-credential-<name> that keeps one JSON file of secrets."""
    script = bindir / f"docker-credential-{name}"
    script.write_text(
        f"""#!/usr/bin/env python3
import json, sys
path = {str(store)!r}
try:
    db = json.load(open(path))
except FileNotFoundError:
    db = {{}}
action = sys.argv[1]
data = sys.stdin.read()
if action == "get":
    entry = db.get(data.strip())
    if entry is None:
        print("credentials not found in native keychain")
        sys.exit(1)
    print(json.dumps({{"ServerURL": data.strip(), **entry}}))
elif action == "store":
    doc = json.loads(data)
    db[doc["ServerURL"]] = {{"Username": doc["Username"], "Secret": doc["Secret"]}}
    json.dump(db, open(path, "w"))
elif action == "erase":
    db.pop(data.strip(), None)
    json.dump(db, open(path, "w"))
"""
    )
    script.chmod(0o755)


def test_credential_helpers(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bindir = clean_env / "bin"
    bindir.mkdir()
    _helper(bindir, "fake", clean_env / "fake.json")
    _helper(bindir, "other", clean_env / "other.json")
    (clean_env / "fake.json").write_text(
        json.dumps({"r.example": {"Username": "h", "Secret": "hs"}})
    )
    (clean_env / "other.json").write_text(
        json.dumps({"special.example": {"Username": "<token>", "Secret": "refresh"}})
    )
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    f = clean_env / "auth.json"
    f.write_text(
        json.dumps(
            {
                "credsStore": "fake",
                "credHelpers": {"special.example": "other"},
                "auths": {"plain.example": {"auth": _b64("p:pp")}},
            }
        )
    )
    assert auth.lookup("r.example", str(f)) == auth.Credential("h", "hs")
    tok = auth.lookup("special.example", str(f))
    assert tok is not None and tok.identity_token and tok.secret == "refresh"
    # Not in the store: falls back to the file's auths.
    assert auth.lookup("plain.example", str(f)) == auth.Credential("p", "pp")
    # login through the store keeps the secret out of the file.
    auth.store("new.example", auth.Credential("n", "ns"), str(f))
    assert "ns" not in f.read_text()
    assert auth.lookup("new.example", str(f)) == auth.Credential("n", "ns")
    assert auth.erase("new.example", str(f))
    assert auth.lookup("new.example", str(f)) is None


def test_login_file_is_private(clean_env: Path) -> None:
    path = auth.store("r.example:5000", auth.Credential("u", "pw"))
    assert path == str(clean_env / "run" / "containers" / "auth.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    doc = json.loads(Path(path).read_text())
    assert doc["auths"]["r.example:5000"]["auth"] == _b64("u:pw")
    assert auth.erase("r.example:5000")
    assert not auth.erase("r.example:5000")
    assert json.loads(Path(path).read_text())["auths"] == {}


def test_logout_without_login_is_one_line_error(clean_env: Path) -> None:
    r = cli("logout", "r.example")
    assert r.code == 1
    assert r.err.strip().splitlines() == ["oci-tools: error: not logged in to r.example"]


def test_bad_creds_flag_is_usage_error(tmp_path: Path) -> None:
    r = cli("pull", "--creds", "nocolon", "docker://127.0.0.1:9/a:b", str(tmp_path / "l"))
    assert r.code == 2
    assert "--creds" in r.err and "nocolon" not in r.err


def test_header_helpers() -> None:
    assert retry_after("3") == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after("soon") is None
    assert _range_end("0-1023") == 1024
    assert _range_end("0-0") == 0
    assert _range_end(None) == 0
    assert _content_range_start("bytes 100-199/200") == 100
    assert _next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    loc = _with_digest("http://h/v2/a/blobs/uploads/u?_state=x%3D", parse_digest())
    assert loc.startswith("http://h/v2/a/blobs/uploads/u?_state=x%3D&digest=sha256%3A")


def parse_digest():  # type: ignore[no-untyped-def]
    from oci_tools.digest import Digest

    return Digest.of_bytes(b"x")


def test_schemes_by_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS only for remote hosts unless named insecure or TLS checks are off;
    loopback tries plain HTTP first; --plain-http means HTTP only."""
    from oci_tools.registry import Options
    from oci_tools.registry.transport import Transport

    monkeypatch.delenv("OCI_TOOLS_INSECURE_REGISTRIES", raising=False)

    def schemes(host: str, **kw: object) -> list[str]:
        return Transport(host, Options(**kw), None)._schemes()  # type: ignore[arg-type]

    assert schemes("reg.example:5000") == ["https"]
    assert schemes("127.0.0.1:5000") == ["http", "https"]
    assert schemes("localhost") == ["http", "https"]
    assert schemes("reg.example", tls_verify=False) == ["https", "http"]
    assert schemes("reg.example", plain_http=True) == ["http"]
    monkeypatch.setenv("OCI_TOOLS_INSECURE_REGISTRIES", "a.example, reg.example:5000")
    assert schemes("reg.example:5000") == ["https", "http"]
    assert schemes("reg.example") == ["https"]


def test_registry_import_leaves_importlib_metadata_unloaded_and_urllib3_whole() -> None:
    import subprocess
    import sys

    code = (
        "import sys, oci_tools.registry.transfer\n"
        "print('importlib.metadata' in sys.modules)\n"
        "import urllib3.http2\n"
        "print(urllib3.http2.version('urllib3') == urllib3.__version__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.split() == ["False", "True"]


def test_parallel_runs_big_blobs_largest_first_within_jobs_and_small_ones_beside() -> None:
    import threading
    import time

    from oci_tools.registry.transfer import SMALL_BLOB, _parallel

    lock = threading.Lock()
    running = {"big": 0, "small": 0}
    peak = {"big": 0, "small": 0}
    started: list[int] = []

    def job(size: int) -> tuple[int, Callable[[], None]]:
        kind = "big" if size > SMALL_BLOB else "small"

        def run() -> None:
            with lock:
                started.append(size)
                running[kind] += 1
                peak[kind] = max(peak[kind], running[kind])
            time.sleep(0.02)
            with lock:
                running[kind] -= 1

        return size, run

    sizes = [SMALL_BLOB + 1, 5 << 20, 100, SMALL_BLOB + 3, 9 << 20, 200, SMALL_BLOB + 2]
    _parallel(2, [job(s) for s in sizes])
    big_started = [s for s in started if s > SMALL_BLOB]
    assert big_started == sorted(big_started, reverse=True)
    assert sorted(started) == sorted(sizes)
    assert peak["big"] == 2 and peak["small"] == 2


def test_parallel_raises_the_first_failure_after_the_others_stop() -> None:
    from oci_tools.registry.transfer import _parallel

    ran: list[int] = []

    def ok(i: int) -> tuple[int, Callable[[], None]]:
        return 10 << 20, lambda: ran.append(i)

    def bad() -> None:
        raise RuntimeError("blob failed")

    with pytest.raises(RuntimeError, match="blob failed"):
        _parallel(1, [ok(1), (20 << 20, bad), ok(2)])
    with pytest.raises(RuntimeError, match="blob failed"):
        _parallel(3, [ok(1), (20 << 20, bad), ok(2)])
