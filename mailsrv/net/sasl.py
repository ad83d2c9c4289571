"""The SASL exchange (RFC 4422) as SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH all carry it.

The three protocols differ only in how a challenge is written (``334 ...``,
``+ ...``) and where an initial response goes, so each passes an ``ask``
function and the exchange itself (base64, ``*`` to cancel, ``=`` for an
empty initial response, the mechanism's own steps) is done once, here.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Awaitable, Callable, Mapping

from twisted.mail.imap4 import IllegalClientResponse

from mailsrv.net.lines import Line

#: Writes a challenge (raw octets, not yet base64) and returns the client's next line.
Ask = Callable[[bytes], Awaitable[Line]]


class SaslCancelled(Exception):
    """The client sent ``*`` (RFC 4954 4, RFC 3501 6.2.2, RFC 5034 4)."""


class SaslMalformed(Exception):
    """A response that is not base64, not what the mechanism expects, or too long."""


def decode(response: Line, initial: bool = False) -> bytes:
    """One client response line, decoded; ``=`` is empty only as an initial response."""
    if not isinstance(response, bytes):
        raise SaslMalformed("response line too long")
    if response == b"*":
        raise SaslCancelled()
    if initial and response == b"=":
        return b""  # RFC 4954 4, RFC 5034 4, RFC 4959 3
    try:
        return base64.b64decode(response, validate=True)
    except binascii.Error:
        raise SaslMalformed("response is not base64") from None


async def exchange(
    mechanisms: Mapping[bytes, Callable[[], Any]], mechanism: bytes, initial: bytes | None, ask: Ask
) -> Any:
    """Run the exchange for *mechanism* (upper case); the credentials it yields.

    Raises ``KeyError`` for a mechanism not in *mechanisms*,
    :class:`SaslCancelled` or :class:`SaslMalformed`.
    """
    credentials = mechanisms[mechanism]()
    # The first challenge is taken even when the initial response makes it
    # unnecessary: multi-step mechanisms (LOGIN) count their steps by it.
    challenge = credentials.getChallenge()
    if initial is not None:
        data = decode(initial, initial=True)
    else:
        data = decode(await ask(challenge))
    while True:
        try:
            credentials.setResponse(data)
        except (IllegalClientResponse, ValueError) as e:
            raise SaslMalformed(str(e)) from None
        if not credentials.moreChallenges():
            return credentials
        data = decode(await ask(credentials.getChallenge()))
