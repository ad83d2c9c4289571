"""The one exception type that carries a refusal back to the client.

Policy code (address checks, parameters, delivery) raises :class:`Rejection`
with the exact reply; the protocol sends it unchanged.  It subclasses
Twisted's ``SMTPServerError`` so Twisted's own code paths would also
understand it, but keeps the text as ``str`` and encodes it in one place,
because a ``str`` reaching Twisted's ``sendCode`` raises out of
``dataReceived`` and drops the connection (TWISTED-NOTES 1).
"""

from __future__ import annotations

from twisted.mail.smtp import SMTPServerError


class Rejection(SMTPServerError):
    """A reply *code* and *text*; *text* starts with the enhanced status code (RFC 2034)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text
