"""What ENABLE (RFC 5161) turned on for one session, and what each mode changes.

CONDSTORE and QRESYNC (RFC 7162) add mod-sequences and VANISHED;
IMAP4rev2 (RFC 9051) makes a session that also speaks IMAP4rev1 answer as
IMAP4rev2 requires: no ``\\Recent`` and no ``RECENT`` (RFC 9051 2.3.2),
``ESEARCH`` instead of ``SEARCH`` (6.4.4), a ``LIST`` in SELECT's answer
(6.3.2) and mailbox names in UTF-8 instead of modified UTF-7 (5.1).  The
modes live in the session's ENABLE set so that every command and the
selection read the same truth.
"""

from __future__ import annotations

CONDSTORE, QRESYNC, IMAP4REV2 = b"CONDSTORE", b"QRESYNC", b"IMAP4REV2"
#: What ENABLE turns on (RFC 7162 3.1.8, 3.2.3; RFC 9051 6.3.1), in the upper case ENABLE compares in.
ENABLEABLE = frozenset({CONDSTORE, QRESYNC, IMAP4REV2})
#: How ``* ENABLED`` spells a name when CAPABILITY spells it otherwise (RFC 9051 6.3.1's example).
SPELLING = {IMAP4REV2: b"IMAP4rev2"}


class Modes:
    """The modes a session's ENABLE set (and CONDSTORE-using commands) turned on."""

    def __init__(self, enabled: set[bytes]) -> None:
        self.enabled = enabled

    @property
    def condstore(self) -> bool:
        """MODSEQ in unsolicited FETCH responses (RFC 7162 3.1.8); QRESYNC implies it (3.2.3)."""
        return CONDSTORE in self.enabled or QRESYNC in self.enabled

    @property
    def qresync(self) -> bool:
        """VANISHED instead of EXPUNGE, UIDs in unsolicited FETCH (RFC 7162 3.2.4)."""
        return QRESYNC in self.enabled

    @property
    def rev2(self) -> bool:
        """The client speaks IMAP4rev2 (RFC 9051 6.3.1: ``ENABLE IMAP4rev2``)."""
        return IMAP4REV2 in self.enabled

    def use_condstore(self) -> bool:
        """A CONDSTORE-enabling command ran (RFC 7162 3.1.8): CONDSTORE is on from now on; whether newly."""
        if self.condstore:
            return False
        self.enabled.add(CONDSTORE)
        return True
