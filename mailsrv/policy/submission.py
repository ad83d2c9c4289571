"""The submission port's rules (RFC 6409): log in, send as yourself, and a complete header.

Three checks, registered in this order in :func:`mailsrv.tap.assemble`:
:class:`AuthRequired` (MAIL needs a login), :class:`SenderIsLogin` (the
envelope sender and every ``From:`` address belong to the login) and
:class:`CompleteHeader` (``Message-ID:`` and ``Date:`` added when missing).
Port 25 is concerned by none of them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Protocol

from mailsrv.message.fields import field_values, mailbox_list, read_header
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.address import Mailbox
    from mailsrv.delivery.envelope import Envelope
    from mailsrv.message.body import Body


class AuthRequired(Check):
    """On submission listeners, MAIL needs an authenticated user (RFC 4954 6, RFC 6409 4.3)."""

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> Verdict:
        """530 until the client logged in; port 25 is not concerned."""
        if ctx.session.kind.submission and ctx.session.user is None:
            return reject(replies.AUTH_REQUIRED)
        return ACCEPT


class Owners(Protocol):
    """What :class:`SenderIsLogin` asks of :class:`mailsrv.accounts.Directory`."""

    def may_send_as(self, login: str, address: str) -> bool: ...


def _authors(body: "Body") -> list[str] | None:
    """Every address of every ``From:`` field; ``None`` when there is none or one does not parse.

    Blocking for a spooled body (see :meth:`CheckContext.read`).
    """
    lists = [mailbox_list(value) for value in field_values(read_header(body), b"from")]
    if not lists or None in lists:
        return None
    return [address for addresses in lists if addresses is not None for address in addresses]


class SenderIsLogin(Check):
    """A logged-in user sends only as an address of their own (RFC 6409 6.1, 6.3).

    Without this any user could send as anyone, the boss or another
    customer, and the recipient would see nothing amiss.  The envelope
    sender is checked at MAIL, the ``From:`` addresses once the message is
    in; whose an address is, ``owners.may_send_as`` says (their address,
    the aliases that deliver to them, the senders file).  The null sender
    is accepted, as RFC 6409 3.2 requires (read receipts use it): its
    ``From:`` is checked all the same.
    """

    def __init__(self, owners: Owners) -> None:
        self._owners = owners

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> Verdict:
        """553 5.7.1 for an envelope sender that is not the login's."""
        login = ctx.session.user
        if not ctx.session.kind.submission or login is None or sender is None:
            return ACCEPT
        if self._owners.may_send_as(login, sender.plain):
            return ACCEPT
        return reject(replies.SENDER_NOT_OWNED(address=sender, user=login))

    async def data(self, ctx: CheckContext, envelope: "Envelope") -> Verdict:
        """554 5.6.0 without a clean ``From:``; 550 5.7.1 for an author that is not the login."""
        login = ctx.session.user
        if not ctx.session.kind.submission or login is None:
            return ACCEPT
        authors = await ctx.read(_authors, envelope.body)
        if authors is None:
            return reject(replies.BAD_AUTHOR)  # RFC 5322 3.6: From is required; RFC 6409 6.3: 554
        for author in authors:
            if not self._owners.may_send_as(login, author):
                return reject(replies.AUTHOR_NOT_OWNED(address=author, user=login))
        return ACCEPT


def _missing(body: "Body") -> tuple[bool, bool]:
    """``(no Message-ID:, no Date:)`` in *body*'s header; blocking for a spooled body."""
    header = read_header(body)
    return not field_values(header, b"message-id"), not field_values(header, b"date")


class CompleteHeader(Check):
    """The MSA adds ``Message-ID:`` (RFC 6409 8.3) and ``Date:`` (8.2) when a message lacks them.

    Some clients (scripts, small devices) leave them out, and a message
    without them is not valid (RFC 5322 3.6) and scores as spam.  They go
    below our trace headers, above the client's own fields, which stay as
    they were sent.  The Message-ID's right side is our host name, which
    makes it unique together with the time, the process and a random part.
    """

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname

    async def data(self, ctx: CheckContext, envelope: "Envelope") -> Verdict:
        """The missing fields, as :attr:`Verdict.fields`; nothing on port 25."""
        if not ctx.session.kind.submission:
            return ACCEPT
        no_message_id, no_date = await ctx.read(_missing, envelope.body)
        fields = []
        if no_message_id:
            fields.append(f"Message-ID: {make_msgid(envelope.queue_id, self._hostname)}\r\n".encode("ascii"))
        if no_date:
            fields.append(f"Date: {format_datetime(datetime.now(timezone.utc))}\r\n".encode("ascii"))
        return Verdict(fields=tuple(fields)) if fields else ACCEPT
