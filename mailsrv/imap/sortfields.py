"""The header fields SORT and THREAD order messages by, read once per message.

:func:`message_fields` is the one place that knows where they come from:
the user's message cache (:mod:`.msgcache`, which keeps them as
:func:`dump_fields` writes them), else the message's header section, read
from its file in the search pool (:attr:`.search.Message.header`, the
header only, never the body).
"""

from __future__ import annotations

import datetime
import email.utils
import json
import re
from operator import attrgetter
from typing import Callable, Iterator, NamedTuple, Sequence

from mailsrv.imap.search import Message
from mailsrv.imap.subject import base_subject, casemap
from mailsrv.message.mime import Entity

# A msg-id (RFC 5322 3.6.4) as found in the wild: "<" left "@" right ">", no space inside.
_MSG_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")


class MessageFields(NamedTuple):
    """What RFC 5256 compares of one message.

    *subject* is the base subject (2.1) as text, *subject_key* its
    i;ascii-casemap key, *refwd* whether a reply or forward prefix was
    stripped; *sent* the sent date as a UTC epoch (2.2); the address keys
    are the collation keys of the first address's mailbox (local part);
    *references* the parents THREAD=REFERENCES links (4, step 1).

    A named tuple: a frozen dataclass costs several times as much to make,
    and a SORT makes one per message, dropping each once its keys are read
    (:func:`.sort.sort_order`).
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


def _sent(entity: Entity) -> float | None:
    """RFC 5256 2.2: the Date field in UTC; None when it is missing or unparseable (the internal date then)."""
    value = entity.get("date")
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:  # "-0000": the time is UTC (RFC 5322 3.3)
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    try:
        return parsed.timestamp()
    except (OverflowError, ValueError):
        return None


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


def header_fields(header: bytes) -> tuple[MessageFields, bool]:
    """The fields of a wire-form header section, *sent* 0.0 when it has no usable date; and whether it has one."""
    entity = Entity(header)
    subject, refwd = base_subject(entity.get("subject"))
    own = _ids(entity.get("message-id"))
    # RFC 5256 4 (1): References; failing valid ids there, the first valid one of In-Reply-To.
    references = _ids(entity.get("references")) or _ids(entity.get("in-reply-to"))[:1]
    sent = _sent(entity)
    fields = MessageFields(
        subject=subject,
        subject_key=casemap(subject),
        refwd=refwd,
        sent=0.0 if sent is None else sent,
        from_key=_first_mailbox(entity, "from"),
        to_key=_first_mailbox(entity, "to"),
        cc_key=_first_mailbox(entity, "cc"),
        message_id=own[0] if own else None,
        references=tuple(references),
    )
    return fields, sent is not None


def fields_of(header: bytes, internaldate: float) -> MessageFields:
    """The fields of a message whose wire-form header section is *header*."""
    fields, dated = header_fields(header)
    return fields if dated else fields._replace(sent=internaldate)


def dump_fields(f: MessageFields, dated: bool) -> bytes:
    """The fields :func:`header_fields` gave, in the form the message cache keeps (the internal date left out)."""
    keys = [key.decode("latin-1") for key in (f.from_key, f.to_key, f.cc_key)]
    return json.dumps(
        [f.subject, f.refwd, f.sent if dated else None, *keys, f.message_id, list(f.references)]
    ).encode("ascii")  # ASCII JSON: lone surrogates (undecodable Subject octets) survive as escapes


def load_fields(data: bytes, internaldate: float) -> MessageFields:
    """What :func:`fields_of` gives, from what :func:`dump_fields` wrote."""
    subject, refwd, sent, from_key, to_key, cc_key, message_id, references = json.loads(data)
    return MessageFields(
        subject=subject,
        subject_key=casemap(subject),
        refwd=refwd,
        sent=internaldate if sent is None else sent,
        from_key=from_key.encode("latin-1"),
        to_key=to_key.encode("latin-1"),
        cc_key=cc_key.encode("latin-1"),
        message_id=message_id,
        references=tuple(references),
    )


def message_fields(message: Message) -> MessageFields:
    """The fields of *message* (blocking: run in the search pool)."""
    if message.cache is not None:
        cached = message.cache.fields(message)
        if cached is not None:
            return cached
    fields = fields_of(message.header, message.internaldate)
    message.__dict__.pop("header", None)  # keep the fields, not the header text
    return fields


def key_getter(names: Sequence[str]) -> Callable[[MessageFields], tuple]:
    """What gives the values of the :class:`MessageFields` attributes *names* as a tuple, even of one."""
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda fields: (get(fields),)
    return attrgetter(*names)


class FieldSource:
    """The SORT and THREAD fields of a search's hits, one hit at a time, in order (blocking: in the pool).

    :meth:`columns` serves SORT, which compares a few of them only: a
    source that keeps those apart (the message cache's) reads them alone.
    """

    def fields(self) -> Iterator[MessageFields]:
        """Every hit's fields."""
        raise NotImplementedError

    def columns(self, names: Sequence[str]) -> list[list]:
        """The values of the :class:`MessageFields` attributes *names*: a list per name, a value per hit.

        Shorter than the hits where the source stops short (the session closed meanwhile).
        """
        read: list[list] = [[] for _ in names]
        for values in map(key_getter(names), self.fields()):
            for column, value in zip(read, values):
                column.append(value)
        return read
