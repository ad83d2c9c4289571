"""The submission port's first rule: log in before sending (RFC 6409 4.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.address import Mailbox


class AuthRequired(Check):
    """On submission listeners, MAIL needs an authenticated user (RFC 4954 6, RFC 6409 4.3)."""

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> Verdict:
        """530 until the client logged in; port 25 is not concerned."""
        if ctx.session.kind.submission and ctx.session.user is None:
            return reject(replies.AUTH_REQUIRED)
        return ACCEPT
