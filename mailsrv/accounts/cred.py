"""The twisted.cred side of accounts: one password checker, one realm.

SMTP AUTH, POP3 and IMAP all log in through the one portal built by
:func:`make_portal`, so a password is checked the same way everywhere.
The realm knows no protocol: each protocol module registers a factory for
its avatar interface (in tap.py), which keeps this package import-light.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Callable, Mapping

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword, UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.mail.interfaces import IChallengeResponse
from twisted.mail.imap4 import IllegalClientResponse
from zope.interface import implementer
from zope.interface.interface import InterfaceClass

from mailsrv.accounts import passwords
from mailsrv.accounts.directory import Directory
from mailsrv.accounts.rehash import Rehasher
from mailsrv.address import canonical_address
from mailsrv.config import Config
from mailsrv.workers import Executor, Workers

log = Logger()

#: interface -> callable(canonical address) -> avatar providing it.
RealmFactories = Mapping[InterfaceClass, Callable[[str], Any]]


def _as_bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def _as_address(username: str | bytes) -> str | None:
    """The canonical address a client typed as its user name, if any."""
    try:
        text = username.decode("utf-8") if isinstance(username, bytes) else username
    except UnicodeDecodeError:
        return None
    return canonical_address(text)


@implementer(IChallengeResponse)
class PlainCredentials(UsernamePassword):
    """The SASL PLAIN exchange (RFC 4616), keeping the authorization identity.

    Twisted's own ``PLAINCredentials`` throws the authzid away, so a client
    could ask to act as one user while logging in as another and be
    accepted as the latter.  Here the authzid is kept so that the protocol
    can refuse the login (:meth:`acts_as_itself`); one decoder serves every
    protocol that offers PLAIN.
    """

    def __init__(self) -> None:
        super().__init__(b"", b"")
        self.authzid = b""

    def getChallenge(self) -> bytes:
        """PLAIN has no server challenge: the client speaks first."""
        return b""

    def setResponse(self, response: bytes) -> None:
        """RFC 4616 2: message = [authzid] UTF8NUL authcid UTF8NUL passwd."""
        parts = response.split(b"\0")
        if len(parts) != 3:
            raise IllegalClientResponse("PLAIN needs authzid NUL authcid NUL password")
        self.authzid, self.username, self.password = parts

    def moreChallenges(self) -> bool:
        """One message completes the exchange."""
        return False

    def acts_as_itself(self) -> bool:
        """True unless the client asked to act as someone other than the authcid.

        RFC 4616 2: given an authzid the user is not authorized to act as,
        the server MUST fail the authentication.  No user may act as
        another here, so only an empty authzid or the authcid itself (in
        any case, as addresses are case-insensitive) is acceptable.
        """
        return not self.authzid or self.authzid.lower() == self.username.lower()


class HashingQueueFull(LoginFailed):
    """Too many password checks are already waiting for a hashing thread.

    Not an :class:`UnauthorizedLogin`: the password was never looked at and
    may well be right, so a protocol answers "try again later" (a temporary
    failure) and a client keeps its stored credentials instead of asking
    the user for a new password.
    """


@implementer(ICredentialsChecker)
class PasswordChecker:
    """Checks ``IUsernamePassword`` against the user file.

    Hash verification runs in the *hashing* executor, a small pool of its
    own: argon2 costs 64 MiB and tens of milliseconds per check, and in
    the pool that fsyncs deliveries a burst of guesses would hold every
    SMTP 250 back.  At most *max_queued_checks* checks wait for or run on
    that pool (``executor.pending``); a check beyond them fails at once with
    :class:`HashingQueueFull`, without hashing, so a flood of guesses costs
    neither memory nor a queue without bound.

    A success is remembered for *cache_seconds* under (address, keyed
    SHA-256 of the password), so a client opening several connections pays
    once (and is not refused by a full queue); the whole cache is dropped
    whenever the user file is re-read, so a removed user or a changed
    password stops working at once.  A verified password whose stored hash
    is of an old scheme is handed to *rehasher* (``[auth] rehash``).
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(
        self,
        directory: Directory,
        hashing: Executor,
        clock: IReactorTime,
        *,
        cache_seconds: int,
        max_queued_checks: int,
        rehasher: Rehasher | None = None,
    ) -> None:
        self._directory = directory
        self._rehasher = rehasher
        self._hashing = hashing
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._max_queued = max_queued_checks
        # A per-process key: the cache never holds a plain hash of a password.
        self._key = secrets.token_bytes(32)
        self._cache: dict[tuple[str, bytes], float] = {}
        self._cache_source: Mapping[str, str] | None = None

    def requestAvatarId(self, credentials: IUsernamePassword) -> Deferred[str]:
        """Fire with the canonical address; fail with ``UnauthorizedLogin`` or :class:`HashingQueueFull`."""
        address = _as_address(credentials.username)
        password = _as_bytes(credentials.password)
        user_map = self._directory.users()
        if user_map is not self._cache_source:
            self._cache.clear()
            self._cache_source = user_map
        stored = user_map.get(address) if address is not None else None
        entry = None if stored is None else (address, hmac.digest(self._key, password, hashlib.sha256))
        if entry is not None and self._cache.get(entry, 0.0) > self._clock.seconds():
            return succeed(address)
        if self._hashing.pending >= self._max_queued:
            return fail(HashingQueueFull(f"{self._max_queued} password checks are waiting; try again later"))
        if entry is None:
            # Unknown users cost a hash too, so timing does not reveal them.
            d = self._hashing.run(passwords.verify_unknown, password)
        else:
            d = self._hashing.run(passwords.verify, stored, password)
            d.addCallback(self._remember, entry, user_map)
            d.addCallback(self._upgrade, address, stored, password)
        d.addCallback(self._result, address)
        return d

    def _remember(self, ok: bool, entry: tuple[str, bytes], user_map: Mapping[str, str]) -> bool:
        # Only cache against the file version the hash came from: a reload
        # while the thread ran has already cleared the cache.
        if ok and self._cache_seconds > 0 and user_map is self._cache_source:
            now = self._clock.seconds()
            self._cache = {k: t for k, t in self._cache.items() if t > now}
            self._cache[entry] = now + self._cache_seconds
        return ok

    def _upgrade(self, ok: bool, address: str, stored: str, password: bytes) -> bool:
        if ok and self._rehasher is not None:
            self._rehasher.login(address, stored, password)
        return ok

    @staticmethod
    def _result(ok: bool, address: str | None) -> str:
        if not ok or address is None:
            raise UnauthorizedLogin("bad user name or password")
        return address


@implementer(IRealm)
class Realm:
    """Builds the avatar for the first requested interface with a factory.

    *factories* is kept by reference, so factories registered after the
    portal was made are used.
    """

    def __init__(self, factories: RealmFactories) -> None:
        self._factories = factories

    def requestAvatar(
        self, avatarId: str, mind: object, *interfaces: InterfaceClass
    ) -> tuple[InterfaceClass, Any, Callable[[], None]]:
        """Return ``(interface, avatar, logout)`` as twisted.cred expects."""
        for interface in interfaces:
            factory = self._factories.get(interface)
            if factory is not None:
                avatar = factory(avatarId)
                logout = getattr(avatar, "logout", None)
                return interface, avatar, logout if callable(logout) else _no_logout
        raise NotImplementedError(f"no avatar for {', '.join(i.getName() for i in interfaces)}")


def _no_logout() -> None:
    """Logout for avatars that hold nothing to release."""


def make_portal(
    config: Config, directory: Directory, realm_factories: RealmFactories, workers: Workers, clock: IReactorTime
) -> Portal:
    """The one portal for SMTP AUTH, POP3 and IMAP logins.

    Passwords are hashed in ``workers.hashing``; the users file is
    rewritten by ``[auth] rehash`` in ``workers.disk``.  Built once at
    start, so the warning about clear-text passwords is logged once.
    """
    auth = config.auth
    if auth.cleartext_passwords:
        log.warn("auth.cleartext_passwords is on ({source}): {{PLAIN}} and {{CLEAR}} entries of {file} "
                 "are accepted", source=config.source, file=config.users_file)
    rehasher = Rehasher(config.users_file, workers.hashing, workers.disk) if auth.rehash else None
    checker = PasswordChecker(
        directory,
        workers.hashing,
        clock,
        cache_seconds=auth.cache_seconds,
        max_queued_checks=auth.max_queued_checks,
        rehasher=rehasher,
    )
    return Portal(Realm(realm_factories), [checker])
