"""End to end: the real twistd honours DSN requests (RFC 3461) and REQUIRETLS (RFC 8689) on its way out.

alice submits with smtplib's ``mail_options``/``rcpt_options`` to four
destinations, each an MX that is a threaded :class:`responder.Responder`
on its own 127.0.0.x (all on the one ``mx_port``): plain.test offers
neither DSN nor TLS and refuses ``nobody@`` (550) and ``late@`` (451,
always); dsn.test offers DSN; tls.test offers STARTTLS with a certificate
of the test CA but no REQUIRETLS; rtls.test offers both.  Every message
says which it is (``X-Seq``), and so does each report alice gets back,
which quotes its header.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import ssl

import pytest

from dns_harness import ThreadedDNS, Zone
from mailsrv.delivery.queuedir import QueueDir
from outbound import PASSWORD, numbered, queue_is_empty, queue_list, wait_for
from responder import Responder
from smtp_receiver import MailCA
from twistd_server import Server, mailsrv_cli

ALICE = "alice@example.test"
SECRET = b"a body line that must not come back\r\n"
#: Host, address and what each destination's MX offers.
DESTINATIONS = {
    "plain.test": ("127.0.0.1", ("8BITMIME",), False),
    "dsn.test": ("127.0.0.3", ("8BITMIME", "DSN", "PIPELINING"), False),
    "tls.test": ("127.0.0.4", ("8BITMIME",), True),
    "rtls.test": ("127.0.0.5", ("8BITMIME", "REQUIRETLS"), True),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    certs = str(tmp_path_factory.mktemp("certs"))
    ca = MailCA()
    zone = Zone()
    script = {"nobody@plain.test": ["550 5.1.1 no such user"], "late@plain.test": ["451 4.3.0 try again later"]}
    mxs, port = {}, 0
    for domain, (ip, extensions, tls) in DESTINATIONS.items():
        zone.add(domain, "MX", f"10 mx.{domain}.")
        zone.add(f"mx.{domain}", "A", ip)
        context = None
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*ca.write_pair(certs, f"mx.{domain}"))
        mxs[domain] = Responder(ip, port, extensions=extensions, tls=context, script=script).__enter__()
        port = mxs[domain].port
    zone.sign("tls.test", "rtls.test")  # validated MX answers: REQUIRETLS may go there (RFC 8689 4.2.2.1)
    with ThreadedDNS(zone) as dns:
        sender = Server(str(tmp_path_factory.mktemp("sender")), extra_config=(
            f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
            f'[delivery]\nmx_port = {port}\nretry = ["1s"]\ndelay_warning = "3s"\n'
            f'tls_ca_file = "{ca.write(certs)}"\n'))
        sender.add_user(ALICE, PASSWORD)
        sender.start()
        try:
            yield sender, mxs
        finally:
            sender.stop()
            for mx in mxs.values():
                mx.__exit__()


def send(sender: Server, seq: int, recipient: str, mail_options=(), rcpt_options=()) -> None:
    with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=30) as s:
        s.starttls(context=sender.tls())
        s.login(ALICE, PASSWORD)
        message = numbered(ALICE, recipient, seq, SECRET)
        assert s.sendmail(ALICE, [recipient], message, list(mail_options), list(rcpt_options)) == {}


def reports(sender: Server, seq: int) -> list[email.message.EmailMessage]:
    """The DSNs in alice's mailbox about message *seq*."""
    maildir = os.path.join(sender.data_dir, "mail", "example.test", "alice")
    found = []
    for sub in ("new", "cur"):
        folder = os.path.join(maildir, sub)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            with open(os.path.join(folder, name), "rb") as f:
                data = f.read().replace(b"\n", b"\r\n")
            if f"X-Seq: {seq}\r\n".encode() in data:
                found.append(email.message_from_bytes(data, policy=email.policy.default))
    return found


def recipient_fields(report: email.message.EmailMessage):
    [status] = [part for part in report.walk() if part.get_content_type() == "message/delivery-status"]
    return status.get_payload()[1]


def test_notify_never_and_a_550_give_no_bounce(world):
    sender, _ = world
    send(sender, 1, "nobody@plain.test", rcpt_options=["NOTIFY=NEVER"])
    send(sender, 2, "nobody@plain.test")  # the same refusal without NOTIFY: bounced, so bounces do flow
    assert wait_for(lambda: reports(sender, 2) and queue_is_empty(sender), 30), queue_list(sender)
    assert reports(sender, 1) == []


def test_a_ret_hdrs_bounce_has_the_header_and_no_body(world):
    sender, _ = world
    send(sender, 3, "nobody@plain.test", mail_options=["RET=HDRS"])
    assert wait_for(lambda: reports(sender, 3), 30), queue_list(sender)
    [report] = reports(sender, 3)
    assert report.get_content_type() == "multipart/report"
    assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"
    assert SECRET.strip() not in report.as_bytes()
    assert recipient_fields(report)["Action"] == "failed"


def test_notify_success_through_a_server_without_dsn_gives_a_relayed_report(world):
    sender, mxs = world
    send(sender, 4, "bob@plain.test", rcpt_options=["NOTIFY=SUCCESS"])
    assert wait_for(lambda: reports(sender, 4), 30), queue_list(sender)
    [report] = reports(sender, 4)
    fields = recipient_fields(report)
    assert (fields["Action"], fields["Status"], fields["Remote-MTA"]) == ("relayed", "2.0.0", "dns; mx.plain.test")
    [message] = [m for m in mxs["plain.test"].messages if b"X-Seq: 4\r\n" in m.data]
    assert "NOTIFY" not in " ".join(message.rcpt_to)  # RFC 3461 5.2.2: a server without DSN gets none


def test_the_parameters_go_on_to_a_server_that_offers_dsn(world):
    sender, mxs = world
    send(sender, 5, "bob@dsn.test", mail_options=["RET=HDRS", "ENVID=QQ+2B5"],
         rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;Bob@dsn.test"])
    assert wait_for(lambda: any(b"X-Seq: 5\r\n" in m.data for m in mxs["dsn.test"].messages), 30), queue_list(sender)
    assert wait_for(lambda: queue_is_empty(sender), 30), queue_list(sender)
    [message] = [m for m in mxs["dsn.test"].messages if b"X-Seq: 5\r\n" in m.data]
    assert message.mail_from.endswith(" RET=HDRS ENVID=QQ+2B5"), message.mail_from
    assert message.rcpt_to == ["TO:<bob@dsn.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@dsn.test"]
    assert reports(sender, 5) == []  # the receiver reports success itself


def test_requiretls_to_a_server_without_it_bounces_with_5_7_30_and_no_body(world):
    sender, mxs = world
    send(sender, 6, "bob@tls.test", mail_options=["REQUIRETLS", "RET=FULL"])
    assert wait_for(lambda: reports(sender, 6), 30), queue_list(sender)
    [report] = reports(sender, 6)
    assert recipient_fields(report)["Status"] == "5.7.30"
    assert report.get_payload()[2].get_content_type() == "text/rfc822-headers"  # RFC 8689 5: RET=FULL ignored
    assert SECRET.strip() not in report.as_bytes()
    assert "STARTTLS" in mxs["tls.test"].commands  # it got as far as verified TLS, then no MAIL
    assert not any(c.startswith("MAIL") for c in mxs["tls.test"].commands)


def test_requiretls_goes_over_verified_tls_to_a_server_that_offers_it(world):
    sender, mxs = world
    send(sender, 7, "bob@rtls.test", mail_options=["REQUIRETLS"])
    assert wait_for(lambda: any(b"X-Seq: 7\r\n" in m.data for m in mxs["rtls.test"].messages), 30), queue_list(sender)
    [message] = [m for m in mxs["rtls.test"].messages if b"X-Seq: 7\r\n" in m.data]
    assert message.tls and message.mail_from.endswith(" REQUIRETLS"), message


def test_requiretls_to_an_mx_without_a_validated_answer_bounces_with_5_7_10(world):
    sender, mxs = world
    send(sender, 12, "bob@dsn.test", mail_options=["REQUIRETLS"])
    assert wait_for(lambda: reports(sender, 12), 30), queue_list(sender)
    [report] = reports(sender, 12)
    assert recipient_fields(report)["Status"] == "5.7.10"  # not 5.7.30: its MX was never asked
    assert "DNSSEC-validated" in recipient_fields(report)["Diagnostic-Code"]
    assert not any(b"X-Seq: 12\r\n" in m.data for m in mxs["dsn.test"].messages)


def test_a_deferred_message_sends_one_delay_warning(world):
    sender, mxs = world
    plain = mxs["plain.test"]
    send(sender, 8, "late@plain.test")
    assert wait_for(lambda: reports(sender, 8), 30), queue_list(sender)
    tries = sum("<late@plain.test>" in c for c in plain.commands)
    assert wait_for(lambda: sum("<late@plain.test>" in c for c in plain.commands) >= tries + 3, 30)
    [warning] = reports(sender, 8)
    assert warning["Subject"] == "Delayed Mail (still being retried)"
    assert (recipient_fields(warning)["Action"], recipient_fields(warning)["Status"]) == ("delayed", "4.3.0")
    [queued] = QueueDir(os.path.join(sender.data_dir, "queue")).ids()
    assert mailsrv_cli(sender.config, "queue", "delete", queued).returncode == 0  # the others find the queue empty
