"""User operations: the entries of ``<data_dir>/users``.

The server re-reads the file on its next lookup, so a change takes effect
without a restart or a signal.  Hashing a password is slow on purpose
(tens of milliseconds); callers on a reactor thread run these functions in
a worker.
"""

from __future__ import annotations

from mailsrv.accounts import passwords, quota, users
from mailsrv.config import Config
from mailsrv.ops.common import OpsError, change, plain_address, read, require_local


def list_users(config: Config) -> list[str]:
    """The users' canonical addresses, sorted; unusable lines are logged as warnings."""
    text = read(config.users_file)
    return sorted(users.parse(text, config.users_file, allow_cleartext=config.auth.cleartext_passwords))


def new_user(config: Config, address: str) -> str:
    """The canonical *address*, if :func:`add_user` would accept it.

    A front end asks this before it asks for a password, so the admin
    does not type one twice for a user that cannot be made.
    """
    canonical = plain_address(address)
    require_local(config, canonical.rpartition("@")[2])
    if users.listed(read(config.users_file), canonical):
        raise OpsError(f"user {canonical} already exists")
    return canonical


def existing_user(config: Config, address: str) -> str:
    """The canonical *address*, if it has a line in the user file (usable or not)."""
    canonical = plain_address(address)
    if not users.listed(read(config.users_file), canonical):
        raise OpsError(f"no such user: {canonical}")
    return canonical


def add_user(config: Config, address: str, password: str, create: bool = False, storage: str | None = None) -> str:
    """Create the user *address* with *password*; returns the canonical address.

    *create* makes a missing data dir (a new server's first user);
    *storage* is the user's own storage limit (:func:`check_storage`).
    """
    canonical = new_user(config, address)
    if storage is not None:
        check_storage(storage)
    stored = _hash(password)

    def add(text: str) -> str:
        text = users.add(text, canonical, stored)
        return text if storage is None else users.set_storage(text, canonical, storage)

    change(config, config.users_file, users.DEFAULT_MODE, add, create)
    return canonical


def check_storage(storage: str) -> None:
    """Refuse a storage limit the server would not read: a Dovecot size (``1G``, ``500M``; bare: KiB)."""
    try:
        quota.size_octets(storage)
    except ValueError as e:
        raise OpsError(f"quota: {e}") from None


def set_storage(config: Config, address: str, storage: str) -> str:
    """Give the user *address* their own storage limit (``0``: none, whatever ``[quota]`` says)."""
    canonical = existing_user(config, address)
    check_storage(storage)
    change(config, config.users_file, users.DEFAULT_MODE, lambda text: users.set_storage(text, canonical, storage))
    return canonical


def set_password(config: Config, address: str, password: str) -> str:
    """Give the user *address* a new *password*; returns the canonical address."""
    canonical = existing_user(config, address)
    stored = _hash(password)
    change(config, config.users_file, users.DEFAULT_MODE,
           lambda text: users.set_password(text, canonical, stored))
    return canonical


def remove_user(config: Config, address: str) -> str:
    """Remove the user *address* (the Maildir is kept); returns the canonical address."""
    canonical = plain_address(address)
    change(config, config.users_file, users.DEFAULT_MODE, lambda text: users.remove(text, canonical))
    return canonical


def _hash(password: str) -> str:
    """The stored form of a new *password*; an empty one is refused."""
    if not password:
        raise OpsError("empty password refused")
    return passwords.hash_password(password)
