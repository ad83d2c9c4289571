"""Login throttling: failed logins per client address and per account slow down, then lock out.

A password guesser's only resource is attempts, so each failed login is
answered later than the one before (the delay doubles up to a ceiling), and
after enough failures from one address, or for one account from anywhere,
that address or account is refused without a password check for a while.
The delay is a timer on the reactor, never a sleeping thread, and the check
of a locked address costs no hashing.

What is tracked is bounded: each table keeps at most ``[auth]
throttle_tracked`` keys and forgets a key once neither its failures nor its
lock-out matter any more, so an attacker spreading guesses over many
addresses or user names cannot grow it without limit (the least recently
failed key is dropped first).  IPv6 clients are counted per /64, the
smallest network a site is usually given, so one host cannot escape the
count by hopping addresses inside its own prefix.

A success forgets the account's failures (its owner got in), never the
address's: an attacker holding one account must not clear the count of
guesses at others.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from mailsrv.config.auth import AuthConfig
from mailsrv.net.aging import forget_old, trim
from mailsrv.net.session import client_network


@dataclass
class _Failures:
    """The failures counted for one key."""

    count: int
    last: float
    locked_until: float = 0.0


def _last(failures: _Failures) -> float:
    return failures.last


class FailureTable:
    """Failures per key: at most *capacity* keys, each forgotten *keep* seconds after its last failure."""

    def __init__(self, capacity: int, window: float, keep: float) -> None:
        self.capacity = capacity
        self.window = window
        self.keep = keep
        #: Ordered by last failure, oldest first (each failure moves its key to the end).
        self._entries: OrderedDict[str, _Failures] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> _Failures | None:
        """The failures of *key* that still count at *now*, or ``None``."""
        forget_old(self._entries, now, self.keep, _last)
        entry = self._entries.get(key)
        if entry is not None and now - entry.last >= self.window and entry.locked_until <= now:
            del self._entries[key]  # failures this old no longer count
            return None
        return entry

    def fail(self, key: str, now: float) -> _Failures:
        """Count one failure of *key*; its record."""
        entry = self.get(key, now)
        if entry is None:
            entry = self._entries[key] = _Failures(0, now)
            trim(self._entries, self.capacity)
        entry.count += 1
        entry.last = now
        self._entries.move_to_end(key)
        return entry

    def forget(self, key: str) -> None:
        """Drop what is counted for *key*."""
        self._entries.pop(key, None)


def address_key(ip: str) -> str:
    """What one client is counted as: its IPv4 address, or its IPv6 /64 (an IPv4-mapped one as IPv4)."""
    return client_network(ip, 32, 64)


def account_key(user: str | bytes) -> str:
    """What one account is counted as: the user name as given, case-folded."""
    if isinstance(user, bytes):
        user = user.decode("utf-8", "replace")
    return user.strip().lower()


class LoginThrottle:
    """Counts failed logins per address and per account (``[auth]`` ``throttle_*`` keys).

    The protocols ask :meth:`locked` before checking a password and report
    each outcome with :meth:`failed` (which says how long to hold the
    reply) or :meth:`succeeded`.  Times are the caller's clock's seconds.
    """

    def __init__(self, config: AuthConfig) -> None:
        self.addresses = FailureTable(0, 0, 0)
        self.accounts = FailureTable(0, 0, 0)
        self.configure(config)

    def configure(self, config: AuthConfig) -> None:
        """Count and lock out by *config* (made and SIGHUP); the failures counted so far stay."""
        self.config = config
        for table in (self.addresses, self.accounts):
            table.capacity = config.throttle_tracked
            table.window = config.throttle_window
            table.keep = max(config.throttle_window, config.throttle_lockout)

    def locked(self, ip: str, user: str | bytes, now: float) -> bool:
        """Whether logins from *ip* or to *user* are refused at *now*, without a password check."""
        for table, key in ((self.addresses, address_key(ip)), (self.accounts, account_key(user))):
            entry = table.get(key, now)
            if entry is not None and entry.locked_until > now:
                return True
        return False

    def failed(self, ip: str, user: str | bytes, now: float) -> float:
        """Count a failed login; the seconds its reply is held (``throttle_delay``, doubling with each
        failure counted for the address or the account, up to ``throttle_max_delay``).

        The failure that reaches a limit starts the lock-out of that
        address or account.
        """
        config = self.config
        by_ip = self.addresses.fail(address_key(ip), now)
        by_account = self.accounts.fail(account_key(user), now)
        for entry, limit in ((by_ip, config.throttle_failures_per_ip),
                             (by_account, config.throttle_failures_per_account)):
            if limit and entry.count >= limit:
                entry.locked_until = now + config.throttle_lockout
        doublings = min(max(by_ip.count, by_account.count) - 1, 32)  # 2**32 s is past any ceiling
        return float(min(config.throttle_delay * 2**doublings, config.throttle_max_delay))

    def succeeded(self, user: str | bytes) -> None:
        """A login of *user* succeeded: its account's failures are forgotten (the address's are not)."""
        self.accounts.forget(account_key(user))
