"""One ACME order (RFC 8555 7.4) with certbot's ``acme`` library: account, HTTP-01, finalize, download.

The library is synchronous (``requests``), so :func:`obtain` runs in the
ACME thread, never on the reactor; the challenge tokens go to the reactor
through :class:`mailsrv.acme.challenge.HandOver`.  A server stopping
meanwhile sets *stop*, which ends the order at the next step.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import josepy as jose
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mailsrv import __version__
from mailsrv.acme.challenge import HandOver
from mailsrv.acme.files import new_key

#: Seconds one request to the CA may take.
NETWORK_TIMEOUT = 30
#: How long the CA has to validate the challenges and issue the certificate.
ORDER_DEADLINE = datetime.timedelta(seconds=120)


class Stopped(Exception):
    """The server is stopping: the order was given up."""


@dataclass(frozen=True)
class CA:
    """Where to order and as whom."""

    directory: str
    #: A PEM bundle that verifies the CA's TLS certificate; ``""`` for the system's.
    ca_file: str = ""
    email: str = ""


def obtain(ca: CA, account_key_pem: bytes, names: Sequence[str], tokens: HandOver,
           stop: threading.Event) -> tuple[bytes, bytes]:
    """Order a certificate for *names*: its new private key and its full chain, both PEM.

    Raises the library's errors (:class:`acme.messages.Error` with the CA's
    problem document, :class:`acme.errors.ValidationError` naming the
    failed names), ``requests``' for the network, :class:`Stopped`.
    """
    key = jose.JWKEC(key=load_pem_private_key(account_key_pem, password=None))
    net = client.ClientNetwork(key, alg=jose.ES256, verify_ssl=ca.ca_file or True,  # type: ignore[arg-type]
                               user_agent=f"mailsrv/{__version__}", timeout=NETWORK_TIMEOUT)
    acme = client.ClientV2(client.ClientV2.get_directory(ca.directory, net), net)
    _account(acme, ca.email)
    certificate_key = new_key()
    order = acme.new_order(crypto_util.make_csr(certificate_key, list(names)))
    published: list[str] = []
    try:
        for authorization in order.authorizations:
            if authorization.body.status == messages.STATUS_VALID:
                continue  # validated for this account a little while ago
            _checkpoint(stop)
            challenge = _http01(authorization)
            response, validation = challenge.response_and_validation(key)
            token = challenge.chall.encode("token")
            tokens.publish(token, validation)
            published.append(token)
            acme.answer_challenge(challenge, response)
        _checkpoint(stop)
        order = acme.poll_and_finalize(order, datetime.datetime.now() + ORDER_DEADLINE)
    finally:
        for token in published:
            tokens.withdraw(token)
    return certificate_key, order.fullchain_pem.encode("ascii")


def _account(acme: client.ClientV2, email: str) -> None:
    """Register the key (agreeing to the CA's terms), or use the account the CA already has for it."""
    registration = messages.NewRegistration.from_data(email=email or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as existing:
        acme.net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())


def _http01(authorization: messages.AuthorizationResource) -> messages.ChallengeBody:
    for challenge in authorization.body.challenges:
        if isinstance(challenge.chall, challenges.HTTP01):
            return challenge
    raise errors.Error(f"the CA offers no http-01 challenge for {authorization.body.identifier.value}")


def _checkpoint(stop: threading.Event) -> None:
    if stop.is_set():
        raise Stopped("the server is stopping")


def describe(error: BaseException) -> str:
    """The error on one log line: its kind and what the CA (or the network) said."""
    text = " ".join(str(error).split()) or "no detail"
    return f"{type(error).__name__}: {text}"
