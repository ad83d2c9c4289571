"""NOTIFY's request (RFC 5465 3.1, 8): what the client wants to hear of, and for which mailboxes.

``NOTIFY NONE`` or ``NOTIFY SET [STATUS] (filter events) ...``.  A filter
is ``SELECTED`` or ``SELECTED-DELAYED`` (the selected mailbox; only
message events), ``INBOXES``, ``PERSONAL``, ``SUBSCRIBED``, ``SUBTREE``
or ``MAILBOXES`` with names.  The events are read here and checked as
section 5 and 6.1 say: MessageNew and MessageExpunge together, FlagChange
only with both, one selected filter, no mailbox event on it (``BAD``
otherwise); an event we do not give (``AnnotationChange``, whose RFC 5257
we lack, or one we do not know) is ``NO [BADEVENT (...)]`` listing ours.

INBOXES is PERSONAL here, as 6.3 allows a server that cannot tell which
folders receive mail (delivery files mail into Junk, and Sieve may file it
anywhere).  Which event a change gets is :meth:`Request.event_for`: the
first filter that names the mailbox and lists the event wins, and a
filter with ``NONE`` silences the mailboxes it names for the filters after
it (5465 6, as mox reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailsrv.imap.fetchatt import FetchItem, parse_fetch_items
from mailsrv.imap.responses import bad, no
from mailsrv.store import InvalidFolderName, names

if TYPE_CHECKING:
    from mailsrv.imap.arguments import Arguments

CAPABILITIES = [b"NOTIFY"]

MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE = "MessageNew", "MessageExpunge", "FlagChange"
MAILBOX_NAME, SUBSCRIPTION_CHANGE = "MailboxName", "SubscriptionChange"
MAILBOX_METADATA, SERVER_METADATA = "MailboxMetadataChange", "ServerMetadataChange"
#: The events we give, as BADEVENT names them (RFC 5465 8).
SUPPORTED = (
    MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, MAILBOX_NAME, SUBSCRIPTION_CHANGE, MAILBOX_METADATA, SERVER_METADATA,
)
_KNOWN = {name.upper(): name for name in (*SUPPORTED, "AnnotationChange")}
MESSAGE_EVENTS = frozenset({MESSAGE_NEW, MESSAGE_EXPUNGE, FLAG_CHANGE, "AnnotationChange"})

SELECTED, SELECTED_DELAYED = "SELECTED", "SELECTED-DELAYED"
_SELECTED_FILTERS = frozenset({SELECTED, SELECTED_DELAYED})
_NAMED_FILTERS = frozenset({"SUBTREE", "MAILBOXES"})
_FILTERS = _SELECTED_FILTERS | _NAMED_FILTERS | {"INBOXES", "PERSONAL", "SUBSCRIBED"}


@dataclass(frozen=True)
class Event:
    """One event asked for; MessageNew may carry the FETCH items to send with each new message."""

    name: str
    fetch: tuple[FetchItem, ...] = ()


@dataclass(frozen=True)
class Group:
    """``(filter events)``: *events* empty is ``NONE``."""

    filter: str
    names: frozenset[str]
    events: tuple[Event, ...]

    def event(self, name: str) -> Event | None:
        """The event of this group named *name*, if it lists it."""
        return next((event for event in self.events if event.name == name), None)

    def covers(self, mailbox: str, subscribed: frozenset[str]) -> bool:
        """Whether this (non-selected) filter names *mailbox*."""
        if self.filter == "SUBSCRIBED":
            return mailbox in subscribed
        if self.filter == "MAILBOXES":
            return mailbox in self.names
        if self.filter == "SUBTREE":  # the mailbox or a name above it: as many look-ups as levels
            levels = mailbox.split(names.SEPARATOR)
            return any(names.SEPARATOR.join(levels[:depth]) in self.names for depth in range(1, len(levels) + 1))
        return True  # PERSONAL, and INBOXES (see the module docstring)


@dataclass(frozen=True)
class Request:
    """A NOTIFY SET: whether STATUS was asked for, and the groups in the client's order."""

    status: bool
    groups: tuple[Group, ...]

    @property
    def selected(self) -> Group | None:
        """The SELECTED or SELECTED-DELAYED group, if there is one."""
        return next((g for g in self.groups if g.filter in _SELECTED_FILTERS), None)

    @property
    def wants_subscriptions(self) -> bool:
        """A SUBSCRIBED filter needs the user's subscriptions to be read and followed."""
        return any(g.filter == "SUBSCRIBED" for g in self.groups)

    def event_for(self, mailbox: str, name: str, selected: bool, subscribed: frozenset[str]) -> Event | None:
        """The event the client asked for when *name* happens to *mailbox* (*selected*: the selected one)."""
        for group in self.groups:
            if group.filter in _SELECTED_FILTERS:
                if selected and name in MESSAGE_EVENTS:
                    return group.event(name)
                continue
            if selected and name in MESSAGE_EVENTS:
                continue  # the selected mailbox's message events are only the selected filter's
            if not group.covers(mailbox, subscribed):
                continue
            if not group.events:
                return None
            event = group.event(name)
            if event is not None:
                return event
        return None


def parse_notify(args: "Arguments") -> Request | None:
    """NOTIFY's arguments; ``None`` for ``NOTIFY NONE``."""
    if args.expect(b"NONE"):
        args.end()
        return None
    if not args.expect(b"SET "):
        raise bad(b"NOTIFY SET or NOTIFY NONE expected")
    status = args.expect(b"STATUS ")
    groups = [_group(args)]
    while args.more():
        args.space()
        groups.append(_group(args))
    args.end()
    _check(groups)
    return Request(status, tuple(groups))


def _group(args: "Arguments") -> Group:
    if not args.expect(b"("):
        raise bad(b"Event group expected")
    filter_ = args.atom().upper().decode("ascii", "replace")
    if filter_ not in _FILTERS:
        raise bad(b"Unknown mailbox filter")
    mailboxes: list[str] = []
    if filter_ in _NAMED_FILTERS:
        args.space()
        if args.expect(b"("):
            mailboxes.append(_mailbox(args))
            while not args.expect(b")"):
                args.space()
                mailboxes.append(_mailbox(args))
        else:
            mailboxes.append(_mailbox(args))
    args.space()
    events: list[Event] = []
    if not args.expect(b"NONE"):
        if not args.expect(b"("):
            raise bad(b"Event list expected")
        events.append(_event(args))
        while not args.expect(b")"):
            args.space()
            events.append(_event(args))
    if not args.expect(b")"):
        raise bad(b"Malformed event group")
    return Group(filter_, frozenset(mailboxes), tuple(events))


def _mailbox(args: "Arguments") -> str:
    try:
        return names.validate(args.mailbox())
    except InvalidFolderName:
        raise bad(b"Invalid mailbox name") from None


def _event(args: "Arguments") -> Event:
    raw = args.atom()
    name = _KNOWN.get(raw.upper().decode("ascii", "replace"), raw.decode("ascii", "replace"))
    if name == MESSAGE_NEW and args.peek(2) == b" (":
        args.space()
        return Event(name, tuple(parse_fetch_items(args)))
    return Event(name)


def _check(groups: list[Group]) -> None:
    """Section 5's and 6.1's rules (``BAD``), then the events we give (``NO [BADEVENT]``)."""
    if sum(g.filter in _SELECTED_FILTERS for g in groups) > 1:
        raise bad(b"Only one of SELECTED and SELECTED-DELAYED")
    unsupported = False
    for group in groups:
        given = {event.name for event in group.events}
        if (MESSAGE_NEW in given) != (MESSAGE_EXPUNGE in given):
            raise bad(b"MessageNew and MessageExpunge go together")
        if given & {FLAG_CHANGE, "AnnotationChange"} and MESSAGE_NEW not in given:
            raise bad(b"FlagChange needs MessageNew and MessageExpunge")
        if group.filter in _SELECTED_FILTERS and given - MESSAGE_EVENTS:
            raise bad(b"Only message events for the selected mailbox")
        unsupported = unsupported or bool(given - set(SUPPORTED))
    if unsupported:
        raise no(b"[BADEVENT (" + " ".join(SUPPORTED).encode() + b")] Unsupported event")
