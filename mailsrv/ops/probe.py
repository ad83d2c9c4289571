"""Talking to our own listeners as a mail client would: where they are, and TLS that trusts only our certificate.

``mailsrv selftest`` (:mod:`mailsrv.ops.selftest`) runs on the server's
host and reaches each listener at the address its endpoint string binds
(``tcp:993:interface=192.0.2.7``; no interface, or a wildcard one, is
reached on loopback).  The TLS it speaks trusts the certificate file the
server serves and nothing else: a self-signed certificate is verified as
well as a CA's, and a certificate on the wire that is not the one in the
file (a renewal not yet reloaded) fails.  The name checked is the
configured ``hostname``, whatever address was dialled, as a client that
looked up the MX or SRV target would check it.

The clients are the standard library's (smtplib, imaplib, poplib): this is
the command line, which blocks.
"""

from __future__ import annotations

import imaplib
import ipaddress
import poplib
import re
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

from mailsrv.config import Config
from mailsrv.listeners import Kind, endpoint_port
from mailsrv.tls import served_files

#: Bound to every address: reached on the loopback address of the same family.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def served_certificate(config: Config) -> str:
    """The certificate file the server serves: the ACME one once issued, else ``[tls] cert``, else the generated one."""
    return served_files(config)[0]


@dataclass(frozen=True)
class Target:
    """One listener as a client reaches it."""

    kind: Kind
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.kind.label} {host}:{self.port}"


class Unreachable(Exception):
    """An endpoint the self-test cannot dial; the message says why (for a ``skip`` line)."""


def target(kind: Kind, endpoint: str) -> Target:
    """Where a client on this host reaches the listener of *kind* on *endpoint*; :class:`Unreachable` if it cannot."""
    if endpoint.startswith("haproxy:"):
        raise Unreachable(f"{endpoint}: takes PROXY-protocol traffic only, test it through the load balancer")
    port = endpoint_port(endpoint)
    if port is None:
        raise Unreachable(f"{endpoint}: not a tcp: endpoint")
    parts = [part.replace("\\:", ":") for part in re.split(r"(?<!\\):", endpoint)]
    interface = next((part.partition("=")[2] for part in parts if part.startswith("interface=")), "")
    if not interface:
        interface = "::" if parts[0] == "tcp6" else "0.0.0.0"
    return Target(kind, _WILDCARDS.get(interface, interface), port)


def targets(config: Config, kind: Kind) -> list[Target | Unreachable]:
    """Every configured listener of *kind*, as a :class:`Target` or the reason it cannot be dialled."""
    found: list[Target | Unreachable] = []
    for endpoint in config.listen.endpoints(kind):
        try:
            found.append(target(kind, endpoint))
        except Unreachable as e:
            found.append(e)
    return found


class _NamedContext(ssl.SSLContext):
    """A client context that checks (and sends as SNI) one name, whatever address the library dialled.

    smtplib, imaplib and poplib pass the host they connected to as
    ``server_hostname``; we dial an address but our certificate names the
    hostname.
    """

    name = ""

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:  # type: ignore[override]
        kwargs["server_hostname"] = self.name
        return super().wrap_socket(sock, **kwargs)


def client_context(config: Config) -> ssl.SSLContext:
    """TLS 1.2 or later, trusting only :func:`served_certificate`, checking the configured hostname.

    ``VERIFY_X509_PARTIAL_CHAIN`` lets the leaf itself (or an intermediate
    of a full-chain file) be the trust anchor: we know our own certificate,
    the system's CAs are not asked.
    """
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)
    context.name = config.hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.load_verify_locations(cafile=served_certificate(config))
    return context


def helo_name(target: Target) -> str:
    """Our EHLO argument: an address literal (RFC 5321 4.1.3) of the local address dialled, which we send from."""
    try:
        version = ipaddress.ip_address(target.host).version
    except ValueError:  # an interface given by name
        return "[127.0.0.1]"
    return f"[IPv6:{target.host}]" if version == 6 else f"[{target.host}]"


def smtp(target: Target, context: ssl.SSLContext, timeout: float) -> smtplib.SMTP:
    """An SMTP session inside TLS: implicit on 465, else after STARTTLS, EHLO done."""
    if target.kind.implicit_tls:
        client: smtplib.SMTP = smtplib.SMTP_SSL(target.host, target.port, helo_name(target), timeout=timeout,
                                                context=context)
    else:
        client = smtplib.SMTP(target.host, target.port, helo_name(target), timeout=timeout)
        client.starttls(context=context)
    client.ehlo()
    return client


def imap(target: Target, context: ssl.SSLContext, timeout: float) -> imaplib.IMAP4:
    """An IMAP session inside TLS: implicit on 993, else after STARTTLS."""
    if target.kind.implicit_tls:
        return imaplib.IMAP4_SSL(target.host, target.port, ssl_context=context, timeout=timeout)
    return _upgraded(imaplib.IMAP4(target.host, target.port, timeout=timeout), "starttls", context)


def pop3(target: Target, context: ssl.SSLContext, timeout: float) -> poplib.POP3:
    """A POP3 session inside TLS: implicit on 995, else after STLS."""
    if target.kind.implicit_tls:
        return poplib.POP3_SSL(target.host, target.port, timeout=timeout, context=context)
    return _upgraded(poplib.POP3(target.host, target.port, timeout=timeout), "stls", context)


def _upgraded(client: Any, command: str, context: ssl.SSLContext) -> Any:
    """*client* after its STARTTLS-style *command*, which raises when the server refuses it."""
    getattr(client, command)(context)
    return client


@dataclass(frozen=True)
class Handshake:
    """What the TLS of one listener showed."""

    version: str
    names: tuple[str, ...]
    days_left: int

    def __str__(self) -> str:
        names = ", ".join(self.names) or "no names"
        return f"{self.version}, certificate for {names}, expires in {self.days_left} days"


def handshake(target: Target, context: ssl.SSLContext, timeout: float) -> Handshake:
    """Connect, get into TLS the way the listener's kind does (implicit, STARTTLS, STLS), and describe it.

    Raises ``ssl.SSLError`` (verification included), ``OSError`` or the
    protocol library's error when that fails.
    """
    if target.kind.protocol == "smtp":
        with smtp(target, context, timeout) as client:
            return _describe(client.sock)
    if target.kind.protocol in ("imap", "pop3"):
        client = imap(target, context, timeout) if target.kind.protocol == "imap" else pop3(target, context, timeout)
        try:
            return _describe(client.sock)
        finally:
            (client.logout if target.kind.protocol == "imap" else client.quit)()
    with context.wrap_socket(socket.create_connection((target.host, target.port), timeout=timeout)) as sock:
        return _describe(sock)


def _describe(sock: Any) -> Handshake:
    cert = sock.getpeercert()
    names = tuple(value if kind == "DNS" else str(ipaddress.ip_address(value))
                  for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address"))
    seconds_left = ssl.cert_time_to_seconds(cert["notAfter"]) - time.time()
    return Handshake(sock.version() or "?", names, int(seconds_left // 86400))
