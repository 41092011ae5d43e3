"""Targeted tests of oci_tools.spec.schema: strict parsing, schema checks, extra checks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from oci_tools.errors import InvalidDocumentError, UnsupportedMediaTypeError
from oci_tools.spec import mediatype as mt
from oci_tools.spec import schema

SHA_A = "sha256:" + "a" * 64
SHA_B = "sha256:" + "b" * 64
EMPTY_JSON = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"


def raw(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def desc(
    media_type: str = mt.OCI_LAYER_GZIP, digest: str = SHA_A, size: Any = 10, **extra: Any
) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size, **extra}


def manifest(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_MANIFEST,
        "config": desc(mt.OCI_CONFIG, SHA_B, 100),
        "layers": [desc()],
    }
    doc.update(over)
    return doc


def index(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mt.OCI_INDEX,
        "manifests": [desc(mt.OCI_MANIFEST, platform={"architecture": "amd64", "os": "linux"})],
    }
    doc.update(over)
    return doc


def config(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [SHA_A]},
    }
    doc.update(over)
    return doc


def probs(media_type: str, doc: Any) -> list[str]:
    return schema.problems(media_type, raw(doc))


# ----------------------------------------------------------------------- strict parse


def test_parse_json_returns_the_value() -> None:
    assert schema.parse_json(b'{"a": [1, 2.5, "x", null, true]}', "doc") == {
        "a": [1, 2.5, "x", None, True]
    }


def test_duplicate_keys_are_all_reported_with_their_paths() -> None:
    text = b'{"a": 1, "a": 2, "b": {"c": 1, "c": 2}, "l": [{"d": 1, "d": 1}]}'
    with pytest.raises(InvalidDocumentError) as info:
        schema.parse_json(text, "manifest")
    assert info.value.what == "manifest"
    assert sorted(info.value.problems) == [
        "(root): duplicate key 'a'",
        "b: duplicate key 'c'",
        "l[0]: duplicate key 'd'",
    ]


def test_duplicate_keys_make_problems_nonempty() -> None:
    text = b'{"imageLayoutVersion": "1.0.0", "imageLayoutVersion": "1.0.0"}'
    assert schema.problems(mt.OCI_LAYOUT_HEADER, text) == [
        "(root): duplicate key 'imageLayoutVersion'"
    ]


@pytest.mark.parametrize(
    "text",
    [
        b'{"imageLayoutVersion": "1.0.0\xff"}',  # not UTF-8 at all
        '{"imageLayoutVersion": "1.0.0"}'.encode("utf-16"),
        '{"imageLayoutVersion": "1.0.0é"}'.encode("latin-1"),
    ],
)
def test_non_utf8_is_rejected(text: bytes) -> None:
    found = schema.problems(mt.OCI_LAYOUT_HEADER, text)
    assert len(found) == 1
    assert "not valid UTF-8" in found[0]


def test_utf8_bom_is_rejected() -> None:
    found = schema.problems(mt.OCI_LAYOUT_HEADER, b'\xef\xbb\xbf{"imageLayoutVersion": "1.0.0"}')
    assert found == ["byte 0: a UTF-8 byte order mark is not allowed"]


def test_non_ascii_utf8_is_fine() -> None:
    doc = config(author="Jürgen 日本")
    assert schema.problems(mt.OCI_CONFIG, json.dumps(doc, ensure_ascii=False).encode()) == []


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(constant: str) -> None:
    text = b'{"a": %s}' % constant.encode()
    with pytest.raises(InvalidDocumentError) as info:
        schema.parse_json(text, "doc")
    assert info.value.problems == [f"(document): {constant} is not allowed in JSON"]


def test_number_overflowing_a_double_is_rejected() -> None:
    with pytest.raises(InvalidDocumentError, match="does not fit a double"):
        schema.parse_json(b'{"a": 1e400}', "doc")


def test_lone_surrogate_is_rejected() -> None:
    with pytest.raises(InvalidDocumentError) as info:
        schema.parse_json(b'{"a": ["\\ud800"], "\\udc00": 1}', "doc")
    assert sorted(info.value.problems) == [
        "(root): key '\\udc00' has a lone surrogate",
        "a[0]: string has a lone surrogate",
    ]


def test_surrogate_pair_is_fine() -> None:
    assert schema.parse_json(b'{"a": "\\ud83d\\ude00"}', "doc") == {"a": "\U0001f600"}


def test_syntax_error_has_a_position() -> None:
    assert schema.problems(mt.OCI_CONFIG, b'{\n  "os": "linux",\n}') == [
        "line 3 column 1: Expecting property name enclosed in double quotes"
    ]


def test_deep_nesting_is_a_problem_not_a_crash() -> None:
    found = schema.problems(mt.OCI_CONFIG, b"[" * 100_000 + b"]" * 100_000)
    assert found and "too deep" in found[0]


def test_empty_input_is_invalid() -> None:
    assert schema.problems(mt.OCI_MANIFEST, b"") == ["line 1 column 1: Expecting value"]


# ----------------------------------------------------------------- api and media types


@pytest.mark.parametrize(
    "media_type", [mt.OCI_LAYER_GZIP, mt.OCI_EMPTY, "application/json", "", mt.OCI_MANIFEST + ";"]
)
def test_unknown_media_type(media_type: str) -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        schema.problems(media_type, b"{}")
    with pytest.raises(UnsupportedMediaTypeError):
        schema.validate(media_type, b"{}")


def test_media_types() -> None:
    assert {
        mt.OCI_DESCRIPTOR,
        mt.OCI_LAYOUT_HEADER,
        mt.OCI_MANIFEST,
        mt.OCI_INDEX,
        mt.OCI_CONFIG,
        mt.DOCKER_MANIFEST,
        mt.DOCKER_MANIFEST_LIST,
        mt.DOCKER_CONFIG,
    } == schema.MEDIA_TYPES


def test_validate_raises_with_every_problem() -> None:
    doc = manifest(schemaVersion=3, layers=[desc(size=-1), desc(digest="sha256:AB")])
    with pytest.raises(InvalidDocumentError) as info:
        schema.validate(mt.OCI_MANIFEST, raw(doc))
    assert info.value.what == "manifest"
    assert info.value.problems == probs(mt.OCI_MANIFEST, doc)
    assert len(info.value.problems) == 3


def test_validate_returns_none_when_valid() -> None:
    schema.validate(mt.OCI_MANIFEST, raw(manifest()))


def test_multiple_problems_reported_at_once_sorted_by_path() -> None:
    doc = manifest(
        mediaType=mt.OCI_INDEX,
        config=desc(mt.OCI_CONFIG, "sha256:" + "A" * 64, 5),
        layers=[desc(), desc(size="10"), desc(urls=["value"], data="e30")],
        annotations={"org.example.key": 1},
    )
    assert probs(mt.OCI_MANIFEST, doc) == [
        "annotations[\"org.example.key\"]: 1 is not of type 'string'",
        "config.digest: 'sha256:" + "A" * 64 + "': sha256 digests must be lower-case hex of"
        " the right length",
        "layers[1].size: '10' is not of type 'integer'",
        "layers[2].data: 'e30' is not padded base64 (length is not a multiple of 4)",
        "layers[2].urls[0]: 'value' is not a 'uri'",
        f"mediaType: '{mt.OCI_INDEX}' must be '{mt.OCI_MANIFEST}' when present",
    ]


def test_problem_lines_stay_short_for_huge_values() -> None:
    found = probs(mt.OCI_DESCRIPTOR, desc(mediaType="x" * 10_000))
    assert len(found) == 1
    assert len(found[0]) < 300
    assert "…" in found[0]


def test_missing_required_fields() -> None:
    assert probs(mt.OCI_MANIFEST, {"schemaVersion": 2}) == [
        "(root): 'config' is a required property",
        "(root): 'layers' is a required property",
    ]


def test_top_level_must_be_an_object() -> None:
    assert probs(mt.OCI_DESCRIPTOR, [1]) == ["(root): [1] is not of type 'object'"]


# ---------------------------------------------------------------------- digest rules


@pytest.mark.parametrize(
    ("digest", "ok"),
    [
        (SHA_A, True),
        ("sha256:" + "a" * 63, False),
        ("sha256:" + "A" * 64, False),
        ("sha512:" + "0" * 128, True),
        ("sha512:" + "0" * 64, False),
        ("blake3:" + "f" * 64, True),
        ("blake3:" + "F" * 64, False),
        ("sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", True),  # unregistered
        ("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", True),
        ("sha256", False),
        ("SHA256:" + "a" * 64, False),
    ],
)
def test_digest_rules_everywhere(digest: str, ok: bool) -> None:
    cases = [
        (mt.OCI_DESCRIPTOR, desc(digest=digest), "digest"),
        (mt.OCI_MANIFEST, manifest(layers=[desc(), desc(digest=digest)]), "layers[1].digest"),
        (mt.OCI_MANIFEST, manifest(config=desc(mt.OCI_CONFIG, digest)), "config.digest"),
        (mt.OCI_MANIFEST, manifest(subject=desc(mt.OCI_MANIFEST, digest)), "subject.digest"),
        (mt.OCI_INDEX, index(manifests=[desc(mt.OCI_MANIFEST, digest)]), "manifests[0].digest"),
        (mt.OCI_INDEX, index(subject=desc(mt.OCI_MANIFEST, digest)), "subject.digest"),
        (
            mt.OCI_CONFIG,
            config(rootfs={"type": "layers", "diff_ids": [SHA_B, digest]}),
            "rootfs.diff_ids[1]",
        ),
    ]
    for media_type, doc, path in cases:
        found = probs(media_type, doc)
        if ok:
            assert found == [], path
        else:
            assert len(found) == 1, found  # grammar failures are not reported twice
            assert found[0].startswith(path + ": "), found


# ------------------------------------------------------------------------ extra checks


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        ("e30=", True),
        ("", True),
        ("aHR0cHM6Ly9naXRodWIuY29tL29wZW5jb250YWluZXJzCg==", True),
        ("e30", False),  # missing padding (upstream vector descriptor/030)
        ("e30==", False),  # excess padding
        ("e3-_", False),  # URL-safe alphabet
        ("e30=e30=", False),  # padding in the middle
        ("e3 0=", False),
        ("====", False),
    ],
)
def test_data_must_be_strict_base64(data: str, ok: bool) -> None:
    found = probs(mt.OCI_DESCRIPTOR, desc(data=data))
    assert (found == []) is ok, found
    if not ok:
        assert found[0].startswith("data: ")
    # nested descriptors too
    found = probs(mt.OCI_INDEX, index(manifests=[desc(mt.OCI_MANIFEST, data=data)]))
    assert (found == []) is ok, found


def test_empty_descriptor_with_data_is_valid() -> None:
    empty = desc(mt.OCI_EMPTY, EMPTY_JSON, 2, data="e30=")
    assert probs(mt.OCI_DESCRIPTOR, empty) == []


@pytest.mark.parametrize(
    ("url", "ok"), [("https://example.com/foo", True), ("value", False), ("http://[::1", False)]
)
def test_urls_must_be_uris(url: str, ok: bool) -> None:
    assert (probs(mt.OCI_DESCRIPTOR, desc(urls=[url])) == []) is ok


@pytest.mark.parametrize(
    ("entry", "ok"),
    [
        ("PATH=/bin", True),
        ("EMPTY=", True),
        ("A=b=c", True),
        ("MULTI=line1\nline2", True),
        ("foo", False),
        ("=value", False),
        ("", False),
    ],
)
def test_env_entries(entry: str, ok: bool) -> None:
    found = probs(mt.OCI_CONFIG, config(config={"Env": ["OK=1", entry]}))
    assert (found == []) is ok, found
    if not ok:
        why = "is not NAME=VALUE (NAME non-empty, without '=')"
        assert found == [f"config.Env[1]: {entry!r} {why}"]


def test_manifest_media_type_must_be_exact_when_present() -> None:
    assert probs(mt.OCI_MANIFEST, manifest(mediaType=mt.DOCKER_MANIFEST)) == [
        f"mediaType: '{mt.DOCKER_MANIFEST}' must be '{mt.OCI_MANIFEST}' when present"
    ]
    doc = manifest()
    del doc["mediaType"]
    assert probs(mt.OCI_MANIFEST, doc) == []


def test_index_media_type_must_be_exact_when_present() -> None:
    assert probs(mt.OCI_INDEX, index(mediaType=mt.OCI_MANIFEST)) == [
        f"mediaType: '{mt.OCI_MANIFEST}' must be '{mt.OCI_INDEX}' when present"
    ]
    doc = index()
    del doc["mediaType"]
    assert probs(mt.OCI_INDEX, doc) == []


def test_manifest_with_manifests_is_rejected() -> None:
    found = probs(mt.OCI_MANIFEST, manifest(manifests=[]))
    assert found == ["manifests: a manifest must not contain 'manifests' (CVE-2021-41190)"]


def test_index_with_config_or_layers_is_rejected() -> None:
    found = probs(mt.OCI_INDEX, index(config=desc(mt.OCI_CONFIG), layers=[desc()]))
    assert found == [
        "config: an index must not contain 'config' (CVE-2021-41190)",
        "layers: an index must not contain 'layers' (CVE-2021-41190)",
    ]


@pytest.mark.parametrize("rootfs_type", ["", "layer", "Layers", None, 1])
def test_rootfs_type_must_be_layers(rootfs_type: Any) -> None:
    found = probs(mt.OCI_CONFIG, config(rootfs={"type": rootfs_type, "diff_ids": []}))
    assert found and all(p.startswith("rootfs.type: ") for p in found)


def test_rootfs_is_required_with_both_members() -> None:
    assert probs(mt.OCI_CONFIG, config(rootfs={})) == [
        "rootfs: 'diff_ids' is a required property",
        "rootfs: 'type' is a required property",
    ]


def test_empty_config_needs_artifact_type() -> None:
    doc = manifest(config=desc(mt.OCI_EMPTY, EMPTY_JSON, 2))
    assert probs(mt.OCI_MANIFEST, doc) == [
        "(root): 'artifactType' is required when config.mediaType is the empty type"
    ]
    assert probs(mt.OCI_MANIFEST, {**doc, "artifactType": "application/vnd.example+json"}) == []


# ------------------------------------------------------------------------------ sizes


@pytest.mark.parametrize(
    ("size", "ok"),
    [
        (0, True),
        (2**63 - 1, True),
        (-1, False),
        (2**63, False),
        (1.0, False),
        (True, False),
        ("1", False),
    ],
)
def test_size_is_a_non_negative_int64_everywhere(size: Any, ok: bool) -> None:
    assert (probs(mt.OCI_DESCRIPTOR, desc(size=size)) == []) is ok
    # Upstream's index schema still allows negative sizes; descriptor.md does not.
    assert (probs(mt.OCI_INDEX, index(manifests=[desc(mt.OCI_MANIFEST, size=size)])) == []) is ok


def test_integer_literal_with_fraction_is_not_an_integer() -> None:
    text = raw(manifest()).replace(b'"schemaVersion": 2', b'"schemaVersion": 2.0')
    assert schema.problems(mt.OCI_MANIFEST, text) == ["schemaVersion: 2.0 is not of type 'integer'"]


@pytest.mark.parametrize("version", [1, 3, "2"])
def test_schema_version_must_be_2(version: Any) -> None:
    assert probs(mt.OCI_MANIFEST, manifest(schemaVersion=version))
    assert probs(mt.OCI_INDEX, index(schemaVersion=version))


def test_layers_and_manifests_may_be_empty() -> None:
    # manifest.md: layers SHOULD have one entry "for portability"; the upstream
    # schema's minItems 1 is stricter than the prose and rejects what umoci new
    # and FROM-scratch builds write, so we follow the prose.
    assert probs(mt.OCI_MANIFEST, manifest(layers=[])) == []
    assert probs(mt.OCI_INDEX, index(manifests=[])) == []


def test_layout_header() -> None:
    assert probs(mt.OCI_LAYOUT_HEADER, {"imageLayoutVersion": "1.0.0", "extra": 1}) == []
    assert probs(mt.OCI_LAYOUT_HEADER, {"imageLayoutVersion": "1.1.0"}) == [
        "imageLayoutVersion: '1.1.0' is not one of ['1.0.0']"
    ]
    assert probs(mt.OCI_LAYOUT_HEADER, {}) == [
        "(root): 'imageLayoutVersion' is a required property"
    ]


def test_platform_is_checked_when_present() -> None:
    bad = desc(mt.OCI_MANIFEST, platform={"os": "linux", "os.features": "win32k"})
    assert probs(mt.OCI_INDEX, index(manifests=[bad])) == [
        "manifests[0].platform: 'architecture' is a required property",
        "manifests[0].platform[\"os.features\"]: 'win32k' is not of type 'array'",
    ]


def test_unknown_fields_and_media_types_are_allowed() -> None:
    doc = manifest(
        artifactType="application/vnd.example.thing",
        layers=[desc("application/x-whatever", x_extra=True)],
        unknownField={"a": 1},
    )
    assert probs(mt.OCI_MANIFEST, doc) == []


# ----------------------------------------------------------------------- config dates


@pytest.mark.parametrize(
    ("created", "ok"),
    [
        ("2015-10-31T22:22:56.015925234Z", True),
        ("2015-10-31T22:22:56+02:00", True),
        # RFC 3339's note permits a space, but the grammar (and Go) need "T".
        ("2015-10-31 22:22:56Z", False),
        ("2015-10-31", False),
        ("yesterday", False),
        ("2015-13-31T22:22:56Z", False),
    ],
)
def test_created_must_be_rfc3339(created: str, ok: bool) -> None:
    assert (probs(mt.OCI_CONFIG, config(created=created)) == []) is ok
    history = [{"created": created, "created_by": "x"}]
    assert (probs(mt.OCI_CONFIG, config(history=history)) == []) is ok


# ------------------------------------------------------------------- null as absent


@pytest.mark.parametrize(
    "over",
    [
        {"created": None},
        {"author": None},
        {"variant": None},
        {"os.version": None},
        {"os.features": None},
        {"config": None},
        {"history": None},
        {
            "history": [
                {
                    "created": None,
                    "author": None,
                    "created_by": None,
                    "comment": None,
                    "empty_layer": None,
                }
            ]
        },
        {
            "config": {
                k: None
                for k in (
                    "User",
                    "ExposedPorts",
                    "Env",
                    "Entrypoint",
                    "Cmd",
                    "Volumes",
                    "WorkingDir",
                    "Labels",
                    "StopSignal",
                    "ArgsEscaped",
                )
            }
        },
    ],
)
def test_optional_config_fields_accept_null(over: dict[str, Any]) -> None:
    # config.md: "Any OPTIONAL field MAY also be set to null" (the upstream
    # schema only allows it for four fields; we follow the prose).
    assert probs(mt.OCI_CONFIG, config(**over)) == []


@pytest.mark.parametrize(
    ("over", "path"),
    [
        ({"architecture": None}, "architecture"),
        ({"os": None}, "os"),
        ({"rootfs": None}, "rootfs"),
        ({"rootfs": {"type": "layers", "diff_ids": None}}, "rootfs.diff_ids"),
        ({"config": {"Env": [None]}}, "config.Env[0]"),
        ({"config": {"Labels": {"a": None}}}, "config.Labels.a"),
    ],
)
def test_required_fields_and_members_reject_null(over: dict[str, Any], path: str) -> None:
    found = probs(mt.OCI_CONFIG, config(**over))
    assert len(found) == 1 and found[0].startswith(path + ": "), found


def test_config_types_are_checked() -> None:
    doc = config(
        config={
            "ExposedPorts": {"80/tcp": "yes"},
            "Cmd": "sh",
            "ArgsEscaped": "no",
        }
    )
    assert probs(mt.OCI_CONFIG, doc) == [
        "config.ArgsEscaped: 'no' is not of type 'boolean', 'null'",
        "config.Cmd: 'sh' is not of type 'array', 'null'",
        "config.ExposedPorts[\"80/tcp\"]: 'yes' is not of type 'object'",
    ]


# ---------------------------------------------------------------------- docker types


def docker_manifest() -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": mt.DOCKER_MANIFEST,
        "config": desc(mt.DOCKER_CONFIG, SHA_B, 100),
        "layers": [
            desc(mt.DOCKER_LAYER_GZIP),
            desc(mt.DOCKER_FOREIGN_LAYER_GZIP, urls=["https://example.com/l"]),
        ],
    }


def test_docker_manifest() -> None:
    assert probs(mt.DOCKER_MANIFEST, docker_manifest()) == []
    # The same document under the OCI type fails only on its top-level mediaType.
    assert probs(mt.OCI_MANIFEST, docker_manifest()) == [
        f"mediaType: '{mt.DOCKER_MANIFEST}' must be '{mt.OCI_MANIFEST}' when present"
    ]
    # And an OCI manifest is not a Docker one.
    assert probs(mt.DOCKER_MANIFEST, manifest()) == [
        f"mediaType: '{mt.OCI_MANIFEST}' must be '{mt.DOCKER_MANIFEST}' when present"
    ]


def test_docker_manifest_gets_the_same_structural_checks() -> None:
    doc = docker_manifest()
    doc["layers"][0]["digest"] = "sha256:" + "A" * 64
    doc["manifests"] = []
    with pytest.raises(InvalidDocumentError) as info:
        schema.validate(mt.DOCKER_MANIFEST, raw(doc))
    assert info.value.what == "docker manifest"
    assert len(info.value.problems) == 2


def test_docker_manifest_list() -> None:
    doc = index(
        mediaType=mt.DOCKER_MANIFEST_LIST,
        manifests=[
            desc(
                mt.DOCKER_MANIFEST, platform={"architecture": "arm", "os": "linux", "variant": "v7"}
            )
        ],
    )
    assert probs(mt.DOCKER_MANIFEST_LIST, doc) == []
    assert len(probs(mt.OCI_INDEX, doc)) == 1
    assert len(probs(mt.DOCKER_MANIFEST_LIST, index())) == 1


def test_docker_config() -> None:
    doc = config(
        container="abc",
        docker_version="1.12.1",
        config={"Hostname": "x", "Cmd": None, "OnBuild": None, "Env": ["A=1"]},
    )
    assert probs(mt.DOCKER_CONFIG, doc) == []
    assert probs(mt.DOCKER_CONFIG, config(config={"Env": ["A"]}))


# -------------------------------------------------------------- the schemas themselves


SCHEMA_DIR = Path(schema.__file__).parent.parent / "schemas"
SCHEMA_FILES = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))


def test_schema_files_ship_inside_the_package() -> None:
    assert SCHEMA_FILES == [
        "config.json",
        "defs.json",
        "descriptor.json",
        "image-layout.json",
        "index.json",
        "manifest.json",
    ]


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_schema_files_are_valid_schemas(name: str) -> None:
    import jsonschema

    doc = schema.schema_document(name)
    jsonschema.Draft202012Validator.check_schema(doc)
    assert doc["$id"] == f"https://oci-tools.invalid/schemas/{name}"


def test_format_checks_are_active() -> None:
    # Without rfc3987 / rfc3339-validator jsonschema silently skips these formats.
    import jsonschema

    checkers = jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers
    assert "uri" in checkers
    assert "date-time" in checkers


def test_jsonschema_is_imported_lazily() -> None:
    code = (
        "import sys, oci_tools.spec.schema as s\n"
        "assert 'jsonschema' not in sys.modules\n"
        "assert s.problems('application/vnd.oci.layout.header.v1+json',"
        ' b\'{"imageLayoutVersion": "1.0.0"}\') == []\n'
        "assert 'jsonschema' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
