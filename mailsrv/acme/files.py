"""The ACME state under ``<data_dir>/acme/``, shared by every process of one data dir.

``account.key``
    the account's private key (PEM), made at the first order; the CA knows
    the account by it, so keep it with the data dir.
``certificate.pem``
    the certificate's private key followed by its full chain, in *one*
    file: a single rename replaces both, so no reader ever pairs a new
    certificate with the old key.  ``[tls] cert`` and ``key`` may both name
    it for another program.
``certificate.pem.lock``
    held (``flock``, without waiting) by the one process that orders; the
    others skip the order and read the file it writes.

Both files are 0600 and replaced durably (:func:`mailsrv.store.files.replace_file`).
Everything here blocks: it runs in the ACME thread.
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailsrv.store.files import locked, replace_file


def new_key() -> bytes:
    """A fresh ECDSA P-256 private key as PKCS#8 PEM (instant to make, accepted by every CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


class AcmeFiles:
    """The files of one ACME directory (see the module docstring)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.account_key_path = os.path.join(directory, "account.key")
        self.certificate_path = os.path.join(directory, "certificate.pem")

    @contextlib.contextmanager
    def ordering(self) -> Iterator[None]:
        """Hold the order lock; :class:`BlockingIOError` when another process holds it."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        with locked(self.certificate_path, wait=False):
            yield

    def account_key(self) -> bytes:
        """The account key, made and stored the first time (call it holding :meth:`ordering`)."""
        try:
            with open(self.account_key_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            pem = new_key()
            replace_file(self.account_key_path, pem)
            return pem

    def certificate(self) -> bytes | None:
        """The stored key and chain, ``None`` before the first order."""
        try:
            with open(self.certificate_path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def store_certificate(self, key_pem: bytes, chain_pem: bytes) -> None:
        """Replace the stored certificate by *chain_pem* and its key, in one rename."""
        replace_file(self.certificate_path, key_pem.rstrip(b"\n") + b"\n" + chain_pem)
