"""The password schemes of a Dovecot user file, each verified with a maintained library.

A file carried over from Dovecot holds ``{SCHEME}value`` entries in any of
the schemes Dovecot writes (``doveadm pw -l``); refusing them would lock
every migrated user out.  Each scheme is parsed here into a verifier, in
Dovecot's own format:

* crypt(3) families -- ``{SHA512-CRYPT}`` ``$6$``, ``{SHA256-CRYPT}``
  ``$5$``, ``{MD5-CRYPT}`` ``$1$``, ``{BLF-CRYPT}`` ``$2y$``,
  ``{DES-CRYPT}``, and ``{CRYPT}`` (whichever of them the value is; a bare
  ``$...`` value is ``{CRYPT}``, the passwd-file default): libpass
  (``passlib``), bcrypt through the ``bcrypt`` package;
* ``{ARGON2I}``, ``{ARGON2ID}``: argon2-cffi;
* digests -- ``{SHA}``/``{SHA1}``, ``{SHA256}``, ``{SHA512}``,
  ``{PLAIN-MD5}``, ``{LDAP-MD5}`` and the salted ``{SSHA}``,
  ``{SSHA256}``, ``{SSHA512}``, ``{SMD5}`` (base64 of digest + salt):
  hashlib, because Dovecot takes a salt of any length and the ``.HEX`` /
  ``.B64`` encodings that passlib's LDAP handlers refuse;
* ``{PBKDF2}`` -- Dovecot's ``$1$salt$rounds$hex``: PBKDF2-HMAC-SHA1 over
  the salt *text*, 20 bytes (hashlib);
* ``{SCRAM-SHA-1}``, ``{SCRAM-SHA-256}`` -- ``iterations,salt,StoredKey,
  ServerKey`` (RFC 5802 3; hashlib, hmac);
* ``{PLAIN}``, ``{CLEAR}``, ``{CLEARTEXT}`` -- clear text, which the user
  file accepts only when the admin allows it (:data:`CLEARTEXT`).

Schemes that cannot be checked from a password alone (``{CRAM-MD5}``,
``{DIGEST-MD5}``, ``{OTP}``, yescrypt ``$y$`` ...) raise
:class:`UnsupportedHash` with a message naming the scheme.  Every verifier
blocks (the slow schemes for tens of milliseconds): callers on the reactor
thread use the hashing pool.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import Any, Callable, NamedTuple

from argon2 import PasswordHasher, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from passlib import hash as passlib_hash

#: Checks a password (the bytes the client sent) against one stored value.
Verifier = Callable[[bytes], bool]

#: The clear-text schemes: accepted only with ``[auth] cleartext_passwords``.
CLEARTEXT = frozenset({"PLAIN", "CLEAR", "CLEARTEXT"})

#: bcrypt reads 72 bytes of a password; Dovecot's crypt_blowfish ignored the rest.
_BCRYPT_MAX_PASSWORD = 72

#: Verifies an argon2 hash with the parameters inside it (not this hasher's own).
_ARGON2 = PasswordHasher()


class UnsupportedHash(ValueError):
    """A stored password we cannot verify; the message says why."""


class StoredHash(NamedTuple):
    """A parsed ``{SCHEME}value``."""

    #: The scheme, upper case, without an encoding suffix (``SSHA256``).
    scheme: str
    verify: Verifier


def parse(stored: str) -> StoredHash:
    """The scheme and verifier of a stored password; :class:`UnsupportedHash` if there is none."""
    if stored.startswith("$"):
        scheme, value = "CRYPT", stored  # a passwd-file's default scheme is CRYPT
    elif stored.startswith("{") and "}" in stored:
        scheme, _, value = stored[1:].partition("}")
    else:
        raise UnsupportedHash("password has no {SCHEME} prefix")
    name, dot, encoding = scheme.upper().partition(".")
    if name in _DIGESTS:
        algorithm, salted = _DIGESTS[name]
        return StoredHash(name, _digest(name, algorithm, salted, encoding if dot else None, value))
    parser = _PARSERS.get(name)
    if parser is None or dot:
        raise UnsupportedHash(f"unsupported password scheme {{{scheme}}}")
    return StoredHash(name, parser(value))


# -- crypt(3) families (libpass) --------------------------------------------


def _modular(handler: Any, max_password: int | None = None) -> Callable[[str], Verifier]:
    """A parser for one passlib handler's format; the password is cut to *max_password* bytes."""

    def parse_value(value: str) -> Verifier:
        try:
            complete = handler.from_string(value).checksum is not None  # passlib takes a salt alone too
        except ValueError as e:
            raise UnsupportedHash(f"not a {handler.name} hash: {e}") from None
        if not complete:
            raise UnsupportedHash(f"not a {handler.name} hash: it has a salt but no hash")
        return lambda password: handler.verify(password[:max_password], value)

    return parse_value


_SHA512_CRYPT = _modular(passlib_hash.sha512_crypt)
_SHA256_CRYPT = _modular(passlib_hash.sha256_crypt)
_MD5_CRYPT = _modular(passlib_hash.md5_crypt)
_BLF_CRYPT = _modular(passlib_hash.bcrypt, _BCRYPT_MAX_PASSWORD)
_DES_CRYPT = _modular(passlib_hash.des_crypt)

#: What ``{CRYPT}`` may hold, by the value's prefix (crypt(3) picks the same way).
_CRYPT_FORMATS = (("$6$", _SHA512_CRYPT), ("$5$", _SHA256_CRYPT), ("$2", _BLF_CRYPT), ("$1$", _MD5_CRYPT))


def _crypt(value: str) -> Verifier:
    for prefix, parse_value in _CRYPT_FORMATS:
        if value.startswith(prefix):
            return parse_value(value)
    if value.startswith("$"):
        raise UnsupportedHash(f"crypt format ${value.split('$')[1]}$ is not supported")
    return _DES_CRYPT(value)


def _md5(value: str) -> Verifier:
    """Dovecot's ``{MD5}``: MD5-CRYPT when it looks like one, else PLAIN-MD5."""
    if value.startswith("$1$"):
        return _MD5_CRYPT(value)
    return _digest("MD5", "md5", False, None, value)


# -- argon2 (argon2-cffi) -----------------------------------------------------


def _argon2(prefix: str) -> Callable[[str], Verifier]:
    def parse_value(value: str) -> Verifier:
        if not value.startswith(prefix):
            raise UnsupportedHash(f"hash does not start with {prefix}")
        try:
            extract_parameters(value)
        except InvalidHashError:
            raise UnsupportedHash(f"not a valid {prefix} hash") from None
        return lambda password: _argon2_verify(value, password)

    return parse_value


def _argon2_verify(value: str, password: bytes) -> bool:
    try:
        return _ARGON2.verify(value, password)
    except (VerificationError, InvalidHashError):
        return False


# -- digests, salted or not (hashlib) ---------------------------------------

#: scheme -> (hashlib algorithm, salted): the value is digest (+ salt), encoded.
_DIGESTS = {
    "SHA": ("sha1", False), "SHA1": ("sha1", False), "SHA256": ("sha256", False), "SHA512": ("sha512", False),
    "PLAIN-MD5": ("md5", False), "LDAP-MD5": ("md5", False),
    "SSHA": ("sha1", True), "SSHA256": ("sha256", True), "SSHA512": ("sha512", True), "SMD5": ("md5", True),
}


def _digest(scheme: str, algorithm: str, salted: bool, encoding: str | None, value: str) -> Verifier:
    size = hashlib.new(algorithm).digest_size
    raw = _decode(scheme, value, encoding, None if salted else size)
    if not (len(raw) > size if salted else len(raw) == size):
        raise UnsupportedHash(f"{{{scheme}}} value has {len(raw)} bytes, not a {algorithm} digest"
                              + (" and a salt" if salted else ""))
    digest, salt = raw[:size], raw[size:]
    return lambda password: hmac.compare_digest(hashlib.new(algorithm, password + salt).digest(), digest)


def _decode(scheme: str, value: str, encoding: str | None, size: int | None) -> bytes:
    """Dovecot's decoding: the ``.HEX``/``.B64`` suffix, else hex when an unsalted
    digest's length says so, else base64."""
    if encoding is None:
        encoding = "HEX" if size is not None and len(value) == 2 * size else "B64"
    try:
        if encoding == "HEX":
            return bytes.fromhex(value)
        if encoding in ("B64", "BASE64"):
            return base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise UnsupportedHash(f"{{{scheme}}} value is not valid {encoding.lower()}") from None
    raise UnsupportedHash(f"unknown encoding .{encoding} of {{{scheme}}}")


# -- PBKDF2 and SCRAM (hashlib) -----------------------------------------------


def _pbkdf2(value: str) -> Verifier:
    """Dovecot's own ``$1$salt$rounds$hex``: PBKDF2-HMAC-SHA1 over the salt as text, 20 bytes."""
    fields = value.split("$")
    try:
        if len(fields) != 5 or fields[:2] != ["", "1"] or len(fields[4]) != 40:
            raise ValueError
        salt, rounds, key = fields[2].encode("utf-8"), int(fields[3]), bytes.fromhex(fields[4])
        if rounds < 1:
            raise ValueError
    except ValueError:
        raise UnsupportedHash("{PBKDF2} value is not $1$salt$rounds$hex-key") from None
    return lambda password: hmac.compare_digest(hashlib.pbkdf2_hmac("sha1", password, salt, rounds, 20), key)


def _scram(algorithm: str) -> Callable[[str], Verifier]:
    def parse_value(value: str) -> Verifier:
        """``iterations,base64 salt,base64 StoredKey,base64 ServerKey``."""
        try:
            iterations, salt, stored_key, _ = value.split(",")
            rounds = int(iterations)
            salt_bytes, key = base64.b64decode(salt, validate=True), base64.b64decode(stored_key, validate=True)
            if rounds < 1:
                raise ValueError
        except (ValueError, binascii.Error):
            raise UnsupportedHash("SCRAM value is not iterations,salt,StoredKey,ServerKey") from None

        def verify(password: bytes) -> bool:
            # RFC 5802 3: StoredKey = H(HMAC(SaltedPassword, "Client Key"))
            salted = hashlib.pbkdf2_hmac(algorithm, password, salt_bytes, rounds)
            client_key = hmac.digest(salted, b"Client Key", algorithm)
            return hmac.compare_digest(hashlib.new(algorithm, client_key).digest(), key)

        return verify

    return parse_value


def _cleartext(value: str) -> Verifier:
    stored = value.encode("utf-8")
    return lambda password: hmac.compare_digest(stored, password)


#: Every scheme but the digests, by name.
_PARSERS: dict[str, Callable[[str], Verifier]] = {
    "SHA512-CRYPT": _SHA512_CRYPT, "SHA256-CRYPT": _SHA256_CRYPT, "MD5-CRYPT": _MD5_CRYPT,
    "BLF-CRYPT": _BLF_CRYPT, "BCRYPT": _BLF_CRYPT, "DES-CRYPT": _DES_CRYPT, "CRYPT": _crypt, "MD5": _md5,
    "ARGON2ID": _argon2("$argon2id$"), "ARGON2I": _argon2("$argon2i$"),
    "PBKDF2": _pbkdf2, "SCRAM-SHA-1": _scram("sha1"), "SCRAM-SHA-256": _scram("sha256"),
    **{name: _cleartext for name in CLEARTEXT},
}
