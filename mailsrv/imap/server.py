"""The IMAP server (RFC 3501; RFC 9051 once ENABLEd): sessions, states, dispatch, updates, IDLE.

Built on :mod:`mailsrv.net` rather than ``twisted.mail.imap4.IMAP4Server``:
Twisted's server reads commands with parsers that mishandle quoting and
literal sizes, drops the connection on a 16 KiB line, keeps no per-session
sequence map (so it cannot send EXPUNGE at all), answers a partial FETCH
with the whole section, offers LOGIN in clear text and lets STARTTLS run
commands pipelined in clear (docs/twisted-notes.rst, "IMAP").  What it
contributes here is its ``MessageSet`` and its modified UTF-7 codec.

This module holds the connection, the states of RFC 3501 3, the
authentication commands and the command table; the folder commands are in
:mod:`.folders`, the selected-state commands in :mod:`.selected`.

Replies: a handler returns a :class:`~.responses.Result` or raises a
:class:`~.responses.CommandError`; before the tagged line goes out, the
updates the session owes are sent (new messages and flag changes after any
command, EXPUNGE except after FETCH, STORE and SEARCH: RFC 3501 7.4.1).
A session with NOTIFY (RFC 5465, :mod:`.notifications`) is also sent what
it asked for between commands, on the reactor turn after the change.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime, ITLSTransport
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.accounts.cred import PlainCredentials
from mailsrv.imap import (
    clientid, compress, condstore, fetch, folders, metadata, modes, notifications, notify, quota, searching, selected,
    utf8accept,
)
from mailsrv.imap.account import Account
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.command import BadTag, split_head
from mailsrv.imap.reading import read_command
from mailsrv.imap.responses import (
    AUTHENTICATION_FAILED, BAD, LOGIN_LOCKED, LOGIN_UNAVAILABLE, NO, OK, SERVER_FAILURE, CommandError, Result, bad, no, store_error,
)
from mailsrv.imap.selection import Selection
from mailsrv.imap.syntax import is_tag
from mailsrv.listeners import Kind
from mailsrv.net import sasl
from mailsrv.net.deflate import CorruptInput
from mailsrv.net.lines import Line
from mailsrv.net.login import IUser, LoginFailed, login
from mailsrv.net.pump import ConnectionGone
from mailsrv.net.server import ProtocolFactory, ServerProtocol
from mailsrv.store import NoSuchFolder, StoreError

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

log = Logger()

UNAUTH, AUTH, SELECTED, LOGOUT = "unauth", "auth", "select", "logout"
ANY = (UNAUTH, AUTH, SELECTED)
LOGGED_IN = (AUTH, SELECTED)

#: RFC 3501 5.4: at least 30 minutes once logged in; far less before.
PRE_AUTH_TIMEOUT = 60
AUTH_TIMEOUT = 30 * 60
#: Commands after which EXPUNGE responses must wait (RFC 3501 7.4.1).
_NO_EXPUNGE_AFTER = frozenset({b"FETCH", b"STORE", b"SEARCH", b"SORT", b"THREAD"})  # RFC 5256 numbers, as SEARCH
_MECHANISMS = {b"PLAIN": PlainCredentials}
_INITIAL_RESPONSE = re.compile(rb"[A-Za-z0-9+/]+=*|=")
#: The extensions ENABLE can turn on (RFC 5161 3.1).
ENABLEABLE: frozenset[bytes] = modes.ENABLEABLE

Handler = Callable[..., Awaitable[Result]]


@dataclass(frozen=True)
class Entry:
    """A command: the states it is valid in, and its handler ``(server, args) -> Result``."""

    states: tuple[str, ...]
    handler: Handler


class IMAPServer(ServerProtocol):
    """One IMAP connection (listener kind ``imap`` or ``imaps``)."""

    protocol_name = "imap"

    #: How often an IDLE session looks for changes another node made.
    IDLE_POLL_SECONDS = 10

    def __init__(self, ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> None:
        super().__init__(
            ctx, kind, ctx.config.limits.imap_max_line_length, lf_tolerant=True, idle_timeout=PRE_AUTH_TIMEOUT,
            clock=clock,
        )
        self.state = UNAUTH
        self.account: Account | None = None
        self.selection: Selection | None = None
        self.idling = False
        #: The tag of the command being run (for a reply a handler writes itself).
        self.tag = b"*"
        #: What the client turned on with ENABLE (RFC 5161).
        self.enabled: set[bytes] = set()
        #: CONDSTORE, QRESYNC and IMAP4rev2, as ENABLE and CONDSTORE-using commands turned them on.
        self.modes = modes.Modes(self.enabled)
        #: The command just read leaves input that cannot be read as commands (see :mod:`.reading`).
        self._hang_up = False
        self._idle_poll: Any = None
        #: What NOTIFY (RFC 5465) watches; ``None`` without one.
        self.notifications: notifications.Notifications | None = None
        self._push_call: Any = None
        self._pushing: defer.Deferred[None] | None = None
        self._push_again = False
        #: Messages of the selected mailbox above this UID are owed NOTIFY's MessageNew FETCH.
        self._fetch_from: int | None = None

    # -- output --------------------------------------------------------------

    def untagged(self, line: bytes) -> None:
        """``* line``."""
        self.write(b"* " + line + b"\r\n")

    def continue_request(self, text: bytes) -> None:
        """``+ text``: RFC 3501 9 wants the space even for an empty text."""
        self.write(b"+ " + text + b"\r\n")

    def finish(self, tag: bytes, result: Result, allow_expunge: bool = True) -> None:
        """The updates the session owes, then the tagged result."""
        self.flush_updates(allow_expunge)
        self.write(tag + b" " + result.status + b" " + result.text + b"\r\n")

    def flush_updates(self, allow_expunge: bool, flags: bool = True) -> None:
        """Send what other sessions changed in the selected folder (RFC 3501 7.4.1 permitting), and NOTIFY's due.

        With NOTIFY's FlagChange on the selected mailbox a flag update carries
        the UID (RFC 5465 5.1), and new messages are owed the FETCH items its
        MessageNew names (5.2), sent once no command runs.
        """
        selection = self.selection
        if selection is not None:
            group = notifications.selected_group(self)
            before = selection.last_uid
            lines = selection.take_updates(
                allow_expunge, flags, with_uid=group is not None and group.event(notify.FLAG_CHANGE) is not None)
            if lines:
                self.write(b"".join(b"* " + line + b"\r\n" for line in lines))
            event = None if group is None else group.event(notify.MESSAGE_NEW)
            if event is not None and event.fetch and selection.last_uid > before:
                self._fetch_from = before if self._fetch_from is None else min(self._fetch_from, before)
                self.notifications_pending()
        self._send_notifications()

    def _send_notifications(self) -> None:
        """What NOTIFY owes for other mailboxes and the folder tree."""
        watching = self.notifications
        if watching is None:
            return
        lines = watching.take()
        if watching.stopped:  # RFC 5465 5.8: after an overflow, as after NOTIFY NONE
            self.notifications = None
        if lines:
            self.write(b"".join(b"* " + line + b"\r\n" for line in lines))

    # -- NOTIFY (RFC 5465): responses pushed between commands ------------------

    def notifications_pending(self) -> None:
        """NOTIFY owes responses: sent on the next turn if no command runs then (else at its end).

        Owed while a push is being written, they go in another push right after it.
        """
        if self._pushing is not None:
            self._push_again = True
        elif self.between_commands or self.idling:
            self._push_soon()

    def _push_soon(self) -> None:
        if self._push_call is None:
            self._push_call = self.clock.callLater(0, self._push)

    def _push(self) -> None:
        self._push_call = None
        if self._pushing is not None or self.state == LOGOUT or not (self.between_commands or self.idling):
            return
        pushing = self._pushing = defer.Deferred.fromCoroutine(self._push_owed())
        pushing.addErrback(self._push_failed)
        pushing.addBoth(self._pushed)

    def _push_failed(self, failure: Failure) -> None:
        if not failure.check(ConnectionGone):
            log.failure("IMAP NOTIFY push failed", failure, client_ip=self.session.peer_ip)

    def _pushed(self, _: object) -> None:
        self._pushing = None
        if self._push_again:
            self._push_again = False
            self.notifications_pending()

    async def _push_owed(self) -> None:
        """RFC 5465 6.1: SELECTED has the selected mailbox's events sent at once, SELECTED-DELAYED
        keeps its expunges for a command that allows them (IDLE does, RFC 3501 7.4.1)."""
        await self.drain()
        selection, group = self.selection, notifications.selected_group(self)
        if selection is not None and selection.deleted:
            if self.idling:
                self.selected_gone()
            return
        if selection is not None and group is not None and group.events:
            self.flush_updates(group.filter == notify.SELECTED or self.idling,
                               flags=group.event(notify.FLAG_CHANGE) is not None)
        else:
            self._send_notifications()
        await self._fetch_new()

    async def _fetch_new(self) -> None:
        """NOTIFY's MessageNew FETCH (RFC 5465 5.2) for the new messages the client was told of."""
        start, self._fetch_from = self._fetch_from, None
        selection, group = self.selection, notifications.selected_group(self)
        event = None if group is None else group.event(notify.MESSAGE_NEW)
        if start is None or selection is None or event is None or not event.fetch:
            return
        views, _ = selection.views(selection.pairs_after(start))
        await selected.send_fetch(self, views, fetch.with_item(list(event.fetch), "UID"), uid=True)

    def stop_notifications(self) -> None:
        """End NOTIFY's watches (NOTIFY again, logout)."""
        if self.notifications is not None:
            self.notifications.stop()
            self.notifications = None
        self._fetch_from = None

    # -- connection hooks ----------------------------------------------------

    def capabilities(self) -> list[bytes]:
        """RFC 3501 7.2.1: no password mechanism until the channel is safe.

        STARTTLS is offered wherever it can run, also where plaintext
        logins are allowed (loopback, by configuration): a client that
        wants TLS must still get it there.
        """
        caps = [b"IMAP4rev1", b"IMAP4rev2"]  # RFC 9051 6.3.1: rev2 once the client ENABLEs it
        if self.can_start_tls():
            caps.append(b"STARTTLS")
        # RFC 4959 3: SASL-IR only beside a mechanism it can be used with.
        caps += [b"AUTH=PLAIN", b"SASL-IR"] if self.passwords_allowed() else [b"LOGINDISABLED"]
        caps += [b"IDLE", b"NAMESPACE", b"UIDPLUS", b"CHILDREN"]  # RFC 2177, 2342, 4315, 3348
        # RFC 7888 5: LITERAL+ only, never LITERAL- beside it (LITERAL+ allows everything LITERAL- does).
        caps += [b"LITERAL+", b"ENABLE", b"ID", b"UNSELECT", b"MOVE"]  # RFC 7888, 5161, 2971, 3691, 6851
        caps.append(b"BINARY")  # RFC 3516
        caps += folders.LIST_CAPABILITIES
        caps += quota.CAPABILITIES
        caps += searching.CAPABILITIES  # RFC 4731, 5182, 5256
        caps += condstore.CAPABILITIES  # RFC 7162
        caps += compress.CAPABILITIES  # RFC 4978
        caps += utf8accept.CAPABILITIES  # RFC 6855
        caps += metadata.CAPABILITIES  # RFC 5464
        caps += notify.CAPABILITIES  # RFC 5465
        return caps

    def can_start_tls(self) -> bool:
        """Also only on a transport that can switch (not behind every wrapper)."""
        return super().can_start_tls() and ITLSTransport.providedBy(self.transport)

    def welcome(self) -> None:
        """RFC 3501 7.1.1: ``* OK`` with the capabilities, so clients need not ask."""
        host = self.ctx.config.hostname.encode("ascii", "replace")
        self.untagged(b"OK [CAPABILITY " + b" ".join(self.capabilities()) + b"] " + host + b" IMAP4rev1 ready")

    def refuse(self, reason: str) -> None:
        """Too many connections: ``* BYE`` instead of the greeting (RFC 3501 7.1.5)."""
        self.untagged(b"BYE Too many connections, try again later")

    def timed_out(self) -> None:
        """RFC 3501 5.4: the autologout timer."""
        self.untagged(b"BYE Autologout; idle for too long")
        self.close()

    def goodbye(self) -> None:
        """RFC 3501 7.1.5: BYE, the server is shutting down."""
        self.untagged(b"BYE Server shutting down")

    def waits_for_client(self) -> bool:
        """In IDLE nothing runs but the wait for DONE (RFC 2177 3)."""
        return self.idling

    def line_too_long(self) -> None:
        """BAD for a line over ``limits.imap_max_line_length``; the connection goes on."""
        tag, sep, _ = self.input.dropped_head.partition(b" ")
        # Echo the tag only when it is one (whole, and valid): never the client's raw octets.
        self.write((tag if sep and is_tag(tag) else b"*") + b" BAD Command line too long\r\n")

    def corrupt_input(self, error: CorruptInput) -> None:
        """RFC 4978 gives no reply for a broken stream: BYE (our output still inflates) and close."""
        self.untagged(b"BYE Corrupt compressed input")
        super().corrupt_input(error)

    def command_failed(self, failure: Failure) -> None:
        """A bug outside any command (the tagged error is sent by :meth:`command`)."""
        log.failure("IMAP connection failed", failure, client_ip=self.session.peer_ip)
        self.untagged(b"BYE " + SERVER_FAILURE)
        self.close()

    def ended(self, reason: Failure) -> None:
        """Stop listening to the store; the base releases the login."""
        self.stop_notifications()
        if self._push_call is not None and self._push_call.active():
            self._push_call.cancel()
        self._push_call = None
        self.deselect()
        self.state = LOGOUT
        super().ended(reason)

    # -- dispatch ------------------------------------------------------------

    async def command(self, line: bytes) -> None:
        """Read the rest of the command (its literals), run it, and send the tagged result."""
        if self._pushing is not None:  # NOTIFY's responses being sent go out whole first
            await self._pushing
        try:
            tag, name, rest = split_head(line)
        except BadTag:
            self.untagged(b"BAD Invalid tag")  # nothing we may echo as a tag
            return
        except CommandError as e:
            self.finish(line.split(b" ", 1)[0], e.result)
            return
        entry = COMMANDS.get(name)
        if entry is None or self.state not in entry.states:
            self.finish(tag, Result(BAD, b"Unsupported command"))
            return
        if self.selection is not None and self.selection.deleted and self.state == SELECTED:
            self.selected_gone()
            return
        self.tag = tag
        try:
            result = await self._run(entry, tag, name, rest)
        except _SelectedGone:
            self.selected_gone()
            return
        if result is not None:
            self.finish(tag, result, allow_expunge=name not in _NO_EXPUNGE_AFTER)
        if self._fetch_from is not None:  # NOTIFY's MessageNew FETCH, once this command is over
            self._push_soon()
        if self._hang_up:
            self.untagged(b"BYE Cannot read on past that literal")
            self.deselect()
            self.state = LOGOUT
        if self.state == LOGOUT:
            self.close()

    async def _run(self, entry: Entry, tag: bytes, name: bytes, rest: bytes) -> Result | None:
        try:
            command = await read_command(self, tag, name, rest)
        except CommandError as e:
            self._hang_up = e.hang_up
            return e.result
        try:
            return await entry.handler(self, Arguments(command, utf8=self.modes.utf8))
        except CommandError as e:
            return e.result
        except NoSuchFolder as e:
            if self._is_selected(e):
                raise _SelectedGone() from None
            return store_error(e).result
        except StoreError as e:
            return store_error(e).result
        except ConnectionGone:
            return None
        except Exception:
            log.failure("IMAP {command} failed", command=name.decode("ascii"), client_ip=self.session.peer_ip)
            return Result(NO, SERVER_FAILURE)
        finally:
            command.discard()

    def _is_selected(self, error: NoSuchFolder) -> bool:
        selection = self.selection
        return selection is not None and error.args[:1] == (selection.folder.name,)

    # -- the selected folder -------------------------------------------------

    def select(self, selection: Selection) -> None:
        """Make *selection* the selected folder."""
        self.deselect()
        self._fetch_from = None
        self.selection = selection
        self.state = SELECTED

    def deselect(self) -> None:
        """Leave the selected state (CLOSE, a failed SELECT, logout)."""
        previous = self.release_selection()
        if previous is not None:
            previous.close()

    def release_selection(self) -> Selection | None:
        """Leave the selected state, handing back the selection for the caller to close.

        SELECT keeps the previous one open until the next is made: when it
        is the same folder, its watch for changes (inotify) is kept, not
        dropped and set up again.
        """
        previous, self.selection = self.selection, None
        if previous is not None and self.state == SELECTED:
            self.state = AUTH
        return previous

    def updates_pending(self) -> None:
        """The selected folder changed: an IDLE client is told at once (RFC 2177), one with NOTIFY as it asked."""
        selection = self.selection
        if selection is not None and self.notifications is not None:
            self.notifications_pending()
            return
        if selection is None or not self.idling:
            return
        if selection.deleted:
            self.selected_gone()
        else:
            self.flush_updates(allow_expunge=True)

    def selected_gone(self) -> None:
        """Another session deleted (or renamed) the selected folder: BYE and hang up.

        Nothing the client holds is valid any more.  RFC 3501 7.1.5 lets the
        server send BYE and close; the text is Dovecot's.
        """
        assert self.selection is not None
        log.info("IMAP selected mailbox {name} was deleted; disconnecting", name=self.selection.folder.name)
        self.deselect()
        self.state = LOGOUT
        self.untagged(b"BYE Selected mailbox was deleted, have to disconnect.")
        self.close()

    async def sync(self) -> None:
        """Look for changes made behind the store's back (another node) in the selected folder."""
        if self.selection is not None:
            await self.selection.folder.sync()

    # -- any state -----------------------------------------------------------

    async def do_CAPABILITY(self, args: Arguments) -> Result:
        """RFC 3501 6.1.1."""
        args.end()
        self.untagged(b"CAPABILITY " + b" ".join(self.capabilities()))
        return Result(OK, b"CAPABILITY completed")

    async def do_NOOP(self, args: Arguments) -> Result:
        """RFC 3501 6.1.2: the polling point for updates."""
        args.end()
        await self.sync()
        return Result(OK, b"NOOP completed")

    async def do_LOGOUT(self, args: Arguments) -> Result:
        """RFC 3501 6.1.3."""
        args.end()
        self.untagged(b"BYE mailsrv logging out")
        self.stop_notifications()
        self.deselect()
        self.state = LOGOUT
        return Result(OK, b"LOGOUT completed")

    async def do_ENABLE(self, args: Arguments) -> Result:
        """RFC 5161 3.1: turn on what we know of; ``* ENABLED`` lists what is newly on, maybe nothing."""
        wanted = [args.atom().upper()]
        while args.more():
            args.space()
            wanted.append(args.atom().upper())
        newly = [name for name in dict.fromkeys(wanted) if name in ENABLEABLE and name not in self.enabled]
        self.enabled.update(newly)
        self.untagged(b" ".join([b"ENABLED", *(modes.SPELLING.get(name, name) for name in newly)]))
        return Result(OK, b"ENABLE completed")

    # -- not authenticated ---------------------------------------------------

    async def do_STARTTLS(self, args: Arguments) -> Result | None:
        """RFC 3501 6.2.1, forgetting anything the client pipelined in plaintext."""
        args.end()
        if self.session.tls_active:
            raise no(b"TLS already active")
        if not self.can_start_tls():
            raise no(b"TLS not available")
        self.write(self.tag + b" OK Begin TLS negotiation now\r\n")
        self.start_tls()
        return None

    async def do_LOGIN(self, args: Arguments) -> Result:
        """LOGIN, refused before TLS (RFC 3501 6.2.3, LOGINDISABLED)."""
        user = args.astring()
        args.space()
        password = args.astring()
        args.end()
        if not self.passwords_allowed():
            self.ctx.audit.login(self.session, user, "LOGIN", "refused", "no TLS")
            raise no(b"[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS")
        credentials = PlainCredentials()
        credentials.username, credentials.password = user, password
        await self._login(credentials, "LOGIN")
        return Result(OK, b"LOGIN succeeded")

    async def do_AUTHENTICATE(self, args: Arguments) -> Result:
        """AUTHENTICATE PLAIN (RFC 3501 6.2.2), after TLS only, with RFC 4959's initial response."""
        mechanism = args.atom().upper()
        initial = None
        if args.more():
            args.space()
            initial = args.token(_INITIAL_RESPONSE)  # RFC 4959 7: base64 or "="
            if initial is None or args.more():
                raise bad(b"Malformed initial response")
        args.end()
        if not self.passwords_allowed():
            raise no(b"[PRIVACYREQUIRED] Authentication is disabled until STARTTLS")
        if mechanism not in _MECHANISMS:
            raise no(b"Unsupported authentication mechanism")

        async def ask(challenge: bytes) -> Line:
            self.continue_request(base64.b64encode(challenge))
            return await self.read_line()

        try:
            credentials = await sasl.exchange(_MECHANISMS, mechanism, initial, ask)
        except sasl.SaslCancelled:
            raise bad(b"Authentication cancelled") from None  # RFC 3501 6.2.2
        except sasl.SaslMalformed:
            raise bad(b"Malformed authentication response") from None
        await self._login(credentials, mechanism.decode("ascii"))
        return Result(OK, b"Authentication successful")

    async def _login(self, credentials: Any, mechanism: str) -> None:
        try:
            avatar, logout = await login(self.ctx.portal, self.ctx.audit, self.session, credentials, IUser, mechanism,
                                         self.ctx.throttle, self.clock)
        except LoginFailed as e:
            refusal = LOGIN_LOCKED if e.locked else LOGIN_UNAVAILABLE if e.temporary else AUTHENTICATION_FAILED
            raise no(refusal) from None
        if not self.hold_login(logout):
            return
        self.account = Account(self.ctx.store.user(avatar.address))
        self.state = AUTH
        self.set_idle_timeout(AUTH_TIMEOUT)
        await self._provision(self.account)

    async def _provision(self, account: Account) -> None:
        """A new account's special folders (RFC 6154; ``[imap]``); a failure costs them, not the login."""
        try:
            made = await account.user.provision(self.ctx.config.imap.special_folders())
        except Exception:
            log.failure("IMAP: making the special folders of {user} failed", user=account.user.address)
            return
        if made:
            log.info("IMAP: made the special folders {folders} of {user}", folders=made, user=account.user.address)

    # -- IDLE (RFC 2177) -------------------------------------------------------

    async def do_IDLE(self, args: Arguments) -> Result:
        """Push updates until the client says DONE; poll for another node's changes meanwhile."""
        args.end()
        await self.sync()
        self.continue_request(b"idling")
        self.idling = True
        self.flush_updates(allow_expunge=True)
        self._schedule_poll()
        try:
            while True:
                line = await self.read_line()
                # RFC 2177 3: only DONE ends IDLE (Twisted ends it on any line).
                if isinstance(line, bytes) and line.strip().upper() == b"DONE":
                    break
                self.untagged(b"BAD Expected DONE")
        finally:
            self.idling = False
            if self._idle_poll is not None and self._idle_poll.active():
                self._idle_poll.cancel()
            self._idle_poll = None
        if self._pushing is not None:  # a NOTIFY push under way (a FETCH that waits for the client) ends first
            await self._pushing
        return Result(OK, b"IDLE terminated")

    def _poll(self) -> None:
        self._idle_poll = None
        if not self.idling or self.selection is None:
            return
        d = self.selection.folder.sync()
        d.addCallbacks(lambda _: self._schedule_poll(), self._poll_failed)

    def _schedule_poll(self) -> None:
        if self.idling:
            self._idle_poll = self.clock.callLater(self.IDLE_POLL_SECONDS, self._poll)

    def _poll_failed(self, failure: Failure) -> None:
        if failure.check(NoSuchFolder) and self.selection is not None and self._is_selected(failure.value):
            self.selected_gone()
            return
        log.failure("IMAP IDLE poll failed", failure, client_ip=self.session.peer_ip)
        self._schedule_poll()


class _SelectedGone(Exception):
    """The selected folder vanished while a command ran (see :meth:`IMAPServer.selected_gone`)."""


COMMANDS: dict[bytes, Entry] = {
    b"CAPABILITY": Entry(ANY, IMAPServer.do_CAPABILITY),
    b"NOOP": Entry(ANY, IMAPServer.do_NOOP),
    b"LOGOUT": Entry(ANY, IMAPServer.do_LOGOUT),
    b"ID": Entry(ANY, clientid.do_ID),
    b"ENABLE": Entry((AUTH,), IMAPServer.do_ENABLE),  # RFC 5161 3.1: not once a mailbox is selected
    b"STARTTLS": Entry((UNAUTH,), IMAPServer.do_STARTTLS),
    b"LOGIN": Entry((UNAUTH,), IMAPServer.do_LOGIN),
    b"AUTHENTICATE": Entry((UNAUTH,), IMAPServer.do_AUTHENTICATE),
    b"IDLE": Entry(LOGGED_IN, IMAPServer.do_IDLE),
    b"NOTIFY": Entry(LOGGED_IN, notifications.do_NOTIFY),
    **{name: Entry(LOGGED_IN, handler) for name, handler in folders.COMMANDS.items()},
    **{name: Entry(LOGGED_IN, handler) for name, handler in quota.COMMANDS.items()},
    **{name: Entry(LOGGED_IN, handler) for name, handler in compress.COMMANDS.items()},
    **{name: Entry(LOGGED_IN, handler) for name, handler in metadata.COMMANDS.items()},
    **{name: Entry((SELECTED,), handler) for name, handler in selected.COMMANDS.items()},
}


def make_factory(ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> ProtocolFactory:
    """The factory for an imap listener *kind* (implicit-TLS kinds are wrapped by the caller)."""
    return ProtocolFactory(IMAPServer, ctx, kind, clock)
