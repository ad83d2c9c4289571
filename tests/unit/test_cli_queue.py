"""``mailsrv queue ...``: list, show, retry, delete and bounce edit the records a running server reads."""

from __future__ import annotations

import os
import time
from functools import partial

import pytest

from mailsrv.config import load
from mailsrv.delivery.queuedir import QueueDir, Record, Recipient, State
from mailsrv.delivery.warmup import Hold, hold
from mailsrv.message.body import Body
from mailsrv.ops.queue import BOUNCED_BY_ADMIN

QID = "BCDFGHJKLMNP"
MESSAGE = b"From: alice@example.test\r\nSubject: hello there\r\n\r\nHi.\r\n"


@pytest.fixture
def queued(config_file):  # noqa: F811
    """One message 2h13m old: bob delivered, carol deferred for 4 more minutes, dave pending."""
    now = time.time()
    directory = QueueDir(load(config_file).queue_dir)
    directory.add(Record(QID, "alice@example.test", queued_at=now - 2 * 3600 - 13 * 60 - 5, size=len(MESSAGE),
                         wire_size=len(MESSAGE), recipients=[
                             Recipient("bob@example.org", State.DELIVERED, 1, 0.0, "250 2.0.0 Ok"),
                             Recipient("carol@example.net", State.DEFERRED, 3, now + 245, "451 4.3.0 try later"),
                             Recipient("dave@example.net")]), Body.from_wire(MESSAGE)).release()
    return directory


def test_list_shows_age_sender_and_each_recipient(run, queued):  # noqa: F811
    code, out, err = run("queue", "list")
    assert (code, err) == (0, "")
    assert out == (
        f"{QID}  2h13m  alice@example.test  {len(MESSAGE)} octets\n"
        "  bob@example.org  delivered\n"
        "  carol@example.net  deferred  next attempt in 4m  451 4.3.0 try later\n"
        "  dave@example.net  pending\n"
        "1 message in the queue\n"
    )


def test_list_says_a_recipient_waits_for_warm_up(run, queued):  # noqa: F811
    reason = "warm-up: 50/hour to gmail.com reached, next slot at 10:00 UTC"
    queued.update(QID, partial(hold, holds={"dave@example.net": Hold(time.time() + 1800, reason)}, now=time.time()))
    code, out, err = run("queue", "list")
    [line] = [line for line in out.splitlines() if "dave@example.net" in line]
    assert line.startswith("  dave@example.net  deferred  next attempt in ") and line.endswith(f"m  {reason}")


def test_list_of_an_empty_queue(run):  # noqa: F811
    assert run("queue", "list") == (0, "0 messages in the queue\n", "")


def test_show_adds_the_header(run, queued):  # noqa: F811
    code, out, err = run("queue", "show", QID)
    assert code == 0
    assert out.endswith("\n\nFrom: alice@example.test\nSubject: hello there\n")


def test_retry_makes_the_waiting_recipients_due_now(run, queued):  # noqa: F811
    assert run("queue", "retry", QID) == (0, f"{QID}: due now\n", "")
    record = queued.read(QID)
    assert [r.next_attempt for r in record.recipients] == [0.0, 0.0, 0.0]
    assert [r.state for r in record.recipients] == [State.DELIVERED, State.DEFERRED, State.PENDING]
    assert run("queue", "retry") == (0, f"{QID}: due now\n", "")


def test_bounce_fails_the_waiting_recipients_for_the_server_to_report(run, queued):  # noqa: F811
    code, out, err = run("queue", "bounce", QID)
    assert (code, out) == (0, f"{QID}: bounced carol@example.net, dave@example.net\n")
    record = queued.read(QID)
    assert [(r.state, r.last_error) for r in record.recipients[1:]] == [(State.FAILED, BOUNCED_BY_ADMIN)] * 2
    assert record.unreported == record.recipients[1:]


def test_delete_removes_both_files(run, queued):  # noqa: F811
    assert run("queue", "delete", QID) == (0, f"{QID}: deleted\n", "")
    assert queued.ids() == [] and sorted(os.listdir(queued.path)) == ["tmp"]


@pytest.mark.parametrize("action", ["show", "retry", "delete", "bounce"])
@pytest.mark.parametrize("queue_id", ["NOSUCHID0000", "../users"])
def test_an_unknown_id_is_an_error_naming_it(run, queued, action, queue_id):  # noqa: F811
    code, out, err = run("queue", action, queue_id)
    assert (code, out) == (1, "")
    assert err.startswith(f"mailsrv: no message {queue_id} in the queue (")


def test_a_damaged_record_is_named_not_skipped_silently(run, queued):  # noqa: F811
    with open(queued.record_path(QID), "w") as f:
        f.write('{"queue_id": ')
    code, out, err = run("queue", "list")
    assert (code, out) == (0, "0 messages in the queue\n")
    assert f"queue record {queued.record_path(QID)} is damaged" in err
