"""The bounce: an RFC 3464 delivery status notification for recipients we gave up on.

One DSN per batch of failed recipients of a message, to its sender, with
the null reverse-path (RFC 5321 4.5.5), so a DSN that cannot be delivered
is never bounced in turn: the queue sends none for a null sender, and that
one rule covers both.  Its parts (RFC 6522 ``multipart/report``): a text
for people, the ``message/delivery-status`` fields machines read, and the
original header section (``text/rfc822-headers``), not the whole message:
it is what the sender needs to recognise it, and it never makes the
bounce too large to deliver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.utils import formatdate

from mailsrv.delivery.envelope import Envelope, new_queue_id
from mailsrv.delivery.queuedir import Recipient, Record
from mailsrv.message.body import Body

#: An SMTP reply: it starts with a code.
_REPLY = re.compile(r"\A[2-5][0-9]{2}(?:[ -]|\Z)")
#: The enhanced status code (RFC 3463) after the reply code, or opening our own account of a failure.
_ENHANCED = re.compile(r"\A(?:[2-5][0-9]{2}[ -])?[245]\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|\Z)")
#: RFC 3463 3.5: X.4.7, delivery time expired.
EXPIRED = "4.4.7"


def status(reply: str) -> str:
    """The ``Status:`` of a failed recipient: ``5.x.y`` from the reply's enhanced code.

    A reply without one gives ``5.0.0``; a temporary one (a recipient that
    expired while deferred) gives ``5.x.y`` of its own detail, since a
    failed recipient's status class is 5 (RFC 3464 2.3.4).
    """
    match = _ENHANCED.match(reply)
    if match is None:
        return "5.0.0"
    return f"5.{match.group(1)}.{match.group(2)}"


def _field(text: str) -> str:
    """One header line's worth of *text*: ASCII, no line breaks (a reply may have several lines)."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")


def _recipient_fields(recipient: Recipient) -> list[str]:
    """RFC 3464 2.3: the per-recipient fields of one failed recipient."""
    reply = recipient.last_error
    lines = [
        f"Final-Recipient: rfc822; {_field(recipient.address)}",
        "Action: failed",
        f"Status: {status(reply)}",
    ]
    if recipient.host:
        lines.append(f"Remote-MTA: dns; {_field(recipient.host)}")
    if _REPLY.match(reply):
        lines.append(f"Diagnostic-Code: smtp; {_field(reply)}")
    elif reply:
        lines.append(f"Diagnostic-Code: X-mailsrv; {_field(reply)}")
    return lines


def dsn(record: Record, failed: Sequence[Recipient], header: bytes, hostname: str, now: float) -> bytes:
    """The DSN for *failed* recipients of *record*, in wire form; *header* is the message's (wire form)."""
    boundary = f"{record.queue_id}/{new_queue_id()}"
    date = formatdate(now, usegmt=True)
    explained = "\r\n".join(f"<{r.address}>: {_field(r.last_error) or 'failed'}" for r in failed)
    per_recipient = "\r\n\r\n".join("\r\n".join(_recipient_fields(r)) for r in failed)
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{record.sender}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {date}\r\n"
        f"Message-ID: <{new_queue_id()}.{record.queue_id}@{hostname}>\r\n"
        "Auto-Submitted: auto-replied\r\n"  # RFC 3834 5
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        "This is a MIME-encapsulated delivery status notification.\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"This is the mail system at {hostname}.\r\n"
        "\r\n"
        "Your message could not be delivered to one or more recipients.\r\n"
        "The mail system gave up on them for the reasons below; the header\r\n"
        "of your message is attached.\r\n"
        "\r\n"
        f"{explained}\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        f"Reporting-MTA: dns; {hostname}\r\n"
        f"X-Mailsrv-Queue-ID: {record.queue_id}\r\n"
        f"Arrival-Date: {formatdate(record.queued_at, usegmt=True)}\r\n"
        "\r\n"
        f"{per_recipient}\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
    ).encode("utf-8")
    return text + header + f"\r\n--{boundary}--\r\n".encode()


def bounce_envelope(record: Record, failed: Sequence[Recipient], header: bytes, hostname: str, now: float) -> Envelope:
    """The DSN as a new message from the null sender to *record*'s sender (never call it for ``""``)."""
    assert record.sender, "a null sender gets no bounce"
    envelope = Envelope(queue_id=new_queue_id(), sender="")
    envelope.body = Body.from_wire(dsn(record, failed, header, hostname, now))
    return envelope
