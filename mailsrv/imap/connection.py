"""What the IMAP command modules need of the connection they serve.

:mod:`.command`, :mod:`.folders` and :mod:`.selected` implement reading and
running commands for :class:`~mailsrv.imap.server.IMAPServer`, which imports
them; this protocol is their side of that contract, so they need not import
the server (and the package has no import circle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Protocol

from mailsrv.net.lines import Line

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from mailsrv.context import ServerContext
    from mailsrv.imap.account import Account
    from mailsrv.imap.modes import Modes
    from mailsrv.imap.notifications import Notifications
    from mailsrv.imap.selection import Selection
    from mailsrv.net.session import Session


class Connection(Protocol):
    """One IMAP connection, as a command sees it."""

    ctx: "ServerContext"
    #: The logged-in user's folders; ``None`` before LOGIN.
    account: "Account | None"
    #: The selected folder, if any.
    selection: "Selection | None"
    #: The connection is going away: long work stops.
    closing: bool
    #: Who the client is (its address, for log lines).
    session: "Session"
    #: The tag of the command being run (ESEARCH responses carry it: RFC 4731 3.2).
    tag: bytes
    #: CONDSTORE and QRESYNC as the session turned them on.
    modes: "Modes"
    #: What NOTIFY (RFC 5465) watches for the session; ``None`` without one.
    notifications: "Notifications | None"

    def write(self, data: bytes) -> None:
        """Send octets as they are."""

    def untagged(self, line: bytes) -> None:
        """``* line``."""

    def continue_request(self, text: bytes) -> None:
        """``+ text``."""

    def read_line(self) -> "Deferred[Line]":
        """The client's next line."""

    def read_octets(self, count: int, write: Callable[[bytes], None]) -> "Deferred[None]":
        """Exactly *count* octets of input, handed to *write* (a literal)."""

    def drain(self) -> "Deferred[None]":
        """Fires once the client has read enough for more to be written."""

    def yield_turn(self) -> "Deferred[None]":
        """Fires on the next reactor turn."""

    async def sync(self) -> None:
        """Look for changes to the selected folder made behind the store's back."""

    def select(self, selection: "Selection") -> None:
        """Make *selection* the selected folder."""

    def deselect(self) -> None:
        """Leave the selected state."""

    def updates_pending(self) -> None:
        """The selected folder changed (the selection calls this)."""

    def notifications_pending(self) -> None:
        """NOTIFY owes responses: they go at once between commands (its notifications call this)."""

    def stop_notifications(self) -> None:
        """End NOTIFY's watches (NOTIFY again, logout)."""
