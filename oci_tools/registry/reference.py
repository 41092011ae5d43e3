"""Remote image references: ``[docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]``.

Short names are normalised the way Docker does it: a first component without
``.`` or ``:`` that is not ``localhost`` is a Docker Hub repository, so
``debian`` is the name ``docker.io/library/debian:latest``.  That is only a
*name*: nothing here contacts any host.
"""

from __future__ import annotations

import ipaddress
import re

from oci_tools.digest import Digest
from oci_tools.errors import UsageError
from oci_tools.records import record

#: The name Docker gives its default registry (a name only, see module doc).
DOCKER_HUB = "docker.io"
DEFAULT_TAG = "latest"
TRANSPORT = "docker://"

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)


@record
class RemoteRef:
    """A parsed remote reference; exactly one of ``tag``/``digest`` is used
    to address the manifest (the digest wins when both are given)."""

    host: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def name(self) -> str:
        """``HOST/REPO`` without tag or digest."""
        return f"{self.host}/{self.repository}"

    def with_reference(self, tag: str | None = None, digest: Digest | None = None) -> RemoteRef:
        """The same repository at another tag or digest."""
        return RemoteRef(self.host, self.repository, tag, digest)

    def __str__(self) -> str:
        out = self.name
        if self.tag:
            out += f":{self.tag}"
        if self.digest is not None:
            out += f"@{self.digest}"
        return out


def is_remote(text: str) -> bool:
    """True when ``text`` names a registry image (``docker://…``)."""
    return text.startswith(TRANSPORT)


def _is_host(first: str) -> bool:
    return "." in first or ":" in first or first == "localhost" or first.startswith("[")


def parse_reference(text: str, *, default_tag: str | None = DEFAULT_TAG) -> RemoteRef:
    """Parse ``[docker://]NAME[:TAG][@DIGEST]`` with Docker's normalisation.

    ``default_tag`` is used when neither tag nor digest is given (None keeps
    the reference tagless, as ``ls-tags`` wants).
    """
    raw = text.removeprefix(TRANSPORT)
    hint = "use [docker://]HOST[:PORT]/REPO[:TAG|@DIGEST]"
    if not raw or raw != raw.strip():
        raise UsageError(f"invalid image reference {text!r}", hint=hint)
    digest = None
    if "@" in raw:
        raw, _, dtext = raw.partition("@")
        try:
            digest = Digest.parse(dtext)
        except Exception:
            raise UsageError(f"invalid digest in {text!r}", hint=hint) from None
    tag = None
    slash = raw.rfind("/")
    colon = raw.rfind(":")
    if colon > slash:
        raw, tag = raw[:colon], raw[colon + 1 :]
        if not _TAG_RE.fullmatch(tag):
            raise UsageError(f"invalid tag {tag!r} in {text!r}", hint=hint)
    first, sep, rest = raw.partition("/")
    if sep and _is_host(first):
        host, repo = first, rest
        if not _HOST_RE.fullmatch(host):
            raise UsageError(f"invalid registry host {host!r} in {text!r}", hint=hint)
    else:
        host, repo = DOCKER_HUB, raw
    if host == DOCKER_HUB and "/" not in repo:
        repo = f"library/{repo}"
    if not _REPO_RE.fullmatch(repo) or len(host) + 1 + len(repo) > 255:
        raise UsageError(
            f"invalid repository name {repo!r} in {text!r}",
            hint="repository names are lower-case components joined by /, . _ __ or -",
        )
    if tag is None and digest is None:
        tag = default_tag
    return RemoteRef(host, repo, tag, digest)


def host_name(host: str) -> str:
    """The host part of ``HOST[:PORT]`` (brackets of an IPv6 literal removed)."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IP literals (with or without port)."""
    name = host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


__all__ = [
    "DEFAULT_TAG",
    "DOCKER_HUB",
    "TRANSPORT",
    "RemoteRef",
    "host_name",
    "is_loopback",
    "is_remote",
    "parse_reference",
]
