"""Password hashes in Dovecot's ``{SCHEME}hash`` notation: new ones, checks, upgrades.

New hashes are Argon2id from argon2-cffi with its recommended parameters
(RFC 9106 low-memory profile), so each check deliberately costs tens of
milliseconds; callers on the reactor thread must use a worker thread.
Stored hashes may be in any scheme :mod:`.schemes` verifies (what a user
file carried over from Dovecot holds); after a successful login one that is
not Argon2id :func:`needs_rehash`, and the server replaces it when
``[auth] rehash`` is on (:mod:`.rehash`).
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher

from mailsrv.accounts.schemes import CLEARTEXT, UnsupportedHash, parse

__all__ = ["HASHER", "UnsupportedHash", "check_stored", "hash_password", "needs_rehash", "verify", "verify_unknown"]

#: The hasher for new passwords.  Tests replace it with a cheap one; the
#: parameters of a stored hash travel inside the hash, so verification of
#: existing entries is unaffected by the choice.
HASHER = PasswordHasher()

#: The scheme of :func:`hash_password`.
NEW_SCHEME = "ARGON2ID"

_dummy_hash: str | None = None


def check_stored(stored: str, allow_cleartext: bool = False) -> None:
    """Raise :class:`UnsupportedHash` unless :func:`verify` can check *stored*.

    Clear-text entries (``{PLAIN}``, ``{CLEAR}``) are refused unless
    *allow_cleartext* (``[auth] cleartext_passwords``): a user file readable
    by anyone who can read the data dir should not hold passwords as they are.
    """
    scheme = parse(stored).scheme
    if scheme in CLEARTEXT and not allow_cleartext:
        raise UnsupportedHash(f"clear-text {{{scheme}}} password refused ([auth] cleartext_passwords is off)")


def hash_password(password: str | bytes) -> str:
    """A new ``{ARGON2ID}`` entry for *password* (blocking, tens of ms)."""
    return "{" + NEW_SCHEME + "}" + HASHER.hash(password)


def verify(stored: str, password: bytes) -> bool:
    """True when *password* matches *stored* (blocking, up to tens of ms).

    A password with a NUL byte never matches: HMAC-based schemes would
    ignore trailing NULs and Dovecot's C strings end at the first one, so
    ``pw\\0junk`` could pass for ``pw``.  Nor does one a scheme cannot
    take (more than passlib's 4096 bytes).
    """
    if b"\0" in password:
        return False
    try:
        return parse(stored).verify(password)
    except ValueError:  # UnsupportedHash, or passlib refusing the password itself
        return False


def needs_rehash(stored: str) -> bool:
    """True when *stored* is not in the scheme new passwords get (so a login may upgrade it)."""
    try:
        return parse(stored).scheme != NEW_SCHEME
    except UnsupportedHash:
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
