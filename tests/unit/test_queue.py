"""The durable queue: files, schedule, retries, expiry, bounces, restarts, two servers on one dir."""

from __future__ import annotations

import dataclasses
import email
import json
import os
from email import policy

import pytest
from twisted.internet import defer, task
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure

from mailsrv import config as configuration
from mailsrv.config import DeliveryConfig, WarmupConfig
from mailsrv.delivery import queuedir
from mailsrv.delivery.attempt import Options, Outcome, RecipientResult
from mailsrv.delivery.bounce import Action, report_envelope, status
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.local import LocalDelivery
from mailsrv.delivery.outbound import build_queue
from mailsrv.delivery.queuedir import QueueDir, Record, Recipient, State
from mailsrv.delivery.router import Router
from mailsrv.delivery.runner import POLL_INTERVAL, apply_results
from mailsrv.dkim.keys import Algorithm, KeyRing, dkim_dir
from mailsrv.dkim.signer import Signer
from mailsrv.message import wire
from mailsrv.message.body import Body, BodyType
from mailsrv.net.audit import Audit
from mailsrv.ops import dkim as dkim_ops
from mailsrv.ops import queue as ops
from mailsrv.store import Store
from mailsrv.workers import InlineExecutor, Workers
from store_harness import ManualExecutor
from support import dkim_verifies

ALICE = "alice@example.test"
BOB = "bob@example.org"
CAROL = "carol@example.net"
MESSAGE = b"From: alice@example.test\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nHello.\r\n.dot line\r\n"
OK = "250 2.0.0 Ok: queued as X"
LATER = "451 4.3.0 try again later"
NO_USER = "550 5.1.1 <bob@example.org>: no such user"


class FakeDirectory:
    """example.test is local, with alice in it."""

    def is_local_domain(self, domain: str) -> bool:
        return domain == "example.test"

    def resolve(self, address: str) -> list[str]:
        return [address] if address == ALICE else []


class ScriptedRemote:
    """An IRemoteDelivery answering each recipient from its script (the last answer repeats).

    Unscripted recipients are delivered.  With ``hold`` set, calls wait until the test fires them.
    """

    def __init__(self, **script: list[tuple[Outcome, str]]) -> None:
        self.script = {address.replace("_", "@", 1).replace("_", "."): answers for address, answers in script.items()}
        self.calls: list[tuple[str, str, list[str], bytes]] = []
        self.options: list[Options] = []
        self.bodies: list[Body] = []
        self.hold = False
        #: Whether the fake peer offered DSN (RecipientResult.peer_dsn).
        self.peer_dsn = True
        self.held: list[tuple[defer.Deferred, list[RecipientResult]]] = []
        self.closed = False

    def answer(self, recipient: str) -> RecipientResult:
        answers = self.script.get(recipient, [(Outcome.DELIVERED, OK)])
        outcome, reply = answers.pop(0) if len(answers) > 1 else answers[0]
        return RecipientResult(recipient, outcome, reply, host="mx.example.org", ip="192.0.2.25",
                               tls="TLSv1.3 TLS_AES_256_GCM_SHA384", peer_dsn=self.peer_dsn)

    def deliver(self, queue_id, sender, recipients, body, options):
        self.calls.append((queue_id, sender, list(recipients), body.read()))
        self.bodies.append(body)
        self.options.append(options)
        results = [self.answer(r) for r in recipients]
        if not self.hold:
            return defer.succeed(results)
        d: defer.Deferred = defer.Deferred()
        self.held.append((d, results))
        return d

    def close(self) -> defer.Deferred[None]:
        self.closed = True
        return defer.succeed(None)

    def release(self) -> None:
        held, self.held = self.held, []
        for d, results in held:
            d.callback(results)


@pytest.fixture
def config(tmp_path):
    return configuration.Config(data_dir=str(tmp_path / "data"), hostname="mx.example.test",
                                domains=("example.test",))


@pytest.fixture
def clock():
    return task.Clock()


@pytest.fixture
def store(config):
    return Store(config.mail_dir, InlineExecutor())


@pytest.fixture
def audit_lines():
    events: list[dict] = []
    observer = events.append
    globalLogPublisher.addObserver(observer)
    yield lambda: [e for e in events if e.get("log_namespace") == "mailsrv.audit" and e.get("event") == "send"]
    globalLogPublisher.removeObserver(observer)


@pytest.fixture
def make_queue(config, clock, store):
    """``make_queue(remote, workers=None, config=None)``: a started queue; stopped at the end."""
    started = []

    def make(remote, workers=None, cfg=None, concurrency=20, signer=None):
        audit = Audit()
        cfg = cfg or config
        if concurrency != cfg.delivery.max_connections:
            cfg = dataclasses.replace(cfg, delivery=dataclasses.replace(cfg.delivery, max_connections=concurrency))
        queue = build_queue(cfg, clock, workers or Workers.inline(), remote,
                            router=Router(FakeDirectory()), local=LocalDelivery(store, audit), audit=audit,
                            signer=signer)
        queue.startService()
        started.append(queue)
        return queue

    yield make
    for queue in started:
        if queue.running:
            queue.stopService()


def envelope(sender=ALICE, remote=(BOB,), data=MESSAGE, queue_id="QID000000001") -> Envelope:
    return Envelope(queue_id=queue_id, sender=sender, remote=list(remote), body=Body.from_wire(data))


def enqueue(queue, env) -> str:
    d = queue.enqueue(env)
    results = []
    d.addBoth(results.append)
    [queue_id] = results
    if isinstance(queue_id, Failure):
        queue_id.raiseException()
    return queue_id


def record(config, queue_id="QID000000001") -> dict | None:
    path = os.path.join(config.queue_dir, queue_id + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def delivered_to(config, domain="example.test", user="alice") -> list[bytes]:
    new = os.path.join(config.mail_dir, domain, user, "new")
    if not os.path.isdir(new):
        return []
    out = []
    for name in sorted(os.listdir(new)):
        with open(os.path.join(new, name), "rb") as f:
            out.append(f.read())
    return out


# -- the files -----------------------------------------------------------------


def test_enqueue_fires_only_after_message_and_record_are_written(config, make_queue):
    disk = ManualExecutor()
    workers = Workers(disk=disk, hashing=disk, search=disk, dns=disk, signing=disk)
    queue = make_queue(ScriptedRemote(), workers=workers)
    while disk.jobs:  # the start-up scan and cleaning
        disk.run_next()
    d = queue.enqueue(envelope())
    assert not d.called and record(config) is None
    assert disk.run_next() == "_add"
    assert d.called and d.result == "QID000000001"
    saved = record(config)
    assert saved["sender"] == ALICE
    assert saved["recipients"][0] == {
        "address": BOB, "state": "pending", "attempts": 0, "next_attempt": 0.0, "last_error": "", "host": "",
        "ip": "", "reported": False, "held": 0.0, "notify": "", "orcpt": "", "relayed": False,
    }
    with open(os.path.join(config.queue_dir, "QID000000001.msg"), "rb") as f:
        assert f.read() == MESSAGE.replace(b"\r\n", b"\n")


def test_a_crash_before_the_record_is_renamed_leaves_no_message(config, make_queue, monkeypatch, clock):
    remote = ScriptedRemote()

    def crash(path, data, default_mode=0o600, sync_dir=True):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(queuedir, "replace_file", crash)
    queue = make_queue(remote)
    with pytest.raises(OSError):
        enqueue(queue, envelope())
    monkeypatch.undo()
    assert record(config) is None
    again = make_queue(remote)
    clock.advance(0)
    assert remote.calls == [] and again.directory.records() == []
    # The orphan body is removed once it is older than any enqueue in progress.
    assert os.listdir(config.queue_dir).count("QID000000001.msg") == 1
    assert QueueDir(config.queue_dir).remove_debris(now=os.stat(config.queue_dir).st_mtime + queuedir.ORPHAN_AGE + 1) == 1
    assert "QID000000001.msg" not in os.listdir(config.queue_dir)


def test_debris_is_removed_once_old_and_a_live_message_is_kept(config):
    directory = QueueDir(config.queue_dir)
    directory.add(Record("LIVE", ALICE, 0.0, 1, 1, recipients=[Recipient(BOB)]), Body.from_wire(b"x\r\n")).release()
    debris = ["GONE.msg", "GONE.lease", "GONE.json.lock", ".LIVE.json.abc.tmp", "tmp/LIVE.msg"]
    for name in [*debris, "LIVE.lease", "LIVE.json.lock"]:
        open(os.path.join(config.queue_dir, name), "w").close()
    now = os.stat(os.path.join(config.queue_dir, "GONE.msg")).st_mtime
    assert directory.remove_debris(now) == 0  # young: maybe an enqueue in another process
    assert directory.remove_debris(now + queuedir.ORPHAN_AGE + 1) == len(debris)
    assert sorted(os.listdir(config.queue_dir)) == ["LIVE.json", "LIVE.json.lock", "LIVE.lease", "LIVE.msg", "tmp"]


def test_add_fsyncs_both_files_then_their_directory_once(config, monkeypatch):
    directory = QueueDir(config.queue_dir)
    os.makedirs(directory.tmp)
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        path = os.readlink(f"/proc/self/fd/{fd}")
        synced.append((path, sorted(n for n in os.listdir(config.queue_dir) if n.startswith("Q1."))))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    directory.add(Record("Q1", ALICE, 0.0, 1, 1, recipients=[Recipient(BOB)]), Body.from_wire(b"x\r\n")).release()
    paths = [path for path, _ in synced]
    assert paths[0] == os.path.join(directory.tmp, "Q1.msg")
    assert os.path.basename(paths[1]).startswith(".Q1.json.") and len(paths) == 3
    # The one directory fsync comes last, when both names are there: the 250 may follow.
    assert synced[2] == (os.path.realpath(config.queue_dir), ["Q1.json", "Q1.lease", "Q1.msg"])


def test_a_record_whose_message_was_lost_is_debris(config):
    directory = QueueDir(config.queue_dir)
    directory.add(Record("LOST", ALICE, 0.0, 1, 1, recipients=[Recipient(BOB)]), Body.from_wire(b"x\r\n")).release()
    os.unlink(directory.message_path("LOST"))  # the rename of the .msg did not survive the crash
    now = os.stat(directory.record_path("LOST")).st_mtime
    assert directory.remove_debris(now) == 0
    assert directory.remove_debris(now + queuedir.ORPHAN_AGE + 1) == 2  # the record and its lease
    assert directory.ids() == []


def test_a_spooled_body_is_linked_not_copied(config, make_queue, tmp_path):
    spool = tmp_path / "body-1"
    spool.write_bytes(MESSAGE.replace(b"\r\n", b"\n"))
    body = Body(size=len(MESSAGE) - 5, wire_size=len(MESSAGE), path=str(spool))
    env = Envelope(queue_id="QID000000001", sender=ALICE, remote=[BOB], body=body)
    queue = make_queue(ScriptedRemote())
    queue.running = False  # no attempt: only the files are looked at
    enqueue(queue, env)
    assert os.stat(os.path.join(config.queue_dir, "QID000000001.msg")).st_ino == os.stat(spool).st_ino


# -- attempts, retries, expiry ---------------------------------------------------


def test_delivered_message_leaves_the_queue(config, make_queue, clock, audit_lines):
    remote = ScriptedRemote()
    queue = make_queue(remote)
    enqueue(queue, envelope())
    clock.advance(0)
    assert remote.calls == [("QID000000001", ALICE, [BOB], MESSAGE.replace(b"\r\n", b"\n"))]
    assert record(config) is None
    assert sorted(os.listdir(config.queue_dir)) == ["tmp"]
    [line] = audit_lines()
    assert (line["log_level"].name, line["result"]) == ("info", "delivered")
    assert (line["queue_id"], line["recipients"], line["host"], line["ip"]) == (
        "QID000000001", [BOB], "mx.example.org", "192.0.2.25")
    assert (line["tls"], line["reply"], line["next_retry"]) == ("TLSv1.3 TLS_AES_256_GCM_SHA384", OK, "")


def test_451_then_250_retries_after_the_first_wait(config, make_queue, clock, audit_lines):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER), (Outcome.DELIVERED, OK)])
    queue = make_queue(remote)
    enqueue(queue, envelope())
    clock.advance(0)
    saved = record(config)["recipients"][0]
    assert (saved["state"], saved["attempts"], saved["next_attempt"], saved["last_error"]) == (
        "deferred", 1, 300.0, LATER)
    assert audit_lines()[0]["next_retry"] == "1970-01-01T00:05:00Z"
    clock.advance(299)
    assert len(remote.calls) == 1
    clock.advance(1)
    assert len(remote.calls) == 2 and record(config) is None
    assert [line["result"] for line in audit_lines()] == ["deferred", "delivered"]
    assert [line["age"] for line in audit_lines()] == [0.0, 300.0]  # since queueing: the latency metric


def test_a_reloaded_retry_list_schedules_the_next_failure_and_leaves_a_set_wait(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    queue = make_queue(remote)
    enqueue(queue, envelope())
    clock.advance(0)
    queue.configure(dataclasses.replace(config.delivery, retry=("1h",)))  # what a SIGHUP's [delivery] does
    assert record(config)["recipients"][0]["next_attempt"] == 300.0
    clock.advance(300)
    assert len(remote.calls) == 2
    assert record(config)["recipients"][0]["next_attempt"] == 300.0 + 3600


def test_retry_waits_follow_the_list_and_the_last_one_repeats():
    rec = Record("Q", ALICE, queued_at=0.0, size=1, wire_size=1, recipients=[Recipient(BOB)])
    later = [RecipientResult(BOB, Outcome.DEFERRED, LATER)]
    waits = []
    now = 0.0
    for _ in range(4):
        apply_results(rec, later, now, retry=(300, 600, 3600), lifetime=86400)
        waits.append(rec.recipients[0].next_attempt - now)
        now = rec.recipients[0].next_attempt
    assert waits == [300, 600, 3600, 3600]


def test_a_recipient_deferred_past_the_lifetime_fails_and_is_bounced(config, make_queue, clock):
    cfg = configuration.Config(data_dir=config.data_dir, hostname=config.hostname, domains=config.domains,
                               delivery=DeliveryConfig(retry=("1h",), lifetime="3h"))
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, "421 4.4.2 mx.example.org busy")])
    queue = make_queue(remote, cfg=cfg)
    enqueue(queue, envelope())
    clock.advance(0)
    for _ in range(3):
        assert delivered_to(config) == []
        clock.advance(3600)
    assert len(remote.calls) == 4 and record(config) is None
    [dsn] = delivered_to(config)
    report = email.message_from_bytes(dsn, policy=policy.default)
    status_part = report.get_payload()[1].get_payload()[1]
    assert status_part["Status"] == "5.4.7"
    assert status_part["Diagnostic-Code"].startswith("X-mailsrv; 4.4.7 gave up after 3 hours; last error: 421")


def test_550_fails_at_once_and_the_local_sender_gets_one_dsn(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    queue = make_queue(remote)
    enqueue(queue, envelope(remote=(BOB, CAROL)))
    clock.advance(0)
    assert [call[2] for call in remote.calls] == [[BOB], [CAROL]]
    assert record(config) is None
    clock.advance(3600)
    [dsn] = delivered_to(config)
    report = email.message_from_bytes(dsn, policy=policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert report["To"].addresses[0].addr_spec == ALICE
    assert dsn.startswith(b"Return-Path: <>\n")
    human, status_part, headers = report.get_payload()
    assert human.get_content_type() == "text/plain" and NO_USER in human.get_content()
    assert status_part.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status_part.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mx.example.test"
    assert per_message["Arrival-Date"] == "Thu, 01 Jan 1970 00:00:00 GMT"
    assert per_recipient["Final-Recipient"] == f"rfc822; {BOB}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert per_recipient["Remote-MTA"] == "dns; mx.example.org"
    assert per_recipient["Diagnostic-Code"] == f"smtp; {NO_USER}"
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Subject: hi" in headers.get_payload()


def test_the_bounce_has_the_null_sender_and_goes_through_the_queue_to_a_remote_sender(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    queue = make_queue(remote)
    enqueue(queue, envelope(sender=CAROL))
    clock.advance(0)
    [first, bounce] = remote.calls
    assert first[1:3] == (CAROL, [BOB])
    assert bounce[1:3] == ("", [CAROL])
    assert b"Content-Type: multipart/report; report-type=delivery-status" in bounce[3]
    assert queue.directory.ids() == []


def test_a_bounce_to_another_server_is_dkim_signed_by_our_hostnames_domain(config, make_queue, clock):
    key, _ = dkim_ops.make_key(config, "example.test", "s1", Algorithm.ED25519, create=True)
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    queue = make_queue(remote, signer=Signer(KeyRing(dkim_dir(config.data_dir))))
    enqueue(queue, envelope(sender=CAROL))
    clock.advance(0)
    bounce = remote.calls[1][3]
    assert bounce.startswith(b"DKIM-Signature:") and b" d=example.test;" in bounce
    assert b"From: Mail Delivery System <MAILER-DAEMON@mx.example.test>" in bounce
    assert dkim_verifies(wire.to_wire(bounce), key.record)


def test_a_bounce_kept_here_is_not_signed(config, make_queue, clock, store):
    dkim_ops.make_key(config, "example.test", "s1", Algorithm.ED25519, create=True)
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    queue = make_queue(remote, signer=Signer(KeyRing(dkim_dir(config.data_dir))))
    enqueue(queue, envelope())
    clock.advance(0)
    [bounce] = delivered_to(config)
    assert b"DKIM-Signature" not in bounce and b"multipart/report" in bounce


def test_no_dsn_for_a_null_sender_so_never_a_bounce_of_a_bounce(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.FAILED, NO_USER)])
    queue = make_queue(remote)
    enqueue(queue, envelope(sender=""))
    clock.advance(0)
    assert len(remote.calls) == 1
    assert record(config) is None and delivered_to(config) == []


def test_recipients_are_grouped_by_domain_and_all_go_together_to_a_relay(config, make_queue, clock):
    rcpts = (BOB, CAROL, "dave@EXAMPLE.org")
    remote = ScriptedRemote()
    enqueue(make_queue(remote), envelope(remote=rcpts))
    clock.advance(0)
    assert [call[2] for call in remote.calls] == [[BOB, "dave@EXAMPLE.org"], [CAROL]]
    relayed = ScriptedRemote()
    cfg = configuration.Config(data_dir=config.data_dir + "2", hostname=config.hostname, domains=config.domains,
                               delivery=DeliveryConfig(relay="smtp.example.net:587"))
    enqueue(make_queue(relayed, cfg=cfg), envelope(remote=rcpts))
    clock.advance(0)
    assert [call[2] for call in relayed.calls] == [list(rcpts)]


def test_at_most_100_recipients_go_in_one_transaction(config, make_queue, clock):
    rcpts = [f"user{i}@example.org" for i in range(250)]
    remote = ScriptedRemote()
    enqueue(make_queue(remote), envelope(remote=rcpts))
    clock.advance(0)
    assert [call[2] for call in remote.calls] == [rcpts[:100], rcpts[100:200], rcpts[200:]]
    assert record(config) is None


def test_simultaneous_attempts_are_capped(config, make_queue, clock):
    remote = ScriptedRemote()
    remote.hold = True
    queue = make_queue(remote, concurrency=1)
    enqueue(queue, envelope(queue_id="QID000000001"))
    enqueue(queue, envelope(queue_id="QID000000002"))
    clock.advance(0)
    assert [call[0] for call in remote.calls] == ["QID000000001"]
    remote.release()
    assert [call[0] for call in remote.calls] == ["QID000000001", "QID000000002"]
    remote.release()
    assert queue.directory.ids() == []


# -- restart and sharing --------------------------------------------------------


def test_a_new_queue_over_the_same_directory_resumes_pending_messages(config, make_queue, clock):
    # What a server that stopped (or died) after the 250 left behind:
    QueueDir(config.queue_dir).add(Record("QID000000001", ALICE, queued_at=0.0, size=len(MESSAGE), wire_size=len(MESSAGE),
                                          recipients=[Recipient(BOB)]), Body.from_wire(MESSAGE)).release()
    remote = ScriptedRemote()
    make_queue(remote)
    clock.advance(0)
    assert len(remote.calls) == 1 and record(config) is None


def test_a_deferred_message_resumes_at_its_next_attempt_after_a_restart(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER), (Outcome.DELIVERED, OK)])
    first = make_queue(remote)
    enqueue(first, envelope())
    clock.advance(0)
    first.stopService()
    make_queue(remote)
    clock.advance(299)
    assert len(remote.calls) == 1
    clock.advance(1)
    assert len(remote.calls) == 2 and record(config) is None


def test_two_queues_on_one_directory_do_not_both_attempt_a_message(config, make_queue, clock):
    _, remote = in_flight(make_queue, clock)
    assert len(remote.calls) == 1  # in flight, holding the lease
    second = make_queue(remote)
    clock.advance(0)
    clock.advance(POLL_INTERVAL)
    assert len(remote.calls) == 1
    remote.release()
    clock.advance(POLL_INTERVAL)
    assert len(remote.calls) == 1 and record(config) is None and second.directory.ids() == []


def in_flight(make_queue, clock):
    """A started queue whose one message's attempt waits for the held remote's answer."""
    remote = ScriptedRemote()
    remote.hold = True
    queue = make_queue(remote)
    enqueue(queue, envelope())
    clock.advance(0)
    return queue, remote


def test_a_message_sent_as_it_is_queued_holds_its_lease_against_other_servers(config, make_queue, clock):
    queue, remote = in_flight(make_queue, clock)
    assert len(remote.calls) == 1
    with pytest.raises(queuedir.Busy):
        queuedir.claim(QueueDir(config.queue_dir), "QID000000001")
    remote.release()
    assert queuedir.claim(QueueDir(config.queue_dir), "QID000000001") is None  # delivered, gone


def test_stop_waits_for_an_attempt_in_flight_at_most_the_grace(config, make_queue, clock):
    queue, remote = in_flight(make_queue, clock)
    stopped = queue.stopService()
    assert not stopped.called
    clock.advance(config.shutdown_grace)
    assert stopped.called
    remote.release()  # its result is still written
    assert record(config) is None


def test_queue_delete_during_an_attempt_leaves_nothing_behind(config, make_queue, clock, audit_lines):
    queue, remote = in_flight(make_queue, clock)
    ops.delete(config, "QID000000001")
    remote.release()
    assert queue.directory.ids() == [] and sorted(os.listdir(config.queue_dir)) == ["tmp"]
    assert [line["result"] for line in audit_lines()] == ["delivered"]


def test_stop_ends_as_soon_as_the_attempts_in_flight_end(config, make_queue, clock):
    queue, remote = in_flight(make_queue, clock)
    stopped = queue.stopService()
    remote.release()
    assert stopped.called and not clock.getDelayedCalls()
    assert remote.closed  # the sessions the sender kept open for reuse end with the queue


# -- the bounce's Status --------------------------------------------------------


@pytest.mark.parametrize("reply, expected", [
    ("550 5.1.1 no such user", "5.1.1"),
    ("554 5.7.1 rejected", "5.7.1"),
    ("550 no enhanced code", "5.0.0"),
    ("452 4.2.2 mailbox full", "5.2.2"),
    ("552 5.2.2 <bob@example.org>: Message is larger than the mailbox quota", "5.2.2"),
    ("connection refused by [192.0.2.1]:25", "5.0.0"),
])
def test_status_comes_from_the_enhanced_code(reply, expected):
    assert status(reply) == expected


def test_record_survives_a_round_trip():
    rec = Record("Q", ALICE, queued_at=5.0, size=1, wire_size=2, recipients=[
        Recipient(BOB, State.DEFERRED, 2, 99.0, LATER, "mx", "192.0.2.1"), Recipient(CAROL)])
    assert Record.from_json(rec.to_json().decode()) == rec


# -- the mailsrv queue command, while the queue runs ------------------------------


def test_a_running_queue_notices_queue_retry_at_its_next_poll(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER), (Outcome.DELIVERED, OK)])
    enqueue(make_queue(remote), envelope())
    clock.advance(0)
    ops.retry(config, "QID000000001")
    clock.advance(POLL_INTERVAL)
    assert len(remote.calls) == 2 and record(config) is None


def test_a_running_queue_bounces_what_queue_bounce_gave_up(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER)])
    enqueue(make_queue(remote), envelope())
    clock.advance(0)
    ops.bounce(config, "QID000000001")
    clock.advance(POLL_INTERVAL)
    assert len(remote.calls) == 1 and record(config) is None
    [dsn] = delivered_to(config)
    assert ops.BOUNCED_BY_ADMIN.encode() in dsn


def test_two_queues_sharing_a_deferred_message_attempt_it_once_per_retry(config, make_queue, clock):
    remote = ScriptedRemote(bob_example_org=[(Outcome.DEFERRED, LATER), (Outcome.DEFERRED, LATER),
                                             (Outcome.DELIVERED, OK)])
    remote.hold = True
    first = make_queue(remote)
    enqueue(first, envelope())
    clock.advance(0)
    make_queue(remote)
    clock.advance(POLL_INTERVAL)  # the second one sees the message, finds it busy
    remote.release()  # deferred for 300 s, then 600 s: each time both queues find it due
    for wait in (300, 600):
        clock.pump([1] * wait)
        remote.release()
    assert len(remote.calls) == 3 and record(config) is None


def test_a_recipient_the_sender_gave_no_result_for_is_deferred(config, make_queue, clock):
    class Forgetful(ScriptedRemote):
        def deliver(self, queue_id, sender, recipients, body, options):
            self.calls.append((queue_id, sender, list(recipients), b""))
            return defer.succeed([])

    remote = Forgetful()
    enqueue(make_queue(remote), envelope())
    clock.advance(0)
    saved = record(config)["recipients"][0]
    assert (saved["state"], saved["next_attempt"], len(remote.calls)) == ("deferred", 300.0, 1)


# -- IP warm-up -----------------------------------------------------------------


def warming(config, *, lifetime="5d", **keys) -> configuration.Config:
    """*config* with warm-up on (*keys* for [warmup]) and retries every 10 minutes."""
    return dataclasses.replace(config, warmup=WarmupConfig(enabled=True, **keys),
                               delivery=DeliveryConfig(retry=("10m",), lifetime=lifetime))


def gmail(i: int) -> str:
    return f"u{i}@gmail.com"


def test_warmup_is_off_by_default_and_holds_nothing_back(config, make_queue, clock):
    remote = ScriptedRemote()
    enqueue(make_queue(remote), envelope(remote=[gmail(i) for i in range(60)]))
    clock.advance(0)
    assert [len(call[2]) for call in remote.calls] == [60] and record(config) is None
    assert not os.path.exists(config.warmup_file)


def test_mail_over_the_warmup_limit_waits_in_the_queue_and_goes_out_the_next_hour(config, make_queue, clock):
    remote = ScriptedRemote()
    queue = make_queue(remote, cfg=warming(config, per_hour=2))
    clock.advance(600)
    enqueue(queue, envelope(remote=(gmail(1), BOB)))
    enqueue(queue, envelope(remote=(gmail(2), gmail(3)), queue_id="QID000000002"))
    assert sorted(call[2] for call in remote.calls) == [[BOB], [gmail(1)], [gmail(2)]]
    saved = record(config, "QID000000002")["recipients"]
    assert saved[0]["state"] == "delivered"
    assert {k: saved[1][k] for k in ("state", "attempts", "next_attempt", "last_error", "held")} == {
        "state": "deferred", "attempts": 0, "next_attempt": 3600.0, "held": 3000.0,
        "last_error": "warm-up: 2/hour to gmail.com reached, next slot at 01:00 UTC"}
    clock.advance(2999)
    assert len(remote.calls) == 3
    clock.advance(1)
    assert remote.calls[3][2] == [gmail(3)] and queue.directory.ids() == []
    assert delivered_to(config) == []  # no bounce


def test_mail_held_back_by_warmup_past_its_lifetime_is_not_bounced(config, make_queue, clock):
    remote = ScriptedRemote(u3_gmail_com=[(Outcome.DEFERRED, LATER), (Outcome.DELIVERED, OK)])
    queue = make_queue(remote, cfg=warming(config, lifetime="1h", per_hour=1, daily_growth=0))
    for i in (1, 2, 3):
        enqueue(queue, envelope(remote=(gmail(i),), queue_id=f"QID00000000{i}"))
    clock.advance(0)
    assert [call[2] for call in remote.calls] == [[gmail(1)]]
    clock.advance(3600)
    assert [call[2] for call in remote.calls] == [[gmail(1)], [gmail(2)]]
    clock.advance(3600)  # 2h: past the lifetime, but held back for 2h of it: the 451 is retried
    assert remote.calls[2][2] == [gmail(3)]
    assert record(config, "QID000000003")["recipients"][0]["state"] == "deferred"
    clock.advance(600)  # the retry finds this hour's one slot used by the 451: held until 3h
    assert len(remote.calls) == 3
    clock.advance(3000)
    assert len(remote.calls) == 4 and queue.directory.ids() == []
    assert delivered_to(config) == []


def test_a_full_report_of_a_binarymime_message_is_binarymime_itself():
    # RFC 3030 3: the returned message keeps its binary content, so the report may only travel as BINARYMIME.
    original = b"Content-Transfer-Encoding: binary\r\n\r\n\x00\xff\r\n"
    failed = [Recipient(BOB, state=State.FAILED, last_error="550 5.1.1 no")]
    for body_type, full, expected in [("BINARYMIME", True, BodyType.BINARY_MIME),
                                      ("BINARYMIME", False, BodyType.SEVEN_BIT),
                                      ("8BITMIME", True, BodyType.EIGHT_BIT_MIME)]:
        rec = Record("Q", ALICE, 0.0, 1, 1, recipients=failed, ret="FULL", body_type=body_type)
        report = report_envelope(rec, failed, Action.FAILED, original if full else b"Subject: x\r\n", full=full,
                                 hostname="mx.example.test", now=0.0)
        assert report.body is not None and report.body.body_type is expected
