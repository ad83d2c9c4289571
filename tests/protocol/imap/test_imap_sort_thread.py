"""SORT and THREAD (RFC 5256): every sort key, both threading algorithms, their UID forms.

The threading set has what real mailboxes have: a reply chain, a reply
found through In-Reply-To only (its References is garbage), replies to a
message that is not there (once one, once two of them), a message with no
Message-ID and no Date, a reply that only its subject links, a duplicate
Message-ID and two messages that reference each other.  Every INBOX here
first lost UID 1, so UIDs are sequence numbers plus one.
"""

from __future__ import annotations

from imap_harness import IMAPTestCase

from mailsrv.imap.msgcache import FoundFields
from mailsrv.store.cache import MessageCache


def message(headers: dict[str, str], body: bytes = b"Hi.\r\n") -> bytes:
    return b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n" + body


def hour(n: int) -> str:
    return f"Mon, 01 Jan 2024 {n:02d}:00:00 +0000"


#: (headers) of messages 1..12; the comments give the thread each belongs to.
THREADED = [
    {"Message-ID": "<a@x>", "Subject": "Party", "Date": hour(1)},
    {"Message-ID": "<b@x>", "References": "<a@x>", "Subject": "Re: Party", "Date": hour(2)},
    {"Message-ID": "<c@x>", "In-Reply-To": "<b@x>", "Subject": "Re: Party", "Date": hour(3)},
    {"Message-ID": "<d@x>", "References": "garbage", "In-Reply-To": "<c@x> <zz@x>", "Subject": "RE: Party",
     "Date": hour(4)},
    {"Message-ID": "<e@x>", "References": "<gone@x>", "Subject": "Re: Lost", "Date": hour(5)},
    {"Message-ID": "<f@x>", "References": "<gone@x>", "Subject": "Re: Lost", "Date": hour(6)},
    {"Message-ID": "<g@x>", "References": "<nothere@x>", "Subject": "Solo", "Date": hour(7)},
    {"Subject": "[list] Party"},  # no Message-ID, no Date: its date is the arrival, today
    {"Message-ID": "<i@x>", "Subject": "Re: Solo", "Date": hour(9)},
    {"Message-ID": "<a@x>", "Subject": "Dup", "Date": hour(10)},  # the id of message 1 again
    {"Message-ID": "<k@x>", "References": "<l@x>", "Subject": "Loop", "Date": hour(11)},
    {"Message-ID": "<l@x>", "References": "<k@x>", "Subject": "Re: Loop", "Date": hour(12)},
]

#: Messages 1..4 for SORT: sizes, dates, addresses and subjects that order differently by each key.
SORTED = [
    message({"From": '"Zed" <zed@x>', "To": "b@x", "Cc": "carol@x", "Subject": "Re: apple", "Date": hour(3)},
            b"x" * 300),
    message({"From": "alice@x", "To": '"Zack" <Zack@x>', "Subject": "banana",
             "Date": "Mon, 01 Jan 2024 03:00:00 +0200"}, b"x" * 10),  # 01:00 UTC
    message({"From": "BOB@x", "To": "a@x", "Subject": "=?utf-8?q?=5Blist=5D_Apple?= (fwd)"}, b"x" * 200),
    message({"From": "bob@x", "Subject": "Cherry", "Date": hour(2)}, b"x" * 100),
]


class Case(IMAPTestCase):
    async def start(self, messages: list[bytes]) -> None:
        await self.deliver(b"Subject: gone\r\n\r\n", *messages)
        self.successResultOf(self.inbox.expunge([1]))
        self.session = await self.login()

    async def reply(self, command: bytes, data: bytes, done: bytes) -> None:
        tag = command.split(b" ", 1)[0]
        self.assertEqual(await self.session.command(command), b"* " + data + b"\r\n" + tag + b" OK " + done + b"\r\n")


class Sort(Case):
    async def test_every_key(self) -> None:
        await self.start(SORTED)
        cases = {
            b"(SUBJECT)": b"1 3 2 4",  # base subjects apple, banana, Apple, Cherry; ties in mailbox order
            b"(REVERSE SUBJECT)": b"4 2 1 3",  # REVERSE leaves ties in mailbox order
            b"(FROM)": b"2 3 4 1",  # alice, BOB, bob, zed: i;ascii-casemap
            b"(FROM DATE)": b"2 4 3 1",  # 3 has no Date: its arrival (today) is its sent date
            b"(FROM REVERSE DATE)": b"2 3 4 1",
            b"(DATE)": b"2 4 1 3",  # 2's 03:00 +0200 is 01:00 UTC
            b"(REVERSE DATE)": b"3 1 4 2",
            b"(SIZE)": b"2 4 3 1",
            b"(REVERSE SIZE)": b"1 3 4 2",
            b"(TO)": b"4 3 1 2",  # none, a, b, Zack
            b"(CC)": b"2 3 4 1",
            b"(ARRIVAL)": b"1 2 3 4",
        }
        for criteria, expected in cases.items():
            await self.reply(b"s SORT " + criteria + b" UTF-8 ALL", b"SORT " + expected, b"SORT completed")

    async def test_arrival_and_size_alone_read_no_header_field(self) -> None:
        await self.start(SORTED)
        asked: list[list[str]] = []
        rows: list[tuple] = []
        real_columns, real_cache_columns, real_get = FoundFields.columns, MessageCache.columns, MessageCache.get
        self.patch(FoundFields, "columns", lambda source, names: (asked.append(names), real_columns(source, names))[1])
        self.patch(MessageCache, "columns", lambda cache, keys, columns: (rows.append(tuple(columns)),
                                                                        real_cache_columns(cache, keys, columns))[1])
        self.patch(MessageCache, "get", lambda cache, keys, columns=(): (rows.append(tuple(columns)),
                                                                       real_get(cache, keys, columns))[1])
        await self.reply(b"a SORT (REVERSE ARRIVAL) UTF-8 ALL", b"SORT 4 3 2 1", b"SORT completed")
        await self.reply(b"b SORT (SIZE REVERSE ARRIVAL) UTF-8 ALL", b"SORT 2 4 3 1", b"SORT completed")
        self.assertEqual((asked, rows), ([], []))
        await self.reply(b"c SORT (SIZE FROM) UTF-8 ALL", b"SORT 2 4 3 1", b"SORT completed")
        await self.reply(b"d SORT (FROM DATE FROM) UTF-8 ALL", b"SORT 2 4 3 1", b"SORT completed")
        # A header key: that key alone, from its own column of the cache (the group's first, s_from, says
        # whether the row has them); the first SORT makes the rows, the second finds them.
        self.assertEqual(asked, [["from_key"], ["from_key", "sent"]])
        self.assertEqual(rows, [("s_from",), ("s_from",), ("s_from", "s_sent")])

    async def test_uid_sort_with_search_keys(self) -> None:
        await self.start(SORTED)
        await self.reply(b"u UID SORT (SUBJECT REVERSE SIZE) US-ASCII SUBJECT apple", b"SORT 2 4",
                         b"SORT completed")
        await self.reply(b"v SORT (DATE) UTF-8 DELETED", b"SORT", b"SORT completed")
        await self.reply(b"w SORT (DATE) UTF-8 OR FROM alice FROM zed", b"SORT 2 1", b"SORT completed")

    async def test_same_order_whichever_way_the_search_went(self) -> None:
        """Views alone (ALL), the cache's header sets (FROM), the files read (BODY, HEADER): one order."""
        await self.start(SORTED)
        for criteria, expected in ((b"(SUBJECT)", b"1 3 2 4"), (b"(FROM DATE)", b"2 4 3 1"), (b"(SIZE)", b"2 4 3 1")):
            for search in (b"ALL", b"FROM x", b"BODY x", b"HEADER From x", b"NOT BODY nowhere"):
                await self.reply(b"s SORT " + criteria + b" UTF-8 " + search, b"SORT " + expected, b"SORT completed")

    async def test_errors(self) -> None:
        await self.start(SORTED)
        for command in (b"SORT (FOO) UTF-8 ALL", b"SORT (REVERSE) UTF-8 ALL", b"SORT SUBJECT UTF-8 ALL",
                        b"SORT (SUBJECT) UTF-8", b"SORT () UTF-8 ALL", b"SORT (SUBJECT) UTF-8 FROB",
                        b"THREAD FOO UTF-8 ALL", b"THREAD REFERENCES UTF-8", b"UID SORT"):
            reply = await self.session.command(b"e " + command)
            self.assertTrue(reply.startswith(b"e BAD "), (command, reply))
        reply = await self.session.command(b"c SORT (SUBJECT) KOI8-R ALL")
        self.assertEqual(reply, b"c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n")
        reply = await self.session.command(b"c THREAD REFERENCES KOI8-R ALL")
        self.assertEqual(reply, b"c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n")


class Thread(Case):
    async def test_references(self) -> None:
        await self.start([message(h) for h in THREADED])
        # (1 2 3 4): chain, 4 through In-Reply-To; 8 has the subject of 1 and is no reply: a dummy holds both.
        # ((5)(6)): siblings under the missing <gone@x>; (7 9): 7's missing parent is pruned, 9 joins by
        # subject; (10): a duplicate id is a message of its own; (12 11): the loop is not closed.
        await self.reply(b"t THREAD REFERENCES UTF-8 ALL", b"THREAD ((1 2 3 4)(8))((5)(6))(7 9)(10)(12 11)",
                         b"THREAD completed")
        await self.reply(b"u UID THREAD REFERENCES UTF-8 SUBJECT party",
                         b"THREAD ((2 3 4 5)(9))", b"THREAD completed")
        # Only some searched: 2 is missing, so (3 4) hangs from a dummy that is pruned; its subject
        # "Re: Party" then makes it a reply to 1.
        await self.reply(b"v THREAD REFERENCES UTF-8 1,3:4,6", b"THREAD (1 3 4)(6)", b"THREAD completed")
        await self.reply(b"w THREAD REFERENCES UTF-8 DELETED", b"THREAD", b"THREAD completed")

    async def test_same_threads_when_the_search_reads_files(self) -> None:
        await self.start([message(h) for h in THREADED])
        answers = {await self.session.command(b"t THREAD REFERENCES UTF-8 " + search)
                   for search in (b"ALL", b"BODY Hi", b"TEXT Hi")}
        self.assertEqual(len(answers), 1, answers)
        self.assertIn(b"THREAD ((1 2 3 4)(8))((5)(6))", answers.pop())

    async def test_ordered_subject(self) -> None:
        await self.start([message(h) for h in THREADED])
        await self.reply(b"t THREAD ORDEREDSUBJECT UTF-8 ALL", b"THREAD (1 (2)(3)(4)(8))(5 6)(7 9)(10)(11 12)",
                         b"THREAD completed")
        # Threads go by the date of their first message: 8's is its arrival, today.
        await self.reply(b"u UID THREAD ORDEREDSUBJECT UTF-8 7:*", b"THREAD (8 10)(11)(12 13)(9)",
                         b"THREAD completed")
