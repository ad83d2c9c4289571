"""End to end: the outbound queue survives a restart and a SIGKILL of the real twistd.

Two twistd processes on loopback: *sender* (example.test) and *receiver*
(remote.test, its MX in a DNS served by the test).  The receiver is down
(its port closed) while alice submits, so the messages wait in the
sender's queue; then the receiver comes up and the sender, restarted (or
killed again and again), must deliver every acknowledged message: at least
once, and a second time only inside the at-least-once window
docs/internals.rst describes (the peer's reply to the end of the data, up
to the fsync of the record that says so).
"""

from __future__ import annotations

import os
import random

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import PASSWORD, arrived, kill, numbered, queue_is_empty, queue_list, submit, wait_for
from twistd_server import Server

BOB = "bob@remote.test"
#: The sender's ``[delivery] max_connections``: the most transactions in flight when it is killed.
MAX_CONNECTIONS = 20


@pytest.fixture
def pair(tmp_path):
    """A sender and a receiver, both configured, neither started; the receiver's ports are fixed already."""
    zone = Zone()
    zone.add("remote.test", "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    (tmp_path / "receiver").mkdir()
    (tmp_path / "sender").mkdir()
    with ThreadedDNS(zone) as dns:
        receiver = Server(str(tmp_path / "receiver"), domains=("remote.test",))
        receiver.add_user(BOB, PASSWORD)
        sender = Server(
            str(tmp_path / "sender"),
            extra_config=f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
                         f'[delivery]\nmx_port = {receiver.ports["smtp"]}\nretry = ["1s"]\n'
                         f"max_connections = {MAX_CONNECTIONS}\n",
        )
        sender.add_user("alice@example.test", PASSWORD)
        try:
            yield sender, receiver
        finally:
            sender.stop()
            receiver.stop()


def bobs_mail(receiver: Server):
    return arrived(os.path.join(receiver.data_dir, "mail", "remote.test", "bob"))


def queue_while_receiver_is_down(sender: Server, count: int) -> None:
    """alice submits *count* numbered messages to bob; each is acknowledged, and each waits deferred."""
    sender.start()
    assert submit(sender, "alice@example.test",
                  ((BOB, numbered("alice@example.test", BOB, n)) for n in range(count))) == count
    # Every message has had its first attempt (connection refused) and waits for the next.
    assert wait_for(lambda: queue_list(sender).count("deferred") == count, 60), queue_list(sender)
    listed = queue_list(sender)
    assert f"{count} messages in the queue" in listed
    assert listed.count(BOB) == count


def test_restart_with_queued_messages_resumes_them(pair):
    sender, receiver = pair
    queue_while_receiver_is_down(sender, 20)
    sender.stop()
    receiver.start()
    sender.start()

    assert wait_for(lambda: queue_is_empty(sender), 60), queue_list(sender)
    assert bobs_mail(receiver) == {n: 1 for n in range(20)}


def test_sigkill_during_a_queue_run_loses_nothing(pair):
    sender, receiver = pair
    count = 200
    queue_while_receiver_is_down(sender, count)
    sender.stop()
    receiver.start()

    # Three kills at random moments of the run: each once a random number more messages have arrived.
    kills = 3
    for threshold in sorted(random.sample(range(10, count - 10), kills)):
        sender.start()
        assert wait_for(lambda: len(bobs_mail(receiver)) >= threshold, 60, interval=0.01), queue_list(sender)
        kill(sender)
    sender.start()

    assert wait_for(lambda: len(bobs_mail(receiver)) == count and queue_is_empty(sender), 120), (
        queue_list(sender), sorted(set(range(count)) - set(bobs_mail(receiver))))
    copies = bobs_mail(receiver)
    assert set(copies) == set(range(count))
    duplicates = sum(copies.values()) - count
    print(f"{kills} SIGKILLs during the run, {duplicates} duplicate deliveries")
    assert duplicates <= kills * MAX_CONNECTIONS, copies
