"""End to end: a client that sends ``ENABLE IMAP4rev2`` (RFC 9051), with imapclient over implicit TLS.

imapclient parses what it can (ENABLED, SELECT, STATUS, LIST); the rev2
responses it has no parser for (``* ESEARCH`` for a plain SEARCH) and the
UTF-8 folder names it will not send are read and sent through its imaplib
connection.  A second, IMAP4rev1 session checks that it sees no change.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from test_e2e_imapclient import PASSWORD, USER, client, deliver
from twistd_server import Server, one_user_server

pytest.importorskip("imapclient", reason="imapclient (the test extra) is not installed")

#: "Entwürfe", as a rev2 client names it.
DRAFTS = "Entwürfe"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from one_user_server(str(tmp_path_factory.mktemp("mailsrv")), USER, PASSWORD)


def test_rev2_session_select_search_status_list(server: Server) -> None:
    deliver(server, 3)
    with client(server) as conn:
        assert {b"IMAP4REV1", b"IMAP4REV2"} <= set(conn.capabilities())  # imapclient upper-cases them
        assert conn.enable("IMAP4rev2") == [b"IMAP4rev2"]
        selected = conn.select_folder("INBOX")
        assert selected[b"EXISTS"] == 3
        assert b"RECENT" not in selected  # RFC 9051 2.3.2
        assert selected[b"LIST"] == [b'() "/" "INBOX"']  # RFC 9051 6.3.2
        del conn._imap.untagged_responses["LIST"]  # imaplib keeps it, and the next LIST would return it too
        conn.add_flags([2, 3], [b"\\Flagged"])
        conn.add_flags([3], [b"\\Deleted"])
        assert all(b"\\Recent" not in flags for flags in conn.get_flags([1, 2, 3]).values())

        imap = conn._imap  # the rev2 answers imapclient has no parser for
        tag = imap.tagpre + b"%d" % imap.tagnum
        typ, data = imap._simple_command("UID", "SEARCH", "FLAGGED")
        assert typ == "OK", data
        # RFC 9051 6.4.4: ESEARCH, not SEARCH.
        assert imap.untagged_responses.pop("ESEARCH") == [b'(TAG "' + tag + b'") UID ALL 2:3']
        assert "SEARCH" not in imap.untagged_responses

        status = conn.folder_status("INBOX", ["MESSAGES", "DELETED", "SIZE"])
        assert status[b"MESSAGES"] == 3 and status[b"DELETED"] == 1 and status[b"SIZE"] > 0

        typ, data = imap._simple_command("CREATE", b'"' + DRAFTS.encode("utf-8") + b'"')
        assert typ == "OK", data
        conn.folder_encode = False  # names come in UTF-8 now, not modified UTF-7
        assert conn.list_folders(pattern="Entw*") == [((b"\\HasNoChildren",), b"/", DRAFTS.encode("utf-8"))]
    assert "Traceback" not in server.log()


def test_rev1_session_sees_no_change(server: Server) -> None:
    with client(server) as conn:
        selected = conn.select_folder("INBOX")
        assert b"RECENT" in selected and b"LIST" not in selected
        assert conn.search(["FLAGGED"]) == [2, 3]  # "* SEARCH", which imapclient parses
        assert conn.list_folders(pattern="Entw*") == [((b"\\HasNoChildren",), b"/", DRAFTS)]  # from modified UTF-7
        typ, data = conn._imap._simple_command("LIST", '""', "Entw*")
        assert typ == "OK", data
        assert conn._imap.untagged_responses.pop("LIST") == [b'(\\HasNoChildren) "/" "Entw&APw-rfe"']
