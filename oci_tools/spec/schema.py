"""Strict JSON parsing and schema validation of OCI (and Docker v2.2) documents.

Two layers of checks, both reporting *every* problem as a one-line string that
starts with the JSON path it is about (``layers[0].digest: ...``):

1. The JSON Schemas in ``oci_tools/schemas/*.json`` (our own, draft 2020-12,
   written from the image-spec prose; ``$ref`` resolves from a local
   ``referencing.Registry`` only, never from the network; ``format`` is
   asserted so ``uri`` and ``date-time`` are checked).
2. Rules a schema cannot express (or that must differ between the OCI and the
   Docker media types sharing one schema), applied in code: per-algorithm
   digest encodings wherever a digest appears, strict base64 in ``data``,
   ``NAME=VALUE`` environment entries, the exact top-level ``mediaType``, the
   manifest/index confusion guard of CVE-2021-41190 and ``artifactType`` for
   artifacts with an empty config.

Before any of that, :func:`parse_json` reads the bytes the way the spec asks
(considerations.md): UTF-8 only, no duplicate keys, no ``NaN``/``Infinity``.

``jsonschema`` is imported lazily and compiled validators are cached: the CLI
must start fast and most commands never validate.
"""

from __future__ import annotations

import binascii
import functools
import json
import math
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from oci_tools.digest import digest_problem
from oci_tools.errors import InvalidDocumentError, UnsupportedMediaTypeError
from oci_tools.spec import mediatype as mt

#: One step of a JSON path: an object key or an array index.
PathPart = str | int
Path = tuple[PathPart, ...]

# media type -> (schema file, name used in messages, required top-level mediaType or None)
_DOCUMENTS: dict[str, tuple[str, str, str | None]] = {
    mt.OCI_DESCRIPTOR: ("descriptor.json", "descriptor", None),
    mt.OCI_LAYOUT_HEADER: ("image-layout.json", "image layout header", None),
    mt.OCI_MANIFEST: ("manifest.json", "manifest", mt.OCI_MANIFEST),
    mt.OCI_INDEX: ("index.json", "index", mt.OCI_INDEX),
    mt.OCI_CONFIG: ("config.json", "config", None),
    # Docker v2.2 documents are structurally the OCI ones (media-types.md
    # compatibility matrix); only the pinned top-level mediaType differs.  Layer
    # and config descriptors inside may carry Docker types because the schemas
    # accept any well-formed media type there, as the spec requires.
    mt.DOCKER_MANIFEST: ("manifest.json", "docker manifest", mt.DOCKER_MANIFEST),
    mt.DOCKER_MANIFEST_LIST: ("index.json", "docker manifest list", mt.DOCKER_MANIFEST_LIST),
    mt.DOCKER_CONFIG: ("config.json", "docker config", None),
}

#: Media types :func:`problems` and :func:`validate` know a schema for.
MEDIA_TYPES: frozenset[str] = frozenset(_DOCUMENTS)

#: Where the schema files ship: ``oci_tools/schemas`` (a symlink to the top-level
#: ``schemas/`` in the source tree, a real directory in the wheel).
_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "schemas")
_SCHEMA_FILES = (
    "defs.json",
    "descriptor.json",
    "image-layout.json",
    "manifest.json",
    "index.json",
    "config.json",
)

# The reference validator's ^[^=]+=.*$, with DOTALL on purpose: in Go (and in
# Python without it) '.' stops at '\n', so a value holding a newline would be
# rejected, yet POSIX environments allow one (``docker run -e 'A=x<newline>y'``).
_ENV_ENTRY = re.compile(r"[^=]+=.*", re.DOTALL)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# The JSON escape of a UTF-16 surrogate (either half): where a lone one can come from.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keep messages one line and readable even when the offending value is huge.
_MAX_VALUE_REPR = 80


# --------------------------------------------------------------------------- parsing


def parse_json(raw: bytes, what: str) -> Any:
    """Parse ``raw`` strictly as one JSON text; raise InvalidDocumentError(``what``, ...).

    Rejected, with every problem listed: bytes that are not UTF-8 (a BOM
    included), syntax errors, duplicate object keys (reported with the path of
    the object), ``NaN``/``Infinity``/``-Infinity``, numbers that overflow a
    double, and strings holding lone UTF-16 surrogates (``"\\ud800"``), which
    no UTF-8 encoder could write back.
    """
    value, found = _parse(raw)
    if found:
        raise InvalidDocumentError(what, found)
    return value


def _parse(raw: bytes) -> tuple[Any, list[str]]:
    """Parse and return (value, problems); value is meaningless if problems."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [f"byte {exc.start}: not valid UTF-8 ({exc.reason})"]
    if text.startswith("\ufeff"):
        # json.loads would say "decode using utf-8-sig": RFC 8259 forbids
        # emitting a BOM, and a BOM changes the digest, so reject it outright.
        return None, ["byte 0: a UTF-8 byte order mark is not allowed"]

    found: list[str] = []
    # Objects that had duplicate keys, kept alive so their id() stays unique
    # until the walk below has located them in the tree.
    flagged: list[tuple[dict[str, Any], list[str]]] = []

    def pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)  # the last value of a duplicated key wins, as in json.loads
        if len(obj) != len(pairs):
            seen: set[str] = set()
            dups: list[str] = []
            for key, _ in pairs:
                if key in seen and key not in dups:
                    dups.append(key)
                seen.add(key)
            flagged.append((obj, dups))
        return obj

    def constant_hook(name: str) -> None:
        found.append(f"(document): {name} is not allowed in JSON")

    def float_hook(literal: str) -> float:
        number = float(literal)
        if not math.isfinite(number):
            found.append(f"(document): number {_short_repr(literal)} does not fit a double")
        return number

    try:
        value = json.loads(
            text,
            object_pairs_hook=pairs_hook,
            parse_constant=constant_hook,
            parse_float=float_hook,
        )
    except json.JSONDecodeError as exc:
        return None, [f"line {exc.lineno} column {exc.colno}: {exc.msg}"]
    except RecursionError:
        return None, ["(root): JSON nesting is too deep"]
    except ValueError as exc:  # e.g. an integer literal with more than 4300 digits
        return None, [f"(root): {exc}"]

    if not flagged and not _SURROGATE_ESCAPE.search(text):
        # Nothing to locate: no object had a duplicate key, and a lone
        # surrogate can only come from a \uD800-\uDFFF escape (valid UTF-8
        # never encodes one).  The common case skips the walk over every node.
        return value, found
    by_id = {id(obj): dups for obj, dups in flagged}
    for path, node in _walk(value):
        if isinstance(node, dict):
            for key in node:
                if _LONE_SURROGATE.search(key):
                    found.append(f"{_fmt_path(path)}: key {_short_repr(key)} has a lone surrogate")
            for key in by_id.pop(id(node), []):
                found.append(f"{_fmt_path(path)}: duplicate key {key!r}")
        elif isinstance(node, str) and _LONE_SURROGATE.search(node):
            found.append(f"{_fmt_path(path)}: string has a lone surrogate")
    if by_id:
        # Only the discarded value of an outer duplicate key can hold these;
        # that outer duplicate is already reported, so just count them.
        found.append(f"(root): {len(by_id)} more objects with duplicate keys")
    return value, found


def _walk(value: Any) -> Iterator[tuple[Path, Any]]:
    """Yield (path, node) for every node; iterative so deep documents are fine."""
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        yield path, node
        if isinstance(node, dict):
            stack.extend(((*path, k), v) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(node))))


# ------------------------------------------------------------------------ validation


def problems(media_type: str, raw: bytes) -> list[str]:
    """Every problem of ``raw`` read as a document of ``media_type``; [] means valid.

    Raises UnsupportedMediaTypeError when there is no schema for the media type
    (layers, the empty descriptor's content, unknown artifacts, ...).
    """
    if media_type not in _DOCUMENTS:
        raise UnsupportedMediaTypeError(media_type, "schema validation")
    value, parse_problems = _parse(raw)
    if parse_problems:
        # Schema messages about a document that was not read as written would
        # only mislead: stop at the parse problems.
        return parse_problems
    return _document_problems(media_type, value)


def validate(media_type: str, raw: bytes) -> None:
    """Raise InvalidDocumentError listing every problem unless ``raw`` is valid."""
    found = problems(media_type, raw)
    if found:
        raise InvalidDocumentError(_DOCUMENTS[media_type][1], found)


def _document_problems(media_type: str, doc: Any) -> list[str]:
    schema_file, _, pinned = _DOCUMENTS[media_type]
    located: list[tuple[Path, str]] = []
    for error in _validator(schema_file).iter_errors(doc):
        located.append((tuple(error.absolute_path), _error_message(error)))
    # An extra check about a value the schema already rejected would repeat the
    # same complaint in other words (e.g. a digest that fails the grammar).
    flagged_paths = {path for path, _ in located}
    for path, message in _extra_problems(schema_file, pinned, doc):
        if path not in flagged_paths:
            located.append((path, message))
    located.sort(key=lambda item: (_path_key(item[0]), item[1]))
    return [f"{_fmt_path(path)}: {message}" for path, message in located]


@functools.cache
def _validator(schema_file: str) -> Any:
    """The compiled validator for one schema file (built once per process)."""
    cls, registry, loaded = _toolkit()
    return cls(loaded[schema_file], registry=registry, format_checker=cls.FORMAT_CHECKER)


@functools.cache
def _toolkit() -> tuple[Any, Any, dict[str, Any]]:
    """(validator class, offline registry of every schema, schemas by file name)."""
    import jsonschema
    import referencing
    import referencing.jsonschema

    loaded = {name: json.loads(_schema_text(name)) for name in _SCHEMA_FILES}
    # Only these resources exist: a $ref to anything else fails instead of
    # being fetched over the network.
    registry: Any = (
        referencing.Registry()
        .with_resources(
            (
                schema["$id"],
                referencing.Resource.from_contents(
                    schema, default_specification=referencing.jsonschema.DRAFT202012
                ),
            )
            for schema in loaded.values()
        )
        .crawl()
    )
    base = jsonschema.Draft202012Validator
    # JSON Schema (since draft 6) calls 2.0 an integer; Go's decoder refuses
    # 2.0 for an int field, and so do we: an integer is an integer literal.
    type_checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    )
    cls = jsonschema.validators.extend(base, type_checker=type_checker)
    return cls, registry, loaded


def _schema_text(name: str) -> str:
    # Next to this module rather than importlib.resources: oci_tools may be a
    # namespace package (no __init__.py), which resources.files() mishandles.
    with open(os.path.join(_SCHEMA_DIR, name), encoding="utf-8") as f:
        return f.read()


def schema_document(name: str) -> dict[str, Any]:
    """The parsed JSON Schema file ``name`` (e.g. ``"manifest.json"``) as shipped."""
    if name not in _SCHEMA_FILES:
        raise KeyError(name)
    loaded: dict[str, Any] = json.loads(_schema_text(name))
    return loaded


def _error_message(error: Any) -> str:
    """jsonschema's message, kept to one line and a readable length."""
    message: str = error.message
    if len(message) > 2 * _MAX_VALUE_REPR and error.validator in (
        "type",
        "pattern",
        "format",
        "enum",
        "const",
        "minimum",
        "maximum",
        "minItems",
    ):
        # These messages start with repr(instance); shorten that part only.
        full = repr(error.instance)
        if message.startswith(full):
            message = _short_repr(error.instance) + message[len(full) :]
    return " ".join(message.split("\n"))


# ---------------------------------------------------------------------- extra checks


def _extra_problems(schema_file: str, pinned: str | None, doc: Any) -> Iterator[tuple[Path, str]]:
    """Checks beyond the schema; shapes the schema rejects are skipped quietly."""
    if not isinstance(doc, dict):
        return
    if schema_file == "descriptor.json":
        yield from _descriptor_problems((), doc)
    elif schema_file == "manifest.json":
        yield from _pinned_media_type(doc, pinned)
        if "manifests" in doc:
            yield ("manifests",), "a manifest must not contain 'manifests' (CVE-2021-41190)"
        for key in ("config", "subject"):
            yield from _descriptor_problems((key,), doc.get(key))
        yield from _each(("layers",), doc.get("layers"), _descriptor_problems)
        config = doc.get("config")
        if (
            isinstance(config, dict)
            and config.get("mediaType") == mt.OCI_EMPTY
            and "artifactType" not in doc
        ):
            yield (), "'artifactType' is required when config.mediaType is the empty type"
    elif schema_file == "index.json":
        yield from _pinned_media_type(doc, pinned)
        for key in ("config", "layers"):
            if key in doc:
                yield (key,), f"an index must not contain {key!r} (CVE-2021-41190)"
        yield from _each(("manifests",), doc.get("manifests"), _descriptor_problems)
        yield from _descriptor_problems(("subject",), doc.get("subject"))
    elif schema_file == "config.json":
        # Divergence from the upstream schema, on purpose: config.md says any
        # OPTIONAL field "MAY also be set to null, which is equivalent to being
        # absent", so config.json accepts null for every optional field (upstream
        # only for four) and the isinstance tests below skip a null as absent.
        config = doc.get("config")
        if isinstance(config, dict):
            yield from _each(("config", "Env"), config.get("Env"), _env_problems)
        rootfs = doc.get("rootfs")
        if isinstance(rootfs, dict):
            yield from _each(("rootfs", "diff_ids"), rootfs.get("diff_ids"), _digest_problems)


def _each(
    path: Path, items: Any, check: Callable[[Path, Any], Iterator[tuple[Path, str]]]
) -> Iterator[tuple[Path, str]]:
    if isinstance(items, list):
        for i, item in enumerate(items):
            yield from check((*path, i), item)


def _pinned_media_type(doc: dict[str, Any], pinned: str | None) -> Iterator[tuple[Path, str]]:
    # The spec says "when used, MUST be <type>"; the upstream schema only checks
    # the syntax.  Absent is fine (SHOULD).
    value = doc.get("mediaType")
    if pinned is not None and isinstance(value, str) and value != pinned:
        yield ("mediaType",), f"{_short_repr(value)} must be {pinned!r} when present"


def _descriptor_problems(path: Path, desc: Any) -> Iterator[tuple[Path, str]]:
    if not isinstance(desc, dict):
        return
    yield from _digest_problems((*path, "digest"), desc.get("digest"))
    data = desc.get("data")
    if isinstance(data, str):
        problem = _base64_problem(data)
        if problem:
            yield (*path, "data"), problem


def _digest_problems(path: Path, value: Any) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        problem = digest_problem(value)
        if problem:
            yield path, problem


def _env_problems(path: Path, value: Any) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str) and not _ENV_ENTRY.fullmatch(value):
        yield path, f"{_short_repr(value)} is not NAME=VALUE (NAME non-empty, without '=')"


def _base64_problem(value: str) -> str | None:
    """Why ``value`` is not RFC 4648 section 4 base64 with padding, or None."""
    # Python's lenient decoder accepts missing or excess padding; Go's
    # StdEncoding (what the spec's reference validator uses) does not.
    if len(value) % 4:
        return f"{_short_repr(value)} is not padded base64 (length is not a multiple of 4)"
    try:
        binascii.a2b_base64(value, strict_mode=True)
    except binascii.Error as exc:
        return f"{_short_repr(value)} is not valid base64 ({exc})"
    return None


# -------------------------------------------------------------------------- helpers


def _fmt_path(path: Path) -> str:
    """``layers[0].digest``, ``annotations["org.example.key"]``; ``(root)`` for the top."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}" if out else part
        else:
            out += "[" + json.dumps(part) + "]"
    return out or "(root)"


def _path_key(path: Path) -> tuple[tuple[int, int, str], ...]:
    # Mixed int/str paths are not comparable directly; tag each step.
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


def _short_repr(value: Any) -> str:
    text = repr(value)
    if len(text) <= _MAX_VALUE_REPR:
        return text
    return text[: _MAX_VALUE_REPR - 1] + "…"


__all__ = [
    "MEDIA_TYPES",
    "parse_json",
    "problems",
    "schema_document",
    "validate",
]
