"""IP warm-up: the hourly limit per receiver group, its growth by day, its counters on disk, the holds."""

from __future__ import annotations

import json
import math
import os

import pytest
from twisted.internet import task

from mailsrv import config as configuration
from mailsrv.config import ConfigError, WarmupConfig
from mailsrv.delivery.attempt import Outcome, RecipientResult
from mailsrv.delivery.queuedir import Record, Recipient, State
from mailsrv.delivery.runner import apply_results
from mailsrv.delivery.warmup import DAY, HOUR, Hold, Warmup, hold, hourly_limit

#: Tuesday 2026-12-01 09:00 UTC, on the hour.
START = 1796115600.0
GMAIL = [f"user{i}@gmail.com" for i in range(300)]


@pytest.fixture
def clock():
    c = task.Clock()
    c.advance(START)
    return c


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / "warmup.json")


def warmup(path, **keys) -> Warmup:
    return Warmup(WarmupConfig(enabled=True, **keys), path)


def admitted(w: Warmup, addresses, clock) -> list[str]:
    holds = w.admit(addresses, clock.seconds())
    return [a for a in addresses if a not in holds]


def test_the_limit_doubles_from_50_by_default():
    assert [hourly_limit(WarmupConfig(), day) for day in range(5)] == [50, 100, 200, 400, 800]


def test_the_limit_stops_at_the_ceiling_or_grows_without_end():
    assert [hourly_limit(WarmupConfig(per_hour=10, daily_growth=50, max_per_hour=30), d) for d in range(5)] == [
        10, 15, 22, 30, 30]
    assert hourly_limit(WarmupConfig(), 100000) == math.inf
    assert hourly_limit(WarmupConfig(daily_growth=0), 365) == 50


def test_the_cap_holds_back_what_is_over_it_with_the_reason_and_the_next_slot(path, clock):
    w = warmup(path)
    clock.advance(25 * 60)  # 09:25
    holds = w.admit(GMAIL[:60], clock.seconds())
    assert sorted(holds) == sorted(GMAIL[50:60])
    assert set(holds.values()) == {Hold(START + HOUR, "warm-up: 50/hour to gmail.com reached, next slot at 10:00 UTC")}
    assert admitted(w, GMAIL[60:61], clock) == []


def test_the_cap_releases_as_the_hour_rolls(path, clock):
    w = warmup(path)
    assert len(admitted(w, GMAIL[:80], clock)) == 50
    clock.advance(HOUR - 1)
    assert admitted(w, GMAIL[50:51], clock) == []
    clock.advance(1)
    assert admitted(w, GMAIL[50:130], clock) == GMAIL[50:100]


def test_the_limit_grows_by_day_from_the_first_send(path, clock):
    w = warmup(path)
    clock.advance(30 * 60)  # the first send at 09:30: day 1 starts at 09:30 the next day
    assert len(admitted(w, GMAIL, clock)) == 50
    clock.advance(DAY - 31 * 60)  # 08:59 the next day: still day 0
    assert len(admitted(w, GMAIL, clock)) == 50
    clock.advance(HOUR)  # 09:59: day 1
    assert len(admitted(w, GMAIL, clock)) == 100
    clock.advance(DAY)
    assert len(admitted(w, GMAIL, clock)) == 200


def test_a_groups_domains_share_one_limit_and_other_domains_have_none(path, clock):
    w = warmup(path, per_hour=2)
    assert admitted(w, ["a@gmail.com", "b@GoogleMail.com", "c@gmail.com", "d@hotmail.com"], clock) == [
        "a@gmail.com", "b@GoogleMail.com", "d@hotmail.com"]
    assert admitted(w, [f"u{i}@example.org" for i in range(500)], clock) == [f"u{i}@example.org" for i in range(500)]
    with open(path) as f:
        assert sorted(json.load(f)) == ["gmail.com", "outlook.com"]


def test_the_counters_survive_a_restart_and_are_shared_by_two_servers(path, clock):
    assert len(admitted(warmup(path), GMAIL[:30], clock)) == 30
    clock.advance(DAY)
    first, second = warmup(path), warmup(path)  # restarted, and a second server on the same data dir
    assert len(admitted(first, GMAIL[:60], clock)) == 60  # day 1 counts from the first send before the restart
    assert len(admitted(second, GMAIL[:60], clock)) == 40
    assert admitted(first, GMAIL[:1], clock) == []


def test_a_damaged_counter_file_starts_counting_again(path, clock):
    with open(path, "w") as f:
        f.write("not json")
    assert len(admitted(warmup(path), GMAIL, clock)) == 50


def test_only_domains_of_a_group_touch_the_file(path, clock):
    assert warmup(path).admit(["bob@example.org"], clock.seconds()) == {}
    assert not os.path.exists(path)


def test_a_hold_defers_without_using_an_attempt_and_adds_the_wait_to_held():
    record = Record("Q", "alice@example.test", 0.0, 1, 1, recipients=[
        Recipient("a@gmail.com"), Recipient("b@gmail.com", State.DEFERRED, 2, 50.0, "451 later"),
        Recipient("c@gmail.com", State.FAILED, 1, 0.0, "550 no")])
    found = Hold(3600.0, "warm-up: 50/hour to gmail.com reached, next slot at 01:00 UTC")
    hold(record, {r.address: found for r in record.recipients}, now=600.0)
    a, b, c = record.recipients
    assert (a.state, a.attempts, a.next_attempt, a.last_error, a.held) == (
        State.DEFERRED, 0, 3600.0, found.reason, 3000.0)
    assert (b.state, b.attempts, b.held) == (State.DEFERRED, 2, 3000.0)
    assert (c.state, c.last_error, c.held) == (State.FAILED, "550 no", 0.0)


def test_time_held_back_lengthens_the_lifetime():
    record = Record("Q", "alice@example.test", 0.0, 1, 1, recipients=[Recipient("a@gmail.com", held=7200.0)])
    later = [RecipientResult("a@gmail.com", Outcome.DEFERRED, "451 later")]
    apply_results(record, later, now=9000.0, retry=(300,), lifetime=3600)
    assert record.recipients[0].state is State.DEFERRED
    apply_results(record, later, now=10800.0, retry=(300,), lifetime=3600)
    assert record.recipients[0].state is State.FAILED


def load(tmp_path, text: str) -> configuration.Config:
    path = tmp_path / "mailsrv.toml"
    path.write_text(text)
    return configuration.load(str(path))


def test_groups_are_read_as_lists_of_domains_in_canonical_form(tmp_path):
    config = load(tmp_path, '[warmup]\nenabled = true\ngroups = [["Example.COM", "bücher.example"]]\n')
    assert config.warmup.groups == (("example.com", "xn--bcher-kva.example"),)
    assert Warmup(config.warmup, config.warmup_file).group("BÜCHER.example") == "example.com"


@pytest.mark.parametrize("groups, error", [
    ('["gmail.com"]', "warmup.groups: expected a list of lists of strings"),
    ('[[]]', "warmup.groups: a group needs at least one domain"),
    ('[["gmail.com"], ["GMAIL.com"]]', "warmup.groups: gmail.com is named twice"),
    ('[["not a domain"]]', "warmup.groups: 'not a domain' is not a domain name"),
])
def test_bad_groups_name_the_file_and_the_key(tmp_path, groups, error):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, f"[warmup]\ngroups = {groups}\n")
    assert str(e.value).startswith(f"{tmp_path / 'mailsrv.toml'}: {error}")
