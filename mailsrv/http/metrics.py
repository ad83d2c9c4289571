"""Prometheus metrics of one server, counted where the events already pass, and served at ``/metrics``.

Counts come from two places only, so no protocol module carries a counter:

* the audit log (:meth:`mailsrv.net.audit.Audit.observe`): logins by
  protocol and result, SMTP transactions and messages received, local
  deliveries and store errors, remote deliveries, deferrals and failures
  (bounced), their latency since queueing, and policy rejections by stage
  and reply code;
* the open sessions (:meth:`mailsrv.net.shutdown.OpenSessions.observe`):
  connections by listener kind; TLS handshakes by version as each one
  finishes, and as ``failed`` a connection that ended in TLS before its
  handshake did (a client refusing the certificate, or too old for our
  TLS versions).  The HTTP listeners are not mail sessions and are not counted.

What is a state rather than an event is read at scrape time: the sessions
open now (on the reactor, from the session set) and the queue's size and
oldest message (from the queue directory, in the disk pool: it reads every
record, which must not happen on the reactor, and counts what every
process sharing the data dir has queued).  The whole text is rendered in
the disk pool too.  Each server has its own :class:`CollectorRegistry`:
nothing is process-global, so servers in one test process count apart.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from mailsrv.delivery.queuedir import QueueDir

if TYPE_CHECKING:
    from mailsrv.config import Config
    from mailsrv.net.audit import Audit
    from mailsrv.net.shutdown import OpenSessions

#: A reply's enhanced status code (RFC 3463) and its basic code: a rejection's reason is the first found.
_ENHANCED_CODE = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
_BASIC_CODE = re.compile(r"\b[245]\d\d\b")
#: Delivery latency buckets in seconds: from a direct hand-over to the queue's 5-day lifetime.
_LATENCY_BUCKETS = (1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 86400, 5 * 86400)
CONTENT_TYPE = CONTENT_TYPE_LATEST.encode()


def reply_code(reply: str) -> str:
    """``5.7.1`` of ``550 5.7.1 relaying denied``, ``421`` of a reply without an enhanced code, else ``other``."""
    found = _ENHANCED_CODE.search(reply) or _BASIC_CODE.search(reply)
    return found.group() if found else "other"


class _QueueCollector:
    """Queue size, recipients by state and the oldest message's age, read from the queue directory."""

    def __init__(self, queue_dir: str) -> None:
        self._queue = QueueDir(queue_dir)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Called by :func:`generate_latest`, in the disk pool."""
        records = self._queue.records()
        yield GaugeMetricFamily("mailsrv_queue_messages", "Messages in the outbound queue.", value=len(records))
        states = GaugeMetricFamily("mailsrv_queue_recipients", "Recipients in the outbound queue by state.",
                                   labels=["state"])
        counts: dict[str, int] = {}
        for record in records:
            for recipient in record.recipients:
                counts[recipient.state.value] = counts.get(recipient.state.value, 0) + 1
        for state, count in sorted(counts.items()):
            states.add_metric([state], count)
        yield states
        oldest = min((r.queued_at for r in records), default=None)
        yield GaugeMetricFamily("mailsrv_queue_oldest_age_seconds", "Age of the oldest queued message (0: none).",
                                value=0 if oldest is None else max(0.0, time.time() - oldest))


class Metrics:
    """The counters and gauges of one server, fed by its audit log and its session set."""

    def __init__(self, config: "Config", audit: "Audit", sessions: "OpenSessions") -> None:
        self.registry = CollectorRegistry()
        self._sessions = sessions
        r = self.registry
        self.connections = Counter("mailsrv_connections", "Connections accepted, by listener kind.",
                                   ["protocol", "kind"], registry=r)
        self.tls_handshakes = Counter(
            "mailsrv_tls_handshakes", "TLS handshakes of the mail listeners by TLS version; failed: the connection "
            "ended before its handshake finished.", ["protocol", "version"], registry=r)
        self.sessions_open = Gauge("mailsrv_sessions_open", "Connections open now.", ["protocol", "kind"],
                                   registry=r)
        self.sessions_logged_in = Gauge("mailsrv_sessions_logged_in", "Open connections with a login.",
                                        ["protocol", "kind"], registry=r)
        self.logins = Counter("mailsrv_logins", "Login attempts by protocol and result (ok, failed, locked, refused, "
                              "tempfail).", ["protocol", "result"], registry=r)
        self.transactions = Counter("mailsrv_smtp_transactions", "SMTP mail transactions by reply code "
                                    "(or aborted).", ["kind", "result"], registry=r)
        self.received = Counter("mailsrv_messages_received", "Messages accepted over SMTP (250 after the data).",
                                ["kind"], registry=r)
        self.delivered = Counter("mailsrv_messages_delivered", "Recipients a message was delivered to: local "
                                 "(stored) or remote (a server took it).", ["via"], registry=r)
        self.deferred = Counter("mailsrv_messages_deferred", "Recipients whose remote delivery failed for now "
                                "(retried later).", registry=r)
        self.bounced = Counter("mailsrv_messages_bounced", "Recipients given up on (the sender is told, unless "
                               "it asked for no report).", registry=r)
        self.latency = Histogram("mailsrv_delivery_latency_seconds", "Seconds from queueing to remote delivery, per delivering attempt.",
                                 buckets=_LATENCY_BUCKETS, registry=r)
        self.rejections = Counter("mailsrv_rejections", "Policy refusals by stage and reply code.",
                                  ["stage", "code"], registry=r)
        self.store_errors = Counter("mailsrv_store_errors", "Local deliveries that failed, by error.",
                                    ["error"], registry=r)
        r.register(_QueueCollector(config.queue_dir))
        audit.observe(self.count)
        sessions.observe(self.connection)
        sessions.observe_handshakes(self.handshake)

    # -- events ----------------------------------------------------------------

    def count(self, event: str, result: object, fields: dict[str, Any]) -> None:
        """One audit event (on the reactor)."""
        if event == "login":
            self.logins.labels(fields["protocol"], str(result)).inc()
        elif event == "transaction":
            self.transactions.labels(fields["kind"], str(result)).inc()
            if str(result) == "250":
                self.received.labels(fields["kind"]).inc()
        elif event == "delivery":
            if result == "stored":
                self.delivered.labels("local").inc(len(fields["recipients"]))
            else:
                self.store_errors.labels(fields.get("reason") or "unknown").inc()
        elif event == "send":
            self._sent(str(result), len(fields["recipients"]), fields.get("age"))
        elif event == "rejection":
            self.rejections.labels(str(result), reply_code(fields["reply"])).inc()

    def _sent(self, result: str, recipients: int, age: float | None) -> None:
        if result == "delivered":
            self.delivered.labels("remote").inc(recipients)
            if age is not None:
                self.latency.observe(age)
        elif result == "deferred":
            self.deferred.inc(recipients)
        elif result == "failed":
            self.bounced.inc(recipients)

    def connection(self, opened: bool, pump: Any) -> None:
        """A connection opened or ended (on the reactor)."""
        kind = getattr(pump, "kind", None)
        if kind is None:
            return
        if opened:
            self.connections.labels(kind.protocol, kind.label).inc()
            return
        session = getattr(pump, "session", None)
        if session is not None and session.tls_active and not session.tls_handshaken:
            # Not told of a handshake: none finished, or a wrapper (haproxy:) kept the news from us.
            finished = _handshake_finished(pump)
            self.tls_handshakes.labels(kind.protocol, (_tls_version(pump) or "unknown") if finished else "failed").inc()

    def handshake(self, pump: Any) -> None:
        """A connection finished its TLS handshake (on the reactor)."""
        kind = getattr(pump, "kind", None)
        if kind is not None:
            self.tls_handshakes.labels(kind.protocol, _tls_version(pump) or "unknown").inc()

    # -- scraping ----------------------------------------------------------------

    def snapshot_sessions(self) -> None:
        """Set the session gauges from the open sessions: on the reactor, which owns the session set."""
        self.sessions_open.clear()
        self.sessions_logged_in.clear()
        for pump in self._sessions:
            kind = getattr(pump, "kind", None)
            if kind is None:
                continue
            self.sessions_open.labels(kind.protocol, kind.label).inc()
            if getattr(getattr(pump, "session", None), "user", None) is not None:
                self.sessions_logged_in.labels(kind.protocol, kind.label).inc()

    def render(self) -> bytes:
        """The exposition text; blocking (reads the queue directory), so called in the disk pool."""
        return generate_latest(self.registry)


def _handshake_finished(pump: Any) -> bool:
    """Whether the connection's TLS handshake finished (pyOpenSSL has its Finished message then)."""
    try:
        return pump.session.transport.getHandle().get_finished() is not None
    except Exception:  # no TLS handle, or one already torn down
        return False


def _tls_version(pump: Any) -> str | None:
    """``TLSv1.3`` for a connection that spoke TLS, ``None`` otherwise or when the transport cannot tell."""
    session = getattr(pump, "session", None)
    try:
        details = session.tls_details() if session is not None else None
    except Exception:  # a transport already torn down; the count is not worth an error
        return None
    return details.split(" ", 1)[0] if details else None
