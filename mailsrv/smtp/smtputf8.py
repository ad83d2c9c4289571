"""Internationalized mail on our intake (RFC 6531 SMTPUTF8, RFC 6532 UTF-8 header fields).

A client that sees ``SMTPUTF8`` in our EHLO may add the ``SMTPUTF8``
parameter to MAIL FROM; that transaction's paths may then be UTF-8, with
non-ASCII local parts and U-label domains (:func:`mailsrv.address.parse_path`
says what they may hold), and its header fields UTF-8 (which the DATA
reader takes as they come, as it takes any 8-bit octet).  What this
module decides:

* the parameter itself (it has no value);
* the reply to a non-ASCII path in a transaction without the parameter,
  RFC 6531 3.5's ``553 5.6.7``, and to one that is not even UTF-8.

Our ``Received:`` says ``with UTF8SMTP`` for such a transaction
(:func:`mailsrv.smtp.received.with_protocol`, RFC 6531 4.3).

The envelope remembers the parameter (``Envelope.smtputf8``), so the queue
passes SMTPUTF8 on to the next server when the message needs it, and
bounces rather than send it to a server that lacks it
(:mod:`mailsrv.delivery.dialogue`).  Local delivery stores the octets as
received; IMAP and POP3 hand them out unchanged.
"""

from __future__ import annotations

from mailsrv.address import Mailbox, parse_path
from mailsrv.smtp import replies
from mailsrv.smtp.replies import Rejection


def smtputf8_param(value: str | None) -> bool:
    """The ``SMTPUTF8`` MAIL parameter: always True; 501 if it has a value (RFC 6531 3.4)."""
    if value is not None:
        raise Rejection(replies.BAD_SMTPUTF8)
    return True


def envelope_mailbox(path: bytes, utf8: bool) -> Mailbox:
    """The mailbox of a MAIL or RCPT *path* of a transaction with (*utf8*) or without SMTPUTF8.

    Raises :class:`Rejection` with ``553 5.6.7`` for a path with 8-bit
    octets when the transaction has no SMTPUTF8 (RFC 6531 3.5: non-ASCII
    addresses not permitted), and :class:`~mailsrv.address.AddressSyntaxError` (the caller's
    501) for anything else that is not an address, a path that is not
    UTF-8 included.
    """
    if not utf8 and not path.isascii():
        raise Rejection(replies.NON_ASCII_ADDRESS)
    return parse_path(path, utf8=utf8)
