"""What export and import share: the names an archive gives its images, the
annotation carrying signatures, tar block sizes."""

from __future__ import annotations

import os
import re
from typing import BinaryIO, cast

from oci_tools.digest import Digest, Hasher, VerifyingReader
from oci_tools.errors import (
    DigestMismatchError,
    InvalidDocumentError,
    OCIToolsError,
    UnsafeLayerError,
    UsageError,
)
from oci_tools.layer.stream import open_layer_stream

#: Annotation on an oci-archive's index.json entry: the digest of the image's
#: signature manifest, carried in the archive's blobs.
SIGNATURES = "io.github.oci-tools.signatures"
#: The archive formats :func:`export_image` writes.
FORMATS = ("oci-archive", "docker-archive")
CHUNK = 1 << 20
BLOCK = 512
#: tar's default record: the archive is padded to a multiple of this.
RECORD = 20 * BLOCK
#: Top-level archive members read as documents instead of stored as blobs.
DOCUMENTS = ("index.json", "manifest.json", "oci-layout", "repositories")

_TAG_RE = re.compile(r"[\w][\w.-]{0,127}")
_COMPONENT_RE = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_RE = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"(?::[0-9]+)?"
)


# ---------------------------------------------------------------------------
# names


def parse_name(text: str) -> tuple[str, str] | None:
    """Split a Docker-style ``[registry/]path[:tag]`` into (repository, tag).

    The repository always has a registry part (``localhost`` when none is
    given) and the tag defaults to ``latest``.  Returns None when ``text`` is
    not such a name (digest references included).
    """
    if "@" in text or not text:
        return None
    name, tag = text, "latest"
    colon = text.rfind(":")
    if colon > text.rfind("/"):
        name, tag = text[:colon], text[colon + 1 :]
    if not _TAG_RE.fullmatch(tag):
        return None
    parts = name.split("/")
    domain = "localhost"
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        domain = parts.pop(0)
        if not _DOMAIN_RE.fullmatch(domain):
            return None
    if not all(_COMPONENT_RE.fullmatch(p) for p in parts):
        return None
    repo = f"{domain}/{'/'.join(parts)}"
    if len(repo) > 255:
        return None
    return repo, tag


def image_name(layout_path: str, ref: str, name: str | None = None) -> str:
    """The full ``repository:tag`` an export of ``ref`` is loaded as (see the
    module docstring for the rules)."""
    if name is not None:
        parsed = parse_name(name)
        if parsed is None:
            raise UsageError(
                f"invalid image name {name!r}", hint="use [REGISTRY/]NAME[:TAG], lower-case"
            )
        return f"{parsed[0]}:{parsed[1]}"
    if "/" in ref or ":" in ref:
        parsed = parse_name(ref)
        if parsed is not None:
            return f"{parsed[0]}:{parsed[1]}"
    base = os.path.basename(os.path.abspath(layout_path)).lower()
    repo = re.sub(r"[^a-z0-9]+", "-", base).strip("-") or "image"
    # OCI ref names allow + @ : / which tags do not.
    tag = ref if _TAG_RE.fullmatch(ref) else re.sub(r"[^\w.-]", "-", ref)[:128]
    return f"localhost/{repo}:{tag}"


def tag_of(name: str) -> str | None:
    """The tag part of a Docker-style name, as a usable ref; None if there is none."""
    parsed = parse_name(name)
    if parsed is None:
        return None
    return parsed[1]


def blob_path(dg: Digest) -> str:
    """Where a blob lives inside an archive (and an OCI layout)."""
    return f"blobs/{dg.algorithm}/{dg.encoded}"


class DiffIdReader:
    """Decompressed layer bytes from the one bounded, hashing layer-stream
    opener (to check the diff_id; bomb limits apply)."""

    def __init__(self, raw: VerifyingReader, codec: str, what: str) -> None:
        self.raw = raw
        self.stream = open_layer_stream(cast(BinaryIO, raw), codec)
        self.what = what

    @property
    def hasher(self) -> Hasher:
        """Hash and size of the uncompressed bytes read so far."""
        return self.stream.hasher

    def read(self, n: int) -> bytes:
        try:
            return self.stream.read(n)
        except UnsafeLayerError as e:
            if e.__cause__ is None:
                raise  # a bomb limit, not a damaged stream
            cause: BaseException = e.__cause__
        except OCIToolsError:
            raise
        except Exception as e:
            cause = e
        # A damaged stream: say so by digest when the blob was altered.
        self.raw.drain()
        raise InvalidDocumentError(self.what, [f"cannot decompress: {cause}"]) from None

    def finish(self, diff_id: Digest) -> None:
        """Check the stream is at its end, the blob digest and the diff_id."""
        size = self.hasher.size
        if self.read(1):
            raise DigestMismatchError(
                f"uncompressed size of {self.what}", expected=str(size), actual="more bytes"
            )
        self.raw.drain()
        got = self.hasher.digest()
        if got != diff_id:
            raise DigestMismatchError(
                f"diff_id of {self.what}", expected=str(diff_id), actual=str(got)
            )
