"""Registry credentials: where they are read from, and where ``login`` writes them.

Files read (the first that has an entry for the host wins):

* ``--authfile FILE`` or ``$REGISTRY_AUTH_FILE`` — only that file when given;
* otherwise containers' ``auth.json`` (``$XDG_RUNTIME_DIR/containers/auth.json``,
  then ``$XDG_CONFIG_HOME/containers/auth.json``), then Docker's
  ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``).

In each file ``credHelpers[host]`` wins, then ``credsStore``, then the
``auths`` entry (keys are matched after stripping a scheme and a path, and
Docker Hub's historical keys are understood).  Helpers are the
``docker-credential-<name>`` programs (``get``/``store``/``erase``, JSON on
stdin/stdout).

A :class:`Credential` never appears in an error message or a ``repr``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from typing import Any

from oci_tools.errors import AuthError, UsageError
from oci_tools.fsutil import atomic_write
from oci_tools.records import record

#: The key Docker uses for its default registry in ``auths``.
# Docker Hub is known by its normalized name only (as containers auth.json keys
# it): the repository names no registry host.
_HUB_KEY = "docker.io"
_HUB_ALIASES = ("docker.io",)
_HELPER_TIMEOUT = 30


@record
class Credential:
    """A user name and secret (a password, or an identity token when
    ``username`` is ``<token>``)."""

    username: str
    secret: str  # never shown: __repr__ below masks it

    @property
    def identity_token(self) -> bool:
        """True when the secret is an OAuth2 refresh token, not a password."""
        return self.username == "<token>"

    def basic(self) -> str:
        """The ``Authorization`` header value for Basic auth."""
        raw = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(raw).decode("ascii")

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, secret=***)"


def parse_creds(text: str) -> Credential:
    """``USER[:PASS]`` as given to ``--creds``."""
    user, sep, secret = text.partition(":")
    if not user or not sep:
        raise UsageError("invalid --creds value", hint="use --creds USER:PASSWORD")
    return Credential(user, secret)


# ----------------------------------------------------------------- file paths


def default_auth_file() -> str:
    """Where ``login`` writes when no file is named: containers' auth.json."""
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        return env
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return os.path.join(runtime, "containers", "auth.json")
    return os.path.join("/run", "containers", str(os.getuid()), "auth.json")


def docker_config_file() -> str:
    """Docker's ``config.json``."""
    base = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return os.path.join(base, "config.json")


def auth_files(authfile: str | None = None) -> list[str]:
    """The files searched for credentials, in order (see the module doc)."""
    chosen = authfile or os.environ.get("REGISTRY_AUTH_FILE")
    if chosen:
        return [chosen]
    out = []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        out.append(os.path.join(runtime, "containers", "auth.json"))
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    out.append(os.path.join(config, "containers", "auth.json"))
    out.append(docker_config_file())
    return out


def _read_file(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            raw = f.read(1 << 20)
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as e:
        raise AuthError(f"cannot read auth file {path}: {e.strerror}") from None
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise AuthError(f"auth file {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise AuthError(f"auth file {path} is not a JSON object")
    return doc


def _normalize_key(key: str) -> str:
    key = re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]
    return DOCKER_HUB_CANON if key in _HUB_ALIASES else key


DOCKER_HUB_CANON = "docker.io"


def _entry_key(host: str) -> str:
    """The ``auths`` key ``login`` writes for ``host``."""
    return _HUB_KEY if host in _HUB_ALIASES else host


def _decode_entry(entry: Any) -> Credential | None:
    if not isinstance(entry, dict):
        return None
    token = entry.get("identitytoken")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            text = base64.b64decode(auth, validate=False).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, secret = text.partition(":")
        if not sep or not user:
            return None
        if isinstance(token, str) and token:
            return Credential("<token>", token)
        return Credential(user, secret.strip("\x00"))
    name, password = entry.get("username"), entry.get("password")
    if isinstance(name, str) and name and isinstance(password, str):
        return Credential(name, password)
    if isinstance(token, str) and token:
        return Credential("<token>", token)
    return None


def _helper_get(helper: str, host: str) -> Credential | None:
    import subprocess  # only for credential helpers: most commands never run one

    prog = f"docker-credential-{helper}"
    server = _HUB_KEY if host in _HUB_ALIASES else host
    try:
        p = subprocess.run(
            [prog, "get"],
            input=server.encode(),
            capture_output=True,
            timeout=_HELPER_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise AuthError(
            f"credential helper {prog} is not installed", hint="install it or edit the auth file"
        ) from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {prog} did not answer") from None
    if p.returncode != 0:
        # "credentials not found" is the helper's way of saying no entry.
        if b"credentials not found" in p.stdout + p.stderr:
            return None
        raise AuthError(f"credential helper {prog} failed (exit {p.returncode})")
    try:
        doc = json.loads(p.stdout)
        user, secret = doc["Username"], doc["Secret"]
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"credential helper {prog} gave an unreadable answer") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        return None
    return Credential(user or "<token>", secret)


def _from_doc(doc: dict[str, Any], host: str) -> Credential | None:
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, helper in helpers.items():
            if _normalize_key(key) == _normalize_key(host) and isinstance(helper, str):
                return _helper_get(helper, host)
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = _helper_get(store, host)
        if found is not None:
            return found
    auths = doc.get("auths")
    if isinstance(auths, dict):
        if host in auths:
            found = _decode_entry(auths[host])
            if found is not None:
                return found
        for key, entry in auths.items():
            if _normalize_key(key) == _normalize_key(host):
                found = _decode_entry(entry)
                if found is not None:
                    return found
    return None


def lookup(host: str, authfile: str | None = None) -> Credential | None:
    """The stored credential for registry ``host`` (``HOST[:PORT]``), if any."""
    for path in auth_files(authfile):
        found = _from_doc(_read_file(path), host)
        if found is not None:
            return found
    return None


# ------------------------------------------------------------- login / logout


def _write_file(path: str, doc: dict[str, Any]) -> None:
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, mode=0o700, exist_ok=True)
    data = (json.dumps(doc, indent=2) + "\n").encode()
    atomic_write(path, data, mode=0o600)


def store(host: str, cred: Credential, authfile: str | None = None) -> str:
    """Save ``cred`` for ``host`` (through the file's helper if it names one);
    returns the file written.  The file is mode 0600."""
    import subprocess  # only for credential helpers: most commands never run one

    path = authfile or default_auth_file()
    doc = _read_file(path)
    helper = None
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        helper = helpers[host]
    elif isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
        helper = doc["credsStore"]
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        auths = {}
    key = _entry_key(host)
    if helper:
        payload = {"ServerURL": key, "Username": cred.username, "Secret": cred.secret}
        prog = f"docker-credential-{helper}"
        try:
            p = subprocess.run(
                [prog, "store"],
                input=json.dumps(payload).encode(),
                capture_output=True,
                timeout=_HELPER_TIMEOUT,
                check=False,
            )
        except (FileNotFoundError, subprocess.TimeoutExpired):
            raise AuthError(f"credential helper {prog} is not usable") from None
        if p.returncode != 0:
            raise AuthError(f"credential helper {prog} could not store the credential")
        auths[key] = {}
    else:
        raw = f"{cred.username}:{cred.secret}".encode()
        auths[key] = {"auth": base64.b64encode(raw).decode("ascii")}
    doc["auths"] = auths
    _write_file(path, doc)
    return path


def erase(host: str, authfile: str | None = None) -> bool:
    """Remove the stored credential for ``host``; False if there was none."""
    import subprocess  # only for credential helpers: most commands never run one

    path = authfile or default_auth_file()
    doc = _read_file(path)
    auths = doc.get("auths")
    removed = False
    if isinstance(auths, dict):
        for key in list(auths):
            if _normalize_key(key) == _normalize_key(host):
                del auths[key]
                removed = True
    helper = None
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        helper = helpers[host]
    elif isinstance(doc.get("credsStore"), str) and doc["credsStore"]:
        helper = doc["credsStore"]
    if helper:
        try:
            p = subprocess.run(
                [f"docker-credential-{helper}", "erase"],
                input=_entry_key(host).encode(),
                capture_output=True,
                timeout=_HELPER_TIMEOUT,
                check=False,
            )
            removed = removed or p.returncode == 0
        except (FileNotFoundError, subprocess.TimeoutExpired):
            pass
    if removed:
        _write_file(path, doc)
    return removed


# ------------------------------------------------------------ challenges


@record
class Challenge:
    """One ``WWW-Authenticate`` challenge: scheme (lower case) and params."""

    scheme: str
    params: dict[str, str]


_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PARAM_RE = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*,?')


def parse_challenge(header: str) -> Challenge | None:
    """Parse ``Scheme k=v, k="v"…`` (one challenge per header line)."""
    m = re.match(rf"\s*({_TOKEN})\s*", header)
    if not m:
        return None
    scheme = m.group(1).lower()
    params: dict[str, str] = {}
    pos = m.end()
    while pos < len(header):
        pm = _PARAM_RE.match(header, pos)
        if not pm:
            break
        value = pm.group(2) if pm.group(2) is not None else pm.group(3)
        params[pm.group(1).lower()] = re.sub(r"\\(.)", r"\1", value)
        pos = pm.end()
    return Challenge(scheme, params)


__all__ = [
    "Challenge",
    "Credential",
    "auth_files",
    "default_auth_file",
    "docker_config_file",
    "erase",
    "lookup",
    "parse_challenge",
    "parse_creds",
    "store",
]
