"""What one SMTP connection has learnt about its client.

The protocol updates it; the delivery policy and the trace header read it.
Kept apart from both so neither needs the other to know the connection.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Session:
    """Per-connection facts. ``kind`` is ``smtp``, ``submission`` or ``submissions``."""

    kind: str
    client_ip: str = ""
    helo: str | None = None
    esmtp: bool = False
    #: TLS is active (implicit, or after STARTTLS).
    tls: bool = False
    #: ``TLSv1.3 with cipher ...`` when the TLS library can tell us.
    tls_details: str | None = None
    #: Canonical address of the authenticated user, None before AUTH.
    user: str | None = None

    @property
    def is_submission(self) -> bool:
        """Submission kinds need AUTH before MAIL (RFC 6409 4.3)."""
        return self.kind != "smtp"

    def forget_client(self) -> None:
        """RFC 3207 4.2: after STARTTLS, discard everything the client told us."""
        self.helo = None
        self.esmtp = False
        self.user = None
