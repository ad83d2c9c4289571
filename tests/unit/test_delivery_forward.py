"""Forwarding: the router's answer for aliases with remote targets and SRS addresses, SRS itself,
and where the queue's bounces to an SRS sender go."""

from __future__ import annotations

import os
import stat

import pytest
import srslib
from twisted.internet import defer

from mailsrv.address import Mailbox
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.outbound import make_bounce_sender
from mailsrv.delivery.router import Local, Refusal, Refused, Remote, Router
from mailsrv.delivery.srs import Invalid, Rewriter, SRSInvalid, VALIDITY_DAYS, load_secret
from mailsrv.message.body import Body

DAY = 24 * 3600


class FakeDirectory:
    aliases = {
        "info@example.test": ["alice@example.test", "someone@remote.test", "other@far.test"],
        "out@example.test": ["someone@remote.test"],
    }

    def is_local_domain(self, domain: str) -> bool:
        return domain in ("example.test", "example.org")

    def resolve(self, address: str) -> list[str]:
        if address in ("alice@example.test", "bob@example.org"):
            return [address]
        return list(self.aliases.get(address, []))


@pytest.fixture
def srs() -> Rewriter:
    return Rewriter(b"secret", ("example.test", "example.org"))


@pytest.fixture
def router(srs: Rewriter) -> Router:
    return Router(FakeDirectory(), srs)


def route(router: Router, address: str):
    local, _, domain = address.rpartition("@")
    return router.route(Mailbox(local, domain))


def test_alias_with_local_and_remote_targets(router):
    assert route(router, "info@example.test") == Local(("alice@example.test",), ("someone@remote.test", "other@far.test"))


def test_alias_with_remote_targets_only(router):
    assert route(router, "out@example.test") == Local((), ("someone@remote.test",))


def test_plain_remote_recipient_is_still_remote_not_forwarded(router):
    assert route(router, "someone@remote.test") == Remote(Mailbox("someone", "remote.test"))


def test_srs_forward_and_reverse(srs):
    rewritten = srs.forward("Carol@Remote.test")
    assert rewritten.startswith("SRS0=") and rewritten.endswith("=Remote.test=Carol@example.test")
    assert srs.reverse(rewritten) == "Carol@Remote.test"


def test_null_sender_and_our_own_senders_are_not_rewritten(srs):
    assert srs.forward("") == ""
    assert srs.forward("alice@example.test") == "alice@example.test"
    assert srs.forward("bob@EXAMPLE.ORG") == "bob@EXAMPLE.ORG"


def test_valid_srs_address_routes_to_the_remote_original(router, srs):
    assert route(router, srs.forward("carol@remote.test")) == Local((), ("carol@remote.test",))


def test_valid_srs_address_of_a_local_original_is_delivered_here(router, srs):
    # SRS of our own domain (an SRS sender from another forwarder naming us, reversed by hand).
    address = srslib.SRS(b"secret").forward("bob@example.org", "example.test")
    assert route(router, address) == Local(("bob@example.org",))


def test_srs_with_a_bad_hash_is_refused(router, srs):
    rewritten = srs.forward("carol@remote.test")
    tag, hash_, rest = rewritten.split("=", 2)
    forged = f"{tag}={'AAAA' if hash_ != 'AAAA' else 'BBBB'}={rest}"
    with pytest.raises(SRSInvalid) as e:
        srs.reverse(forged)
    assert e.value.reason is Invalid.HASH
    assert route(router, forged) == Refused(Refusal.BAD_SRS)
    other_key = Rewriter(b"another secret", ("example.test",)).forward("carol@remote.test")
    assert route(router, other_key) == Refused(Refusal.BAD_SRS)


def test_expired_srs_address_is_refused(router, srs, monkeypatch):
    rewritten = srs.forward("carol@remote.test")
    now = srs._srs._time_fn()
    monkeypatch.setattr(srs._srs, "_time_fn", lambda: now + (VALIDITY_DAYS + 1) * DAY)
    with pytest.raises(SRSInvalid) as e:
        srs.reverse(rewritten)
    assert e.value.reason is Invalid.EXPIRED
    assert route(router, rewritten) == Refused(Refusal.BAD_SRS)


def test_malformed_srs_address_is_refused(router):
    assert route(router, "SRS0=garbage@example.test") == Refused(Refusal.BAD_SRS)


def test_srs_looking_address_without_a_rewriter_is_an_ordinary_local_part():
    assert Router(FakeDirectory()).route(Mailbox("SRS0=x=y=remote.test=carol", "example.test")) == Refused(
        Refusal.NO_SUCH_USER)


def test_secret_is_made_once_with_mode_0600(tmp_path):
    path = str(tmp_path / "srs-secret")
    first = load_secret(path)
    assert len(first) == 64 and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_secret(path) == first


def test_empty_secret_file_is_an_error_naming_it(tmp_path):
    path = tmp_path / "srs-secret"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="srs-secret"):
        load_secret(str(path))


class Recorder:
    """A queue and a local delivery that keep what they get: (sender, local users, remote)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, list[str], list[str]]] = []

    def _keep(self, envelope: Envelope) -> defer.Deferred[str]:
        self.got.append((envelope.sender, list(envelope.local_users), list(envelope.remote)))
        return defer.succeed(envelope.queue_id)

    enqueue = deliver = _keep


def bounce_to(router: Router, recipient: str) -> tuple[Recorder, Recorder]:
    queue, local = Recorder(), Recorder()
    bounce = Envelope(queue_id="QID000000001", sender="", body=Body.from_wire(b"Subject: failed\r\n\r\nsorry\r\n"))
    done = defer.Deferred.fromCoroutine(make_bounce_sender(router, local)(bounce, recipient, queue))
    assert done.called and done.result is None
    return queue, local


def test_our_bounce_of_forwarded_mail_goes_to_the_sender_behind_the_srs_address(router, srs):
    queue, local = bounce_to(router, srs.forward("carol@remote.test"))
    assert (queue.got, local.got) == ([("", [], ["carol@remote.test"])], [])


def test_our_bounce_to_a_bad_srs_address_is_dropped(router, srs):
    queue, local = bounce_to(router, "SRS0=AAAA=JV=remote.test=carol@example.test")
    assert (queue.got, local.got) == ([], [])
