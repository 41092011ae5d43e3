"""Signatures in a layout: keys in cosign's format, the simple-signing
payload, the ``sha256-<hex>.sig`` signature image, and every way a
verification must fail.

``testdata/cosign/`` holds third-party test vectors: ``cosign.pub``,
``cosign2.pub``, ``valid-manifest.json``, ``modified-manifest.json`` and
``valid-signature-1`` (a signature cosign made, in containers/image's
``dir:`` form) from containers/image's ``signature/fixtures``; and
``sigstore-n32768.key`` / ``cosign-ec-sec1-n65536.key`` (passphrase
``hello``) from cosign's ``pkg/cosign/keys_test.go``.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from helpers import cli
from registry_env import make_image

from oci_tools.digest import Digest
from oci_tools.errors import ClobberError, SignatureError, UsageError
from oci_tools.layout import Layout
from oci_tools.sign import cosign, keys
from oci_tools.sign.payload import Payload, parse_payload
from oci_tools.spec import mediatype as mt
from oci_tools.spec.model import Descriptor, Manifest
from oci_tools.store import put_bytes

DATA = Path(__file__).resolve().parent.parent / "testdata" / "cosign"
IDENT = "127.0.0.1:5000/team/app:v1"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "s3cret")


@pytest.fixture
def pair(tmp_path: Path) -> keys.KeyFiles:
    return keys.generate_key_pair(str(tmp_path / "k"), passphrase=b"s3cret")


@pytest.fixture
def lay(tmp_path: Path) -> Layout:
    layout = Layout.init(str(tmp_path / "lay"))
    make_image(layout, "v1", [b"one"])
    make_image(layout, "v2", [b"two"])
    return layout


def _priv(pair: keys.KeyFiles) -> keys.PrivateKey:
    return keys.read_private_key(pair.private, b"s3cret")


def _sig_manifest(layout: Layout, digest: Digest) -> Manifest:
    d = layout.lookup(cosign.signature_tag(digest))
    return Manifest.parse(layout.read_blob(d), d.media_type)


# ------------------------------------------------------------------ keys


def test_generated_key_is_cosign_encrypted_p256(pair: keys.KeyFiles) -> None:
    text = Path(pair.private).read_text()
    assert text.startswith("-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
    body = "".join(text.splitlines()[1:-1])
    doc = json.loads(base64.b64decode(body))
    assert doc["kdf"]["name"] == "scrypt"
    assert doc["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}  # what skopeo 1.9 reads
    assert len(base64.b64decode(doc["kdf"]["salt"])) == 32
    assert doc["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(doc["cipher"]["nonce"])) == 24
    assert stat.S_IMODE(os.stat(pair.private).st_mode) == 0o600
    assert Path(pair.public).read_text().startswith("-----BEGIN PUBLIC KEY-----")
    key = _priv(pair)
    assert key.curve.name == "secp256r1"
    pub = keys.read_public_key(pair.public)
    assert keys.verify_bytes(pub, keys.sign_bytes(key, b"x"), b"x")
    assert not keys.verify_bytes(pub, keys.sign_bytes(key, b"x"), b"y")


def test_wrong_passphrase(pair: keys.KeyFiles) -> None:
    with pytest.raises(SignatureError, match="wrong passphrase"):
        keys.read_private_key(pair.private, b"nope")


def test_reads_cosign_keys() -> None:
    # cosign >= 2's PEM type, decrypted with hashlib.scrypt + PyNaCl
    key = keys.read_private_key(str(DATA / "sigstore-n32768.key"), b"hello")
    assert key.curve.name == "secp256r1"
    # N=2^16 is accepted; the SEC1 key inside is refused, as cosign refuses it
    with pytest.raises(SignatureError, match="PKCS#8"):
        keys.read_private_key(str(DATA / "cosign-ec-sec1-n65536.key"), b"hello")
    with pytest.raises(SignatureError, match="wrong passphrase"):
        keys.read_private_key(str(DATA / "sigstore-n32768.key"), b"hullo")


def _reseal(pair: keys.KeyFiles, change: object) -> bytes:
    text = Path(pair.private).read_text()
    doc = json.loads(base64.b64decode("".join(text.splitlines()[1:-1])))
    change(doc)  # type: ignore[operator]
    return keys._pem(keys.COSIGN_PEM, json.dumps(doc).encode())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["kdf"].update(name="pbkdf2"), "not scrypt"),
        (lambda d: d["cipher"].update(name="aes"), "not nacl/secretbox"),
        (lambda d: d["kdf"]["params"].update(N=1024), "unexpected scrypt parameters"),
        (lambda d: d["kdf"]["params"].update(r=1), "unexpected scrypt parameters"),
        (lambda d: d["cipher"].update(nonce=base64.b64encode(b"short").decode()), "24 bytes"),
        (lambda d: d.update(ciphertext="!!"), "not base64"),
        (lambda d: d.pop("ciphertext"), "missing ciphertext"),
    ],
)
def test_bad_encrypted_keys(pair: keys.KeyFiles, change: object, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        keys.load_private_key(_reseal(pair, change), b"s3cret")


def test_tampered_ciphertext(pair: keys.KeyFiles) -> None:
    def flip(d: dict[str, object]) -> None:
        raw = bytearray(base64.b64decode(str(d["ciphertext"])))
        raw[-1] ^= 1
        d["ciphertext"] = base64.b64encode(bytes(raw)).decode()

    with pytest.raises(SignatureError, match="wrong passphrase"):
        keys.load_private_key(_reseal(pair, flip), b"s3cret")


def test_other_key_files(tmp_path: Path, pair: keys.KeyFiles) -> None:
    with pytest.raises(SignatureError, match="does not exist"):
        keys.read_private_key(str(tmp_path / "missing.key"))
    (tmp_path / "junk").write_bytes(b"hello")
    with pytest.raises(SignatureError, match="not a PEM"):
        keys.read_private_key(str(tmp_path / "junk"))
    with pytest.raises(SignatureError, match="unsupported private key type"):
        keys.load_private_key(Path(pair.public).read_bytes())
    with pytest.raises(SignatureError, match="expected a 'PUBLIC KEY'"):
        keys.load_public_key(Path(pair.private).read_bytes())
    (tmp_path / "big").write_bytes(b"x" * (70 << 10))
    with pytest.raises(SignatureError, match="too large"):
        keys.read_public_key(str(tmp_path / "big"))
    with pytest.raises(UsageError, match="encrypted"):
        keys.read_private_key(pair.private, None)


def test_pkcs8_and_clobber(tmp_path: Path) -> None:
    files = keys.generate_key_pair(str(tmp_path / "p"), passphrase=None)
    assert Path(files.private).read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert keys.read_private_key(files.private).curve.name == "secp256r1"
    with pytest.raises(ClobberError):
        keys.generate_key_pair(str(tmp_path / "p"), passphrase=None)
    keys.generate_key_pair(str(tmp_path / "p"), passphrase=None, force=True)


def test_cli_generate_key_pair(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = str(tmp_path / "c")
    r = cli("generate-key-pair", "--output-key-prefix", prefix)
    assert r.code == 0, r.err
    assert "Private key written" in r.err
    assert keys.read_private_key(prefix + ".key", b"s3cret")
    assert cli("generate-key-pair", "--output-key-prefix", prefix).code == 1
    monkeypatch.delenv("COSIGN_PASSWORD")
    r = cli("generate-key-pair", "--output-key-prefix", str(tmp_path / "d"))
    assert r.code == 2 and "COSIGN_PASSWORD" in r.err  # no terminal to ask on
    assert not (tmp_path / "d.key").exists()
    r = cli("generate-key-pair", "--pkcs8", "--output-key-prefix", str(tmp_path / "e"))
    assert r.code == 0
    r = cli("generate-key-pair", "--output-key-prefix", str(tmp_path / "no" / "dir"))
    assert r.code == 2


# --------------------------------------------------------------- payload


def test_payload_as_cosign_writes_it() -> None:
    dg = Digest.of_bytes(b"m")
    raw = Payload("h/r", dg).to_bytes()
    assert raw == (
        b'{"critical":{"identity":{"docker-reference":"h/r"},"image":'
        b'{"docker-manifest-digest":"' + str(dg).encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )
    assert parse_payload(raw) == Payload("h/r", dg)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not an object"),
        (b'{"critical":{},"optional":null,"x":1}', "unexpected fields"),
        (b'{"optional":null}', "lacks"),
        (
            b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
            b'"sha256:' + b"0" * 64 + b'"},"type":"atomic container signature"},"optional":null}',
            "unexpected type",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
            b'"md5:1"},"type":"cosign container image signature"},"optional":null}',
            "is not a digest",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":1},"image":{"docker-manifest-digest":'
            b'"sha256:' + b"0" * 64 + b'"},"type":"cosign container image signature"},'
            b'"optional":null}',
            "must be strings",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a","docker-reference":"b"},"image":'
            b'{"docker-manifest-digest":"sha256:' + b"0" * 64 + b'"},'
            b'"type":"cosign container image signature"},"optional":null}',
            "duplicate key",
        ),
        (
            b'{"critical":{"identity":{"docker-reference":"a"},"image":{"docker-manifest-digest":'
            b'"sha256:' + b"0" * 64 + b'"},"type":"cosign container image signature"},'
            b'"optional":[]}',
            "optional is not an object",
        ),
    ],
)
def test_payload_strict(raw: bytes, message: str) -> None:
    with pytest.raises(SignatureError, match=message):
        parse_payload(raw)


# ------------------------------------------------------- sign and verify


def test_sign_and_verify(lay: Layout, pair: keys.KeyFiles) -> None:
    done = cosign.sign_image(lay, "v1", _priv(pair), IDENT, annotations={"by": "ci"})
    want = lay.lookup("v1").digest
    assert done.digest == want and done.added
    assert done.tag == f"sha256-{want.encoded}.sig"
    m = _sig_manifest(lay, want)
    assert m.config is not None and m.config.media_type == mt.OCI_CONFIG
    (layer,) = m.layers
    assert layer.media_type == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(layer.annotations) == {"dev.cosignproject.cosign/signature"}
    payload = json.loads(lay.read_blob(layer))
    assert payload["critical"]["identity"]["docker-reference"] == IDENT
    assert payload["critical"]["image"]["docker-manifest-digest"] == str(want)
    assert payload["optional"] == {"by": "ci"}
    digest, good = cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))
    assert digest == want and [v.payload for v in good] == [parse_payload(lay.read_blob(layer))]


def test_signing_twice_appends_once(lay: Layout, pair: keys.KeyFiles, tmp_path: Path) -> None:
    key = _priv(pair)
    cosign.sign_image(lay, "v1", key, IDENT)
    again = cosign.sign_image(lay, "v1", key, IDENT)
    assert not again.added
    other = keys.generate_key_pair(str(tmp_path / "o"), passphrase=None)
    third = cosign.sign_image(lay, "v1", keys.read_private_key(other.private), IDENT)
    assert third.added
    assert len(_sig_manifest(lay, third.digest).layers) == 2
    # the same key for another name is another signature
    assert cosign.sign_image(lay, "v1", key, "127.0.0.1:5000/other").added
    assert len(_sig_manifest(lay, third.digest).layers) == 3
    # each key verifies its own
    _, good = cosign.verify_image(lay, "v1", keys.read_public_key(other.public))
    assert len(good) == 1


def test_no_signature(lay: Layout, pair: keys.KeyFiles) -> None:
    with pytest.raises(SignatureError, match="no signature"):
        cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))


def test_wrong_key(lay: Layout, pair: keys.KeyFiles, tmp_path: Path) -> None:
    cosign.sign_image(lay, "v1", _priv(pair), IDENT)
    other = keys.generate_key_pair(str(tmp_path / "o"), passphrase=None)
    with pytest.raises(SignatureError, match="does not verify with this key"):
        cosign.verify_image(lay, "v1", keys.read_public_key(other.public))


def test_changed_image_is_not_signed(lay: Layout, pair: keys.KeyFiles) -> None:
    cosign.sign_image(lay, "v1", _priv(pair), IDENT)
    lay.set_ref("v1", lay.lookup("v2"))  # the tag now names another manifest
    with pytest.raises(SignatureError, match="no signature"):
        cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))


def _graft(lay: Layout, target: Digest, raw: bytes, annotations: dict[str, str]) -> None:
    cosign.add_signature(lay, target, raw, annotations)


def test_payload_for_another_digest(lay: Layout, pair: keys.KeyFiles) -> None:
    # A valid signature of v1, placed where v2's signatures are looked for.
    done = cosign.sign_image(lay, "v1", _priv(pair), IDENT)
    (layer,) = _sig_manifest(lay, done.digest).layers
    v2 = lay.lookup("v2").digest
    _graft(lay, v2, lay.read_blob(layer), dict(layer.annotations))
    with pytest.raises(SignatureError, match=f"payload is for {done.digest}, not {v2}"):
        cosign.verify_image(lay, "v2", keys.read_public_key(pair.public))


def test_tampered_payload(lay: Layout, pair: keys.KeyFiles) -> None:
    done = cosign.sign_image(lay, "v1", _priv(pair), IDENT)
    (layer,) = _sig_manifest(lay, done.digest).layers
    raw = lay.read_blob(layer).replace(b"team/app", b"evil/app")
    lay.remove_ref(done.tag)
    _graft(lay, done.digest, raw, dict(layer.annotations))
    with pytest.raises(SignatureError, match="does not verify"):
        cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))


def test_tampered_signature(lay: Layout, pair: keys.KeyFiles) -> None:
    done = cosign.sign_image(lay, "v1", _priv(pair), IDENT)
    (layer,) = _sig_manifest(lay, done.digest).layers
    raw = lay.read_blob(layer)
    sig = bytearray(base64.b64decode(layer.annotations[cosign.SIGNATURE_ANNOTATION]))
    sig[-1] ^= 1
    for ann, message in [
        ({cosign.SIGNATURE_ANNOTATION: base64.b64encode(bytes(sig)).decode()}, "does not verify"),
        ({cosign.SIGNATURE_ANNOTATION: "%%%"}, "no base64"),
        ({"other": "x"}, "no base64"),
    ]:
        lay.remove_ref(done.tag)
        _graft(lay, done.digest, raw, ann)
        with pytest.raises(SignatureError, match=message):
            cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))


def test_signed_garbage_is_refused(lay: Layout, pair: keys.KeyFiles) -> None:
    # Signed by the right key, but not a payload containers/image accepts.
    key = _priv(pair)
    v1 = lay.lookup("v1").digest
    raw = b'{"critical":{},"optional":null}'
    sig = base64.b64encode(keys.sign_bytes(key, raw)).decode()
    _graft(lay, v1, raw, {cosign.SIGNATURE_ANNOTATION: sig})
    with pytest.raises(SignatureError, match="critical has unexpected fields"):
        cosign.verify_image(lay, "v1", keys.read_public_key(pair.public))


def test_oversized_payload_not_read(lay: Layout, pair: keys.KeyFiles) -> None:
    v1 = lay.lookup("v1").digest
    big = Descriptor(
        cosign.SIMPLESIGNING,
        v1,
        (4 << 20) + 1,
        {cosign.SIGNATURE_ANNOTATION: "AAAA"},
    )

    def never(_: Descriptor) -> bytes:
        raise AssertionError("read")

    with pytest.raises(SignatureError, match="over the cap"):
        cosign.verify_signatures([big], never, v1, keys.read_public_key(pair.public), where="test")


def test_only_other_attachments(lay: Layout, pair: keys.KeyFiles) -> None:
    v1 = lay.lookup("v1").digest
    d = Descriptor("application/vnd.dev.cosign.attestation", v1, 1)
    with pytest.raises(SignatureError, match="no signature"):
        cosign.verify_signatures(
            [d], lay.read_blob, v1, keys.read_public_key(pair.public), where="test"
        )


# ------------------------------------------------ cosign's own signature


def _fixture_layout(tmp_path: Path, manifest: str) -> tuple[Layout, Digest]:
    lay = Layout.init(str(tmp_path / manifest))
    raw = (DATA / manifest).read_bytes()
    dg = put_bytes(lay.store, raw)
    lay.set_ref("img", Descriptor(mt.DOCKER_MANIFEST, dg, len(raw)))
    # containers/image keeps the attachment as "\0sigstore-json\n" + JSON
    blob = (DATA / "valid-signature-1").read_bytes()
    assert blob.startswith(b"\x00sigstore-json\n")
    doc = json.loads(blob.split(b"\n", 1)[1])
    payload = base64.b64decode(doc["payload"])
    # the signature names the valid manifest; put it beside this image
    valid = Digest.of_bytes((DATA / "valid-manifest.json").read_bytes())
    cosign.add_signature(lay, valid, payload, doc["annotations"])
    if dg != valid:
        sig = lay.lookup(cosign.signature_tag(valid))
        lay.set_ref(cosign.signature_tag(dg), sig)
    return lay, dg


def test_verifies_a_signature_cosign_made(tmp_path: Path) -> None:
    lay, dg = _fixture_layout(tmp_path, "valid-manifest.json")
    digest, good = cosign.verify_image(lay, "img", keys.read_public_key(str(DATA / "cosign.pub")))
    assert digest == dg
    ref = good[0].payload.docker_reference
    assert ref == "192.168.64.2:5000/cosign-signed-single-sample"
    r = cli("verify", f"{lay.path}:img", "--key", str(DATA / "cosign.pub"))
    assert r.code == 0 and json.loads(r.out)[0]["critical"]["image"]["docker-manifest-digest"] == (
        str(dg)
    )
    with pytest.raises(SignatureError, match="does not verify"):
        cosign.verify_image(lay, "img", keys.read_public_key(str(DATA / "cosign2.pub")))


def test_cosign_signature_refused_for_modified_manifest(tmp_path: Path) -> None:
    lay, dg = _fixture_layout(tmp_path, "modified-manifest.json")
    with pytest.raises(SignatureError, match=f"not {dg}"):
        cosign.verify_image(lay, "img", keys.read_public_key(str(DATA / "cosign.pub")))


# ---------------------------------------------------------------- CLI


def test_cli_sign_verify(lay: Layout, pair: keys.KeyFiles, tmp_path: Path) -> None:
    r = cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", IDENT, "-a", "k=v")
    assert r.code == 0, r.err
    tag = r.out.strip()
    assert tag == cosign.signature_tag(lay.lookup("v1").digest)
    r = cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", IDENT, "-a", "k=v")
    assert r.code == 0 and "already signed" in r.err
    r = cli("verify", f"{lay.path}:v1", "--key", pair.public)
    assert r.code == 0, r.err
    (doc,) = json.loads(r.out)
    assert doc["critical"]["identity"]["docker-reference"] == IDENT
    assert doc["optional"] == {"k": "v"}
    r = cli("verify", f"{lay.path}:v2", "--key", pair.public)
    assert r.code == 1 and "no signature" in r.err and r.out == ""
    other = keys.generate_key_pair(str(tmp_path / "o"), passphrase=None)
    r = cli("verify", f"{lay.path}:v1", "--key", other.public)
    assert r.code == 1 and "does not verify" in r.err and "Traceback" not in r.err
    r = cli("sign", f"{lay.path}:v1", "--key", other.private, "--identity", "x/y", "-a", "bad")
    assert r.code == 2 and "KEY=VALUE" in r.err
    r = cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", "h:1/r@sha256:12")
    assert r.code == 2
    r = cli("sign", f"{lay.path}:nope", "--key", pair.private, "--identity", IDENT)
    assert r.code == 1
    r = cli("verify", f"{lay.path}:v1", "--key", str(tmp_path / "none.pub"))
    assert r.code == 1 and "does not exist" in r.err


def test_cli_repository_identity(lay: Layout, pair: keys.KeyFiles) -> None:
    r = cli(
        "sign", f"{lay.path}:v1", "--key", pair.private, "--identity", IDENT, "--no-identity-tag"
    )
    assert r.code == 0, r.err
    r = cli("verify", f"{lay.path}:v1", "--key", pair.public)
    assert json.loads(r.out)[0]["critical"]["identity"]["docker-reference"] == (
        "127.0.0.1:5000/team/app"
    )


def test_wrong_passphrase_cli(
    lay: Layout, pair: keys.KeyFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COSIGN_PASSWORD", "wrong")
    r = cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", IDENT)
    assert r.code == 1 and "wrong passphrase" in r.err
    with pytest.raises(UsageError):
        monkeypatch.delenv("COSIGN_PASSWORD")
        keys.read_passphrase()


# ------------------------------------------------- OCI 1.1 attachments


def test_attach_and_referrers(lay: Layout, tmp_path: Path) -> None:
    from oci_tools.sign.referrers import attach, referrers, referrers_tag

    sbom = tmp_path / "sbom.spdx.json"
    sbom.write_text('{"spdxVersion": "SPDX-2.3"}')
    v1 = lay.lookup("v1")
    d = attach(lay, "v1", "application/spdx+json", str(sbom), annotations={"k": "v"})
    m = Manifest.parse(lay.read_blob(d), d.media_type)
    assert m.doc["artifactType"] == "application/spdx+json"
    assert m.subject is not None and m.subject.digest == v1.digest
    assert m.subject.size == v1.size
    assert m.config is not None and m.config.media_type == mt.OCI_EMPTY
    assert lay.read_blob(m.config) == b"{}"
    (layer,) = m.layers
    assert lay.read_blob(layer) == sbom.read_bytes()
    assert layer.annotations["org.opencontainers.image.title"] == "sbom.spdx.json"
    # the same attachment twice is listed once
    assert attach(lay, "v1", "application/spdx+json", str(sbom), annotations={"k": "v"}) == d
    sig = tmp_path / "sig.txt"
    sig.write_text("x")
    attach(lay, "v1", "text/plain", str(sig))
    digest, found = referrers(lay, "v1")
    assert digest == v1.digest and len(found) == 2
    assert found[0].artifact_type == "application/spdx+json"
    assert dict(found[0].annotations) == {"k": "v"}
    _, only = referrers(lay, "v1", artifact_type="text/plain")
    assert [f.artifact_type for f in only] == ["text/plain"]
    assert lay.lookup(referrers_tag(v1.digest)).media_type == mt.OCI_INDEX
    assert referrers(lay, "v2")[1] == []
    r = cli("referrers", f"{lay.path}:v1", "--format", "json")
    assert r.code == 0 and len(r.out.splitlines()) == 2
    r = cli("validate", lay.path)
    assert r.code == 0, r.out + r.err


def test_attach_failures(lay: Layout, tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    r = cli("attach", f"{lay.path}:v1", str(f), "--artifact-type", "notatype")
    assert r.code == 2 and "type/subtype" in r.err
    r = cli("attach", f"{lay.path}:v1", str(tmp_path / "missing"), "--artifact-type", "a/b")
    assert r.code == 2 and "cannot read" in r.err
    r = cli("attach", f"{lay.path}:nope", str(f), "--artifact-type", "a/b")
    assert r.code == 1
    r = cli("attach", f"{lay.path}:v1", str(f), "--artifact-type", "a/b", "--media-type", "x")
    assert r.code == 2
    # a referrers tag that is not an index is refused, not misread
    v1 = lay.lookup("v1")
    lay.set_ref(f"sha256-{v1.digest.encoded}", lay.lookup("v2"))
    r = cli("referrers", f"{lay.path}:v1")
    assert r.code == 1 and "must be an index" in r.err
    r = cli("attach", f"{lay.path}:v1", str(f), "--artifact-type", "a/b")
    assert r.code == 1


# ------------------------------------------------------------- archives


def test_export_import_carry_signatures(lay: Layout, pair: keys.KeyFiles, tmp_path: Path) -> None:
    plain, before = tmp_path / "plain.tar", tmp_path / "before.tar"
    assert cli("export", f"{lay.path}:v1", str(before)).code == 0
    assert cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", "ex.test/a").code == 0
    # without the flag nothing changes: the same bytes as before signing
    assert cli("export", f"{lay.path}:v1", str(plain)).code == 0
    assert plain.read_bytes() == before.read_bytes()
    signed = tmp_path / "signed.tar"
    r = cli("export", f"{lay.path}:v1", str(signed), "--include-signatures")
    assert r.code == 0, r.err
    digest = lay.lookup("v1").digest
    sig = lay.lookup(cosign.signature_tag(digest))
    # one index.json entry (skopeo's oci-archive:FILE wants exactly one), the
    # signature image's blobs beside the image's
    with tarfile.open(signed) as tf:
        names = tf.getnames()
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
    assert [m["digest"] for m in index["manifests"]] == [str(digest)]
    assert index["manifests"][0]["annotations"]["io.github.oci-tools.signatures"] == str(sig.digest)
    for d in (sig, *_sig_manifest(lay, digest).layers):
        assert f"blobs/sha256/{d.digest.encoded}" in names
    if shutil.which("skopeo"):
        p = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci-archive:{signed}"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert p.returncode == 0, p.stderr
        assert Digest.of_bytes(p.stdout.encode()) == digest
    # imported under another ref: verify passes; the signature tag came along
    assert cli("import", str(signed), f"{tmp_path}/in:x").code == 0
    r = cli("verify", f"{tmp_path}/in:x", "--key", pair.public)
    assert r.code == 0, r.err
    got = Layout.open(f"{tmp_path}/in")
    assert got.lookup(cosign.signature_tag(digest)).digest == sig.digest
    assert "io.github.oci-tools.signatures" not in got.lookup("x").annotations
    # under the archive's own name as well
    assert cli("import", str(signed), f"{tmp_path}/in2").code == 0
    assert cli("verify", f"{tmp_path}/in2:v1", "--key", pair.public).code == 0
    # the plain archive brings no signature
    assert cli("import", str(plain), f"{tmp_path}/in3:v1").code == 0
    assert cli("verify", f"{tmp_path}/in3:v1", "--key", pair.public).code == 1


def test_import_merges_carried_signatures(lay: Layout, pair: keys.KeyFiles, tmp_path: Path) -> None:
    other = keys.generate_key_pair(str(tmp_path / "o"), passphrase=b"s3cret")
    assert cli("copy", f"oci:{lay.path}:v1", f"oci:{tmp_path}/dst:v1").code == 0
    assert cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", "ex.test/a").code == 0
    r = cli("sign", f"{tmp_path}/dst:v1", "--key", other.private, "--identity", "ex.test/a")
    assert r.code == 0
    signed = tmp_path / "signed.tar"
    assert cli("export", f"{lay.path}:v1", str(signed), "--include-signatures").code == 0
    for _ in range(2):  # importing twice adds nothing
        assert cli("import", str(signed), f"{tmp_path}/dst:v1").code == 0
    for key in (pair, other):
        r = cli("verify", f"{tmp_path}/dst:v1", "--key", key.public)
        assert r.code == 0, r.err
    dst = Layout.open(f"{tmp_path}/dst")
    assert len(_sig_manifest(dst, dst.lookup("v1").digest).layers) == 2


def test_export_signatures_errors(lay: Layout, tmp_path: Path) -> None:
    r = cli("export", f"{lay.path}:v2", str(tmp_path / "a.tar"), "--include-signatures")
    assert r.code == 0 and "no signatures" in r.err
    r = cli(
        "export",
        f"{lay.path}:v2",
        str(tmp_path / "b.tar"),
        "--include-signatures",
        "--format",
        "docker-archive",
    )
    assert r.code == 2 and not (tmp_path / "b.tar").exists()
    r = cli("export", f"{lay.path}:v2", str(tmp_path / "c.tar"), "--include-signatures", "--flat")
    assert r.code == 2


def test_import_refuses_archive_missing_carried_signature(
    lay: Layout, pair: keys.KeyFiles, tmp_path: Path
) -> None:
    assert cli("sign", f"{lay.path}:v1", "--key", pair.private, "--identity", "ex.test/a").code == 0
    signed, cut = tmp_path / "signed.tar", tmp_path / "cut.tar"
    assert cli("export", f"{lay.path}:v1", str(signed), "--include-signatures").code == 0
    sig = lay.lookup(cosign.signature_tag(lay.lookup("v1").digest))
    # the same archive without the signature manifest blob
    with tarfile.open(signed) as src, tarfile.open(cut, "w") as dst:
        for m in src:
            if m.name != f"blobs/sha256/{sig.digest.encoded}":
                dst.addfile(m, src.extractfile(m) if m.isreg() else None)
    r = cli("import", str(cut), f"{tmp_path}/in:v1")
    assert r.code != 0 and "signature manifest" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "in").exists()  # the layout it would have made is gone again
