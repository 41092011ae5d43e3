"""Every public exception of oci-tools, in one tree.

Each error builds its one-line message from structured fields and may carry a
``hint`` (printed on a second line by the CLI).  Callers catch by class, never by
message text.  This module imports nothing from the rest of the package (L0).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


class OCIToolsError(Exception):
    """Base of every error oci-tools raises on purpose (exit code 1 in the CLI)."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class UsageError(OCIToolsError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class NotFoundError(OCIToolsError):
    """Something that was asked for does not exist."""


class BlobNotFoundError(NotFoundError):
    """A blob named by a descriptor is missing from the store."""

    def __init__(self, digest: str, *, hint: str | None = None) -> None:
        super().__init__(f"blob not found: {digest}", hint=hint)
        self.digest = digest


class RefNotFoundError(NotFoundError):
    """A ref name is not in the layout's index.json."""

    def __init__(self, ref: str, known: Iterable[str] = (), *, layout: str = "") -> None:
        known_list = sorted(set(known))
        where = f" in {layout}" if layout else ""
        hint = "known refs: " + ", ".join(known_list) if known_list else "the layout has no refs"
        if known_list:
            import difflib  # only when the error happens

            near = difflib.get_close_matches(ref, known_list, n=1)
            if near:
                hint = f"did you mean {near[0]!r}? {hint}"
        super().__init__(f"unknown ref {ref!r}{where}", hint=hint)
        self.ref = ref
        self.known = known_list


class InvalidLayoutError(OCIToolsError):
    """A directory is not a usable OCI image layout."""

    def __init__(self, path: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"invalid layout {path}: {reason}", hint=hint)
        self.path = path
        self.reason = reason


class InvalidDocumentError(OCIToolsError):
    """A JSON document (manifest, index, config, ...) is malformed or fails its schema.

    ``problems`` lists every problem found, not only the first.
    """

    def __init__(self, what: str, problems: Sequence[str], *, hint: str | None = None) -> None:
        self.what = what
        self.problems = list(problems) or ["invalid"]
        first = self.problems[0]
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        super().__init__(f"invalid {what}: {first}{more}", hint=hint)


class DigestMismatchError(OCIToolsError):
    """Content does not match the digest or size that names it."""

    def __init__(
        self,
        what: str,
        *,
        expected: str,
        actual: str,
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{what}: expected {expected}, got {actual}", hint=hint)
        self.what = what
        self.expected = expected
        self.actual = actual


class CorruptBlobError(OCIToolsError):
    """A stored blob cannot be decoded: corrupt or truncated compressed data.

    ``codec`` is the compression (``gzip``, ``zstd``, ``none``), ``detail``
    what the decoder said.  ``layout``, when a caller knows it, is where the
    damaged blob lives (the CLI names it in the advice to validate)."""

    def __init__(self, codec: str, detail: str, *, hint: str | None = None) -> None:
        what = "layer data" if codec == "none" else f"{codec} data"
        super().__init__(f"corrupt {what} ({detail}); the blob is damaged", hint=hint)
        self.codec = codec
        self.detail = detail
        self.layout = ""


class UnsupportedMediaTypeError(OCIToolsError):
    """A media type oci-tools cannot process in this context."""

    def __init__(self, media_type: str, context: str = "", *, hint: str | None = None) -> None:
        where = f" for {context}" if context else ""
        super().__init__(f"unsupported media type {media_type!r}{where}", hint=hint)
        self.media_type = media_type


class ClobberError(OCIToolsError):
    """The operation would overwrite a ref or a non-empty target."""

    def __init__(self, target: str, *, hint: str | None = None) -> None:
        super().__init__(f"refusing to overwrite {target}", hint=hint)
        self.target = target


class UnsafeLayerError(OCIToolsError):
    """A layer tries something that could escape or damage the target rootfs."""

    def __init__(self, entry: str, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"unsafe layer entry {entry!r}: {reason}", hint=hint)
        self.entry = entry
        self.reason = reason


class PathEscapeError(UnsafeLayerError):
    """An entry name resolves outside the rootfs."""


class LinkEscapeError(UnsafeLayerError):
    """A hardlink or symlink would reach outside the rootfs."""


class SpecialFileError(UnsafeLayerError):
    """A device, unknown type flag or similar entry that cannot be applied safely."""


class BuildError(OCIToolsError):
    """A build stopped at one instruction of the Dockerfile (``file:line: ...``)."""

    def __init__(self, file: str, line: int, reason: str, *, hint: str | None = None) -> None:
        super().__init__(f"{file}:{line}: {reason}", hint=hint)
        self.file = file
        self.line = line
        self.reason = reason


class RunFailedError(BuildError):
    """A RUN command exited non-zero; ``status`` is its exit code, ``output``
    the end of what it printed (stdout and stderr interleaved)."""

    def __init__(self, file: str, line: int, command: str, status: int, output: bytes) -> None:
        super().__init__(
            file,
            line,
            f"the command '{command}' returned a non-zero code: {status}",
            hint="the build stopped here; the layout's refs were left as they were",
        )
        self.status = status
        self.output = output


class RegistryError(OCIToolsError):
    """A registry refused or failed a request, or could not be reached.

    The message names the operation and the registry's error code; it never
    carries credentials, tokens or Authorization headers.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


class AuthError(RegistryError):
    """The registry wants credentials we do not have, or refused the ones given."""


class SignatureError(OCIToolsError):
    """No signature, or none that verifies with the key and covers the image
    (wrong key, payload for another digest, tampered payload or signature),
    or a key that cannot be read."""


__all__ = [
    "AuthError",
    "BlobNotFoundError",
    "BuildError",
    "ClobberError",
    "CorruptBlobError",
    "DigestMismatchError",
    "InvalidDocumentError",
    "InvalidLayoutError",
    "LinkEscapeError",
    "NotFoundError",
    "OCIToolsError",
    "PathEscapeError",
    "RefNotFoundError",
    "RegistryError",
    "RunFailedError",
    "SignatureError",
    "SpecialFileError",
    "UnsafeLayerError",
    "UnsupportedMediaTypeError",
    "UsageError",
]
