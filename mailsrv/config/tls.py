"""``[tls]``: the certificate every listener offers.

The files are checked at start-up, as root and before twistd binds a
port, so a missing key is one line naming it rather than a failed
handshake for the first client.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, setting

_VERSIONS = ("1.2", "1.3")


def _existing_file(path: str) -> str:
    if path and not os.path.isfile(path):
        raise Invalid(f"file not found: {path}")
    return path


def _tls_version(version: str) -> str:
    if version not in _VERSIONS:
        raise Invalid("must be " + " or ".join(f'"{v}"' for v in _VERSIONS))
    return version


@dataclass(frozen=True)
class TLSConfig(Table):
    """Certificate and key files; both empty means a generated self-signed pair."""

    DOC = "The certificate for STARTTLS, STLS and the implicit-TLS listeners."

    cert: str = setting(
        "",
        "PEM certificate (full chain). Leave cert and key empty to use a self-signed certificate "
        "generated into <data_dir>/tls/ on first start.",
        _existing_file,
    )
    key: str = setting("", "PEM private key of the certificate; read at start, as root.", _existing_file)
    min_version: str = setting("1.2", 'Lowest TLS version accepted: "1.2" or "1.3".', _tls_version)

    def check(self) -> None:
        """A certificate without its key (or the reverse) is a half-finished edit."""
        if bool(self.cert) != bool(self.key):
            raise Invalid("tls.cert and tls.key are set together", key="key" if self.cert else "cert")
