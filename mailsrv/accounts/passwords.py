"""Password hashes in Dovecot's ``{SCHEME}hash`` notation.

New hashes are Argon2id from argon2-cffi with its recommended parameters
(RFC 9106 low-memory profile), so each check deliberately costs tens of
milliseconds; callers on the reactor thread must use a worker thread.
Dovecot's ``{ARGON2I}`` is verified too, because a user file carried over
from Dovecot may hold it. ``{BLF-CRYPT}``/``{BCRYPT}`` would need a new
dependency, so such lines are rejected when the file is read.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

#: The hasher for new passwords.  Tests replace it with a cheap one; the
#: parameters of a stored hash travel inside the hash, so verification of
#: existing entries is unaffected by the choice.
HASHER = PasswordHasher()

#: Dovecot scheme name -> the PHC string prefix its hashes must carry.
_SCHEMES = {"ARGON2ID": "$argon2id$", "ARGON2I": "$argon2i$"}

_dummy_hash: str | None = None


class UnsupportedHash(ValueError):
    """A stored password we cannot verify; the message says why."""


def _split(stored: str) -> tuple[str, str]:
    """Split ``{SCHEME}value`` and check the scheme is one we verify."""
    if not stored.startswith("{") or "}" not in stored:
        raise UnsupportedHash("password has no {SCHEME} prefix")
    scheme, _, value = stored[1:].partition("}")
    prefix = _SCHEMES.get(scheme.upper())
    if prefix is None:
        raise UnsupportedHash(f"unsupported password scheme {{{scheme}}}")
    if not value.startswith(prefix):
        raise UnsupportedHash(f"{{{scheme}}} hash does not start with {prefix}")
    return scheme.upper(), value


def check_stored(stored: str) -> None:
    """Raise :class:`UnsupportedHash` unless :func:`verify` can check *stored*."""
    _split(stored)


def hash_password(password: str | bytes) -> str:
    """A new ``{ARGON2ID}`` entry for *password* (blocking, tens of ms)."""
    return "{ARGON2ID}" + HASHER.hash(password)


def verify(stored: str, password: bytes) -> bool:
    """True when *password* matches *stored* (blocking, tens of ms)."""
    _, value = _split(stored)
    try:
        return HASHER.verify(value, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_unknown(password: bytes) -> bool:
    """Spend what :func:`verify` costs, then fail.

    Used for addresses that have no entry, so that the time an answer takes
    does not tell an attacker which addresses exist.
    """
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = hash_password(secrets.token_bytes(16))
    verify(_dummy_hash, password)
    return False
