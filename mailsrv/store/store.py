"""The mail store: every user's Maildir under ``<data_dir>/mail``, and delivery.

``<root>/<domain>/<local>/`` is the Maildir++ of ``local@domain``
(DESIGN.md). Delivery is the path SMTP waits on before answering 250, so it
is written for durability first and speed second: one file per message,
hard-linked into each recipient's ``new/``, fsynced, and the directory
entries fsynced, all in a worker thread so the reactor keeps serving.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from mailsrv.store.files import fsync_dir
from mailsrv.message import wire
from mailsrv.store import maildir, names
from mailsrv.store.errors import InvalidAddress
from mailsrv.store.userstore import UserStore


def _check_part(part: str, what: str, address: str) -> None:
    if not part or part in (".", "..") or part.startswith(".") or "/" in part or "\x00" in part or "\\" in part:
        raise InvalidAddress(f"{what} of {address!r} cannot name a mailbox")


class Store:
    """All mailboxes of the server."""

    log = Logger()

    def __init__(self, root: str) -> None:
        self.root = root
        self._users: dict[str, UserStore] = {}

    def user(self, address: str) -> UserStore:
        """The shared :class:`UserStore` of ``local@domain`` (created lazily)."""
        address = address.lower()
        user = self._users.get(address)
        if user is None:
            local, at, domain = address.rpartition("@")
            if not at:
                raise InvalidAddress(f"{address!r} is not local@domain")
            _check_part(local, "local part", address)
            _check_part(domain, "domain", address)
            user = self._users[address] = UserStore(address, os.path.join(self.root, domain, local))
        return user

    def deliver(self, addresses: Sequence[str], data: bytes) -> "Deferred[None]":
        """Durably put *data* (CRLF) in the INBOX of every address; one write for all."""
        users = [self.user(a) for a in dict.fromkeys(a.lower() for a in addresses)]
        if not users:
            raise ValueError("deliver() needs at least one address")
        disk = wire.to_disk(data)
        filename = maildir.unique_name(len(disk), wire.wire_size(disk))
        paths = [u.path for u in users]

        def write() -> None:
            for path in paths:
                maildir.ensure_maildir(path)
            tmp = os.path.join(paths[0], "tmp", filename)
            maildir.write_file(tmp, disk)
            try:
                for path in paths:
                    target = os.path.join(path, "new", filename)
                    try:
                        os.link(tmp, target)
                    except OSError:  # another file system: fall back to a copy
                        maildir.write_file(target, disk)
            finally:
                os.unlink(tmp)
            for path in paths:
                fsync_dir(os.path.join(path, "new"))

        def announce(_: None) -> None:
            self.log.info(
                "delivered {size} octets to {recipients} as {filename}",
                size=len(data), recipients=[u.address for u in users], filename=filename,
            )
            for user in users:
                inbox = user.loaded_folder(names.INBOX)
                if inbox is not None:
                    inbox.note_delivered(filename)

        def failed(failure):  # type: ignore[no-untyped-def]
            self.log.failure("delivery to {recipients} failed", failure, recipients=[u.address for u in users])
            return failure

        return threads.deferToThread(write).addCallbacks(announce, failed)
