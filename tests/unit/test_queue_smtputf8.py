"""The queue keeps the SMTPUTF8 of MAIL FROM (RFC 6531) as "this message needs SMTPUTF8", only where it does."""

from __future__ import annotations

import pytest

from mailsrv.delivery.attempt import Outcome
from mailsrv.message.body import Body, BodyType
from test_queue import (  # noqa: F401 (fixtures)
    LATER, MESSAGE, ScriptedRemote, clock, config, enqueue, envelope, make_queue, record, store,
)


@pytest.mark.parametrize(
    "sender, data, smtputf8, needed",
    [
        ("jösé@example.test", MESSAGE, True, True),  # a UTF-8 sender
        ("alice@example.test", "Subject: Grüße\r\n\r\nx\r\n".encode(), True, True),  # a UTF-8 header field
        ("alice@example.test", MESSAGE, True, False),  # RFC 6531 3.4: nothing needs it, it is not passed on
        ("alice@example.test", MESSAGE + "Grüße\r\n".encode(), True, False),  # 8-bit body only: 8BITMIME's
        ("alice@example.test", "Subject: Grüße\r\n\r\nx\r\n".encode(), False, False),  # not given at intake
    ],
)
def test_the_record_says_whether_the_message_needs_smtputf8(config, make_queue, clock, sender, data, smtputf8,
                                                            needed):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    env = envelope(sender=sender, data=data)
    env.smtputf8 = smtputf8
    enqueue(make_queue(remote), env)
    assert record(config)["smtputf8"] is needed
    clock.advance(0)
    assert remote.options[0].smtputf8 is needed


@pytest.mark.parametrize(
    "data, declared, queued",
    [
        (MESSAGE, BodyType.SEVEN_BIT, BodyType.SEVEN_BIT),
        (MESSAGE + "Grüße\r\n".encode(), BodyType.SEVEN_BIT, BodyType.EIGHT_BIT_MIME),  # undeclared 8-bit data
        (MESSAGE + b"x" * 70000 + "ü\r\n".encode(), BodyType.SEVEN_BIT, BodyType.EIGHT_BIT_MIME),  # past a block
        (MESSAGE, BodyType.EIGHT_BIT_MIME, BodyType.EIGHT_BIT_MIME),  # as declared
    ],
)
def test_a_body_with_8bit_octets_is_queued_as_8bitmime_whatever_was_declared(config, make_queue, clock, data,
                                                                           declared, queued):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    env = envelope(data=data)
    env.body = Body.from_wire(data, declared)
    enqueue(make_queue(remote), env)
    assert record(config)["body_type"] == queued.value
    clock.advance(0)
    assert remote.bodies[0].body_type is queued
