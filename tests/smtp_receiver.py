"""A scriptable SMTP receiver on loopback that records what it receives byte for byte.

For tests of mail leaving the server (MX delivery, the relay, the queue,
DKIM)::

    ca = MailCA()
    receiver = Receiver(tls=ca.server_options("mx1.example.test"))
    receiver.rcpt_replies["bob@example.test"] = "550 5.1.1 no such user"
    port = receiver.listen(self)          # 127.0.0.1, closed at the test's end
    ...
    [message] = receiver.messages
    assert message.data == expected_wire_octets

It offers the ESMTP extensions listed in ``extensions`` (8BITMIME,
SMTPUTF8, PIPELINING and SIZE by default), STARTTLS when given ``tls``
options (``starttls="broken"`` answers 220 and then sends garbage instead of
a handshake; ``"refuse"`` answers 454), and AUTH PLAIN after TLS when given
``auth``.  Replies per recipient come from ``rcpt_replies`` (default 250),
to DATA's end from ``data_reply`` (``""``: record the message, then drop the
connection without a reply); tests may change them between attempts.
With ``ehlo=False`` it answers EHLO with 502 (an RFC 821 server).
``CHUNKING`` among the extensions makes it take BDAT (RFC 3030), not by default.
``REQUIRETLS`` among the extensions is offered only once TLS is up (RFC 8689 3).
Each completed transaction is a :class:`Received`; ``connections`` counts
the connections, ``sessions`` what each saw (greeting to close).
:class:`MailCA` makes a CA and certificates for chosen names, for the
sending side's ``tls_ca_file``; :func:`self_signed` a certificate of its
own, and :func:`server_options` the receiver's TLS options for either.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import crypto
from twisted.internet import ssl
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

import support


class MailCA:
    """A throw-away certificate authority and the leaf certificates it signs.

    ``MailCA(parent)`` is an intermediate CA signed by *parent*; its
    :attr:`chain` is its certificate and those above it, for a server that
    sends the chain (``server_options(..., send_chain=True)``, as DANE-TA
    needs, RFC 7672 3.1.2).
    """

    def __init__(self, parent: "MailCA | None" = None) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsrv test CA")])
        signer = parent or self
        self.cert = certificate(self._name, self._key.public_key(), signer._name, signer._key, ca=True)
        self.chain: list[x509.Certificate] = [self.cert, *(parent.chain if parent else [])]

    @property
    def pem(self) -> bytes:
        """The CA certificate, PEM."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, directory: str) -> str:
        """Write the CA certificate into *directory*; returns its path (for ``tls_ca_file``)."""
        path = os.path.join(directory, "test-ca.pem")
        with open(path, "wb") as f:
            f.write(self.pem)
        return path

    def issue(self, *names: str, expired: bool = False) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A key and a certificate for *names* (DNS names or IPs; the first is also the CN) signed by this CA."""
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        return key, certificate(subject, key.public_key(), self._name, self._key, names=names, expired=expired)

    def server_options(self, *names: str, send_chain: bool = False) -> ssl.CertificateOptions:
        """Server TLS options with a certificate for *names* signed by this CA (and the CA chain after it)."""
        key, cert = self.issue(*names)
        return server_options(key, cert, self.chain if send_chain else ())

    def write_pair(self, directory: str, *names: str) -> tuple[str, str]:
        """A certificate for *names* and its key as PEM files in *directory* (``[tls] cert`` and ``key``)."""
        key, cert = self.issue(*names)
        paths = (os.path.join(directory, f"{names[0]}-cert.pem"), os.path.join(directory, f"{names[0]}-key.pem"))
        with open(paths[0], "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(paths[1], "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        return paths


def certificate(
    subject: x509.Name, public_key: object, issuer: x509.Name, signing_key: object, *, names: tuple[str, ...] = (),
    ca: bool = False, expired: bool = False,
) -> x509.Certificate:
    """A certificate for *subject* (a CA, or with *names* as subjectAltName), valid now or *expired* yesterday."""
    now = datetime.datetime.now(datetime.timezone.utc)
    end = now - datetime.timedelta(days=1) if expired else now + datetime.timedelta(days=30)
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=2)).not_valid_after(end)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def self_signed(*names: str, expired: bool = False) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A key and a self-signed certificate for *names*, the kind DANE-EE records pin (RFC 7672 3.1.1)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    return key, certificate(subject, key.public_key(), subject, key, names=names, expired=expired)


def server_options(key: object, cert: x509.Certificate, chain: Sequence[x509.Certificate] = ()) -> ssl.CertificateOptions:
    """Server TLS options presenting *cert* (then *chain*) with *key*."""
    return ssl.CertificateOptions(
        privateKey=crypto.PKey.from_cryptography_key(key), certificate=crypto.X509.from_cryptography(cert),
        extraCertChain=[crypto.X509.from_cryptography(c) for c in chain],
    )


def _general_name(name: str) -> x509.GeneralName:
    """An IP address SAN for an IP, a DNS name SAN otherwise."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


@dataclass
class Received:
    """One transaction the receiver accepted with 250 after the data."""

    #: MAIL's argument as sent: ``"FROM:<a@example.org> SIZE=120 BODY=8BITMIME"``.
    mail_from: str
    #: The accepted recipients' addresses.
    recipients: list[str]
    #: The message as the sender meant it: dot-stuffing undone, CRLF line ends, without the final dot.
    data: bytes
    #: The DATA octets exactly as they came, final ``.`` line included (with BDAT: the chunks' octets).
    raw: bytes
    #: Whether the transaction ran over TLS.
    tls: bool
    #: ``(user, password)`` of a successful AUTH PLAIN, or None.
    auth: tuple[str, str] | None
    #: RCPT's argument as sent for each accepted recipient: ``"TO:<b@example.org> NOTIFY=SUCCESS"``.
    rcpt_to: list[str] = field(default_factory=list)

    @property
    def sender(self) -> str:
        """The reverse path, without the angle brackets."""
        return self.mail_from.split(">", 1)[0].partition("<")[2]


@dataclass
class Session:
    """What one connection saw: every command line, in order, and whether TLS started."""

    commands: list[str] = field(default_factory=list)
    tls: bool = False
    #: The SNI name the client sent, seen at its first EHLO over TLS (None: no SNI).
    server_name: str | None = None
    #: The command lines by the read that brought them: several in one group were pipelined (RFC 2920).
    groups: list[list[str]] = field(default_factory=list)


class _ReceiverProtocol(LineReceiver):
    delimiter = b"\r\n"
    MAX_LENGTH = 1 << 20

    def __init__(self, receiver: "Receiver", implicit_tls: bool) -> None:
        self.r = receiver
        self.session = Session(tls=implicit_tls)
        self._reset()
        self._auth: tuple[str, str] | None = None
        self._data: list[bytes] | None = None
        self._chunk_left = 0
        self._chunk_last = False

    def _reset(self) -> None:
        self._mail: str | None = None
        self._rcpts: list[str] = []
        self._rcpt_to: list[str] = []
        self._chunks: list[bytes] = []

    def connectionMade(self) -> None:
        self.r.connections += 1
        self.r.sessions.append(self.session)
        self.r.open.append(self)
        self.reply(self.r.greeting)

    def connectionLost(self, reason: object = None) -> None:
        self.r.open.remove(self)

    def reply(self, text: str) -> None:
        self.sendLine(text.encode())

    def dataReceived(self, data: bytes) -> None:
        self.session.groups.append([])
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self._data is not None:
            return self._data_line(line)
        text = line.decode("utf-8", "replace")
        self.session.commands.append(text)
        self.session.groups[-1].append(text)
        verb, _, arg = text.partition(" ")
        handler = getattr(self, f"smtp_{verb.upper()}", None)
        if handler is None:
            return self.reply("502 5.5.2 unknown command")
        handler(arg)

    def smtp_EHLO(self, arg: str) -> None:
        if not self.r.ehlo:
            return self.reply("502 5.5.1 EHLO not implemented")
        if self.session.tls and self.session.server_name is None:
            name = self.transport.getHandle().get_servername()
            self.session.server_name = name.decode() if name else None
        lines = ["receiver.test", *(e for e in self.r.extensions if e != "REQUIRETLS" or self.session.tls)]
        if self.r.tls is not None and not self.session.tls:
            lines.append("STARTTLS")
        if self.r.auth is not None and self.session.tls:
            lines.append("AUTH PLAIN")
        self.reply("\r\n".join([*(f"250-{line}" for line in lines[:-1]), f"250 {lines[-1]}"]))
        self._reset()

    def smtp_HELO(self, arg: str) -> None:
        self.reply("250 receiver.test")

    def smtp_STARTTLS(self, arg: str) -> None:
        if self.r.starttls == "refuse":
            return self.reply("454 4.7.0 TLS not available now")
        self.reply("220 2.0.0 go ahead")
        if self.r.starttls == "broken":
            self.transport.write(b"this is not a TLS handshake\r\n" * 4)
            self.transport.loseConnection()
            return
        self.transport.startTLS(self.r.tls)
        self.session.tls = True
        self._reset()

    def smtp_AUTH(self, arg: str) -> None:
        mechanism, _, token = arg.partition(" ")
        decoded = base64.b64decode(token).decode().split("\0")
        if mechanism.upper() == "PLAIN" and self.session.tls and tuple(decoded[1:]) == self.r.auth:
            self._auth = self.r.auth
            return self.reply("235 2.7.0 authenticated")
        self.reply("535 5.7.8 bad credentials")

    def smtp_MAIL(self, arg: str) -> None:
        self._mail = arg
        self.reply("250 2.1.0 ok")

    def smtp_RCPT(self, arg: str) -> None:
        if self._mail is None:
            return self.reply("503 5.5.1 MAIL first")
        address = arg.split(">", 1)[0].partition("<")[2]
        answer = self.r.rcpt_replies.get(address, "250 2.1.5 ok")
        if answer.startswith("2"):
            self._rcpts.append(address)
            self._rcpt_to.append(arg)
        self.reply(answer)

    def smtp_DATA(self, arg: str) -> None:
        if not self._rcpts:
            return self.reply("554 5.5.1 no valid recipients")
        self._data = []
        self.reply("354 go ahead")

    def smtp_RSET(self, arg: str) -> None:
        self._reset()
        self.reply(self.r.rset_reply)

    def smtp_NOOP(self, arg: str) -> None:
        self.reply("250 2.0.0 ok")

    def smtp_QUIT(self, arg: str) -> None:
        self.reply("221 2.0.0 bye")
        self.transport.loseConnection()

    def _record(self, data: bytes, raw: bytes) -> None:
        self.r.messages.append(
            Received(self._mail or "", self._rcpts, data, raw, self.session.tls, self._auth, self._rcpt_to))

    def smtp_BDAT(self, arg: str) -> None:
        if "CHUNKING" not in self.r.extensions:
            return self.reply("502 5.5.2 unknown command")
        size, _, last = arg.partition(" ")
        self._chunk_left, self._chunk_last = int(size), last.upper() == "LAST"
        if self._chunk_left:
            self.setRawMode()
        else:
            self._chunk_end()

    def rawDataReceived(self, data: bytes) -> None:
        take, rest = data[: self._chunk_left], data[self._chunk_left :]
        self._chunks.append(take)
        self._chunk_left -= len(take)
        if not self._chunk_left:
            self._chunk_end()
            self.setLineMode(rest)

    def _chunk_end(self) -> None:
        if not self._chunk_last:
            return self.reply(f"250 2.0.0 {len(self._chunks[-1]) if self._chunks else 0} octets received")
        data, self._chunks = b"".join(self._chunks), []
        if not self._rcpts:
            return self.reply("554 5.5.1 no valid recipients")
        self._end_of_data(data, data)

    def _data_line(self, line: bytes) -> None:
        assert self._data is not None
        self._data.append(line)
        if line != b".":
            return
        lines, self._data = self._data, None
        raw = b"".join(piece + b"\r\n" for piece in lines)
        data = b"".join((piece[1:] if piece.startswith(b".") else piece) + b"\r\n" for piece in lines[:-1])
        self._end_of_data(data, raw)

    def _end_of_data(self, data: bytes, raw: bytes) -> None:
        answer = self.r.data_reply
        if not answer:  # took the message, then the connection broke: the sender cannot know
            self._record(data, raw)
            self.transport.abortConnection()
            return
        if answer.startswith("2"):
            self._record(data, raw)
        self._reset()
        self.reply(answer)


class Receiver:
    """The receiver's script and record; :meth:`listen` serves it (see the module docstring)."""

    def __init__(
        self, *, tls: ssl.CertificateOptions | None = None, starttls: str = "ok",
        extensions: tuple[str, ...] = ("8BITMIME", "SMTPUTF8", "PIPELINING", "SIZE 104857600"),
        auth: tuple[str, str] | None = None, greeting: str = "220 receiver.test ESMTP", ehlo: bool = True,
    ) -> None:
        self.ehlo = ehlo
        self.tls = tls
        self.starttls = starttls
        self.extensions = list(extensions)
        self.auth = auth
        self.greeting = greeting
        self.rcpt_replies: dict[str, str] = {}
        self.data_reply = "250 2.0.0 queued"
        self.rset_reply = "250 2.0.0 ok"
        #: The connections open now.
        self.open: list[_ReceiverProtocol] = []
        self.messages: list[Received] = []
        self.sessions: list[Session] = []
        self.connections = 0

    def hang_up(self) -> None:
        """Close every open connection, as a server whose idle timeout ran out does."""
        for protocol in list(self.open):
            protocol.transport.loseConnection()

    def listen(self, case: unittest.TestCase, implicit_tls: bool = False) -> int:
        """Serve on a free 127.0.0.1 port until *case* ends (TLS from the first octet with *implicit_tls*)."""
        factory = ServerFactory()
        factory.buildProtocol = lambda addr: _ReceiverProtocol(self, implicit_tls)
        return support.listen_loopback(case, factory, implicit_tls=self.tls if implicit_tls else None)
