"""Auth against a real docker-registry: htpasswd Basic and token (Bearer) auth
with a test token server signing ES256 JWTs; login/logout files."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import cli
from registry_env import (
    HTPASSWD,
    Registry,
    TokenServer,
    htpasswd_file,
    make_image,
    needs_registry,
    run_registry,
    run_token_server,
)

from oci_tools.errors import AuthError
from oci_tools.layout import Layout
from oci_tools.registry import Credential, Options, RetryPolicy, parse_reference
from oci_tools.registry.transfer import Client, pull, push

pytestmark = needs_registry

USER, PASSWORD = "alice", "wonder land"


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    if HTPASSWD is None:
        pytest.skip("htpasswd (apache2-utils) is not installed")
    tmp = tmp_path_factory.mktemp("basic")
    pw = htpasswd_file(tmp / "htpasswd", USER, PASSWORD)
    auth = {"htpasswd": {"realm": "test realm", "path": str(pw)}}
    with run_registry(tmp, auth) as reg:
        yield reg


@pytest.fixture(scope="module")
def token_setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Registry, TokenServer]]:
    tmp = tmp_path_factory.mktemp("token")
    with (
        run_token_server(tmp, {USER: PASSWORD}) as ts,
        run_registry(tmp, ts.auth_config()) as reg,
    ):
        yield reg, ts


@pytest.fixture(autouse=True)
def _no_user_auth_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REGISTRY_AUTH_FILE", "DOCKER_CONFIG", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))


def _quick(creds: Credential | None = None) -> Client:
    return Client(Options(creds=creds, retry=RetryPolicy(attempts=3, base=0.05, cap=0.2, total=10)))


def _image(tmp_path: Path) -> Layout:
    lay = Layout.init(str(tmp_path / "src"))
    make_image(lay, "v1", [os.urandom(3000)])
    return lay


def test_basic_auth_needs_credentials(tmp_path: Path, basic_registry: Registry) -> None:
    _image(tmp_path)
    dest = f"docker://{basic_registry.host}/t/basic:v1"
    r = cli("push", f"{tmp_path}/src:v1", dest)
    assert r.code == 1
    lines = r.err.splitlines()
    assert lines[0].startswith("oci-tools: error: ") and "HTTP 401" in lines[0]
    assert lines[1].startswith("hint: ") and len(lines) == 2
    r = cli("push", "--creds", f"{USER}:wrong", f"{tmp_path}/src:v1", dest)
    assert r.code == 1 and "HTTP 401" in r.err and "wrong" not in r.err
    r = cli("push", "--creds", f"{USER}:{PASSWORD}", f"{tmp_path}/src:v1", dest)
    assert r.code == 0, r.err
    assert PASSWORD not in r.out + r.err


def test_login_file_then_pull_and_logout(tmp_path: Path, basic_registry: Registry) -> None:
    src = _image(tmp_path)
    authfile = tmp_path / "cfg" / "auth.json"
    host = basic_registry.host
    r = cli("login", host, "-u", USER, "-p", "bad", "--authfile", str(authfile))
    assert r.code == 1 and not authfile.exists()
    r = cli("login", host, "-u", USER, "-p", PASSWORD, "--authfile", str(authfile))
    assert r.code == 0, r.err
    assert PASSWORD not in r.out + r.err
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    assert host in json.loads(authfile.read_text())["auths"]
    r = cli("push", "--authfile", str(authfile), f"{tmp_path}/src:v1", f"{host}/t/login:v1")
    assert r.code == 0, r.err
    r = cli("pull", "--authfile", str(authfile), f"{host}/t/login:v1", f"{tmp_path}/dst")
    assert r.code == 0, r.err
    assert r.out.strip() == str(src.lookup("v1").digest)
    assert cli("logout", host, "--authfile", str(authfile)).code == 0
    assert json.loads(authfile.read_text())["auths"] == {}
    r = cli("pull", "--authfile", str(authfile), f"{host}/t/login:v1", f"{tmp_path}/dst2")
    assert r.code == 1


def test_login_default_file_is_containers_auth_json(
    tmp_path: Path, basic_registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
    r = cli("login", basic_registry.host, "-u", USER, "--password-stdin")
    assert r.code == 0, r.err
    path = tmp_path / "run" / "containers" / "auth.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Found without any flag.
    r = cli("ls-tags", f"docker://{basic_registry.host}/t/basic")
    assert r.code in (0, 1)
    assert "401" not in r.err


def test_token_auth_push_pull(tmp_path: Path, token_setup: tuple[Registry, TokenServer]) -> None:
    reg, ts = token_setup
    src = _image(tmp_path)
    ref = parse_reference(f"docker://{reg.host}/t/token:v1")
    with _quick() as c, pytest.raises(AuthError):
        push(c, src, "v1", ref)
    ts.requests.clear()
    with _quick(Credential(USER, PASSWORD)) as c:
        dg = push(c, src, "v1", ref)
        dst = Layout.init(str(tmp_path / "dst"))
        pull(c, ref, dst)
    assert dst.lookup("v1").digest == dg
    # One token per scope, reused across every blob and manifest request.
    scopes = [tuple(r["scope"]) for r in ts.requests]
    assert len(scopes) == len(set(scopes)), scopes
    assert ("repository:t/token:pull,push",) in scopes
    assert ("repository:t/token:pull",) in scopes
    assert all(r["user"] == USER for r in ts.requests)


def test_token_auth_mount_as_the_first_request(
    tmp_path: Path, token_setup: tuple[Registry, TokenServer]
) -> None:
    """A fresh client whose first request is a mount (no ping before it): the
    401 gives the challenge, one token covers both repositories, every blob
    is mounted."""
    reg, ts = token_setup
    src = _image(tmp_path)
    with _quick(Credential(USER, PASSWORD)) as c:
        push(c, src, "v1", parse_reference(f"docker://{reg.host}/t/mount-a:v1"))
    ts.requests.clear()
    said: list[str] = []
    with _quick(Credential(USER, PASSWORD)) as c:
        dest = parse_reference(f"docker://{reg.host}/t/mount-b:v1")
        dg = push(c, src, "v1", dest, progress=said.append)
        dst = Layout.init(str(tmp_path / "dst"))
        pull(c, parse_reference(f"docker://{reg.host}/t/mount-b:v1"), dst)
    assert dst.lookup("v1").digest == dg
    assert said and all(m.startswith("Mounted blob") for m in said), said
    scopes = [tuple(r["scope"]) for r in ts.requests]
    assert ("repository:t/mount-b:pull,push", "repository:t/mount-a:pull") in scopes
    assert len(scopes) == len(set(scopes)), scopes


def test_token_refreshed_on_401(tmp_path: Path, token_setup: tuple[Registry, TokenServer]) -> None:
    reg, ts = token_setup
    src = _image(tmp_path)
    ref = parse_reference(f"docker://{reg.host}/t/refresh:v1")
    with _quick(Credential(USER, PASSWORD)) as c:
        push(c, src, "v1", ref)
        t = c.transport(reg.host)
        # The registry stops accepting the cached token (as after expiry).
        for tok in t._tokens.values():
            tok.value = "not-a-valid-token"
        ts.requests.clear()
        dst = Layout.init(str(tmp_path / "dst"))
        pull(c, ref, dst)
    assert len(ts.requests) == 1
    assert dst.lookup("v1").digest == src.lookup("v1").digest


def test_token_login_and_wrong_password(
    tmp_path: Path, token_setup: tuple[Registry, TokenServer]
) -> None:
    reg, _ = token_setup
    authfile = tmp_path / "auth.json"
    r = cli("login", reg.host, "-u", USER, "-p", "nope", "--authfile", str(authfile))
    assert r.code == 1 and "nope" not in r.err
    assert len(r.err.strip().splitlines()) <= 2
    r = cli("login", reg.host, "-u", USER, "-p", PASSWORD, "--authfile", str(authfile))
    assert r.code == 0, r.err
    _image(tmp_path)
    r = cli("push", "--authfile", str(authfile), f"{tmp_path}/src:v1", f"{reg.host}/t/tl:v1")
    assert r.code == 0, r.err


def test_skopeo_reads_with_our_auth_file(tmp_path: Path, basic_registry: Registry) -> None:
    """What ``login`` writes is containers' auth.json format: skopeo uses it."""
    from helpers import need_tool, run

    skopeo = need_tool("skopeo")
    authfile = tmp_path / "auth.json"
    host = basic_registry.host
    assert cli("login", host, "-u", USER, "-p", PASSWORD, "--authfile", str(authfile)).code == 0
    src = _image(tmp_path)
    assert (
        cli("push", "--authfile", str(authfile), f"{tmp_path}/src:v1", f"{host}/t/sk:v1").code == 0
    )
    p = run(
        skopeo,
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        str(authfile),
        f"docker://{host}/t/sk:v1",
    )
    assert p.stdout.encode().rstrip(b"\n") == src.read_blob(src.lookup("v1"))


def test_identity_token_uses_the_oauth2_refresh_grant(
    tmp_path: Path, token_setup: tuple[Registry, TokenServer]
) -> None:
    """An auth file entry with an identity token (what a Docker login to an
    OAuth2 registry stores) is exchanged with a POSTed refresh-token grant."""
    import base64

    reg, ts = token_setup
    authfile = tmp_path / "config.json"
    entry = {"auth": base64.b64encode(b"alice:").decode(), "identitytoken": f"refresh-{USER}"}
    authfile.write_text(json.dumps({"auths": {reg.host: entry}}))
    _image(tmp_path)
    ts.requests.clear()
    r = cli("push", "--authfile", str(authfile), f"{tmp_path}/src:v1", f"{reg.host}/t/oauth:v1")
    assert r.code == 0, r.err
    assert ts.requests and all(q["method"] == "POST" for q in ts.requests)
    assert all(q["user"] == USER for q in ts.requests)
    entry["identitytoken"] = "refresh-unknown"
    authfile.write_text(json.dumps({"auths": {reg.host: entry}}))
    r = cli("pull", "--authfile", str(authfile), f"{reg.host}/t/oauth:v1", f"{tmp_path}/d")
    assert r.code == 1 and "refresh-unknown" not in r.err
