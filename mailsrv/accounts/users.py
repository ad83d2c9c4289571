"""The user file, Dovecot passwd-file style: ``address:{SCHEME}hash[:extra...]``.

One user a line, readable and safe to edit by hand (blank lines and ``#``
comments are allowed and kept by the CLI).  Dovecot's further fields (uid,
gid, home, ...) are tolerated and ignored, so a file can move between the
two servers; of the extra fields, the quota rules are read
(:mod:`~mailsrv.accounts.quota`).  A line we cannot use is skipped with a warning naming the
file and line: one typo must not lock every other user out.
"""

from __future__ import annotations

from twisted.logger import Logger

from mailsrv.address import canonical_address
from mailsrv.accounts.passwords import UnsupportedHash, check_stored
from mailsrv.accounts.quota import with_storage
from mailsrv.accounts.textfile import EditError, append_line, content_lines, first_field, map_lines

log = Logger()

#: Password hashes are secrets even when slow to crack.
DEFAULT_MODE = 0o600


def key_of(line: str) -> str | None:
    """The canonical address a line is about, ``None`` for comments/garbage."""
    field = first_field(line)
    return None if field is None else canonical_address(field)


def parse(text: str, source: str, allow_cleartext: bool = False) -> dict[str, str]:
    """Map canonical address -> stored ``{SCHEME}hash``; *source* names the file in warnings.

    Clear-text entries are usable only with *allow_cleartext*
    (:func:`~mailsrv.accounts.passwords.check_stored`).
    """
    users: dict[str, str] = {}
    for number, line in content_lines(text):
        name, colon, _ = line.partition(":")
        address = canonical_address(name.strip())
        stored = _hash_of(line)
        try:
            if not colon or address is None:
                raise ValueError("expected ADDRESS:{SCHEME}HASH with a plain address")
            if address in users:
                raise ValueError(f"second entry for {address}, the first one is used")
            check_stored(stored, allow_cleartext)
        except (ValueError, UnsupportedHash) as e:
            log.warn("{file}:{line}: {problem}; line ignored", file=source, line=number, problem=str(e))
            continue
        users[address] = stored
    return users


def listed(text: str, address: str) -> bool:
    """True when some line of *text* is about *address*, usable or not."""
    return any(key_of(line) == address for line in text.splitlines())


def add(text: str, address: str, stored: str) -> str:
    """*text* with a new user; refuses an address that already has a line."""
    if listed(text, address):
        raise EditError(f"user {address} already exists")
    return append_line(text, f"{address}:{stored}")


def remove(text: str, address: str) -> str:
    """*text* without the user's line(s)."""
    new, hits = map_lines(text, key_of, address, lambda line: None)
    if not hits:
        raise EditError(f"no such user: {address}")
    return new


def set_password(text: str, address: str, stored: str) -> str:
    """*text* with the user's hash replaced, any extra Dovecot fields kept."""
    new, hits = map_lines(text, key_of, address, lambda line: _with_hash(line, stored))
    if not hits:
        raise EditError(f"no such user: {address}")
    return new


def set_storage(text: str, address: str, storage: str) -> str:
    """*text* with the user's storage limit set (:func:`~mailsrv.accounts.quota.with_storage`)."""
    new, hits = map_lines(text, key_of, address, lambda line: with_storage(line.strip(), storage) + "\n")
    if not hits:
        raise EditError(f"no such user: {address}")
    return new


def upgrade_hash(text: str, address: str, old: str, new: str) -> str:
    """*text* with the user's hash *old* replaced by *new*, if the line still holds *old*.

    The server rewrites a hash after a login (:mod:`~mailsrv.accounts.rehash`);
    an admin who changed the password or removed the user meanwhile wins.
    """
    return map_lines(text, key_of, address, lambda line: _with_hash(line, new) if _hash_of(line) == old else line)[0]


def _hash_of(line: str) -> str:
    """The stored-hash field of an entry line (the second field)."""
    return line.strip().partition(":")[2].split(":", 1)[0]


def _with_hash(line: str, stored: str) -> str:
    fields = line.strip().split(":")
    fields[1:2] = [stored]
    return ":".join(fields) + "\n"
