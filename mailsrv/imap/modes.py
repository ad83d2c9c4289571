"""What ENABLE (RFC 5161) turned on for one session, and what each mode changes.

CONDSTORE and QRESYNC (RFC 7162) add mod-sequences and VANISHED;
IMAP4rev2 (RFC 9051) makes a session that also speaks IMAP4rev1 answer as
IMAP4rev2 requires: no ``\\Recent`` and no ``RECENT`` (RFC 9051 2.3.2),
``ESEARCH`` instead of ``SEARCH`` (6.4.4), a ``LIST`` in SELECT's answer
(6.3.2) and mailbox names in UTF-8 instead of modified UTF-7 (5.1).
UTF8=ACCEPT (RFC 6855) gives an IMAP4rev1 session the UTF-8 part of that:
UTF-8 mailbox names and quoted strings (3), APPEND's ``UTF8`` data item
(4), and no CHARSET in SEARCH (3).  The
modes live in the session's ENABLE set so that every command and the
selection read the same truth.
"""

from __future__ import annotations

CONDSTORE, QRESYNC, IMAP4REV2, UTF8_ACCEPT = b"CONDSTORE", b"QRESYNC", b"IMAP4REV2", b"UTF8=ACCEPT"
#: What ENABLE turns on (RFC 7162 3.1.8, 3.2.3; RFC 9051 6.3.1; RFC 6855 3), in the upper case ENABLE compares in.
ENABLEABLE = frozenset({CONDSTORE, QRESYNC, IMAP4REV2, UTF8_ACCEPT})
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

    @property
    def utf8_accept(self) -> bool:
        """The client sent ``ENABLE UTF8=ACCEPT`` (RFC 6855 3)."""
        return UTF8_ACCEPT in self.enabled

    @property
    def utf8(self) -> bool:
        """Mailbox names and quoted strings are UTF-8: UTF8=ACCEPT (RFC 6855 3) or IMAP4rev2 (RFC 9051 5.1)."""
        return self.utf8_accept or self.rev2

    def use_condstore(self) -> bool:
        """A CONDSTORE-enabling command ran (RFC 7162 3.1.8): CONDSTORE is on from now on; whether newly."""
        if self.condstore:
            return False
        self.enabled.add(CONDSTORE)
        return True
