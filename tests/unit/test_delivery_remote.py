"""make_remote_delivery's settings and the connection caps, without sockets."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task

from mailsrv import config as configuration
from mailsrv.config.delivery import parse_relay
from mailsrv.delivery.attempt import IRemoteDelivery
from mailsrv.delivery.remote import _Slots, make_remote_delivery
from mailsrv.workers import Workers


def load(tmp_path, text: str) -> configuration.Config:
    path = tmp_path / "mailsrv.toml"
    path.write_text("[delivery]\n" + text)
    return configuration.load(str(path), data_dir=str(tmp_path))


def test_relay_is_host_and_port(tmp_path) -> None:
    assert parse_relay("smtp.example.net:587") == ("smtp.example.net", 587)
    assert parse_relay("[2001:db8::1]:465") == ("2001:db8::1", 465)
    for bad in ("smtp.example.net", ":25", "host:0", "host:x"):
        with pytest.raises(ValueError):
            parse_relay(bad)
    with pytest.raises(configuration.ConfigError, match=r"delivery\.relay"):
        load(tmp_path, 'relay = "smtp.example.net"\n')


def test_the_factory_gives_an_iremotedelivery(tmp_path) -> None:
    delivery = make_remote_delivery(load(tmp_path, ""), task.Clock(), Workers.inline())
    assert IRemoteDelivery.providedBy(delivery)


def test_an_unreadable_password_file_names_the_key_and_the_file(tmp_path) -> None:
    missing = tmp_path / "nope"
    config = load(tmp_path, f'relay = "smtp.example.net:587"\nrelay_username = "u"\nrelay_password_file = "{missing}"\n')
    with pytest.raises(configuration.ConfigError, match=rf"delivery\.relay_password_file: cannot read {missing}"):
        make_remote_delivery(config, task.Clock(), Workers.inline())


def test_a_username_without_a_password_file_is_an_error(tmp_path) -> None:
    config = load(tmp_path, 'relay = "smtp.example.net:587"\nrelay_username = "u"\n')
    with pytest.raises(configuration.ConfigError, match=r"delivery\.relay_password_file: needed"):
        make_remote_delivery(config, task.Clock(), Workers.inline())


def test_an_unreadable_ca_file_names_the_key(tmp_path) -> None:
    config = load(tmp_path, f'tls_ca_file = "{tmp_path / "missing.pem"}"\n')
    with pytest.raises(configuration.ConfigError, match=r"delivery\.tls_ca_file: cannot read"):
        make_remote_delivery(config, task.Clock(), Workers.inline())
    (tmp_path / "empty.pem").write_text("no certificate here\n")
    config = load(tmp_path, f'tls_ca_file = "{tmp_path / "empty.pem"}"\n')
    with pytest.raises(configuration.ConfigError, match=r"delivery\.tls_ca_file: no PEM certificate"):
        make_remote_delivery(config, task.Clock(), Workers.inline())


def test_slots_cap_each_destination_and_the_total() -> None:
    slots = _Slots(total=3, each=2)
    got = [defer.ensureDeferred(slots.acquire(d)) for d in ("a", "a", "a", "b", "c")]
    assert [d.called for d in got] == [True, True, False, True, False]  # a's third waits for a; c for the total
    slots.release("a")
    assert got[4].called and not got[2].called  # the total slot went to c, first in line for it
    slots.release("b")
    assert got[2].called
    for destination in ("a", "a", "c"):
        slots.release(destination)
    assert slots._by_destination == {}


def test_a_freed_slot_goes_first_to_a_message_for_a_destination_with_a_parked_session() -> None:
    parked: list[str] = []
    slots = _Slots(total=2, each=3, parked=lambda: parked)
    held = [defer.ensureDeferred(slots.acquire(d)) for d in ("a", "b")]
    waiting = [defer.ensureDeferred(slots.acquire(d)) for d in ("c", "b", "d")]
    assert all(d.called for d in held) and not any(d.called for d in waiting)
    parked.append("b")  # b's transaction ended well: its session waits for b's next message
    slots.release("b")
    assert [d.called for d in waiting] == [False, True, False]  # not c, first in line: it needs a new connection
    parked.clear()
    slots.release("a")
    assert [d.called for d in waiting] == [True, True, False]  # then first come, first served
    slots.release("b")
    assert waiting[2].called
    for destination in ("c", "d"):
        slots.release(destination)
    assert slots.free == 2 and slots._by_destination == {} and slots._running == {}


def test_a_message_that_stops_waiting_for_the_total_gives_its_destination_slot_back() -> None:
    slots = _Slots(total=1, each=1)
    first = defer.ensureDeferred(slots.acquire("a"))
    second = defer.ensureDeferred(slots.acquire("b"))
    assert first.called and not second.called
    second.cancel()
    assert "b" not in slots._by_destination  # its one slot for b is back
    third = defer.ensureDeferred(slots.acquire("b"))
    slots.release("a")
    assert third.called  # the cancelled turn was skipped
    slots.release("b")
    assert slots.free == 1
    second.addErrback(lambda f: f.trap(defer.CancelledError))


def test_a_message_waiting_for_the_total_is_not_a_transaction_under_way() -> None:
    slots = _Slots(total=1, each=3)
    running = defer.ensureDeferred(slots.acquire("a"))
    waiting = defer.ensureDeferred(slots.acquire("a"))
    assert running.called and not waiting.called
    assert slots.others("a") == 0  # the running one has no session to wait for
    slots.release("a")
    assert waiting.called and slots.others("a") == 0
    slots.release("a")
    assert slots._running == {} and slots.free == 1
