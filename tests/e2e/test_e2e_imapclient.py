"""End to end with a real third-party client, imapclient (PyPI), against the running ``twistd mailsrv``.

It parses the responses itself (imaplib's strings are not enough for
ENABLE, ID, MOVE or LIST attributes), so a reply that passes only our
own parsers fails here.  Over verified implicit TLS.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from twistd_server import Server, one_user_server

imapclient = pytest.importorskip("imapclient", reason="imapclient (the test extra) is not installed")

PASSWORD = "correct horse battery staple"
USER = "alice@example.test"
MESSAGE = b"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: %d\r\n\r\nHello.\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from one_user_server(str(tmp_path_factory.mktemp("mailsrv")), USER, PASSWORD)


def client(server: Server) -> "imapclient.IMAPClient":
    conn = imapclient.IMAPClient("127.0.0.1", port=server.ports["imaps"], ssl=True, ssl_context=server.tls(),
                                 timeout=30)
    conn.login(USER, PASSWORD)
    return conn


def deliver(server: Server, count: int) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        for n in range(count):
            s.sendmail("bob@remote.test", [USER], MESSAGE % n)


def test_capabilities_enable_and_id(server: Server) -> None:
    with client(server) as conn:
        caps = set(conn.capabilities())
        assert {b"ENABLE", b"ID", b"MOVE", b"UNSELECT", b"SPECIAL-USE", b"CREATE-SPECIAL-USE", b"LITERAL+",
                b"LIST-EXTENDED", b"LIST-STATUS", b"STATUS=SIZE", b"SASL-IR", b"UIDPLUS"} <= caps
        assert {b"CONDSTORE", b"QRESYNC"} <= caps
        assert conn.enable("CONDSTORE", "X-UNKNOWN") == [b"CONDSTORE"]  # RFC 5161: the unknown one is ignored
        (info,) = conn.id_({"name": "imapclient-e2e", "version": imapclient.__version__})
        fields = dict(zip(info[::2], info[1::2]))  # the ID list, parsed: (name, value, name, value ...)
        assert fields[b"name"] == b"mailsrv" and fields[b"version"]
    assert "imapclient-e2e" in server.log()


def test_special_folders_of_a_new_account(server: Server) -> None:
    with client(server) as conn:
        uses = {name: flags for flags, _, name in conn.list_folders()}
        assert uses["Sent"] == (b"\\HasNoChildren", b"\\Sent")
        assert {f for flags in uses.values() for f in flags} >= {
            b"\\Drafts", b"\\Sent", b"\\Trash", b"\\Junk", b"\\Archive"}
        assert conn.find_special_folder(imapclient.imapclient.SENT) == "Sent"
        assert conn.find_special_folder(imapclient.imapclient.TRASH) == "Trash"
        # Made subscribed, so clients showing subscribed folders only (Thunderbird's default) see them.
        assert {name for _, _, name in conn.list_sub_folders()} == {"Drafts", "Sent", "Trash", "Junk", "Archive"}


def test_create_with_use(server: Server) -> None:
    with client(server) as conn:
        typ, data = conn._imap._simple_command("CREATE", '"Old Mail"', "(USE (\\Archive))")
        assert typ == "OK", data
        listed = {name: flags for flags, _, name in conn.list_folders(pattern="Old*")}
        assert listed == {"Old Mail": (b"\\HasNoChildren", b"\\Archive")}


def test_move_with_copyuid(server: Server) -> None:
    deliver(server, 3)
    with client(server) as conn:
        conn.select_folder("INBOX")
        uids = conn.search(["ALL"])
        assert len(uids) >= 3
        conn.move(uids[:2], "Archive")
        # RFC 6851 3.3: the COPYUID came in an untagged OK (imaplib files it under its code).
        copyuid = conn._imap.untagged_responses.get("COPYUID", [])
        assert len(copyuid) == 1 and copyuid[0].split()[1:] == [b"%d:%d" % (uids[0], uids[1]), b"1:2"], copyuid
        assert conn.search(["ALL"]) == uids[2:]
        assert conn.folder_status("Archive", ["MESSAGES", "SIZE"])[b"MESSAGES"] == 2
        conn.select_folder("Archive", readonly=True)
        subjects = conn.fetch(conn.search(["ALL"]), ["BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
        assert sorted(v[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for v in subjects.values()) == [
            b"Subject: 0", b"Subject: 1"]
        conn.unselect_folder()


THREAD_MESSAGES = [  # (Message-ID, References, Subject, Date)
    ("<p1@remote.test>", "", "Party", "Mon, 01 Jan 2024 10:00:00 +0000"),
    ("<p2@remote.test>", "<p1@remote.test>", "Re: Party", "Mon, 01 Jan 2024 11:00:00 +0000"),
    ("<z1@remote.test>", "<nowhere@remote.test>", "=?utf-8?q?=5Bann=5D_Apples?=", "Mon, 01 Jan 2024 09:00:00 +0000"),
    ("<p3@remote.test>", "<p1@remote.test> <p2@remote.test>", "Re: Re: Party", "Mon, 01 Jan 2024 12:00:00 +0000"),
]


def test_sort_thread_and_esearch(server: Server) -> None:
    """SORT, THREAD and SEARCH RETURN/SAVE parsed by imapclient (RFC 5256, 4731, 5182)."""
    with client(server) as conn:
        assert {b"ESEARCH", b"SEARCHRES", b"SORT", b"THREAD=REFERENCES", b"THREAD=ORDEREDSUBJECT"} <= set(
            conn.capabilities())
        conn.create_folder("Lists")
        for message_id, references, subject, date in THREAD_MESSAGES:
            header = f"From: bob@remote.test\r\nMessage-ID: {message_id}\r\nSubject: {subject}\r\nDate: {date}\r\n"
            conn.append("Lists", (header + (f"References: {references}\r\n" if references else "") + "\r\nHi.\r\n"))
        conn.select_folder("Lists")
        p1, p2, z1, p3 = uids = conn.search(["ALL"])
        assert uids == [1, 2, 3, 4]  # a new folder
        assert conn.sort(["SUBJECT"]) == [z1, p1, p2, p3]  # "[ann] Apples" sorts as "Apples"
        assert conn.sort(["REVERSE DATE"]) == [p3, p2, p1, z1]
        assert conn.sort(["FROM", "ARRIVAL"], ["SUBJECT", "party"]) == [p1, p2, p3]
        assert conn.thread("REFERENCES") == ((z1,), (p1, p2, p3))
        assert conn.thread("ORDEREDSUBJECT") == ((z1,), (p1, (p2,), (p3,)))
        data = conn._raw_command_untagged(b"SEARCH", [b"RETURN", b"(MIN MAX COUNT ALL)", b"SUBJECT", b"party"],
                                          response_name="ESEARCH")
        (correlator, *items), = [imapclient.response_parser.parse_response(data)]
        assert correlator[0] == b"TAG"
        assert dict(zip(items[1::2], items[2::2])) == {
            b"MIN": p1, b"MAX": p3, b"COUNT": 3, b"ALL": b"1:2,4"}
        assert items[0] == b"UID"
        conn._raw_command_untagged(b"SEARCH", [b"RETURN", b"(SAVE)", b"SUBJECT", b"apples"], response_name="ESEARCH")
        fetched = conn._raw_command_untagged(b"FETCH", [b"$", b"(FLAGS)"])  # imapclient takes no "$" itself
        assert list(imapclient.response_parser.parse_fetch_response(fetched, uid_is_key=True)) == [z1]
        conn.unselect_folder()


def test_condstore_and_qresync_across_sessions(server: Server) -> None:
    """RFC 7162 as a real client parses it: one session changes and expunges, the other resyncs."""
    with client(server) as a, client(server) as b:
        a.create_folder("Sync")
        for n in range(3):
            a.append("Sync", MESSAGE % n)
        assert a.enable("QRESYNC") == [b"QRESYNC"]
        selected = a.select_folder("Sync")
        uidvalidity, known = selected[b"UIDVALIDITY"], selected[b"HIGHESTMODSEQ"]
        uids = a.search(["ALL"])
        b.select_folder("Sync")
        b.add_flags(uids[1], [imapclient.FLAGGED])
        b.add_flags(uids[2], [imapclient.DELETED], silent=True)
        b.expunge()
        changed = a.fetch(uids, ["FLAGS"], modifiers=[f"CHANGEDSINCE {known}"])
        assert list(changed) == [uids[1]], changed
        assert imapclient.FLAGGED in changed[uids[1]][b"FLAGS"]
        modseq = changed[uids[1]][b"MODSEQ"][0]
        assert modseq > known
        found = a.search(["MODSEQ", str(known + 1)])
        assert list(found) == [uids[1]] and found.modseq == modseq
        typ, _ = a._imap.uid("STORE", str(uids[1]), f"(UNCHANGEDSINCE {known})", "+FLAGS", "(\\Seen)")
        assert typ == "OK" and a._imap.untagged_responses.get("MODIFIED") == [str(uids[1]).encode()]
        assert a.folder_status("Sync", ["HIGHESTMODSEQ"])[b"HIGHESTMODSEQ"] > modseq
    with client(server) as later:  # a client coming back: what vanished and what changed, in one SELECT
        later.enable("QRESYNC")
        typ, _ = later._imap._simple_command("SELECT", "Sync", f"(QRESYNC ({uidvalidity} {known}))")
        assert typ == "OK"
        assert later._imap.untagged_responses.get("VANISHED") == [b"(EARLIER) %d" % uids[2]]
        fetched = later._imap.untagged_responses.get("FETCH", [])
        assert len(fetched) == 1 and b"UID %d FLAGS (\\Flagged)" % uids[1] in fetched[0], fetched


UTF8_MESSAGE = "From: Jürgen <jürgen@bücher.example>\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode("utf-8")


def test_utf8_accept_names_append_and_search(server: Server) -> None:
    """RFC 6855 as imapclient speaks it; a session that did not enable it keeps modified UTF-7."""
    with client(server) as conn, client(server) as legacy:
        assert conn.enable("UTF8=ACCEPT") == [b"UTF8=ACCEPT"]
        conn.folder_encode = False  # names go out as they are ...
        conn._imap._mode_utf8()  # ... and imaplib sends them as UTF-8
        conn.create_folder("Entwürfe")
        assert "Entwürfe".encode() in {name for _, _, name in conn.list_folders(pattern="Entw*")}
        # imaplib's append would put "UTF8 (" inside the literal: the item is sent by hand, with LITERAL+.
        tag = conn._imap._new_tag()
        conn._imap.send(b'%s APPEND "Entw\xc3\xbcrfe" UTF8 (~{%d+}\r\n%s)\r\n' % (tag, len(UTF8_MESSAGE), UTF8_MESSAGE))
        typ, data = conn._imap._command_complete("APPEND", tag)
        assert typ == "OK" and b"APPENDUID" in data[0], data
        conn.select_folder("Entwürfe")
        assert conn.search([b"SUBJECT", "Grüße".encode()]) == [1]
        with pytest.raises(imapclient.exceptions.IMAPClientError, match="CHARSET"):
            conn.search([b"SUBJECT", "Grüße".encode()], charset="UTF-8")  # RFC 6855 3: BAD
        legacy.folder_encode = False
        assert b"Entw&APw-rfe" in {name for _, _, name in legacy.list_folders(pattern="Entw*")}
        legacy.select_folder(b"Entw&APw-rfe", readonly=True)
        fetched = legacy.fetch([1], ["BODY.PEEK[]", "ENVELOPE"])[1]
        assert fetched[b"BODY[]"] == UTF8_MESSAGE  # no downgrade: the message as it was stored
        assert fetched[b"ENVELOPE"].subject == "Grüße".encode()


def test_metadata_set_get_and_follow_a_rename(server: Server) -> None:
    """RFC 5464 through imapclient's raw commands, its response parser reading the METADATA lines."""
    with client(server) as conn, client(server) as other:
        assert b"METADATA" in conn.capabilities()
        conn.create_folder("Notes")
        typ, data = conn._raw_command(b"SETMETADATA", [b"Notes", b'(/private/comment "mine" /shared/comment "ours")'],
                                      uid=False)
        assert typ == "OK", data
        conn.rename_folder("Notes", "Kept")
        raw = other._raw_command_untagged(b"GETMETADATA", [b"Kept", b"(/private/comment /shared/comment)"],
                                          uid=False, response_name="METADATA")
        mailbox, values = imapclient.response_parser.parse_response(raw)
        assert mailbox == b"Kept" and dict(zip(values[::2], values[1::2])) == {
            b"/private/comment": b"mine", b"/shared/comment": b"ours"}
        raw = other._raw_command_untagged(b"GETMETADATA", [b'""', b"/shared/admin"], uid=False,
                                          response_name="METADATA")
        assert imapclient.response_parser.parse_response(raw)[1][1].startswith(b"mailto:postmaster@")
        with pytest.raises(imapclient.exceptions.IMAPClientError, match="MAXSIZE"):
            other._raw_command_untagged(b"SETMETADATA", [b"Kept", b'(/private/comment "' + b"x" * 20000 + b'")'],
                                        uid=False, response_name="METADATA")
