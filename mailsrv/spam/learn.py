"""What users teach rspamd: a message copied or moved into Junk is spam, one taken out of it is ham.

The folders are the user's special-use ones (RFC 6154 ``\\Junk`` and
``\\Trash``): out of Junk into the Trash teaches nothing, as deleting spam
says nothing of it.  Learning happens after the IMAP command answered,
one message at a time and in the order the commands came (a message put in
Junk and taken out again at once ends up ham, not spam), each read from its
file in the disk pool while it is sent; a failure (rspamd down, a message expunged meanwhile) is logged
and never reaches the client, whose COPY or MOVE already succeeded.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Iterable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.spam.producer import FileProducer
from mailsrv.spam.rspamd import Rspamd, ScanFailed
from mailsrv.store.errors import MessageGone

if TYPE_CHECKING:
    from mailsrv.store.folder import Folder
    from mailsrv.store.userstore import UserStore
    from mailsrv.workers import Executor

log = Logger()

JUNK = "\\Junk"
TRASH = "\\Trash"


def lesson(uses: dict[str, frozenset[str]], source: str, target: str) -> bool | None:
    """True (spam) for a copy into a Junk folder, False (ham) for one out of Junk but not to the Trash,
    ``None`` for any other; *uses* is the user's special-use folders (name -> attributes)."""
    into, out_of = JUNK in uses.get(target, ()), JUNK in uses.get(source, ())
    if into and not out_of:
        return True
    if out_of and not into and TRASH not in uses.get(target, ()):
        return False
    return None


class Learner:
    """Sends what users move to and from Junk to *rspamd*'s controller; files are read in *disk*."""

    def __init__(self, rspamd: Rspamd, disk: "Executor") -> None:
        self._rspamd = rspamd
        self._disk = disk
        self._turn = defer.DeferredLock()
        #: The lessons being given, for a stopping server or a test to wait for.
        self.pending: set[defer.Deferred[None]] = set()

    def copied(self, user: "UserStore", source: "Folder", target: "Folder", uids: Iterable[int]) -> None:
        """*uids* (of *target*) were just copied there from *source*: learn from them, in the background."""
        uids = list(uids)
        if not uids or source.name == target.name:
            return
        lessons = self._turn.run(self._learn, user, source.name, target, uids)
        self.pending.add(lessons)
        lessons.addBoth(self._done, lessons)

    def _done(self, result: object, lessons: "defer.Deferred[None]") -> None:
        self.pending.discard(lessons)
        if isinstance(result, Failure):
            log.failure("learning from a copy failed", result)

    async def _learn(self, user: "UserStore", source: str, target: "Folder", uids: list[int]) -> None:
        spam = lesson(await user.special_use(), source, target.name)
        if spam is None:
            return
        for uid in uids:
            try:
                stored = await target.open_message(uid)
            except MessageGone:  # expunged meanwhile: nothing to learn from
                log.info("rspamd not taught from {folder} UID {uid}: the message is gone", folder=target.name, uid=uid)
                continue
            size = os.fstat(stored.file.fileno()).st_size
            try:
                await self._rspamd.learn(spam, FileProducer(lambda: stored.file, size, self._disk))
            except ScanFailed as e:
                log.warn("rspamd did not learn {kind} from {folder} UID {uid}: {reason}",
                         kind="spam" if spam else "ham", folder=target.name, uid=uid, reason=str(e))
            finally:
                stored.close()
