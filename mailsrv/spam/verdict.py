"""What rspamd's action does to a message: the reply, the X-Spam fields, the subject, the folder.

==================  ===================================================
rspamd action       here
==================  ===================================================
reject              550 5.7.1, not delivered
soft reject         451 4.7.1 (the sender tries again later)
greylist            451 4.7.1
add header          delivered to Junk with ``X-Spam: Yes``
discard, quarantine delivered to Junk (never thrown away: the score may be wrong)
rewrite subject     delivered with ``X-Spam: Yes`` and rspamd's subject
no action           delivered
==================  ===================================================

Every delivered message gets the fields rspamd's own milter adds
(``X-Spam-Status: Yes, score=7.20``, ``X-Spam: Yes`` for spam) and two
more: ``X-Spam-Score: 7.20 / 15.00`` (score and the reject threshold) and
``X-Spam-Action``.  A message rspamd could not scan gets only
``X-Spam-Status: Unchecked (why)``.  Such fields the message came with
are removed first, so a sender cannot mark its own mail as clean.
"""

from __future__ import annotations

import email.header
import math
import re

from mailsrv.policy import Verdict, reject
from mailsrv.smtp import replies
from mailsrv.spam.rspamd import Scan

#: The fields of ours (lower case); the ones a message brings are dropped.
FIELDS = (b"x-spam", b"x-spam-status", b"x-spam-score", b"x-spam-action")
_SPAM = ("add header", "rewrite subject", "discard", "quarantine")
_TO_JUNK = ("add header", "discard", "quarantine")
_REFUSALS = {
    "reject": replies.SPAM_REJECTED,
    "soft reject": replies.SPAM_DEFERRED,
    "greylist": replies.GREYLISTED,
}
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def verdict(scan: Scan, *, drop: tuple[tuple[int, int], ...], subject: tuple[int, int] | None, junk: str | None,
            ) -> Verdict:
    """The verdict for *scan*: *drop* are the X-Spam fields the message came with, *subject* its Subject
    field (a ``rewrite subject`` replaces it), *junk* the Junk folder (``None``: the INBOX)."""
    refusal = _REFUSALS.get(scan.action)
    if refusal is not None:
        return reject(refusal)
    spam = scan.action in _SPAM
    headers = [
        _field("X-Spam-Status", f"{'Yes' if spam else 'No'}, score={scan.score:.2f}"),
        _field("X-Spam-Score", f"{scan.score:.2f} / {scan.required:.2f}" if math.isfinite(scan.required)
               else f"{scan.score:.2f}"),
        _field("X-Spam-Action", scan.action),
    ]
    if spam:
        headers.append(_field("X-Spam", "Yes"))
    fields: tuple[bytes, ...] = ()
    if scan.action == "rewrite subject" and scan.subject is not None:
        fields = (subject_field(scan.subject),)
        drop += (subject,) if subject is not None else ()
    return Verdict(headers=tuple(headers), fields=fields, drop=tuple(sorted(drop)),
                   folder=junk if scan.action in _TO_JUNK else None)


def unchecked(reason: str, drop: tuple[tuple[int, int], ...]) -> Verdict:
    """Deliver a message the scanner did not judge, saying so (``on_error = "accept"``)."""
    return Verdict(headers=(_field("X-Spam-Status", f"Unchecked ({_printable(reason)})"),), drop=drop)


def subject_field(subject: str) -> bytes:
    """``Subject:`` with *subject*, folded, in RFC 2047 encoded words where it is not ASCII (RFC 5322 2.1.1)."""
    text = _printable(subject)
    charset = "us-ascii" if text.isascii() else "utf-8"
    return b"Subject: " + email.header.Header(text, charset, header_name="Subject").encode(
        linesep="\r\n").encode("ascii") + b"\r\n"


def _printable(text: str) -> str:
    """*text* with control characters (CR, LF: a field of its own) made one space."""
    return _UNPRINTABLE.sub(" ", text).strip()


def _field(name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode("ascii", "replace")
