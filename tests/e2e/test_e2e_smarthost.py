"""End to end: every remote message goes through a smarthost, with AUTH over verified TLS.

The smarthost is a second real mailsrv: its submission port (587, STARTTLS)
with its generated self-signed certificate, which the sender trusts through
``[delivery] tls_ca_file`` and checks under the default ``relay_tls =
"verify"`` (the certificate names 127.0.0.1, the relay's host).  The
relay's user is alice@example.test, the sender's own user, so the relay's
sender = login rule holds.  No DNS answers the sender: an MX lookup would
fail, so what arrives came through the relay.

A second sender that trusts another CA must not send at all: verify
refuses the relay's certificate before AUTH, and the message waits.
"""

from __future__ import annotations

import os

import pytest

from outbound import PASSWORD, arrived, numbered, queue_list, submit, wait_for
from twistd_server import Server

ALICE = "alice@example.test"
BOB = "bob@remote.test"


@pytest.fixture(scope="module")
def relay(tmp_path_factory):
    server = Server(str(tmp_path_factory.mktemp("relay")), domains=("example.test", "remote.test"))
    server.add_user(ALICE, PASSWORD)
    server.add_user(BOB, PASSWORD)
    server.start()
    yield server
    server.stop()


def relayed_sender(root: str, relay: Server, ca_file: str) -> Server:
    """A mailsrv for example.test whose remote mail all goes through *relay*'s submission port as alice."""
    os.makedirs(root, exist_ok=True)
    password_file = os.path.join(root, "relay-password")
    with open(password_file, "w") as f:
        f.write(PASSWORD + "\n")
    sender = Server(
        root, domains=("example.test",),
        extra_config=f'[delivery]\nrelay = "127.0.0.1:{relay.ports["submission"]}"\n'
                     f'relay_username = "{ALICE}"\nrelay_password_file = "{password_file}"\n'
                     f'relay_tls = "verify"\ntls_ca_file = "{ca_file}"\nretry = ["1s"]\n',
    )
    sender.add_user(ALICE, PASSWORD)
    return sender


def bobs_mail(relay: Server):
    return arrived(os.path.join(relay.data_dir, "mail", "remote.test", "bob"))


def test_mail_goes_through_the_relay_with_auth_over_verified_tls(relay, tmp_path):
    sender = relayed_sender(str(tmp_path), relay, relay.cafile)
    sender.start()
    try:
        submit(sender, ALICE, [(BOB, numbered(ALICE, BOB, 1))])
        assert wait_for(lambda: bobs_mail(relay) == {1: 1}, 30), (queue_list(sender), sender.log())
        [name] = os.listdir(os.path.join(relay.data_dir, "mail", "remote.test", "bob", "new"))
        with open(os.path.join(relay.data_dir, "mail", "remote.test", "bob", "new", name), "rb") as f:
            header = f.read().split(b"\n\n", 1)[0]
        assert b"with ESMTPSA" in header  # RFC 3848: the relay saw STARTTLS and AUTH
        assert f"login ok: protocol=smtp kind=submission client_ip=127.0.0.1 user={ALICE}" in relay.log()
        assert 'send delivered: ' in sender.log() and 'tls="TLSv1.' in sender.log()
        assert wait_for(lambda: "0 messages in the queue" in queue_list(sender), 30), queue_list(sender)
    finally:
        sender.stop()


def test_a_relay_certificate_from_an_untrusted_ca_is_refused(relay, tmp_path):
    other = Server(str(tmp_path / "other"))  # its own generated certificate: a CA the relay's is not from
    other.start()
    other.stop()
    sender = relayed_sender(str(tmp_path / "sender"), relay, other.cafile)
    before = len(relay.log())
    sender.start()
    try:
        submit(sender, ALICE, [(BOB, numbered(ALICE, BOB, 2))])
        assert wait_for(lambda: "send deferred: " in sender.log(), 30), sender.log()
        assert "certificate verify failed" in sender.log()
        assert 2 not in bobs_mail(relay)
        assert "deferred" in queue_list(sender)
        assert "login " not in relay.log()[before:]  # AUTH never went to an unverified peer
    finally:
        sender.stop()
