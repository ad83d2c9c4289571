"""What a re-read configuration changes (:mod:`mailsrv.config.changes`) and the holder that
hands it on (:mod:`mailsrv.config.live`)."""

from __future__ import annotations

import dataclasses

from mailsrv import config as configuration
from mailsrv.config.changes import Change, applicable, changes
from mailsrv.config.live import LiveConfig
from mailsrv.config.schema import needs_restart, settings
from mailsrv.config.server import Config

RUNNING = Config(
    listen=configuration.ListenConfig(smtp=("tcp:2525:interface=127.0.0.1",)),
    limits=configuration.LimitsConfig(max_recipients=100),
)


def edited(config: Config, **tables: dict) -> Config:
    """*config* with keys of its tables replaced: ``edited(c, limits={"max_recipients": 5})``."""
    return dataclasses.replace(config, **{
        name: dataclasses.replace(getattr(config, name), **keys) for name, keys in tables.items()
    })


def test_the_same_configuration_changes_nothing():
    assert changes(RUNNING, dataclasses.replace(RUNNING, source="/etc/other.toml")) == []


def test_a_changed_key_is_named_by_its_dotted_key_in_declaration_order():
    new = edited(RUNNING, limits={"max_recipients": 5, "max_message_size": 2048},
                 policy={"trusted_networks": ("10.0.0.0/8",)})
    assert changes(RUNNING, new) == [
        Change("limits.max_message_size", False), Change("limits.max_recipients", False),
        Change("policy.trusted_networks", False),
    ]


def test_keys_declared_restart_and_every_key_of_a_restart_table_need_a_restart():
    new = edited(dataclasses.replace(RUNNING, hostname="mx.example.test"),
                 listen={"smtp": ("tcp:2526",)}, tls={"acme_renew_days": 10, "min_version": "1.3"})
    assert changes(RUNNING, new) == [
        Change("hostname", True), Change("listen.smtp", True), Change("tls.min_version", False),
        Change("tls.acme_renew_days", True),
    ]


def test_applicable_takes_the_reloadable_keys_and_keeps_the_running_restart_ones():
    new = edited(dataclasses.replace(RUNNING, hostname="mx.example.test", public_addresses=("192.0.2.1",)),
                 listen={"smtp": ("tcp:2526",)}, limits={"max_recipients": 5},
                 tls={"acme_renew_days": 10, "min_version": "1.3"})
    taken = applicable(RUNNING, new)
    assert (taken.hostname, taken.listen, taken.tls.acme_renew_days) == (
        RUNNING.hostname, RUNNING.listen, RUNNING.tls.acme_renew_days)
    assert (taken.public_addresses, taken.limits.max_recipients, taken.tls.min_version) == (("192.0.2.1",), 5, "1.3")
    assert changes(RUNNING, taken) == [c for c in changes(RUNNING, new) if not c.restart]


def test_applicable_of_only_restart_changes_is_the_running_configuration():
    new = edited(RUNNING, threads={"disk": 9}, delivery={"relay": "smtp.example.net:587"})
    assert applicable(RUNNING, new) == RUNNING


def test_a_table_of_reloadable_and_restart_keys_takes_only_the_reloadable_ones():
    new = edited(RUNNING, delivery={"relay": "smtp.example.net:587", "retry": ("1m",)})
    assert changes(RUNNING, new) == [Change("delivery.relay", True), Change("delivery.retry", False)]
    taken = applicable(RUNNING, new).delivery
    assert (taken.relay, taken.retry) == ("", ("1m",))


def test_the_listen_endpoints_thread_pools_and_data_dir_are_restart_only():
    top = {f.name: needs_restart(f) for f in settings(Config)}
    assert top["data_dir"] and top["listen"] and top["threads"] and top["hostname"]
    assert not (top["limits"] or top["policy"] or top["tls"] or top["public_addresses"])


def test_the_live_holder_tells_its_followers_in_order_after_the_current_one_changed():
    live = LiveConfig(RUNNING)
    new = edited(RUNNING, limits={"max_recipients": 5})
    seen: list[tuple[str, int, int]] = []
    live.follow(lambda c: seen.append(("first", c.limits.max_recipients, live.current.limits.max_recipients)))
    live.follow(lambda c: seen.append(("second", c.limits.max_recipients, live.current.limits.max_recipients)))
    assert live.current is RUNNING and seen == []
    live.replace(new)
    assert live.current is new
    assert seen == [("first", 5, 5), ("second", 5, 5)]
