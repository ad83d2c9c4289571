"""Upgrading a stored hash once a login proved the password (``[auth] rehash``).

A user file carried over from Dovecot holds SHA512-CRYPT, SSHA and the
like; the server can verify them (:mod:`.schemes`) but only a login brings
the password needed to replace them by Argon2id.  The upgrade runs after
the login has been answered: the new hash in the hashing pool, the file
edit in the disk pool, never on the reactor thread.

The edit is the CLI's (:func:`~mailsrv.accounts.textfile.edit`: the same
lock, an atomic replace keeping the file's mode and owner) and replaces
the hash only if the line still holds the one that was verified
(:func:`~mailsrv.accounts.users.upgrade_hash`), so a password the admin
changed meanwhile, or another server process upgrading the same user,
always wins.
"""

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.accounts import passwords, users
from mailsrv.accounts.schemes import parse
from mailsrv.accounts.textfile import edit
from mailsrv.workers import Executor

log = Logger()


def rewrite(path: str, address: str, old: str, new: str) -> bool:
    """Replace *address*'s hash *old* by *new* in the user file at *path* (blocking); True if it was there."""
    replaced = False

    def change(text: str) -> str:
        nonlocal replaced
        result = users.upgrade_hash(text, address, old, new)
        replaced = result != text
        return result

    edit(path, change, users.DEFAULT_MODE)
    return replaced


class Rehasher:
    """Replaces verified legacy hashes in one user file, one upgrade per user at a time."""

    def __init__(self, users_file: str, hashing: Executor, disk: Executor) -> None:
        self._path = users_file
        self._hashing = hashing
        self._disk = disk
        #: Users being upgraded: a client opening five connections at once costs one new hash.
        self._running: set[str] = set()

    def login(self, address: str, stored: str, password: bytes) -> None:
        """*password* was just verified against *stored*: upgrade it if its scheme is not the new one."""
        if address in self._running or not passwords.needs_rehash(stored):
            return
        self._running.add(address)
        d = self._hashing.run(passwords.hash_password, password)
        d.addCallback(lambda new: self._disk.run(rewrite, self._path, address, stored, new))
        d.addCallbacks(self._done, self._failed, callbackArgs=(address, stored), errbackArgs=(address,))
        d.addBoth(lambda _: self._running.discard(address))

    def _done(self, replaced: bool, address: str, stored: str) -> None:
        if replaced:
            log.info("upgraded the password hash of {user} from {scheme} to {new} in {file}", user=address,
                     scheme=parse(stored).scheme, new=passwords.NEW_SCHEME, file=self._path)

    def _failed(self, failure: Failure, address: str) -> None:
        if failure.check(OSError):
            log.error("cannot upgrade the password hash of {user} in {file}: {error}", user=address,
                      file=self._path, error=failure.value.strerror)
        else:
            log.failure("upgrading the password hash of {user}", failure, user=address)
