"""``[submission]``: what the submission listeners (587, 465) do to the mail they take.

Who may send as which address is not configured here: a user sends as
their own address and the aliases that deliver to them, plus what the
``<data_dir>/senders`` file grants (:mod:`mailsrv.accounts.senders`), which
the server re-reads when it changes, like the user and alias files.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Table, setting


@dataclass(frozen=True)
class SubmissionConfig(Table):
    """Submission policy."""

    DOC = (
        "Mail your users send (submission, 587/465). A user may send only as their own address, the "
        "aliases that deliver to them, and the extra addresses <data_dir>/senders grants them "
        "(lines like 'alice@example.org: sales@example.org, @example.net'), in the envelope and in From:."
    )

    received_login: bool = setting(
        True,
        "Name the logged-in user in the Received header of the mail they send, as '(Authenticated sender: "
        "alice@example.org)'. false keeps the login out of the message (the log still names it).",
    )
