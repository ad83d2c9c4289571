"""The queue honours what the sender asked (RFC 3461 DSN parameters, RFC 8689 REQUIRETLS): which reports
go out, what they hold, what the remote delivery is told, what the record keeps."""

from __future__ import annotations

import email
import json
from email import policy

import pytest
from twisted.internet.defer import Deferred

from mailsrv import config as configuration
from mailsrv.config import DeliveryConfig
from mailsrv.delivery.attempt import Options, Outcome
from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.delivery.bounce import Action
from mailsrv.delivery.queuedir import QueueDir, Recipient, Record, State
from mailsrv.message.body import Body
from test_queue import (  # noqa: F401 (fixtures)
    ALICE, BOB, CAROL, LATER, MESSAGE, NO_USER, ScriptedRemote, audit_lines, clock, config, delivered_to,
    enqueue, envelope, make_queue, record, store,
)

ARRIVED = "250 2.0.0 Ok: queued as X"


def asked(env, **requests: RecipientRequest):
    """*env* with the RCPT parameters *requests* (``bob_example_org=...``) and returned."""
    for name, request in requests.items():
        env.requests[name.replace("_", "@", 1).replace("_", ".")] = request
    return env


def reports(config) -> list[email.message.EmailMessage]:
    """The DSNs alice got, parsed."""
    return [email.message_from_bytes(data, policy=policy.default) for data in delivered_to(config)]


def status_fields(report):
    """(per-message, [per-recipient...]) fields of a multipart/report."""
    [status] = [part for part in report.walk() if part.get_content_type() == "message/delivery-status"]
    per_message, *per_recipient = status.get_payload()
    return per_message, per_recipient


def test_notify_never_gets_no_bounce(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    enqueue(make_queue(remote), asked(envelope(), bob_example_org=RecipientRequest(notify="NEVER")))
    clock.advance(0)
    assert record(config) is None  # reported as wanted: not at all
    clock.advance(3600)
    assert delivered_to(config) == []


def test_notify_without_failure_gets_no_bounce_but_the_others_do(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)], carol_example_net=[(Outcome.FAILED, NO_USER)])
    env = asked(envelope(remote=(BOB, CAROL)), bob_example_org=RecipientRequest(notify="SUCCESS,DELAY"))
    enqueue(make_queue(remote), env)
    clock.advance(0)
    [report] = reports(config)
    _, [carol] = status_fields(report)
    assert carol["Final-Recipient"] == f"rfc822; {CAROL}" and carol["Action"] == "failed"


def test_a_bounce_names_the_envelope_id_and_the_original_recipient(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    env = asked(envelope(), bob_example_org=RecipientRequest(notify="FAILURE", orcpt="rfc822;Bob+tag@example.org"))
    env.envid = "QQ314159"
    enqueue(make_queue(remote), env)
    clock.advance(0)
    [report] = reports(config)
    per_message, [bob] = status_fields(report)
    assert per_message["Original-Envelope-Id"] == "QQ314159"
    assert bob["Original-Recipient"] == "rfc822;Bob+tag@example.org"
    assert bob["Final-Recipient"] == f"rfc822; {BOB}"


@pytest.mark.parametrize("ret", ["", "HDRS"])
def test_without_ret_full_the_bounce_has_the_header_and_no_body(config, make_queue, clock, ret):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    env = envelope()
    env.ret = ret
    enqueue(make_queue(remote), env)
    clock.advance(0)
    [report] = reports(config)
    returned = report.get_payload()[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    assert "Subject: hi" in returned.get_payload() and "Hello." not in returned.get_payload()


def test_ret_full_returns_the_whole_message(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    env = envelope()
    env.ret = "FULL"
    enqueue(make_queue(remote), env)
    clock.advance(0)
    [report] = reports(config)
    returned = report.get_payload()[2]
    assert returned.get_content_type() == "message/rfc822"
    [original] = returned.get_payload()
    assert original["Subject"] == "hi" and original.get_payload() == "Hello.\n.dot line\n"


def test_a_requiretls_message_is_bounced_without_its_body_and_the_bounce_requires_tls(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, "550 5.7.30 REQUIRETLS support required")])
    env = envelope(sender=CAROL)  # a remote sender: the bounce goes out through the queue
    env.ret, env.require_tls = "FULL", True
    queue = make_queue(remote)
    enqueue(queue, env)
    clock.advance(0)
    [first, bounce] = remote.calls
    assert bounce[1:3] == ("", [CAROL])
    assert b"Content-Type: text/rfc822-headers" in bounce[3] and b"Hello." not in bounce[3]
    assert b"Status: 5.7.30" in bounce[3]
    assert remote.options[0].require_tls and remote.options[1].require_tls  # RFC 8689 5


def test_the_sender_is_told_what_the_message_asked(config, make_queue, clock):
    remote = ScriptedRemote()
    env = asked(envelope(remote=(BOB, CAROL)), bob_example_org=RecipientRequest("SUCCESS", "rfc822;b@example.org"))
    env.ret, env.envid, env.require_tls = "HDRS", "id 1", True
    enqueue(make_queue(remote), env)
    clock.advance(0)
    assert remote.options == [
        Options(ret="HDRS", envid="id 1", requests={BOB: RecipientRequest("SUCCESS", "rfc822;b@example.org")},
                require_tls=True),
        Options(ret="HDRS", envid="id 1", require_tls=True),
    ]


def test_success_past_a_peer_without_dsn_gets_a_relayed_report(config, make_queue, clock):
    remote = ScriptedRemote()
    remote.peer_dsn = False
    enqueue(make_queue(remote), asked(envelope(), bob_example_org=RecipientRequest(notify="SUCCESS")))
    clock.advance(0)
    assert record(config) is None
    [report] = reports(config)
    assert report["Subject"] == "Successful Mail Delivery Report"
    _, [bob] = status_fields(report)
    assert (bob["Action"], bob["Status"], bob["Remote-MTA"]) == ("relayed", "2.0.0", "dns; mx.example.org")


def test_success_to_a_peer_with_dsn_is_its_to_report(config, make_queue, clock):
    remote = ScriptedRemote()  # offers DSN: it got NOTIFY=SUCCESS and reports itself
    enqueue(make_queue(remote), asked(envelope(), bob_example_org=RecipientRequest(notify="SUCCESS")))
    clock.advance(0)
    assert record(config) is None and delivered_to(config) == []


def test_no_relayed_report_without_notify_success(config, make_queue, clock):
    remote = ScriptedRemote()
    remote.peer_dsn = False
    enqueue(make_queue(remote), envelope())
    clock.advance(0)
    assert record(config) is None and delivered_to(config) == []


# -- delay warnings ---------------------------------------------------------------


def warning_config(config, delay_warning="1h"):
    return configuration.Config(data_dir=config.data_dir, hostname=config.hostname, domains=config.domains,
                                delivery=DeliveryConfig(retry=("20m",), delay_warning=delay_warning))


def test_one_delay_warning_after_delay_warning_even_across_a_restart(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    cfg = warning_config(config)
    queue = make_queue(remote, cfg=cfg)
    enqueue(queue, envelope(remote=(BOB, CAROL)))  # carol is delivered at once
    clock.advance(0)
    for _ in range(2):
        clock.advance(1200)
    assert delivered_to(config) == []  # 40 minutes: not yet
    clock.advance(1200)
    [warning] = reports(config)
    assert warning["Subject"] == "Delayed Mail (still being retried)"
    _, [bob] = status_fields(warning)
    assert (bob["Action"], bob["Status"]) == ("delayed", "4.3.0")
    assert bob["Will-Retry-Until"] == "Tue, 06 Jan 1970 00:00:00 GMT"  # queued at 0, lifetime 5 days
    assert record(config)["delay_warned"] is True
    queue.stopService()
    make_queue(remote, cfg=cfg)  # a restart
    for _ in range(4):
        clock.advance(1200)
    assert len(delivered_to(config)) == 1
    assert record(config)["recipients"][0]["state"] == "deferred"


@pytest.mark.parametrize("sender, notify, delay_warning", [
    (ALICE, "NEVER", "1h"), (ALICE, "FAILURE", "1h"), ("", "", "1h"), (ALICE, "", ""),
])
def test_no_delay_warning_when_it_is_not_wanted(config, make_queue, clock, sender, notify, delay_warning):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    env = asked(envelope(sender=sender), bob_example_org=RecipientRequest(notify=notify))
    enqueue(make_queue(remote, cfg=warning_config(config, delay_warning)), env)
    for _ in range(6):
        clock.advance(1200)
    assert len(remote.calls) == 7 and delivered_to(config) == []


# -- the record ---------------------------------------------------------------------


def test_a_record_written_before_these_fields_still_loads(tmp_path):
    old = {"queue_id": "QID000000001", "sender": ALICE, "queued_at": 5.0, "size": 10, "wire_size": 12,
           "body_type": "7BIT", "recipients": [{"address": BOB, "state": "deferred", "attempts": 1,
                                                "next_attempt": 305.0, "last_error": LATER, "host": "mx",
                                                "ip": "192.0.2.1", "reported": False, "held": 0.0}]}
    directory = QueueDir(str(tmp_path))
    with open(directory.record_path("QID000000001"), "w") as f:
        json.dump(old, f)
    loaded = directory.read("QID000000001")
    assert (loaded.ret, loaded.envid, loaded.require_tls, loaded.tls_optional, loaded.delay_warned) == (
        "", "", False, False, False)
    [bob] = loaded.recipients
    assert (bob.state, bob.notify, bob.orcpt, bob.relayed) == (State.DEFERRED, "", "", False)


def test_the_record_keeps_the_requests_and_the_tls_required_header(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    env = asked(envelope(data=b"TLS-Required: No\r\n" + MESSAGE),
                bob_example_org=RecipientRequest("SUCCESS,FAILURE", "rfc822;bob@example.org"))
    env.ret, env.envid = "FULL", "xyz"
    enqueue(make_queue(remote), env)
    saved = record(config)
    assert (saved["ret"], saved["envid"], saved["require_tls"], saved["tls_optional"]) == ("FULL", "xyz", False, True)
    assert (saved["recipients"][0]["notify"], saved["recipients"][0]["orcpt"]) == (
        "SUCCESS,FAILURE", "rfc822;bob@example.org")
    clock.advance(0)
    assert remote.options[0].tls_optional


def test_requiretls_wins_over_the_tls_required_header(config, make_queue):
    env = envelope(data=b"TLS-Required: No\r\n" + MESSAGE)
    env.require_tls = True
    enqueue(make_queue(ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])), env)
    saved = record(config)
    assert (saved["require_tls"], saved["tls_optional"]) == (True, False)  # RFC 8689 4.2.1


def test_an_expanded_report_parses_as_a_success_report_for_the_alias(config, make_queue, clock):
    queue = make_queue(ScriptedRemote())
    original = Record(queue_id="QID000000009", sender=ALICE, queued_at=0, size=len(MESSAGE), wire_size=len(MESSAGE))
    alias = Recipient("list@example.org", orcpt="rfc822;list@example.org", state=State.DELIVERED)
    Deferred.fromCoroutine(queue.report(original, [alias], Action.EXPANDED, Body.from_wire(MESSAGE)))
    clock.advance(0)
    [report] = reports(config)
    assert report.get_content_type() == "multipart/report"
    assert report["Subject"] == "Successful Mail Delivery Report"
    _, [fields] = status_fields(report)
    assert (fields["Action"], fields["Status"]) == ("expanded", "2.0.0")  # RFC 3464 2.3.3
    assert (fields["Final-Recipient"], fields["Original-Recipient"]) == ("rfc822; list@example.org",
                                                                         "rfc822;list@example.org")
