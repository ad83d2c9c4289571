"""SEARCH result options (RFC 4731 ESEARCH) and the saved result ``$`` (RFC 5182 SEARCHRES).

``SEARCH RETURN (MIN MAX ALL COUNT SAVE) ...`` asks for a summary instead
of every number (``* ESEARCH (TAG "a1") UID MIN 2 COUNT 3``) and, with
SAVE, keeps the result for later commands to name as ``$``.  The saved
result is kept as UIDs in the session's :class:`~.selection.Selection`,
so it means the same messages to ``FETCH $`` and ``UID FETCH $``, loses a
message when it is expunged, and starts empty with every SELECT and
EXAMINE (RFC 5182 2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from twisted.mail import imap4

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import bad, syntax
from mailsrv.imap.sequences import runs, uid_set

_OPTIONS = (b"MIN", b"MAX", b"ALL", b"COUNT", b"SAVE")  # RFC 4731 3.1, RFC 5182 2.1


@dataclass(frozen=True)
class ReturnOptions:
    """What ``RETURN (...)`` asked for; ``RETURN ()`` means ALL (RFC 4731 3.1)."""

    options: frozenset[bytes]

    @property
    def save(self) -> bool:
        """SAVE: keep the result as ``$``."""
        return b"SAVE" in self.options

    def saved(self, hits: Sequence[int]) -> list[int]:
        """The part of the result SAVE keeps (RFC 5182 2.1), of *hits* in mailbox order.

        All of it, unless MIN or MAX come without ALL or COUNT: then only
        the messages those return.
        """
        if not hits or self.options & {b"ALL", b"COUNT"} or not self.options & {b"MIN", b"MAX"}:
            return list(hits)
        picked = ([hits[0]] if b"MIN" in self.options else []) + ([hits[-1]] if b"MAX" in self.options else [])
        return sorted(set(picked))

    def response(
        self, tag: bytes, uid: bool, numbers: Sequence[int], modseqs: Sequence[int] | None = None,
    ) -> bytes | None:
        """The ``ESEARCH`` response for *numbers* (ascending), or None for SAVE alone (RFC 5182 2.1).

        *modseqs* (those of the messages of *numbers*, for a search with a
        MODSEQ key) adds ``MODSEQ``: the highest of the messages returned
        (RFC 7162 3.1.5), only the MIN or MAX one when those come alone.
        """
        if self.options == {b"SAVE"}:
            return None
        words = [b"ESEARCH (TAG " + _quoted(tag) + b")"]
        if uid:
            words.append(b"UID")
        # RFC 4731 3.1: MIN, MAX and ALL are left out when nothing matched; COUNT 0 is not.
        if numbers and b"MIN" in self.options:
            words.append(b"MIN %d" % numbers[0])
        if numbers and b"MAX" in self.options:
            words.append(b"MAX %d" % numbers[-1])
        if numbers and (b"ALL" in self.options or self.options <= {b"SAVE"}):
            words.append(b"ALL " + uid_set(numbers))
        if b"COUNT" in self.options:
            words.append(b"COUNT %d" % len(numbers))
        if modseqs:
            words.append(b"MODSEQ %d" % max(self.saved(modseqs)))
        return b" ".join(words)


def _quoted(tag: bytes) -> bytes:
    """A tag as the ``tag-string`` of RFC 4731 3.2 (a tag holds neither quote nor backslash)."""
    return b'"' + tag + b'"'


def read_return(args: Arguments) -> ReturnOptions | None:
    """``RETURN (...)`` and the space after it, if it comes next (RFC 4731 3.1)."""
    if not args.expect(b"RETURN "):
        return None
    if args.peek() != b"(":
        raise syntax(b"RETURN options expected")
    options: set[bytes] = set()
    if not args.expect(b"()"):
        for option in args.atom_list():
            if option.upper() not in _OPTIONS:
                raise bad(b"Unknown SEARCH RETURN option")
            options.add(option.upper())
    args.space()
    return ReturnOptions(frozenset(options))


def saved_set(uids: frozenset[int]) -> imap4.MessageSet:
    """``$`` as a UID set, ranges in order (empty when nothing was saved)."""
    return imap4.MessageSet(runs(sorted(uids)))

