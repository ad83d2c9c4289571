"""Dovecot's password schemes (issue 6: "Migrating from Dovecot resets every password").

The fixed vectors were made by Dovecot 2.3.19's ``doveadm pw -s SCHEME -p
'pässword 1'``, so the test runs everywhere; where ``doveadm`` is installed,
:func:`test_fresh_doveadm_hashes_verify` makes new ones and checks the other
direction too (Dovecot verifies our Argon2id hashes).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from mailsrv.accounts import passwords, users

PASSWORD = "pässword 1".encode()

#: ``doveadm pw -s SCHEME -p 'pässword 1'``, one per scheme Dovecot writes that a password alone verifies.
DOVEADM = {
    "SHA512-CRYPT": "{SHA512-CRYPT}$6$adbWzhVskSTENXfL$nBlesc5Pus4n7Ng.CQRtUTOCpwrsKCpaDX.caF0gN6GXOuHj/M3NnHZP0q"
                    "ImSslU8VY/U1QoR6aEgS/y/yynX/",
    "SHA512-CRYPT rounds": "{SHA512-CRYPT}$6$rounds=10000$KE2UP8qfYp9UYJ37$VAOml5sHcCQ/3cgd0F/ozCxAtp/eN6kT2dQNBH"
                           "rMxKjbzjnQfsUD.FtrfoIwcU4c/b5KN9Buo2QHt7d33/l.y.",
    "SHA256-CRYPT": "{SHA256-CRYPT}$5$53ArpYrNmeRJdVxO$eOsSPpxZDpKjJ9znr9f6Ke2uQvLzDShKOyqg6Z0iiQA",
    "BLF-CRYPT": "{BLF-CRYPT}$2y$05$a8.YOsjAL9kTUt1oRAPEguyfFqvTaszZxXI6iO0bIMYfoosC6d8fG",
    "MD5-CRYPT": "{MD5-CRYPT}$1$IiBemI3e$dicBRc8sB1NnM/PaNMtwJ0",
    "MD5": "{MD5}$1$9leYsu5H$6e1j7M0t7aCDLcQmLiSUi1",
    "CRYPT": "{CRYPT}$2y$05$RGHbQZI16Ap8h695CSnZqOZlc7u4ojD7MROLzpDVFPg.3hzCzb6fy",
    "DES-CRYPT": "{DES-CRYPT}5CUYMr8SwCB.M",
    "SSHA": "{SSHA}redyeCXqiFobQlgvPyJiHzMI71rQWK3p",
    "SSHA256": "{SSHA256}wYDuH5XRQ/zv/YMBa6hoKRtsONpuMorrnXXWrmdKFyF6LMIA",
    "SSHA256.HEX": "{SSHA256.HEX}b5bcbd7ca72681519cf968c03e3c75e6d741843ce462eeed84917bba9a01776343e3715c",
    "SSHA512": "{SSHA512}My55uoIfSNTponW/PL1mxZJLwtPZR4NtcR4RHtPoyfvPX1PJ0Hs5lfS71N8xKX7kZ2tpGysOv6Iv6/su7BPXSY3DmfA=",
    "SMD5": "{SMD5}jysUF0k0+IsaOmsIBQinkggXduA=",
    "SHA": "{SHA}wBFJYYjnh5eS5Eft5JORpd7Gkko=",
    "SHA256": "{SHA256}f7RERuWhObO3oHciFhtpNCnGhD0FNBL7CyE3AkK4vbA=",
    "SHA256.HEX": "{SHA256.HEX}7fb44446e5a139b3b7a07722161b693429c6843d053412fb0b21370242b8bdb0",
    "SHA512": "{SHA512}CKWQ1bFe+6HuV0fkV78KrhRH5bOjFVbkHBnd8vTWw2lc3YVFx8X2I6wtGQoVpZVuVsftC++RLO5GPIvd7H4Lyg==",
    "PLAIN-MD5": "{PLAIN-MD5}ee0a0fa09df7c1e10c13c2792a1c5fba",
    "PLAIN-MD5.B64": "{PLAIN-MD5.B64}7goPoJ33weEME8J5Khxfug==",
    "LDAP-MD5": "{LDAP-MD5}7goPoJ33weEME8J5Khxfug==",
    "PBKDF2": "{PBKDF2}$1$xUyvDEpbuuLyCXA.$5000$51d6301514ecf1b2b1ed08419af8259b04fd7981",
    "ARGON2I": "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$Yn8J5mM1djFwRteD6wtrhw$31lFp7pRv+MRJDCJGfIy3V30OGtULpuJ6kJkaVtphsM",
    "ARGON2ID": "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$F5HvyP5uaLiDEsXLi+wZIA$NiW92A3SZA8XnbO6EXmdRm+MrmhL8/RV+hZ/b1"
                "4OBpU",
    "SCRAM-SHA-1": "{SCRAM-SHA-1}4096,nRlMeVr+X+Mkrkn2a2G+Ug==,eFhk5PtrBDeIblmeTc9qcxJRMdY=,/JUMzjwVzgGPBP2ubm0ZDcQ7LTY=",
    "SCRAM-SHA-256": "{SCRAM-SHA-256}4096,Ft5ltJFzR/5cKIZOdlDnyw==,PSmF/QDbQKD/d/gZRW31NL0jYIzz5eIduCEiFKJtH6g=,"
                     "Ok2HY4RjcbMJFzqOCYX0pr4/gAFEa+70Vv22JvS4dc8=",
}

#: Schemes ``doveadm pw`` can make whose hashes we verify (the test below makes fresh ones).
LIVE_SCHEMES = sorted({name.split()[0] for name in DOVEADM} | {"SHA1", "CLEAR", "PLAIN"})


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch):
    """Argon2 at its cheapest for new hashes; stored ones carry their own parameters."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher.from_parameters(CHEAPEST))


@pytest.mark.parametrize("name", sorted(DOVEADM))
def test_dovecot_hashes_verify(name):
    stored = DOVEADM[name]
    passwords.check_stored(stored)
    assert passwords.verify(stored, PASSWORD)
    assert not passwords.verify(stored, b"P\xc3\xa4ssword 1")  # DES-CRYPT reads 8 bytes: differ early
    assert not passwords.verify(stored, b"")
    assert passwords.needs_rehash(stored) is (name != "ARGON2ID")


def test_a_migrated_user_file_loses_no_user(logged):
    text = "".join(f"u{n}@example.test:{stored}:1000:1000::/home/u{n}::\n" for n, stored in enumerate(DOVEADM.values()))
    assert len(users.parse(text, "users")) == len(DOVEADM)
    assert logged == []


def test_a_bare_crypt_value_is_crypt_as_in_a_dovecot_passwd_file():
    stored = DOVEADM["SHA512-CRYPT"].removeprefix("{SHA512-CRYPT}")
    passwords.check_stored(stored)
    assert passwords.verify(stored, PASSWORD) and not passwords.verify(stored, b"wrong")


def test_salted_digests_take_any_salt_length():
    """Dovecot writes 4-byte salts but reads any length; other tools wrote 8, 16 or 32."""
    for algorithm, scheme in (("sha1", "SSHA"), ("sha256", "SSHA256"), ("sha512", "SSHA512"), ("md5", "SMD5")):
        for salt in (b"s", os.urandom(32)):
            raw = hashlib.new(algorithm, PASSWORD + salt).digest() + salt
            stored = "{" + scheme + "}" + base64.b64encode(raw).decode()
            assert passwords.verify(stored, PASSWORD) and not passwords.verify(stored, b"wrong"), (scheme, salt)
            assert passwords.verify("{" + scheme + ".HEX}" + raw.hex(), PASSWORD)


def test_bcrypt_reads_72_bytes_as_dovecot_did():
    """``doveadm pw -s BLF-CRYPT`` of 80 x's: crypt_blowfish hashed the first 72."""
    stored = "{BLF-CRYPT}$2y$05$aC4WBcRBMSLcfMH050tMr.3W8xSXRmiCfckIaA.O/AxdlHHVlsHYq"
    assert passwords.verify(stored, b"x" * 80) and passwords.verify(stored, b"x" * 72)
    assert not passwords.verify(stored, b"x" * 71)


@pytest.mark.parametrize(
    "password", [PASSWORD + b"\0", PASSWORD + b"\0junk", b"\0", b"x" * 10_000], ids=["NUL", "NUL+", "only NUL", "10 kB"]
)
def test_passwords_a_scheme_cannot_take_simply_fail(password):
    """No traceback, no match: HMAC-based schemes would ignore a trailing NUL, C-string ones what follows it."""
    for stored in DOVEADM.values():
        assert passwords.verify(stored, password) is False


@pytest.mark.parametrize(
    "stored, message",
    [
        ("{CRAM-MD5}80aec1449634d113e46324e5809848338c28256a7d6da9b7914aa2ece45e4479", "unsupported password scheme {CRAM-MD5}"),
        ("{DIGEST-MD5}2f6a8b4e4d0a5e1c3b7f9d2a6c8e0b1d", "unsupported password scheme {DIGEST-MD5}"),
        ("{CRYPT}$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7", "crypt format $y$"),
        ("{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu", "not a bcrypt hash: it has a salt but no hash"),
        ("{SHA512-CRYPT}$6$saltsalt", "not a sha512_crypt hash: it has a salt but no hash"),
        ("{SSHA}" + base64.b64encode(b"x" * 20).decode(), "{SSHA} value has 20 bytes"),
        ("{SHA256}c2hvcnQ=", "{SHA256} value has 5 bytes"),
        ("{SHA.XYZ}abc", "unknown encoding .XYZ of {SHA}"),
        ("{SSHA}not base64!", "{SSHA} value is not valid b64"),
        ("{PBKDF2}$1$salt$0$51d6301514ecf1b2b1ed08419af8259b04fd7981", "{PBKDF2} value is not $1$salt$rounds$hex-key"),
        ("{SCRAM-SHA-256}4096,salt", "SCRAM value is not"),
        ("{ARGON2ID}$argon2i$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "hash does not start with $argon2id$"),
        ("{ARGON2ID}$argon2id$v=19$x", "not a valid $argon2id$ hash"),
        ("{PLAIN.HEX}616263", "unsupported password scheme {PLAIN.HEX}"),
        ("nohash", "password has no {SCHEME} prefix"),
    ],
)
def test_what_cannot_be_verified_is_refused_naming_why(stored, message):
    with pytest.raises(passwords.UnsupportedHash) as e:
        passwords.check_stored(stored, allow_cleartext=True)
    assert str(e.value).startswith(message)
    assert passwords.verify(stored, PASSWORD) is False
    assert passwords.needs_rehash(stored) is False


@pytest.mark.parametrize("scheme", ["PLAIN", "CLEAR", "CLEARTEXT"])
def test_cleartext_only_when_allowed(scheme, logged):
    stored = "{" + scheme + "}pässword 1"
    with pytest.raises(passwords.UnsupportedHash, match=r"clear-text .* refused \(\[auth\] cleartext_passwords is off\)"):
        passwords.check_stored(stored)
    passwords.check_stored(stored, allow_cleartext=True)
    assert passwords.verify(stored, PASSWORD) and not passwords.verify(stored, b"p\xc3\xa4ssword")
    assert passwords.needs_rehash(stored)
    line = f"alice@example.test:{stored}\n"
    assert users.parse(line, "users") == {}
    assert logged == [f"users:1: clear-text {{{scheme}}} password refused ([auth] cleartext_passwords is off); line ignored"]
    assert users.parse(line, "users", allow_cleartext=True) == {"alice@example.test": stored}


def test_new_hashes_need_no_rehash():
    stored = passwords.hash_password("pw")
    assert stored.startswith("{ARGON2ID}$argon2id$") and not passwords.needs_rehash(stored)


def _doveadm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["doveadm", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("doveadm") is None, reason="doveadm (Debian: dovecot-core) is not installed")
@pytest.mark.parametrize("scheme", LIVE_SCHEMES)
def test_fresh_doveadm_hashes_verify(scheme):
    password = "fresh " + os.urandom(6).hex()
    made = _doveadm("pw", "-s", scheme, "-p", password)
    assert made.returncode == 0, made.stderr
    stored = made.stdout.strip()
    passwords.check_stored(stored, allow_cleartext=True)
    assert passwords.verify(stored, password.encode())
    assert not passwords.verify(stored, b"F" + password.encode()[1:])


@pytest.mark.skipif(shutil.which("doveadm") is None, reason="doveadm (Debian: dovecot-core) is not installed")
def test_dovecot_verifies_our_hashes():
    """The file stays usable by Dovecot: what ``mailsrv user add`` writes, ``doveadm pw -t`` accepts."""
    monkey_free = PasswordHasher()  # the real parameters, not the test's cheapest
    stored = "{ARGON2ID}" + monkey_free.hash("pässword 1")
    assert _doveadm("pw", "-t", stored, "-p", "pässword 1").returncode == 0
    assert _doveadm("pw", "-t", stored, "-p", "pässword 2").returncode != 0
