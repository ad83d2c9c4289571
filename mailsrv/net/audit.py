"""The audit log: one line per login, SMTP transaction, delivery and rejection.

Every protocol reports through here, so a login failure reads the same
whether it came over SMTP AUTH, POP3 or IMAP, and one fail2ban filter
(``etc/fail2ban/filter.d/mailsrv.conf``) matches all of them::

    login failed: protocol=imap kind=imaps client_ip=192.0.2.7 user=bob@example.test mechanism=PLAIN

That filter ends at ``client_ip``: keep the fields before it the server's
own, so nothing a client sends can make a failure miss the filter.

Each event is also a structured ``twisted.logger`` event (``event``,
``result`` and every ``key=value`` as a field of its own, lists as lists),
which is what :mod:`mailsrv.http.metrics` counts (:meth:`Audit.observe`).  Values the client chose (user names, HELO names, addresses) are
percent-encoded outside printable ASCII and ``=`` / space, so a client
cannot forge a field or a second line.
"""

from __future__ import annotations

import re
import time
from typing import Any, Callable, Sequence
from urllib.parse import quote

from twisted.logger import Logger

from mailsrv.net.session import Session

#: Characters kept as they are in a logged value (besides letters and digits).
_SAFE = "@.+-_:[]<>/!#$&'*,;?^`{|}~()"
#: A value made only of those needs no encoding (the common case, checked fast).
_PLAIN = re.compile(r"[A-Za-z0-9@.+\-_:\[\]<>/!#$&'*,;?^`{|}~()]+\Z")


def field(value: object) -> str:
    """One logged value: ``-`` when empty, lists comma-joined, percent-encoded where it could mislead.

    A value with spaces (a reply text) is written in double quotes, spaces
    kept, so it reads as a sentence; everything else that could end the value
    or the line is percent-encoded either way.
    """
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)
    text = "" if value is None else str(value)
    if not text:
        return "-"
    if _PLAIN.match(text):
        return text
    if " " in text and text == text.strip():
        return '"' + quote(text, safe=_SAFE + " ") + '"'
    return quote(text, safe=_SAFE)


def _utc(timestamp: float) -> str:
    """A time as ``2026-12-02T01:05:00Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


#: Not a class attribute: a Logger used as a descriptor takes the class's name.
_log = Logger(namespace="mailsrv.audit")


#: Called with ``(event, result, fields)`` for every audit event.
Observer = Callable[[str, object, dict[str, Any]], None]


class Audit:
    """Writes the audit events (see the module docstring for the format)."""

    def __init__(self) -> None:
        self._observers: list[Observer] = []

    def observe(self, observer: Observer) -> None:
        """Call *observer* with every event from now on: the one place metrics count from.

        Per instance, not a global log observer, so two servers in one
        process (tests) count only their own events.
        """
        self._observers.append(observer)

    def _emit(self, event: str, result: object, pairs: dict[str, Any]) -> None:
        text = " ".join(f"{key}={field(value)}" for key, value in pairs.items())
        _log.info("{event} {result}: {audit}", event=event, result=result, audit=text, **pairs)
        for observer in self._observers:
            observer(event, result, pairs)

    def login(self, session: Session, user: str | bytes, mechanism: str, result: str, reason: str = "") -> None:
        """A login attempt: *result* ``ok``, ``failed`` (bad credentials), ``locked`` (refused
        unchecked: too many failures, :mod:`mailsrv.net.throttle`), ``refused`` (not allowed
        here, e.g. before TLS) or ``tempfail`` (our fault, try again)."""
        if isinstance(user, bytes):
            user = user.decode("utf-8", "replace")
        pairs = {
            "protocol": session.kind.protocol, "kind": session.kind.label, "client_ip": session.peer_ip,
            "user": user, "mechanism": mechanism,
        }
        if reason:
            pairs["reason"] = reason
        self._emit("login", result, pairs)

    def transaction(
        self, session: Session, *, helo: str | None, sender: str, recipients: Sequence[str],
        rejected: Sequence[str], size: int, result: int | str, queue_id: str | None,
    ) -> None:
        """One SMTP mail transaction, accepted, refused or aborted (*result*: reply code or ``aborted``)."""
        self._emit("transaction", result, {
            "kind": session.kind.label, "client_ip": session.peer_ip, "helo": helo, "user": session.user,
            "sender": sender or "<>", "recipients": list(recipients), "rejected": list(rejected),
            "size": size, "queue_id": queue_id,
        })

    def delivery(
        self, queue_id: str | None, recipients: Sequence[str], size: int, result: str, *, reason: str = "",
        file: str = "",
    ) -> None:
        """A delivery attempt into the store: *result* ``stored`` (as Maildir *file*) or ``failed``."""
        pairs: dict[str, Any] = {"queue_id": queue_id, "recipients": list(recipients), "size": size}
        if file:
            pairs["file"] = file
        if reason:
            pairs["reason"] = reason
        self._emit("delivery", result, pairs)

    def send(
        self, queue_id: str, recipients: Sequence[str], result: str, *, host: str, ip: str, tls: str, reply: str,
        next_retry: float | None, age: float | None = None,
    ) -> None:
        """One attempt to send queued mail to another server: *result* is what became of *recipients*
        (``delivered``, ``deferred`` until *next_retry*, ``failed``); *tls* the protocol and cipher,
        and ``DANE-EE 3 1 1`` or the like when DANE authenticated the peer; *age* the seconds since
        the message was queued."""
        pairs: dict[str, Any] = {
            "queue_id": queue_id, "recipients": list(recipients), "host": host, "ip": ip, "tls": tls or "none",
            "reply": reply, "next_retry": "" if next_retry is None else _utc(next_retry),
        }
        if age is not None:
            pairs["age"] = round(age, 3)
        self._emit("send", result, pairs)

    def rejection(self, session: Session, stage: str, subject: str, reply: str) -> None:
        """A refusal of policy (not of syntax) at *stage* (``connect``, ``helo``, ``mail``, ``rcpt``,
        ``data``); *subject* is what was refused (an address, the client IP), *reply* our answer."""
        self._emit("rejection", stage, {
            "kind": session.kind.label, "client_ip": session.peer_ip, "subject": subject, "reply": reply,
        })

    def listed(self, session: Session, hits: Sequence[str], score: int, refused: bool) -> None:
        """A client on DNS lists (:mod:`mailsrv.policy.dnsbl`), once per connection: result ``refused``
        (its score reached ``dnsbl_threshold``) or ``passed``; *hits* are ``zone:answer`` pairs."""
        self._emit("dnsbl", "refused" if refused else "passed", {
            "kind": session.kind.label, "client_ip": session.peer_ip, "lists": list(hits), "score": score,
        })
