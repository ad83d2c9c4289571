"""The DNS records a local domain needs, each with the reason it matters: what ``mailsrv dns records`` prints.

One list, made from the configuration and the data dir, so that what the
admin is told to publish and what ``dns check`` will compare agree:

* MX (RFC 5321 5.1) pointing at ``hostname``, and the hostname's A/AAAA;
* SPF (RFC 7208): ``mx`` allows exactly the hosts the MX names, ``-all``
  refuses the rest; with a relay, the relay's domain is included too;
* every DKIM key of the domain (RFC 6376, ``mailsrv dkim keygen``);
* DMARC (RFC 7489) at ``p=quarantine`` with aggregate reports to postmaster;
* MTA-STS (RFC 8461): the ``_mta-sts`` TXT with the id of the policy we
  serve (:mod:`mailsrv.mtasts_policy`) and the ``mta-sts`` name for its
  HTTPS host; TLS-RPT (RFC 8460) reports to tlsrpt@;
* SRV records for clients (RFC 6186, RFC 8314): the ports configured in
  ``[listen]``, ``0 0 0 .`` (RFC 2782: not offered) for a kind turned off;
* the autoconfig/autodiscover names desktop clients look up, which the
  ``https`` listener serves (:mod:`mailsrv.http`), as it serves the policy;
* the PTR of each public address, which only the hosting provider can set.

The public addresses come from ``public_addresses`` or, when it is empty,
from the route the host would use to reach the internet (no packet is
sent); a private one is flagged, as behind NAT only the admin knows the
public address.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from mailsrv.address import canonical_domain
from mailsrv.config import Config
from mailsrv.config.delivery import parse_relay
from mailsrv.dkim import keys
from mailsrv.dkim.keys import KeyRing
from mailsrv.listeners import Kind, endpoint_port
from mailsrv.mtasts_policy import policy_id, policy_text
from mailsrv.ops.common import OpsError, require_local

#: SRV service names (RFC 6186 3, RFC 8314 5.1) of the listener kinds clients use; SMTP port 25 has none.
_SRV = {
    Kind.SUBMISSIONS: "_submissions", Kind.SUBMISSION: "_submission",
    Kind.IMAPS: "_imaps", Kind.IMAP: "_imap", Kind.POP3S: "_pop3s", Kind.POP3: "_pop3",
}
#: RFC 8314 5.1 and RFC 6186 3.4: implicit TLS first, then the STARTTLS port, then POP3.
_PRIORITY = {
    Kind.SUBMISSIONS: 0, Kind.SUBMISSION: 10, Kind.IMAPS: 0, Kind.IMAP: 10, Kind.POP3S: 20, Kind.POP3: 30,
}
#: A listener bound to the loopback interface only.
_LOOPBACK = re.compile(r":interface=(127\.[0-9.]+|::1|\\:\\:1)(:|\Z)")
#: Addresses whose route shows the interface used for the internet (documentation ranges, never contacted).
_PROBES = {socket.AF_INET: "192.0.2.1", socket.AF_INET6: "2001:db8::1"}


@dataclass(frozen=True)
class Record:
    """One resource record in zone-file form, and the one line an admin needs on why it matters."""

    name: str
    rtype: str
    value: str
    why: str
    #: True for a record the admin cannot publish in the domain's zone (PTR: the provider's).
    elsewhere: bool = False

    def line(self) -> str:
        """``name. IN TYPE value`` (commented out when it is published elsewhere)."""
        text = f"{self.name} IN {self.rtype} {self.value}"
        return f"; {text}" if self.elsewhere else text


def records(config: Config, domain: str, addresses: list[str] | None = None) -> list[Record]:
    """What to publish for the local *domain*, in the order to read it; *addresses* default to :func:`public_addresses`."""
    canonical = canonical_domain(domain)
    if canonical is None:
        raise OpsError(f"not a domain name: {domain!r}")
    require_local(config, canonical)
    host = _absolute(config.hostname)
    zone = _absolute(canonical)
    addresses = public_addresses(config) if addresses is None else addresses
    out = [Record(zone, "MX", f"10 {host}", f"mail for {canonical} goes to {config.hostname}")]
    for address in addresses:
        rtype = address_rtype(address)
        why = f"{config.hostname} is reached at {address}"
        if not ipaddress.ip_address(address).is_global:
            why += " (not a public address: set public_addresses to the one the internet sees)"
        out.append(Record(host, rtype, address, why))
    out.append(_spf(config, zone, canonical))
    for key in KeyRing(keys.dkim_dir(config.data_dir)).keys(canonical):
        name, _, value = key.record.partition(" IN TXT ")
        out.append(Record(name, "TXT", value, f"DKIM key {key.selector} ({key.algorithm.value}): "
                                               "receivers check the signatures on mail from your users"))
    out += [
        Record(f"_dmarc.{zone}", "TXT", f'"v=DMARC1; p=quarantine; rua=mailto:postmaster@{canonical}"',
               "DMARC: mail failing SPF and DKIM alignment goes to spam; daily reports to postmaster"),
        Record(f"_mta-sts.{zone}", "TXT", f'"v=STSv1; id={policy_id(config)}"',
               "MTA-STS: senders must use verified TLS to reach you (the id changes with the policy)"),
        Record(f"mta-sts.{zone}", "CNAME", host, f"the HTTPS host serving the policy (below); its certificate must "
                                                 f"name mta-sts.{canonical}{_served(config)}"),
        Record(f"_smtp._tls.{zone}", "TXT", f'"v=TLSRPTv1; rua=mailto:tlsrpt@{canonical}"',
               "TLS-RPT: senders report TLS failures reaching you"),
    ]
    out += _srv(config, zone, host)
    out += [
        Record(f"autoconfig.{zone}", "CNAME", host, "Thunderbird and others fetch their settings here "
                                                   f"(/mail/config-v1.1.xml){_served(config)}"),
        Record(f"autodiscover.{zone}", "CNAME", host, "Outlook fetches its settings here "
                                                     f"(/autodiscover/autodiscover.xml){_served(config)}"),
    ]
    for address in addresses:
        out.append(Record(reverse_name(address), "PTR", host, f"reverse DNS of {address}: set it at your hosting "
                          "provider; receivers distrust mail from an address without it", elsewhere=True))
    return out


def zone_text(config: Config, domain: str, addresses: list[str] | None = None) -> str:
    """:func:`records` as a zone-file snippet, a comment above each record."""
    lines = [f"; DNS records for {domain}, served by {config.hostname}"]
    for record in records(config, domain, addresses):
        lines += [f"; {record.why}", record.line()]
    lines.append(f"; The MTA-STS policy to serve at https://mta-sts.{canonical_domain(domain)}/.well-known/mta-sts.txt:")
    lines += [f";   {line}" for line in policy_text(config).splitlines()]
    return "\n".join(lines) + "\n"


def _served(config: Config) -> str:
    """Who serves the HTTPS names: our ``https`` listener, or a note that it is off."""
    if config.listen.endpoints(Kind.HTTPS):
        return ", served by the https listener"
    return " (turn on [listen] https to serve it from mailsrv)"


def public_addresses(config: Config) -> list[str]:
    """``public_addresses`` from the configuration, else the source address of each family's default route."""
    if config.public_addresses:
        return list(config.public_addresses)
    found = []
    for family, probe in _PROBES.items():
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 9))  # UDP connect sends nothing: it only picks the route and source address
                found.append(s.getsockname()[0])
        except OSError:  # no route for this family
            continue
    return found


def _spf(config: Config, zone: str, domain: str) -> Record:
    include = ""
    why = f"SPF: only the hosts of {domain}'s MX records may send as {domain}"
    if config.delivery.relay:
        relay_host = parse_relay(config.delivery.relay)[0]
        relay_domain = relay_host.split(".", 1)[1] if relay_host.count(".") > 1 else relay_host
        include = f" include:{relay_domain}"
        why += f", and your relay {relay_host} (check its documented SPF include)"
    return Record(zone, "TXT", f'"v=spf1 mx{include} -all"', why)


def _srv(config: Config, zone: str, host: str) -> list[Record]:
    out = []
    for kind, service in _SRV.items():
        endpoints = [e for e in config.listen.endpoints(kind) if endpoint_port(e) is not None]
        if endpoints:
            port = endpoint_port(endpoints[0])
            value = f"{_PRIORITY[kind]} 1 {port} {host}"
            why = f"mail clients find {kind.label} on port {port}"
            if all(_LOOPBACK.search(e) for e in endpoints):
                why += " (listening on loopback only: set [listen] for clients elsewhere to reach it)"
        else:
            value = "0 0 0 ."
            why = f"{kind.label} is turned off: clients should not try it"
        out.append(Record(f"{service}._tcp.{zone}", "SRV", value, why))
    return out


def _absolute(name: str) -> str:
    return name.rstrip(".") + "."


def reverse_name(address: str) -> str:
    """The absolute name of *address*'s PTR record (``25.100.51.198.in-addr.arpa.``)."""
    return ipaddress.ip_address(address).reverse_pointer + "."


def address_rtype(address: str) -> str:
    """``AAAA`` for an IPv6 address, ``A`` for an IPv4 one."""
    return "AAAA" if ":" in address else "A"
