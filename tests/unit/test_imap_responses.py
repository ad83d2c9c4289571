"""The store error -> IMAP response map: each error gets the RFC 5530 code a client can act on."""

from __future__ import annotations

import pytest

from mailsrv.imap.responses import NO, store_error
from mailsrv.store import FolderExists, LockTimeout, MessageGone, NoSuchFolder


@pytest.mark.parametrize("error, code", [
    (NoSuchFolder("x"), b"[NONEXISTENT]"),
    (FolderExists("x"), b"[ALREADYEXISTS]"),
    (MessageGone("x"), b"[EXPUNGEISSUED]"),
    # Dovecot (or another mailsrv) holds the dot-lock past our wait: the client should retry, not give up.
    (LockTimeout("the mailbox is locked by another program; try again later"), b"[INUSE]"),
])
def test_store_errors_answer_no_with_their_response_code(error, code):
    response = store_error(error)
    assert response.status == NO and response.text.startswith(code)
