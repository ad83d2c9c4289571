"""Whether the stored ACME certificate will do, and how long to wait after a failed order.

Pure functions of the file's bytes and a given time, so the decision is
tested with a fake clock.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

from cryptography import x509

from mailsrv.tls import PEM_CERTIFICATE

#: The first retry after a failed order; each further failure doubles it (up to the check interval).
FIRST_RETRY = 60.0


def renewal_reason(pem: bytes | None, names: Iterable[str], now: datetime.datetime,
                   renew_before: datetime.timedelta) -> str | None:
    """Why a new certificate is needed (for the log line), or ``None`` when the stored one will do.

    It will do when it names every one of *names* (IDNA A-labels, as the
    config has them) and expires later than *renew_before* after *now*.
    """
    if pem is None:
        return "there is no certificate yet"
    found = PEM_CERTIFICATE.search(pem)
    try:
        if found is None:
            raise ValueError("no certificate in the file")
        cert = x509.load_pem_x509_certificate(found.group(0))
    except ValueError:
        return "the stored certificate cannot be read"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        covered = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    except x509.ExtensionNotFound:
        covered = set()
    missing = [name for name in names if name not in covered]
    if missing:
        return f"the certificate lacks {', '.join(missing)}"
    if cert.not_valid_after_utc - renew_before <= now:
        return f"the certificate expires {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    return None


def retry_delay(failures: int, ceiling: float) -> float:
    """Seconds before the next order after *failures* failed ones in a row: doubling, at most *ceiling*."""
    return min(FIRST_RETRY * 2 ** max(failures - 1, 0), ceiling)
