"""DKIM keys and signatures: ``dkim keygen``/``list``, the key ring, the signer, checked with dkimpy."""

from __future__ import annotations

import hashlib
import os
import re
import stat

import dkim
import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsrv.cli import main as cli
from mailsrv.config import Config
from mailsrv.dkim import fastrsa, keys
from mailsrv.dkim.keys import Algorithm, KeyRing
from mailsrv.dkim.signer import Signer, signed_fields
from mailsrv.message.body import BodyWriter
from mailsrv.ops import OpsError
from mailsrv.ops import dkim as ops
from support import dkim_verifies

MESSAGE = (
    b"From: Alice <alice@example.test>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
    b"Message-ID: <1@example.test>\r\nDate: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"X-Mailer: not signed\r\n\r\nSee you  at noon.  \r\n\r\n\r\n"
)
RECORD = re.compile(r'\A(?P<name>\S+)\. IN TXT (?P<strings>"[^"]{1,255}"(?: "[^"]{1,255}")*)\Z')


@pytest.fixture
def config(tmp_path):
    """A configuration whose data dir exists, as a started server's does."""
    (tmp_path / "data").mkdir()
    return Config(data_dir=str(tmp_path / "data"), domains=("example.test", "other.test"), source="mailsrv.toml")


@pytest.fixture
def signer(config):
    return Signer(KeyRing(keys.dkim_dir(config.data_dir)))


def value(record: str) -> str:
    """The TXT value of a zone-file *record*, its strings concatenated."""
    match = RECORD.match(record)
    assert match, record
    return "".join(re.findall(r'"([^"]*)"', match["strings"]))


# --- keygen and list -----------------------------------------------------------


@pytest.mark.parametrize("algorithm, tag", [(Algorithm.RSA, "rsa"), (Algorithm.ED25519, "ed25519")])
def test_keygen_writes_a_private_key_and_gives_its_record(config, algorithm, tag):
    key, path = ops.make_key(config, "Example.TEST", "s1", algorithm)
    assert path == os.path.join(config.data_dir, "dkim", "example.test", "s1.key")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key.record.startswith(f's1._domainkey.example.test. IN TXT "v=DKIM1; k={tag}; p=')
    assert value(key.record) == f"v=DKIM1; k={tag}; p={key.public}"
    assert [name for name in os.listdir(os.path.dirname(path))] == ["s1.key"]  # no temp file left


def test_a_long_rsa_record_is_split_into_strings_of_255(config):
    key, _ = ops.make_key(config, "example.test", "s1")
    strings = re.findall(r'"([^"]*)"', key.record)
    assert len(strings) == 2 and len(strings[0]) == 255  # RSA-2048's p= is about 400 characters


def test_the_default_selector_is_dated(config):
    key, _ = ops.make_key(config, "example.test", algorithm=Algorithm.ED25519)
    assert re.fullmatch(r"mailsrv20\d\d(0[1-9]|1[0-2])", key.selector)


def test_keygen_refuses_an_existing_selector_and_keeps_its_key(config):
    _, path = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    before = open(path, "rb").read()
    with pytest.raises(OpsError, match="example.test already has a key with selector s1"):
        ops.make_key(config, "example.test", "S1", Algorithm.ED25519)
    assert open(path, "rb").read() == before
    assert os.listdir(os.path.dirname(path)) == ["s1.key"]


@pytest.mark.parametrize("domain, selector, message", [
    ("example.org", "s1", "domain example.org is not a local domain (domains in mailsrv.toml"),
    ("bad domain", "s1", "not a domain name: 'bad domain'"),
    ("example.test", "../x", "bad selector '../x'"),
    ("example.test", "a.b", "bad selector 'a.b'"),
])
def test_keygen_refusals_say_why(config, domain, selector, message):
    with pytest.raises(OpsError) as e:
        ops.make_key(config, domain, selector)
    assert str(e.value).startswith(message)
    assert not os.path.exists(keys.dkim_dir(config.data_dir))


def test_cli_keygen_prints_the_record_alone_on_stdout_then_list_shows_it(config, tmp_path, capsys):
    config_file = tmp_path / "mailsrv.toml"
    config_file.write_text(f'data_dir = "{config.data_dir}"\ndomains = ["example.test"]\n')
    assert cli.main(["--config", str(config_file), "dkim", "keygen", "example.test", "--selector", "s1"]) == 0
    out, err = capsys.readouterr()
    [record], done = out.splitlines(), err.strip()
    assert done == f"made DKIM key s1._domainkey.example.test ({config.data_dir}/dkim/example.test/s1.key)"
    assert RECORD.match(record) and record.startswith('s1._domainkey.example.test. IN TXT "v=DKIM1; k=rsa; p=')
    assert cli.main(["--config", str(config_file), "dkim", "keygen", "example.test", "--selector", "s2",
                     "--algorithm", "ed25519"]) == 0
    [ed_record] = capsys.readouterr().out.splitlines()
    assert cli.main(["--config", str(config_file), "dkim", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1::2] == [record, ed_record]
    assert re.fullmatch(r"; example.test selector s1: rsa, made 20\d\d-\d\d-\d\d", lines[0])
    assert re.fullmatch(r"; example.test selector s2: ed25519, made 20\d\d-\d\d-\d\d", lines[2])
    assert cli.main(["--config", str(config_file), "dkim", "keygen", "example.test", "--selector", "s1"]) == 1
    assert "already has a key" in capsys.readouterr().err


# --- signing ------------------------------------------------------------------


def body_of(message: bytes, threshold: int, spool_dir: str = ""):
    writer = BodyWriter(spool_dir, threshold)
    writer.write(message)
    return writer.finish()


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_a_signature_verifies_relaxed_relaxed(config, signer, algorithm):
    key, _ = ops.make_key(config, "example.test", "s1", algorithm)
    signature = signer.sign(MESSAGE, "example.test")
    assert re.search(rb"\bc=relaxed/relaxed;", signature) and re.search(rb"\bd=example\.test;", signature)
    assert dkim_verifies(signature + MESSAGE, key.record)
    # relaxed: whitespace changes a relay may make keep it valid (RFC 6376 3.4.2, 3.4.4)
    refolded = MESSAGE.replace(b"Subject: lunch", b"subject:\r\n  lunch ").replace(b"noon.  \r\n\r\n\r\n", b"noon.\r\n")
    assert dkim_verifies(signature + refolded, key.record)
    assert not dkim_verifies(signature + MESSAGE.replace(b"noon", b"one"), key.record)


def test_the_listed_fields_are_signed_and_from_once_more(config, signer):
    ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    signature = signer.sign(MESSAGE, "example.test")
    unfolded = re.sub(rb"\r\n[ \t]+", b" ", signature)
    h = re.search(rb"\bh=([^;]*);", unfolded)[1].replace(b" ", b"").split(b":")
    assert h == [b"from", b"to", b"subject", b"date", b"message-id", b"from"]
    assert signed_fields(b"From: a@b\r\nCc: x\r\nCC: y\r\nContent-Type: text/plain\r\n") == [
        b"from", b"cc", b"cc", b"content-type", b"from"]


@pytest.mark.parametrize("where", ["top", "bottom"])
def test_an_added_from_breaks_the_signature(config, signer, where):
    # RFC 6376 8.15: a second From slipped in fails.  dkimpy's verifier guards against
    # that on its own as well; that *we* oversign is what the h= test above shows,
    # for verifiers that do not.
    key, _ = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    signature = signer.sign(MESSAGE, "example.test")
    evil = b"From: ceo@example.test\r\n"
    forged = evil + MESSAGE if where == "top" else MESSAGE.replace(b"\r\n\r\n", b"\r\n" + evil + b"\r\n", 1)
    assert not dkim_verifies(signature + forged, key.record)


def test_no_key_no_signature(config, signer):
    ops.make_key(config, "other.test", "s1", Algorithm.ED25519)
    assert signer.sign(MESSAGE, "example.test") is None
    assert signer.sign_body(body_of(MESSAGE, 1 << 20)) is None


def test_every_key_signs_the_newest_on_top(config, signer):
    made = [ops.make_key(config, "example.test", selector, algorithm)
            for selector, algorithm in (("old", Algorithm.RSA), ("new", Algorithm.RSA), ("ed", Algorithm.ED25519))]
    for when, (_, path) in enumerate(made, 1):  # the order they were made in, whatever the clock's resolution
        os.utime(path, ns=(when * 10**18, when * 10**18))
    signatures = signer.sign(MESSAGE, "Example.TEST")
    assert re.findall(rb"\bs=([^;]+);", signatures) == [b"ed", b"new", b"old"]
    fields = re.split(rb"(?=DKIM-Signature:)", signatures)[1:]
    for field, (key, _) in zip(fields, reversed(made)):
        assert dkim_verifies(field + MESSAGE, key.record)  # dkimpy checks the top one of what it is given
    assert [k.selector for k in ops.list_keys(config)] == ["old", "new", "ed"]


def test_a_spooled_body_is_signed_as_its_from_domain(config, signer, tmp_path):
    key, _ = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    big = MESSAGE.replace(b"See you", b"line of text\r\n" * 5000)
    body = body_of(big, 64, str(tmp_path / "spool"))
    assert not body.in_memory
    signature = signer.sign_body(body)
    assert dkim_verifies(signature + big, key.record)


def test_a_key_made_while_running_signs_the_next_message(config, signer):
    assert signer.sign_body(body_of(MESSAGE, 1 << 20)) is None  # looked up: no key yet, and that is cached
    key, _ = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    signature = signer.sign_body(body_of(MESSAGE, 1 << 20))
    assert dkim_verifies(signature + MESSAGE, key.record)


def test_an_unusable_key_file_is_skipped(config, signer):
    key, path = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    with open(os.path.join(os.path.dirname(path), "s2.key"), "wb") as f:
        f.write(b"not a key")
    assert [k.selector for k in KeyRing(keys.dkim_dir(config.data_dir)).keys("example.test")] == ["s1"]
    assert dkim_verifies(signer.sign(MESSAGE, "example.test") + MESSAGE, key.record)


def test_a_message_without_from_is_not_signed(config, signer):
    ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    assert signer.sign(b"Subject: x\r\n\r\nhi\r\n", "example.test") is None
    assert signer.sign_body(body_of(b"From: bad address\r\n\r\nhi\r\n", 1 << 20)) is None


def test_an_unreadable_key_directory_keeps_the_keys_read_before(config, signer, monkeypatch):
    key, _ = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    assert signer.sign(MESSAGE, "example.test")

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(keys.FileStamp, "of", denied)
    assert dkim_verifies(signer.sign(MESSAGE, "example.test") + MESSAGE, key.record)
    assert signer.sign(MESSAGE, "other.test") is None  # never read: no keys, and no exception


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another uid needs root")
def test_keys_made_as_root_are_handed_to_the_server_user(config):
    from mailsrv.tap import prepare_data_dir

    _, path = ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    prepare_data_dir(config, 65534, 65534)
    for made in (keys.dkim_dir(config.data_dir), os.path.dirname(path), path):
        assert (os.stat(made).st_uid, os.stat(made).st_gid) == (65534, 65534), made


# -- RSA through OpenSSL ---------------------------------------------------------


@pytest.mark.parametrize("name", ["sha256", "sha1"])
def test_openssl_rsa_signs_exactly_as_dkimpy_does(name):
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    key = dkim.crypto.parse_pem_private_key(pem)
    digest = hashlib.new(name, b"v=1; a=rsa-sha256; d=example.test; s=s1; h=from:from; b=")
    assert fastrsa.sign(digest, key) == dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest, key)


@pytest.mark.parametrize("name", ["sha256", "sha1"])
def test_openssl_rsa_verifies_as_dkimpy_does(name):
    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    key = dkim.crypto.parse_pem_private_key(pem)
    public = {"modulus": key["modulus"], "publicExponent": key["publicExponent"]}
    digest = hashlib.new(name, b"v=1; a=rsa-sha256; d=example.test; s=s1; h=from:from; b=")
    signature = dkim.crypto.RSASSA_PKCS1_v1_5_sign(digest, key)
    other = hashlib.new(name, b"something else")
    for checked, sig in ((digest, signature), (other, signature), (digest, signature[:-1]), (digest, b"")):
        assert fastrsa.verify(checked, sig, public) == dkim.crypto.RSASSA_PKCS1_v1_5_verify(checked, sig, public)
    assert fastrsa.verify(digest, signature, public) is True


def test_a_signer_makes_dkimpy_sign_rsa_through_openssl(config):
    Signer(KeyRing(keys.dkim_dir(config.data_dir)))
    assert dkim.RSASSA_PKCS1_v1_5_sign is fastrsa.sign
