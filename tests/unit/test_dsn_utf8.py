"""RFC 6533 3: internationalized addresses in DSN requests (``ORCPT=utf-8;...``) and in our reports."""

from __future__ import annotations

import pytest

from mailsrv.delivery.bounce import Action, dsn
from mailsrv.delivery.dsnrequest import BadRequest, encode_utf8_addr, orcpt_parameter, parse_orcpt
from mailsrv.delivery.queuedir import Recipient, Record, State
from mailsrv.smtp.params import parse_rcpt_params
from mailsrv.smtp.replies import Rejection


def test_utf8_orcpt_in_xtext_and_unitext_form():
    assert parse_orcpt(r"utf-8;j\x{F6}s\x{E9}@b\x{FC}cher.example") == "utf-8;jösé@bücher.example"
    assert parse_orcpt("UTF-8;jösé@bücher.example") == "UTF-8;jösé@bücher.example"  # unitext (SMTPUTF8 only)
    assert parse_orcpt(r"utf-8;a\x{2B}b@x.test") == "utf-8;a+b@x.test"
    assert parse_orcpt("rfc822;a+2Bb@x.test") == "rfc822;a+b@x.test"  # other types stay xtext


@pytest.mark.parametrize("value", ["utf-8;a+2Bb@x.test", r"utf-8;a\x{0}b", r"utf-8;a\x{1F}b", r"utf-8;\x{D800}",
                                   r"utf-8;\x{110000}", r"utf-8;a\x{f6}", "utf-8;a\x85b"])
def test_bad_utf8_orcpt(value):
    with pytest.raises(BadRequest):
        parse_orcpt(value)


def test_the_xtext_form_is_ascii_and_goes_back():
    address = "jö+s=é\\ x@bücher.example"
    encoded = encode_utf8_addr(address)
    assert encoded == r"j\x{F6}\x{2B}s\x{3D}\x{E9}\x{5C}\x{20}x@b\x{FC}cher.example"
    assert parse_orcpt("utf-8;" + encoded) == "utf-8;" + address
    assert orcpt_parameter("utf-8;" + address) == "utf-8;" + encoded


def test_raw_utf8_in_rcpt_parameters_only_with_smtputf8():
    raw = "ORCPT=utf-8;jösé@bücher.example".encode()
    assert parse_rcpt_params(raw, utf8=True).orcpt == "utf-8;jösé@bücher.example"
    with pytest.raises(Rejection) as refused:
        parse_rcpt_params(raw)
    assert refused.value.reply.code == 501
    with pytest.raises(Rejection):
        parse_rcpt_params(b"ORCPT=utf-8;j\xf6s@x.test", utf8=True)  # not UTF-8
    assert parse_rcpt_params(rb"ORCPT=utf-8;j\x{F6}s@x.test").orcpt == "utf-8;jös@x.test"


def test_a_report_names_utf8_recipients_in_the_xtext_form():
    record = Record(queue_id="Q1", sender="alice@example.test", queued_at=0.0, size=1, wire_size=1)
    failed = Recipient("jösé@bücher.example", state=State.FAILED, last_error="550 5.1.1 no such user",
                       orcpt="utf-8;JÖSÉ@bücher.example")
    report = dsn(record, [failed], Action.FAILED, b"Subject: x", full=False, hostname="mx.example.test", now=0.0)
    assert b"\r\nOriginal-Recipient: utf-8;J\\x{D6}S\\x{C9}@b\\x{FC}cher.example\r\n" in report
    assert b"\r\nFinal-Recipient: utf-8; j\\x{F6}s\\x{E9}@b\\x{FC}cher.example\r\n" in report
