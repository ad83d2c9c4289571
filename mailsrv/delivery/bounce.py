"""Delivery status notifications (RFC 3464): bounces, delay warnings and success reports.

One DSN per batch of recipients of a message and per :class:`Action`, to
its sender, with the null reverse-path (RFC 5321 4.5.5), so a DSN that
cannot be delivered is never bounced in turn: the queue sends none for a
null sender, and that one rule covers both.  Which recipients are reported
at all is the sender's choice (RFC 3461 NOTIFY, :mod:`.dsnrequest`), made
by the callers.  Its parts (RFC 6522 ``multipart/report``): a text for
people, the ``message/delivery-status`` fields machines read, and the
original header section (``text/rfc822-headers``); the whole message
(``message/rfc822``) only in a failure report the sender asked for with
``RET=FULL`` (RFC 3461 4.3), and never for a REQUIRETLS message, whose
report goes out under REQUIRETLS itself (RFC 8689 5).  The header alone is
what the sender needs to recognise the message, and it never makes the
report too large to deliver.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from email.utils import formatdate

from mailsrv.delivery import dsnrequest
from mailsrv.delivery.envelope import Envelope, new_queue_id
from mailsrv.delivery.queuedir import Recipient, Record
from mailsrv.message.body import Body, BodyType

#: An SMTP reply: it starts with a code.
_REPLY = re.compile(r"\A[2-5][0-9]{2}(?:[ -]|\Z)")
#: The enhanced status code (RFC 3463) after the reply code, or opening our own account of a failure.
_ENHANCED = re.compile(r"\A(?:[2-5][0-9]{2}[ -])?[245]\.([0-9]{1,3})\.([0-9]{1,3})(?=\s|\Z)")
#: RFC 3463 3.5: X.4.7, delivery time expired.
EXPIRED = "4.4.7"


class Action(enum.Enum):
    """RFC 3464 2.3.3: what a DSN reports of its recipients; one report covers one action."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    #: Delivered to an alias that passed it on to several addresses: not final, failures may follow.
    EXPANDED = "expanded"

    @property
    def status_class(self) -> str:
        """RFC 3463 2: failures are 5, delays 4, successes 2."""
        return {Action.FAILED: "5", Action.DELAYED: "4"}.get(self, "2")


#: Subject and the text for people, per action (``{attached}``: what the third part holds).
_WORDING = {
    Action.FAILED: ("Undelivered Mail Returned to Sender",
                    "Your message could not be delivered to one or more recipients.\r\n"
                    "The mail system gave up on them for the reasons below; {attached}\r\n"
                    "of your message is attached."),
    Action.DELAYED: ("Delayed Mail (still being retried)",
                     "Your message has not been delivered yet to the recipients below.\r\n"
                     "The mail system keeps trying; you need not send it again. This is\r\n"
                     "only a warning: you will hear again only if it gives up."),
    Action.DELIVERED: ("Successful Mail Delivery Report",
                       "Your message was delivered to the mailboxes of the recipients below."),
    Action.RELAYED: ("Successful Mail Delivery Report",
                     "Your message was handed on for the recipients below to a mail server\r\n"
                     "that sends no delivery reports: no further report will come."),
    Action.EXPANDED: ("Successful Mail Delivery Report",
                      "Your message was delivered to the addresses below, which pass it on\r\n"
                      "to several others. You will hear again only if one of those fails."),
}


def status(reply: str, status_class: str = "5") -> str:
    """The ``Status:`` of a recipient: ``C.x.y`` of *status_class* from the reply's enhanced code.

    A reply without one gives ``C.0.0``; a temporary one (a recipient that
    expired while deferred) gives ``5.x.y`` of its own detail, since a
    failed recipient's status class is 5 (RFC 3464 2.3.4).
    """
    match = _ENHANCED.match(reply)
    if match is None:
        return f"{status_class}.0.0"
    return f"{status_class}.{match.group(1)}.{match.group(2)}"


def _field(text: str) -> str:
    """One header line's worth of *text*: ASCII, no line breaks (a reply may have several lines)."""
    flat = " ".join(text.split())
    return flat.encode("ascii", "replace").decode("ascii")


def _final(address: str) -> str:
    """``Final-Recipient``'s value: ``rfc822;`` or, for a UTF-8 address, RFC 6533 3's ``utf-8;`` xtext
    form, as message/delivery-status holds ASCII only."""
    if address.isascii():
        return f"rfc822; {_field(address)}"
    return f"{dsnrequest.UTF8_TYPE}; {dsnrequest.encode_utf8_addr(address)}"


def _original(orcpt: str) -> str:
    """``Original-Recipient``'s value from a stored ORCPT: a ``utf-8`` one in its xtext form (RFC 6533 3)."""
    addr_type = orcpt.partition(";")[0]
    return dsnrequest.orcpt_parameter(orcpt) if addr_type.lower() == dsnrequest.UTF8_TYPE else orcpt


def _recipient_fields(recipient: Recipient, action: Action, retry_until: float | None) -> list[str]:
    """RFC 3464 2.3: the per-recipient fields of one recipient."""
    reply = recipient.last_error
    lines = []
    if recipient.orcpt:
        lines.append(f"Original-Recipient: {_field(_original(recipient.orcpt))}")  # RFC 3464 2.3.1, from ORCPT
    lines += [
        f"Final-Recipient: {_final(recipient.address)}",
        f"Action: {action.value}",
        f"Status: {status(reply, action.status_class)}",
    ]
    if recipient.host:
        lines.append(f"Remote-MTA: dns; {_field(recipient.host)}")
    if _REPLY.match(reply):
        lines.append(f"Diagnostic-Code: smtp; {_field(reply)}")
    elif reply:
        lines.append(f"Diagnostic-Code: X-mailsrv; {_field(reply)}")
    if retry_until is not None:
        lines.append(f"Will-Retry-Until: {formatdate(retry_until, usegmt=True)}")  # RFC 3464 2.3.8
    return lines


def returns_message(record: Record, action: Action) -> bool:
    """Whether the report attaches the whole message rather than its header.

    Only a failure report, only with ``RET=FULL`` (RFC 3461 4.3: the default
    is ours to choose, and the header is), and never for a REQUIRETLS
    message (RFC 8689 5: RET=FULL is disregarded there).
    """
    return action is Action.FAILED and record.ret == dsnrequest.FULL and not record.require_tls


def dsn(
    record: Record, recipients: Sequence[Recipient], action: Action, original: bytes, *, full: bool,
    hostname: str, now: float, retry_until: float | None = None,
) -> bytes:
    """The DSN for *recipients* of *record*, in wire form.

    *original* is the message's header (wire form, no empty line after it),
    or with *full* the whole message; *retry_until* goes into a delay
    warning.
    """
    boundary = f"{record.queue_id}/{new_queue_id()}"
    date = formatdate(now, usegmt=True)
    subject, intro = _WORDING[action]
    intro = intro.format(attached="the whole" if full else "the header")
    explained = "\r\n".join(f"<{r.address}>: {_field(r.last_error) or action.value}" for r in recipients)
    per_recipient = "\r\n\r\n".join("\r\n".join(_recipient_fields(r, action, retry_until)) for r in recipients)
    per_message = [f"Reporting-MTA: dns; {hostname}"]
    if record.envid:
        per_message.append(f"Original-Envelope-Id: {_field(record.envid)}")  # RFC 3464 2.2.1, from ENVID
    per_message.append(f"X-Mailsrv-Queue-ID: {record.queue_id}")
    per_message.append(f"Arrival-Date: {formatdate(record.queued_at, usegmt=True)}")
    part = "message/rfc822" if full else "text/rfc822-headers"
    text = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{record.sender}>\r\n"
        f"Subject: {subject}\r\n"
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
        f"{intro}\r\n"
        "\r\n"
        f"{explained}\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        + "\r\n".join(per_message) + "\r\n"
        "\r\n"
        f"{per_recipient}\r\n"
        f"\r\n--{boundary}\r\n"
        f"Content-Type: {part}\r\n"
        "\r\n"
    ).encode("utf-8")
    if full and not original.endswith(b"\r\n"):
        original += b"\r\n"
    return text + original + f"\r\n--{boundary}--\r\n".encode()


def report_envelope(
    record: Record, recipients: Sequence[Recipient], action: Action, original: bytes, *, full: bool,
    hostname: str, now: float, retry_until: float | None = None,
) -> Envelope:
    """The DSN as a new message from the null sender to *record*'s sender (never call it for ``""``).

    The report of a REQUIRETLS message is REQUIRETLS too (RFC 8689 5): what
    it quotes of the message travels no weaker a path than the message did.
    """
    assert record.sender, "a null sender gets no DSN"
    data = dsn(record, recipients, action, original, full=full, hostname=hostname, now=now, retry_until=retry_until)
    envelope = Envelope(queue_id=new_queue_id(), sender="", require_tls=record.require_tls)
    body_type = BodyType.SEVEN_BIT if data.isascii() else BodyType.EIGHT_BIT_MIME
    if full and record.body_type == BodyType.BINARY_MIME.value:
        body_type = BodyType.BINARY_MIME  # RFC 3030 3: the binary message inside goes on only as BINARYMIME
    envelope.body = Body.from_wire(data, body_type)
    return envelope
