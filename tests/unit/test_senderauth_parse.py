"""The sender checks' one parse of a message gives exactly what dkimpy's own parser gives."""

from __future__ import annotations

import dkim
import pytest

from mailsrv.policy.senderauth.verify import parse

MESSAGES = [
    b"From: a@example.net\nSubject: hi\n\nbody\nline 2\n",
    b"From: a@example.net\r\nSubject: hi\r\n\r\nbody\r\nline 2\r\n",
    b"From: a@example.net\nSubject: folded\n\tsecond\n\nmixed\r\nends\nhere\r\n",
    b"From: a@example.net\n\r\nbody after an LF then CRLF\n",
    b"From: a@example.net\r\n\nbody after a CRLF then LF\n",
    b"\nno header at all\n",
    b"\r\n\r\n",
    b"From: a@example.net\nSubject: no body\n",
    b"From: a@example.net\nSubject: empty body\n\n",
    b"From: a@example.net\n\nbare\rCR stays\n",
    b"From a@example.net Mon Jan  1 00:00:00 2026\nFrom: a@example.net\n\nmbox line\n",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_parse_equals_dkimpy(message):
    assert parse(message) == dkim.rfc822_parse(message)


def test_unreadable_header_raises_as_dkimpy_does():
    with pytest.raises(dkim.MessageFormatError):
        dkim.rfc822_parse(b"not a field\n\nbody\n")
    with pytest.raises(dkim.MessageFormatError):
        parse(b"not a field\n\nbody\n")
