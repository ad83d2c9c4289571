"""The login throttle's bookkeeping: delays, lock-outs, expiry and its bounded memory."""

from __future__ import annotations

import dataclasses

from mailsrv import config as configuration
from mailsrv.net.throttle import LoginThrottle, address_key

AUTH = configuration.AuthConfig(
    throttle_delay=1, throttle_max_delay=8, throttle_failures_per_ip=5, throttle_failures_per_account=8,
    throttle_window=600, throttle_lockout=300, throttle_tracked=100,
)


def test_the_delay_doubles_with_each_failure_up_to_the_ceiling():
    throttle = LoginThrottle(AUTH)
    delays = [throttle.failed("192.0.2.7", f"user{n}@example.test", now=n) for n in range(6)]
    assert delays == [1, 2, 4, 8, 8, 8]  # counted per address, whatever user is guessed


def test_an_address_is_locked_out_after_its_limit_then_let_in_again():
    throttle = LoginThrottle(AUTH)
    for n in range(4):
        throttle.failed("192.0.2.7", "bob@example.test", now=n)
    assert not throttle.locked("192.0.2.7", "alice@example.test", now=4)
    throttle.failed("192.0.2.7", "bob@example.test", now=4)
    assert throttle.locked("192.0.2.7", "alice@example.test", now=5)
    assert not throttle.locked("198.51.100.1", "alice@example.test", now=5)  # another address
    assert throttle.locked("192.0.2.7", "alice@example.test", now=4 + 299)
    assert not throttle.locked("192.0.2.7", "alice@example.test", now=4 + 300)


def test_an_account_guessed_from_many_addresses_is_locked_for_everyone():
    throttle = LoginThrottle(AUTH)
    for n in range(8):
        throttle.failed(f"203.0.113.{n}", "Bob@Example.TEST", now=n)
    assert throttle.locked("198.51.100.1", "bob@example.test", now=9)
    assert not throttle.locked("198.51.100.1", "alice@example.test", now=9)


def test_a_success_forgets_the_account_not_the_address():
    throttle = LoginThrottle(AUTH)
    for n in range(4):
        throttle.failed("192.0.2.7", "alice@example.test", now=n)
    throttle.succeeded("alice@example.test")
    assert throttle.failed("198.51.100.1", "alice@example.test", now=5) == 1  # the account starts over
    assert throttle.failed("192.0.2.7", "carol@example.test", now=6) == 8  # the address does not: its 5th failure


def test_old_failures_are_forgotten():
    throttle = LoginThrottle(AUTH)
    for n in range(4):
        throttle.failed("192.0.2.7", "bob@example.test", now=n)
    assert throttle.failed("192.0.2.7", "bob@example.test", now=3 + 600) == 1
    assert len(throttle.addresses) == 1


def test_memory_is_bounded_by_the_tracked_count():
    throttle = LoginThrottle(AUTH)
    for n in range(1000):
        throttle.failed(f"10.0.{n // 256}.{n % 256}", f"u{n}@example.test", now=1)
    assert len(throttle.addresses) == 100
    assert len(throttle.accounts) == 100
    throttle.failed("192.0.2.7", "bob@example.test", now=2 + 600)  # and everything expired goes
    assert len(throttle.addresses) == 1


def test_ipv6_clients_count_per_64():
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"


def test_a_reload_lowers_the_limit_and_the_failures_counted_before_count_against_it():
    throttle = LoginThrottle(AUTH)
    for n in range(3):
        throttle.failed("192.0.2.7", "bob@example.test", now=n)
    throttle.configure(dataclasses.replace(AUTH, throttle_failures_per_ip=4, throttle_lockout=900))
    assert not throttle.locked("192.0.2.7", "bob@example.test", now=3)
    throttle.failed("192.0.2.7", "bob@example.test", now=3)
    assert throttle.locked("192.0.2.7", "bob@example.test", now=3 + 899)  # the new lock-out, and kept that long
