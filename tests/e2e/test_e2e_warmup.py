"""End to end: IP warm-up holds mail over the hourly cap in the queue, and the next hour releases it.

Two twistd processes on loopback: *receiver* (remote.test, its MX in the
test's DNS) and *sender* (example.test) with ``[warmup]`` limiting the
group ``remote.test`` to two recipients an hour.  Of three messages two
arrive, the third waits with the reason ``mailsrv queue list`` shows and
is not retried within the hour whatever ``[delivery] retry`` says.  The
test cannot wait an hour: it turns the group's counter in
``<data_dir>/warmup.json`` back by one hour, as the clock would, and the
held message then goes on the next queue run (``mailsrv queue retry``).
"""

from __future__ import annotations

import json
import os
import time

import pytest

from dns_harness import ThreadedDNS
from outbound import arrived, numbered, queue_is_empty, queue_list, remote_and_sender, remote_zone, submit, wait_for
from twistd_server import mailsrv_cli

WARMUP = '[warmup]\nenabled = true\nper_hour = 2\ngroups = [["remote.test"]]\n'


@pytest.fixture
def servers(tmp_path_factory):
    with ThreadedDNS(remote_zone()) as dns:
        receiver, sender = remote_and_sender(tmp_path_factory, dns, ["bob@remote.test"], "sender")
        sender.extra_config += WARMUP
        sender.write_config()
        receiver.start()
        sender.start()
        try:
            yield sender, receiver
        finally:
            sender.stop()
            receiver.stop()


def held_reason(sender) -> bool:
    return "warm-up: 2/hour to remote.test reached" in queue_list(sender)


def test_warmup_holds_what_is_over_the_hourly_cap_and_releases_it_in_the_next_hour(servers):
    sender, receiver = servers
    inbox = os.path.join(receiver.data_dir, "mail", "remote.test", "bob")
    messages = [("bob@remote.test", numbered("alice@example.test", "bob@remote.test", seq)) for seq in (1, 2, 3)]
    assert submit(sender, "alice@example.test", messages) == 3

    assert wait_for(lambda: sum(arrived(inbox).values()) == 2 and held_reason(sender), 30), queue_list(sender)
    time.sleep(3)  # three times [delivery] retry: the hold, not the retry wait, decides
    assert sum(arrived(inbox).values()) == 2, arrived(inbox)
    assert "1 message in the queue" in queue_list(sender), queue_list(sender)

    counters_file = os.path.join(sender.data_dir, "warmup.json")
    with open(counters_file) as f:
        counters = json.load(f)
    assert counters["remote.test"]["sent"] == 2, counters
    counters["remote.test"]["hour"] -= 3600
    with open(counters_file, "w") as f:
        json.dump(counters, f)
    retried = mailsrv_cli(sender.config, "queue", "retry")
    assert retried.returncode == 0, retried.stderr

    assert wait_for(lambda: queue_is_empty(sender), 30), queue_list(sender)
    assert arrived(inbox) == {1: 1, 2: 1, 3: 1}
