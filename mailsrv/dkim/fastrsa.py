"""dkimpy's RSA steps, signing and verifying, done by OpenSSL (through ``cryptography``) instead of Python integers.

dkimpy computes RSASSA-PKCS1-v1_5 (RFC 8017 8.2.1) with Python's ``pow``:
about 6.4 ms of CPU for a 2048-bit key, all of it holding the GIL, so each
signature stalls the reactor thread that long however many signing
threads there are.  OpenSSL makes the same signature (the scheme is
deterministic: the octets are identical) in about 0.3 ms.

dkimpy has no hook for its RSA primitive; it calls the module-level name
``dkim.RSASSA_PKCS1_v1_5_sign`` with a hash object (``.name``,
``.digest()``) and the key as the dict of integers its ASN.1 reader made.
:func:`install` points that name at :func:`sign`, which builds the
``cryptography`` key from those integers once per key and signs the
digest as prehashed; ``dkim.RSASSA_PKCS1_v1_5_verify`` likewise becomes
:func:`verify` (dkimpy's takes about 1 ms per inbound signature, most of
it turning integers into octets).  Everything else -- canonicalization, the header
list, the tag list -- stays dkimpy's.  The test suite checks that the
signature equals dkimpy's own and verifies.
"""

from __future__ import annotations

import functools
from typing import Any

import dkim
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def sign(hash: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's ``RSASSA_PKCS1_v1_5_sign(hash, private_key)``, computed by OpenSSL."""
    algorithm = _HASHES[hash.name.lower()]()
    key = _key(*(private_key[name] for name in (
        "modulus", "publicExponent", "privateExponent", "prime1", "prime2", "exponent1", "exponent2", "coefficient",
    )))
    try:
        return key.sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    except ValueError as e:  # a modulus too small for the digest, as dkimpy reports it
        raise dkim.DigestTooLargeError() from e


def verify(hash: Any, signature: bytes, public_key: dict[str, int]) -> bool:
    """dkimpy's ``RSASSA_PKCS1_v1_5_verify(hash, signature, public_key)``, checked by OpenSSL."""
    algorithm = _HASHES[hash.name.lower()]()
    key = _public_key(public_key["modulus"], public_key["publicExponent"])
    try:
        key.verify(signature, hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm))
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=256)
def _public_key(n: int, e: int) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(e, n).public_key()


@functools.lru_cache(maxsize=64)
def _key(n: int, e: int, d: int, p: int, q: int, dmp1: int, dmq1: int, iqmp: int) -> rsa.RSAPrivateKey:
    return rsa.RSAPrivateNumbers(p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)).private_key()


def install() -> None:
    """Make dkimpy sign RSA through :func:`sign` and verify through :func:`verify` (idempotent)."""
    dkim.RSASSA_PKCS1_v1_5_sign = sign
    dkim.RSASSA_PKCS1_v1_5_verify = verify
