"""``[tls]``: the certificate every listener offers, from files or from an ACME CA.

The files are checked at start-up, as root and before twistd binds a
port, so a missing key is one line naming it rather than a failed
handshake for the first client.  The ``acme_*`` keys are read by
:mod:`mailsrv.acme`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, at_least, domain_names, setting

_VERSIONS = ("1.2", "1.3")


def _existing_file(path: str) -> str:
    if path and not os.path.isfile(path):
        raise Invalid(f"file not found: {path}")
    return path


def _url(value: str) -> str:
    if value and not value.startswith(("https://", "http://")):
        raise Invalid("must be an https:// URL (the CA's ACME directory)")
    return value


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
    key: str = setting(
        "", "PEM private key of the certificate; read at start as root, on SIGHUP and after a change as the "
        "server's user (who must then be able to read it).", _existing_file,
    )
    min_version: str = setting("1.2", 'Lowest TLS version accepted: "1.2" or "1.3".', _tls_version)
    check_interval: int = setting(
        60,
        "Seconds between looks at the cert and key files: a renewal that replaced them is served to new "
        "connections without a SIGHUP (a cert and key that do not match yet are tried again next time). 0: no look.",
        at_least(0), restart=True,
    )
    acme: bool = setting(
        False,
        "Obtain and renew the certificate from an ACME CA (RFC 8555, e.g. Let's Encrypt; true agrees to the "
        "CA's terms of service), answering HTTP-01 on [listen] http, which the CA reaches as port 80; until the "
        "first one is issued, cert and key (or the self-signed one) serve.", restart=True,
    )
    acme_directory: str = setting(
        "", 'The CA\'s ACME directory URL, e.g. "https://acme-v02.api.letsencrypt.org/directory".', _url, restart=True
    )
    acme_email: str = setting("", "Contact address given to the CA for expiry notices; \"\" gives none.", restart=True)
    acme_names: tuple[str, ...] = setting(
        (),
        "Names of the certificate; [] is the hostname plus autoconfig.<domain>, autodiscover.<domain> and "
        "mta-sts.<domain> for every local domain (each must resolve to this server).",
        domain_names, restart=True,
    )
    acme_ca_file: str = setting(
        "", "PEM CA bundle that verifies the ACME server (a private or test CA); \"\" uses the system's.",
        _existing_file, restart=True,
    )
    acme_renew_days: int = setting(
        30, "Renew when the certificate expires within this many days.", at_least(1), restart=True
    )
    acme_check_interval: int = setting(
        43200, "Seconds between checks of the certificate's expiry (and for one another process renewed).",
        at_least(1), restart=True,
    )

    def check(self) -> None:
        """A certificate without its key (or the reverse) is a half-finished edit; ACME needs its CA."""
        if bool(self.cert) != bool(self.key):
            raise Invalid("tls.cert and tls.key are set together", key="key" if self.cert else "cert")
        if self.acme and not self.acme_directory:
            raise Invalid("acme = true needs the CA's directory URL", key="acme_directory")
