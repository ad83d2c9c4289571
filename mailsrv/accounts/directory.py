"""Who receives mail for an address (users, aliases, catch-alls, subaddresses), and who may send as it.

:class:`Directory` is what SMTP asks at RCPT time (and on submission, at
MAIL and after DATA) and what the checker reads passwords from.  It holds
no state of its own beyond the three parsed files (users, aliases,
senders), which it re-reads when they change on disk, so ``mailsrv user
add`` and hand edits take effect without a restart.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Callable, Mapping

from twisted.logger import Logger

from mailsrv.accounts import aliases, quota, senders, users
from mailsrv.address import canonical_address, canonical_domain, split_address
from mailsrv.store.files import WatchedFile
from mailsrv.config import Config
from mailsrv.store.maildirsize import Limits

log = Logger()

#: Alias chains longer than this are treated as a configuration loop.
MAX_ALIAS_DEPTH = 10
#: Seconds a look at the user, alias and senders files is trusted without a
#: new ``stat``: a busy MX asks several times per message, and a change is
#: still seen within this time.  An answer that refuses (no such user, not
#: theirs to send as) and every password check look again first.
RECHECK_AFTER = 0.1


@dataclass(frozen=True)
class _UserFile:
    """What the server reads from the user file: the passwords and each user's own quota limits."""

    passwords: Mapping[str, str]
    quotas: Mapping[str, quota.Override]


def _parse_user_file(text: str, source: str, allow_cleartext: bool) -> _UserFile:
    """Both readings of one read of the file, so a lookup costs one ``stat`` and a change one parse pass each."""
    return _UserFile(users.parse(text, source, allow_cleartext=allow_cleartext), quota.parse(text, source))


class Directory:
    """Local domains, users and aliases of one server (see docs/internals.rst)."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self._domains = frozenset(config.domains)  # canonical: see mailsrv.config
        cleartext = config.auth.cleartext_passwords
        parse_users = functools.partial(_parse_user_file, allow_cleartext=cleartext)
        self._users = WatchedFile(config.users_file, parse_users, RECHECK_AFTER, clock)
        self._aliases = WatchedFile(config.aliases_file, aliases.parse, RECHECK_AFTER, clock)
        self._senders = WatchedFile(config.senders_file, senders.parse, RECHECK_AFTER, clock)
        self.configure(config)

    def configure(self, config: Config) -> None:
        """Take the new default quota of a SIGHUP (the domains and the files' places take a restart)."""
        self._default_quota = config.quota.limits()

    def reload(self) -> tuple[int, int]:
        """Re-read both files now, changed or not; the number of users and of aliases.

        Every lookup already notices a changed file; this is what SIGHUP
        does, for a file system that hides changes from ``stat``.
        """
        return len(self._users.reload().passwords), len(self._aliases.reload())

    def is_local_domain(self, domain: str) -> bool:
        """True when we are the final destination for *domain*."""
        return canonical_domain(domain) in self._domains

    def users(self) -> Mapping[str, str]:
        """Canonical address -> stored password hash, current with the file (a ``stat`` each time).

        A new mapping object is returned after every reload, which lets the
        credential checker notice a reload by identity.
        """
        return self._users.get(fresh=True).passwords

    def user_exists(self, address: str) -> bool:
        """True when *address* is a user (a mailbox with a password)."""
        canonical = canonical_address(address)
        if canonical is None:
            return False
        return canonical in self._users.get().passwords or canonical in self.users()

    def quota(self, address: str) -> Limits:
        """The quota limits of the user *address*: their own from the user file, else ``[quota]``'s."""
        override = self._users.get().quotas.get(address)
        return self._default_quota if override is None else override.applied_to(self._default_quota)

    def resolve(self, address: str) -> list[str]:
        """Canonical user addresses to deliver *address* to; ``[]`` if none.

        An alias may name remote addresses too: they are in the list, for
        the router to forward to.

        Anything but a plain ``local@domain`` in a local domain gives ``[]``:
        routing syntax is refused by SMTP.
        """
        return self._resolve(address, catch_all=True) or self._resolve(address, catch_all=True, fresh=True)

    def may_send_as(self, login: str, address: str) -> bool:
        """True when the user *login* may send mail as *address* (envelope sender or From:).

        Their own address and every address delivered to them (an alias
        naming them, directly or through other aliases; ``login+tag``) is
        theirs, and what the senders file grants.  A catch-all is not: it
        takes mail for addresses nobody owns, and gives none of them away.
        """
        canonical = canonical_address(address)
        if canonical is None:
            return False
        return self._owns(login, canonical, fresh=False) or self._owns(login, canonical, fresh=True)

    def _owns(self, login: str, address: str, fresh: bool) -> bool:
        if login in self._resolve(address, catch_all=False, fresh=fresh):
            return True
        return senders.grants(self._senders.get(fresh).get(login, ()), address)

    def _resolve(self, address: str, catch_all: bool, fresh: bool = False) -> list[str]:
        parts = split_address(address)
        if parts is None or parts[1] not in self._domains:
            return []
        users, aliases_now = self._users.get(fresh).passwords, self._aliases.get(fresh)
        found = self._expand(parts[0], parts[1], users, aliases_now, (), catch_all)
        return list(dict.fromkeys(found))

    def _expand(
        self,
        local: str,
        domain: str,
        user_map: Mapping[str, str],
        alias_map: Mapping[str, tuple[str, ...]],
        path: tuple[str, ...],
        catch_all: bool,
    ) -> list[str]:
        """Users (and remote alias targets) reached from ``local@domain``; *path* is the alias chain so far."""
        address = f"{local}@{domain}"
        if domain not in self._domains:
            return [address]  # an alias forwarding to another server (the router tells them apart)
        if address in path or len(path) > MAX_ALIAS_DEPTH:
            log.warn("alias loop or chain too deep at {address}: {chain}",
                     address=address, chain=" -> ".join(path))
            return []
        if address in user_map:
            return [address]
        path += (address,)
        targets = alias_map.get(address)
        if targets is None and local != "postmaster":
            base, plus, _ = local.partition("+")
            if plus and base:
                # RFC 5233 subaddressing: local+tag is delivered as local.
                return self._expand(base, domain, user_map, alias_map, path, catch_all)
            targets = alias_map.get("@" + domain) if catch_all else None
        found = [
            user
            for target in targets or ()
            for user in self._expand(*target.rsplit("@", 1), user_map, alias_map, path, catch_all)
        ]
        if not found and local == "postmaster":
            # RFC 5321 4.5.1: postmaster of every local domain must be
            # accepted; with no alias or user that delivers, its own mailbox
            # (which a catch-all must not swallow) receives the mail.
            return [address]
        return found
