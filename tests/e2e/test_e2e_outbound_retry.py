"""End to end: a 451 to RCPT is retried, and the retry delivers the message once.

The real twistd sends to an MX that is a threaded SMTP responder
(:mod:`responder`) answering ``451`` to the first RCPT it is given and
``250`` after; it records every command, so the test sees the deferral, the
retry (``[delivery] retry = ["1s"]``) and exactly one message.
"""

from __future__ import annotations

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import numbered, queue_is_empty, queue_list, sending_server, submit, wait_for
from responder import Responder


@pytest.fixture
def sender_and_mx(tmp_path):
    zone = Zone()
    zone.add("remote.test", "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    script = {"bob@remote.test": ["451 4.3.0 try again later", "250 2.1.5 ok"]}
    with ThreadedDNS(zone) as dns, Responder(script=script) as mx, sending_server(str(tmp_path), dns, mx.port) as sender:
        yield sender, mx


def test_451_to_rcpt_defers_and_the_retry_delivers_once(sender_and_mx):
    sender, mx = sender_and_mx
    submit(sender, "alice@example.test", [("bob@remote.test", numbered("alice@example.test", "bob@remote.test", 1))])

    assert wait_for(lambda: len(mx.messages) == 1 and queue_is_empty(sender), 30), (mx.commands, queue_list(sender))
    rcpts = [c for c in mx.commands if c.upper().startswith("RCPT")]
    assert len(rcpts) == 2 and all("<bob@remote.test>" in c for c in rcpts), mx.commands
    assert sum(c.upper() == "DATA" for c in mx.commands) == 1, mx.commands  # no DATA after the 451
    assert b"X-Seq: 1\r\n" in mx.messages[0].data
    assert 'send deferred: ' in sender.log() and 'reply="451 4.3.0 try again later"' in sender.log()
