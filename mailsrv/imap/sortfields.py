"""The header fields SORT and THREAD order messages by, read once per message.

:func:`message_fields` is the one place that knows where they come from:
today the message's header section, read from its file in the search pool
(:attr:`.search.Message.header`, the header only, never the body).  An
index that caches these fields replaces this function and nothing else.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from dataclasses import dataclass

from mailsrv.imap.search import Message
from mailsrv.imap.subject import base_subject, casemap
from mailsrv.message.mime import Entity

# A msg-id (RFC 5322 3.6.4) as found in the wild: "<" left "@" right ">", no space inside.
_MSG_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")


@dataclass(frozen=True)
class MessageFields:
    """What RFC 5256 compares of one message.

    *subject* is the base subject (2.1) as text, *subject_key* its
    i;ascii-casemap key, *refwd* whether a reply or forward prefix was
    stripped; *sent* the sent date as a UTC epoch (2.2); the address keys
    are the collation keys of the first address's mailbox (local part);
    *references* the parents THREAD=REFERENCES links (4, step 1).
    """

    subject: str
    subject_key: bytes
    refwd: bool
    sent: float
    from_key: bytes
    to_key: bytes
    cc_key: bytes
    message_id: str | None
    references: tuple[str, ...]


def _sent(entity: Entity, internaldate: float) -> float:
    """RFC 5256 2.2: the Date field in UTC, or the internal date when it is missing or unparseable."""
    value = entity.get("date")
    if not value:
        return internaldate
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return internaldate
    if parsed.tzinfo is None:  # "-0000": the time is UTC (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        return internaldate


def _first_mailbox(entity: Entity, name: str) -> bytes:
    """The collation key of the first address's local part (RFC 5256 3, "addr-mailbox"); empty if none."""
    value = entity.get(name)
    if value:
        for _, address in email.utils.getaddresses([value]):
            if address:
                return casemap(address.rpartition("@")[0] if "@" in address else address)
    return b""


def _ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value) if value else []


def fields_of(header: bytes, internaldate: float) -> MessageFields:
    """The fields of a message whose wire-form header section is *header*."""
    entity = Entity(header)
    subject, refwd = base_subject(entity.get("subject"))
    own = _ids(entity.get("message-id"))
    # RFC 5256 4 (1): References; failing valid ids there, the first valid one of In-Reply-To.
    references = _ids(entity.get("references")) or _ids(entity.get("in-reply-to"))[:1]
    return MessageFields(
        subject=subject,
        subject_key=casemap(subject),
        refwd=refwd,
        sent=_sent(entity, internaldate),
        from_key=_first_mailbox(entity, "from"),
        to_key=_first_mailbox(entity, "to"),
        cc_key=_first_mailbox(entity, "cc"),
        message_id=own[0] if own else None,
        references=tuple(references),
    )


def message_fields(message: Message) -> MessageFields:
    """The fields of *message* (blocking: run in the search pool)."""
    fields = fields_of(message.header, message.internaldate)
    message.__dict__.pop("header", None)  # keep the fields, not the header text
    return fields
