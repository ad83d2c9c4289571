"""mailsrv.spam without sockets: rspamd's answers, the X-Spam fields, what a copy teaches, the body stream."""

from __future__ import annotations

import io

import pytest
from twisted.internet.testing import StringTransport

from mailsrv import config as configuration
from mailsrv.config import ConfigError
from mailsrv.spam import producer
from mailsrv.spam.learn import lesson
from mailsrv.spam.producer import FileProducer
from mailsrv.spam.rspamd import Scan, ScanFailed, parse_scan
from mailsrv.spam.verdict import subject_field, unchecked, verdict
from mailsrv.workers import InlineExecutor


def load(tmp_path, text: str) -> configuration.Config:
    path = tmp_path / "mailsrv.toml"
    path.write_text(text)
    return configuration.load(str(path))


class TestConfig:
    def test_defaults_scan_nothing(self):
        spam = configuration.Config().spam
        assert (spam.rspamd, spam.controller, spam.on_error, spam.timeout) == ("", "", "accept", "20s")

    def test_urls(self, tmp_path):
        spam = load(tmp_path, '[spam]\nrspamd = "http://127.0.0.1:11333/"\ncontroller = "https://[::1]:11334"\n').spam
        assert (spam.rspamd, spam.controller) == ("http://127.0.0.1:11333", "https://[::1]:11334")

    @pytest.mark.parametrize("line, message", [
        ('rspamd = "127.0.0.1:11333"', "spam.rspamd: '127.0.0.1:11333' is not a URL"),
        ('rspamd = "http://127.0.0.1:11333/checkv2"', "spam.rspamd: 'http://127.0.0.1:11333/checkv2' is not a URL"),
        ('controller = "http://127.0.0.1:port"', "spam.controller: 'http://127.0.0.1:port' has no valid port"),
        ('on_error = "reject"', "spam.on_error: 'reject' is not one of accept, tempfail"),
        ('timeout = "20"', "spam.timeout: '20' is not a duration"),
    ])
    def test_mistakes_name_the_key(self, tmp_path, line, message):
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("?", r"\?")):
            load(tmp_path, f"[spam]\n{line}\n")


class TestAnswers:
    def test_a_checkv2_answer(self):
        answer = b'{"is_skipped":false,"score":7.25,"required_score":15.0,"action":"rewrite subject","subject":"[S] x"}'
        assert parse_scan(answer) == Scan(action="rewrite subject", score=7.25, required=15.0, subject="[S] x")

    @pytest.mark.parametrize("answer", [
        b"", b"<html>", b"[]", b'{"score": 1}', b'{"action": "no action"}', b'{"action": "explode", "score": 1}',
        b'{"action": "no action", "score": "NaN"}', b'{"action": "no action", "score": 1, "subject": 5}',
        b'{"action": "no action", "score": {}}',
    ])
    def test_anything_else_fails(self, answer):
        with pytest.raises(ScanFailed):
            parse_scan(answer)


class TestVerdicts:
    def test_no_action(self):
        result = verdict(Scan("no action", -0.5, 15.0), drop=((10, 20),), subject=(40, 15), junk="Junk")
        assert result.headers == (b"X-Spam-Status: No, score=-0.50\r\n", b"X-Spam-Score: -0.50 / 15.00\r\n",
                                  b"X-Spam-Action: no action\r\n")
        assert (result.drop, result.fields, result.folder) == (((10, 20),), (), None)

    @pytest.mark.parametrize("action", ["discard", "quarantine", "add header"])
    def test_spam_kept_goes_to_junk(self, action):
        result = verdict(Scan(action, 9, 15), drop=(), subject=None, junk="Junk")
        assert result.folder == "Junk" and b"X-Spam: Yes\r\n" in result.headers and result.accepted

    def test_rewrite_subject_drops_the_old_one(self):
        result = verdict(Scan("rewrite subject", 9, 15, "[SPAM] hi"), drop=((80, 9),), subject=(40, 15), junk="J")
        assert (result.drop, result.fields, result.folder) == (((40, 15), (80, 9)), (b"Subject: [SPAM] hi\r\n",), None)

    def test_a_long_subject_is_folded(self):
        field = subject_field("spam " * 40)
        assert all(len(line) <= 78 for line in field.split(b"\r\n")) and field.count(b"\r\n ") >= 2

    def test_unchecked(self):
        assert unchecked("no answer in\r\n20s", ((1, 2),)).headers == (b"X-Spam-Status: Unchecked (no answer in 20s)\r\n",)


class TestLessons:
    USES = {"Junk": frozenset({"\\Junk"}), "Trash": frozenset({"\\Trash"}), "Sent": frozenset({"\\Sent"})}

    @pytest.mark.parametrize("source, target, taught", [
        ("INBOX", "Junk", True), ("Sent", "Junk", True), ("Junk", "INBOX", False), ("Junk", "Archive", False),
        ("Junk", "Trash", None), ("INBOX", "Archive", None), ("Trash", "INBOX", None),
    ])
    def test_what_a_copy_teaches(self, source, target, taught):
        assert lesson(self.USES, source, target) is taught


class TestFileProducer:
    def produce(self, data: bytes, edits=()):
        consumer = StringTransport()
        body = FileProducer(lambda: io.BytesIO(data), len(data), InlineExecutor(), edits=edits)
        done = body.startProducing(consumer)
        return body, consumer, done

    def test_insert_below_the_first_line(self):
        data = b"Return-Path: <a@b>\nSubject: x\n\nbody\n"
        body, consumer, done = self.produce(data, edits=[(19, 0, b"X-Spam: Yes\n")])
        assert consumer.value() == b"Return-Path: <a@b>\nX-Spam: Yes\nSubject: x\n\nbody\n"
        assert body.length == len(consumer.value()) and done.called

    def test_fields_are_left_out_and_added_block_by_block(self, monkeypatch):
        monkeypatch.setattr(producer, "BLOCK", 4)
        data = b"Return-Path: <a@b>\nAuthentication-Results: mx; forged\nSubject: x\nX-Spam: No\n\nbody\n"
        forged, spam = data.index(b"Authentication-Results"), data.index(b"X-Spam")
        edits = [(19, 0, b"Authentication-Results: mx; ours\n"), (forged, len(b"Authentication-Results: mx; forged\n"), b""),
                 (spam, len(b"X-Spam: No\n"), b"")]
        body, consumer, done = self.produce(data, edits=edits)
        assert consumer.value() == b"Return-Path: <a@b>\nAuthentication-Results: mx; ours\nSubject: x\n\nbody\n"
        assert body.length == len(consumer.value()) and done.called

    def test_a_field_left_out_at_the_end_of_the_file(self):
        data = b"Subject: x\nX-Spam: No\n"
        body, consumer, done = self.produce(data, edits=[(11, 11, b"")])
        assert consumer.value() == b"Subject: x\n" and body.length == 11 and done.called

    def test_blocks_wait_while_paused(self, monkeypatch):
        monkeypatch.setattr(producer, "BLOCK", 4)
        consumer = StringTransport()
        body = FileProducer(lambda: io.BytesIO(b"0123456789"), 10, InlineExecutor())
        body.pauseProducing()
        done = body.startProducing(consumer)
        assert consumer.value() == b"" and not done.called
        body.resumeProducing()
        assert consumer.value() == b"0123456789" and done.called

    def test_stopped_it_writes_no_more_and_never_fires(self, monkeypatch):
        monkeypatch.setattr(producer, "BLOCK", 4)
        consumer = StringTransport()
        file = io.BytesIO(b"0123456789")
        body = FileProducer(lambda: file, 10, InlineExecutor())
        body.pauseProducing()
        done = body.startProducing(consumer)
        body.stopProducing()
        assert consumer.value() == b"" and not done.called and file.closed

    def test_a_short_file_fails_the_stream(self):
        body = FileProducer(lambda: io.BytesIO(b"abc"), 10, InlineExecutor())
        done = body.startProducing(StringTransport())
        failure = []
        done.addErrback(failure.append)
        assert failure and failure[0].check(OSError)

