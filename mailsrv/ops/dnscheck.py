"""``mailsrv dns check``: what DNS really says about a local domain, against what it should say.

Each record of :func:`mailsrv.ops.dnsrecords.records` is looked up through
the configured resolver (``[dns]``) and judged *ok*, *missing* or *wrong*,
with what was found, what is expected, and the fix in the admin's words.
Beyond the records:

* SPF is not only present but passes for each public address (pyspf, as
  receivers evaluate it: ``v=spf1 a -all`` on a domain without an A record
  authorizes nobody), unless a relay sends our mail;
* forward-confirmed reverse DNS of each public address: its PTR names the
  hostname, and the hostname's A/AAAA holds the address (receivers check
  both, RFC 8601 2.7.3's ``iprev``);
* every address of every MX host the domain's MX records name answers on
  ``[delivery] mx_port`` with a greeting naming the hostname (before the MX
  is published, the public addresses do);
* the certificate the listeners serve (the ACME one once issued) names the
  hostname, and the ``mta-sts``, ``autoconfig`` and ``autodiscover`` names
  of the domain when our ``https`` listener serves them, is CA-signed and
  is not about to expire;
* no blocklist of ``[policy] dnsbl`` lists a public address or the domain
  (with the entry's filter, as the server judges its clients; the domain
  as domain lists are asked): receivers that use the same lists would
  refuse our mail.

A lookup that fails (timeout, SERVFAIL) is an *error*: the check could not
be made.  Everything here blocks; it is the command line's, not the
server's.
"""

from __future__ import annotations

import datetime
import enum
import socket
from dataclasses import asdict, dataclass
from typing import Callable

import dns.exception
import dns.resolver
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from mailsrv.address import canonical_domain
from mailsrv.config import Config
from mailsrv.dns import make_resolver
from mailsrv.dnslist import ListUnavailable, lookup as list_lookup, query_name
from mailsrv.listeners import Kind
from mailsrv.ops.dnsrecords import Record, address_rtype, public_addresses, records, reverse_name
from mailsrv.ops.probe import served_certificate
from mailsrv.policy.senderauth.verify import spf_result

#: A certificate expiring sooner than this is reported (ACME renews 30 days ahead).
EXPIRY_MARGIN = datetime.timedelta(days=14)
#: Seconds the SMTP greeting of an MX host may take.
GREETING_TIMEOUT = 15.0


class Status(str, enum.Enum):
    """How one check came out: *error* means it could not be made (a lookup failed)."""

    OK = "ok"
    MISSING = "missing"
    WRONG = "wrong"
    LISTED = "listed"
    ERROR = "error"


@dataclass(frozen=True)
class Finding:
    """One thing checked: *what* (``"MX example.test."``), its status, and the words around it."""

    what: str
    status: Status
    found: str = ""
    expected: str = ""
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        """The finding for ``--json``."""
        return {**asdict(self), "status": self.status.value}


class _Lookup:
    """Answers as text, ``[]`` for none; :class:`_Failed` when the resolver could not say."""

    def __init__(self, resolver: dns.resolver.Resolver) -> None:
        self._resolver = resolver

    def __call__(self, name: str, rtype: str) -> list[str]:
        try:
            answer = self._resolver.resolve(name, rtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []
        except dns.exception.DNSException as e:
            raise _Failed(f"{name} {rtype}: {e.__class__.__name__}") from None
        if answer.rrset is None:
            return []
        if rtype == "TXT":
            return [b"".join(r.strings).decode("utf-8", "replace") for r in answer.rrset]
        return [r.to_text() for r in answer.rrset]


class _Failed(Exception):
    pass


def check(config: Config, domain: str, addresses: list[str] | None = None,
          resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """Every finding for the local *domain*, in the order :func:`records` lists the records."""
    resolver = resolver or make_resolver(config.dns)
    lookup = _Lookup(resolver)
    addresses = public_addresses(config) if addresses is None else addresses
    findings = []
    for record in records(config, domain, addresses):
        if record.elsewhere:
            continue
        try:
            finding = _judge(record, lookup)
        except _Failed as e:
            finding = Finding(f"{_LABELS.get(_kind(record), record.rtype)} {record.name}", Status.ERROR, found=str(e),
                              expected=record.value, fix="check that [dns] nameservers answer")
        if _kind(record) == "spf" and finding.status is Status.OK and not config.delivery.relay:
            finding = _spf_passes(config, record, finding, addresses, resolver)
        findings.append(finding)
    for address in addresses:
        findings.append(_reverse(config, address, lookup))
    zone = f"{canonical_domain(domain)}."  # records() refused a name that is not a domain
    findings += _greetings(config, zone, addresses, lookup)
    findings.append(_certificate(config, zone))
    findings += _blocklists(config, addresses, resolver, zone)
    return findings


def report(findings: list[Finding]) -> str:
    """The findings as aligned text, one block per finding that is not ok."""
    lines = []
    for f in findings:
        lines.append(f"{f.status.value:8} {f.what}" + (f"  ({f.found})" if f.status is Status.OK and f.found else ""))
        if f.status is not Status.OK:
            lines += [f"         {label}: {text}" for label, text in
                      (("found", f.found), ("expected", f.expected), ("fix", f.fix)) if text]
    return "\n".join(lines) + "\n"


def _judge(record: Record, lookup: _Lookup) -> Finding:
    kind = _kind(record)
    what = f"{_LABELS.get(kind, record.rtype)} {record.name}"
    judge = _JUDGES.get((record.rtype, kind), _exact)
    return judge(what, record, lookup(record.name, record.rtype) if record.rtype != "CNAME" else [], lookup)


def _kind(record: Record) -> str:
    """Which TXT record this is (they are judged differently), '' for other types."""
    if record.rtype != "TXT":
        return ""
    for prefix, kind in (("v=spf1", "spf"), ("v=DKIM1", "dkim"), ("v=DMARC1", "dmarc"), ("v=STSv1", "sts"),
                         ("v=TLSRPTv1", "tlsrpt")):
        if _unquote(record.value).startswith(prefix):
            return kind
    return ""


def _unquote(value: str) -> str:
    """A zone-file TXT value (``"a" "b"``) as the one string DNS hands out."""
    return "".join(part for i, part in enumerate(value.split('"')) if i % 2)


def _publish(record: Record) -> str:
    return f"publish {record.line()}"


def _exact(what: str, record: Record, found: list[str], lookup: _Lookup) -> Finding:
    """MX, A/AAAA, SRV: the expected value must be among the answers."""
    expected = record.value if record.rtype != "TXT" else _unquote(record.value)
    normal = {value.lower() for value in found}
    if expected.lower() in normal:
        return Finding(what, Status.OK, found=expected)
    if not found:
        if record.rtype == "SRV" and expected == "0 0 0 .":  # not offered; no record says little more
            return Finding(what, Status.OK, found="no record (the service is off)")
        return Finding(what, Status.MISSING, expected=record.value, fix=_publish(record))
    return Finding(what, Status.WRONG, found=", ".join(found), expected=record.value,
                   fix=f"replace it with {record.line()}")


#: How a record is judged: (what, expected record, answers, lookup) -> finding.
Judge = Callable[[str, Record, list[str], "_Lookup"], Finding]


def _one_txt(prefix: str, problem_of: Callable[[str, str], str]) -> Judge:
    """A judge of a TXT record of which exactly one starting with *prefix* must exist.

    *problem_of(found, expected)* says what is wrong with the one found ("" if nothing).
    """

    def judge(what: str, record: Record, found: list[str], lookup: _Lookup) -> Finding:
        mine = [value for value in found if value.startswith(prefix)]
        if not mine:
            return Finding(what, Status.MISSING, expected=record.value, fix=_publish(record))
        if len(mine) > 1:
            return Finding(what, Status.WRONG, found=" | ".join(mine), expected=record.value,
                           fix=f"keep one {prefix} record: {record.line()}")
        problem = problem_of(mine[0], _unquote(record.value))
        if problem:
            return Finding(what, Status.WRONG, found=mine[0], expected=record.value,
                           fix=f"{problem}: publish {record.line()}")
        return Finding(what, Status.OK, found=mine[0])

    return judge


def _spf(found: str, expected: str) -> str:
    terms = found.split()[1:]
    if "+all" in terms or "all" in terms:
        return "+all lets anyone send as the domain"
    if not any(t.lstrip("+") in ("mx", "a") or t.startswith(("ip4:", "ip6:", "include:")) for t in terms):
        return "it authorizes neither the MX hosts nor an address"
    return ""


def _tag(value: str, name: str) -> str | None:
    for part in value.split(";"):
        key, eq, tag_value = part.strip().partition("=")
        if eq and key.strip() == name:
            return tag_value.strip()
    return None


def _dkim(found: str, expected: str) -> str:
    return "" if _tag(found, "p") == _tag(expected, "p") else "the key (p=) is not this server's"


def _dmarc(found: str, expected: str) -> str:
    return "" if _tag(found, "p") in ("none", "quarantine", "reject") else "no valid p= policy"


def _sts(found: str, expected: str) -> str:
    if _tag(found, "id") != _tag(expected, "id"):
        return "the id is not the current policy's, so senders keep an old one"
    return ""


def _present(found: str, expected: str) -> str:
    """Any one record will do (its report address is the admin's choice)."""
    return ""


def _alias(what: str, record: Record, found: list[str], lookup: _Lookup) -> Finding:
    """A name that must lead to the hostname: a CNAME to it, or the same addresses."""
    target = record.value.lower()
    cname = [value.lower() for value in lookup(record.name, "CNAME")]
    if target in cname:
        return Finding(what, Status.OK, found=target)
    mine = set(lookup(target, "A") + lookup(target, "AAAA"))
    theirs = set(lookup(record.name, "A") + lookup(record.name, "AAAA"))
    if theirs and theirs <= mine:
        return Finding(what, Status.OK, found=f"addresses of {target}")
    if not cname and not theirs:
        return Finding(what, Status.MISSING, expected=record.value, fix=_publish(record))
    return Finding(what, Status.WRONG, found=", ".join(cname or sorted(theirs)), expected=record.value,
                   fix=f"replace it with {record.line()}")


_LABELS = {"spf": "SPF", "dkim": "DKIM", "dmarc": "DMARC", "sts": "MTA-STS", "tlsrpt": "TLS-RPT"}
_JUDGES: dict[tuple[str, str], Judge] = {
    ("TXT", "spf"): _one_txt("v=spf1", _spf),
    ("TXT", "dkim"): _one_txt("v=DKIM1", _dkim),
    ("TXT", "dmarc"): _one_txt("v=DMARC1", _dmarc),
    ("TXT", "sts"): _one_txt("v=STSv1", _sts),
    ("TXT", "tlsrpt"): _one_txt("v=TLSRPTv1", _present),
    ("CNAME", ""): _alias,
}


def _reverse(config: Config, address: str, lookup: _Lookup) -> Finding:
    """Forward-confirmed reverse DNS of *address*."""
    host = config.hostname.rstrip(".").lower() + "."
    what = f"PTR {address}"
    expected = f"{reverse_name(address)} IN PTR {host}"
    fix = f"ask your hosting provider to set the reverse DNS of {address} to {config.hostname}"
    try:
        names = [name.lower() for name in lookup(reverse_name(address), "PTR")]
        if not names:
            return Finding(what, Status.MISSING, expected=expected, fix=fix)
        if host not in names:
            return Finding(what, Status.WRONG, found=", ".join(names), expected=expected, fix=fix)
        forward = lookup(host, address_rtype(address))
    except _Failed as e:
        return Finding(what, Status.ERROR, found=str(e), expected=expected, fix="check that [dns] nameservers answer")
    if address not in forward:
        return Finding(what, Status.WRONG, found=f"{host} has {', '.join(forward) or 'no address'}",
                       expected=f"{host} IN {address_rtype(address)} {address}",
                       fix="the forward record must hold the address too (forward-confirmed reverse DNS)")
    return Finding(what, Status.OK, found=host)


def _spf_passes(config: Config, record: Record, finding: Finding, addresses: list[str],
                resolver: dns.resolver.Resolver) -> Finding:
    """*finding* (an SPF record that looks right) unless a public address does not pass it as a receiver sees it."""
    domain = record.name.rstrip(".")
    for address in addresses:
        result = spf_result(resolver, address, f"postmaster@{domain}", config.hostname)
        if result != "pass":
            return Finding(finding.what, Status.WRONG, found=f"{finding.found} (SPF {result} for {address})",
                           expected=record.value,
                           fix=f"it must authorize {address}, the address this server sends from: "
                               f"publish {record.line()}")
    return finding


def _greetings(config: Config, zone: str, addresses: list[str], lookup: _Lookup) -> list[Finding]:
    """The greeting of every MX host of *zone* on the MX port; of the public addresses while there is no MX."""
    port = config.delivery.mx_port
    try:
        hosts = [value.split()[1] for value in lookup(zone, "MX") if value.split()[1] != "."]
    except _Failed as e:
        return [Finding(f"SMTP greeting on port {port}", Status.ERROR, found=str(e),
                        fix="check that [dns] nameservers answer")]
    if not hosts:
        return [_greeting(config, f"SMTP greeting on port {port}", addresses)]
    findings = []
    for host in hosts:
        what = f"SMTP greeting of MX {host} on port {port}"
        try:
            found = lookup(host, "A") + lookup(host, "AAAA")
        except _Failed as e:
            findings.append(Finding(what, Status.ERROR, found=str(e), fix="check that [dns] nameservers answer"))
            continue
        if not found:
            findings.append(Finding(what, Status.WRONG, found=f"{host} has no address",
                                    expected=f"220 {config.hostname} ...",
                                    fix=f"publish the A/AAAA records of {host}, or remove the MX record"))
        else:
            findings.append(_greeting(config, what, found))
    return findings


def _greeting(config: Config, what: str, addresses: list[str]) -> Finding:
    """The SMTP greeting of every one of *addresses* on the MX port names the hostname."""
    port = config.delivery.mx_port
    expected = f"220 {config.hostname} ..."
    if not addresses:
        return Finding(what, Status.ERROR, expected=expected, fix="set public_addresses")
    for address in addresses:
        try:
            with socket.create_connection((address, port), timeout=GREETING_TIMEOUT) as s:
                s.settimeout(GREETING_TIMEOUT)
                greeting = s.makefile("rb").readline(1024).decode("ascii", "replace").rstrip("\r\n")
        except OSError as e:
            return Finding(what, Status.WRONG, found=f"[{address}]:{port}: {e.strerror or e}", expected=expected,
                           fix=f"open port {port} to the server (firewall, provider's port 25 block, [listen] smtp)")
        words = greeting.split()
        if len(words) < 2 or not words[0].startswith("220") or words[1].lower() != config.hostname.lower():
            return Finding(what, Status.WRONG, found=f"[{address}]:{port}: {greeting}", expected=expected,
                           fix=f"another server answers at {address}, or hostname is not {config.hostname}")
    return Finding(what, Status.OK, found=", ".join(addresses))


def _certificate(config: Config, zone: str) -> Finding:
    """The served certificate names what it must, is not self-signed, and lasts beyond the margin."""
    what = "TLS certificate"
    path = served_certificate(config)
    wanted = [config.hostname.lower()]
    if config.listen.endpoints(Kind.HTTPS):  # senders fetch the MTA-STS policy, clients their settings, over it
        wanted += [f"{prefix}.{zone.rstrip('.')}" for prefix in ("mta-sts", "autoconfig", "autodiscover")]
    expected = f"a CA-signed certificate for {', '.join(wanted)}, valid for over {EXPIRY_MARGIN.days} days"
    try:
        with open(path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError) as e:
        return Finding(what, Status.MISSING, found=f"{path}: {getattr(e, 'strerror', None) or e}", expected=expected,
                       fix="set [tls] cert and key, or start the server once to generate one")
    try:
        names = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        dns_names = [name.lower() for name in names.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        dns_names = []
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    found = f"{path}: {', '.join(dns_names) or 'no names'}, expires in {left.days} days"
    unnamed = [name for name in wanted if not any(_covers(pattern, name) for pattern in dns_names)]
    if unnamed:
        return Finding(what, Status.WRONG, found=found, expected=expected,
                       fix=f"get a certificate naming {', '.join(unnamed)} (with [tls] acme, mailsrv orders one)")
    if cert.issuer == cert.subject:
        return Finding(what, Status.WRONG, found=found + ", self-signed", expected=expected,
                       fix="get a certificate from a CA (Let's Encrypt): MTA-STS senders and mail clients refuse "
                           "a self-signed one")
    if left < EXPIRY_MARGIN:
        return Finding(what, Status.WRONG, found=found, expected=expected, fix="renew the certificate")
    return Finding(what, Status.OK, found=found)


def _covers(pattern: str, name: str) -> bool:
    """Whether the certificate name *pattern* (``*.example.org`` a wildcard, RFC 6125 6.4.3) covers *name*."""
    if pattern.startswith("*."):
        return "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def _blocklists(config: Config, addresses: list[str], resolver: dns.resolver.Resolver, zone_of_domain: str) -> list[Finding]:
    """Each public address, and the domain, on each blocklist zone of ``[policy] dnsbl`` (an allowlist
    listing us is no fault).

    The domain is asked as RFC 5782 2.3 has domain lists asked (``<domain>.<zone>``): receivers that
    use a list such as Spamhaus's DBL refuse mail naming a listed domain, whichever address sends it.
    An address list answers that with NXDOMAIN, so asking every zone both ways costs one query.
    """
    policy = config.policy
    entries = [entry for entry in policy.dns_lists() if entry.weight > 0]
    subjects = [(address, query_name) for address in addresses]
    subjects.append((zone_of_domain.rstrip("."), lambda domain, zone: f"{domain}.{zone}."))
    findings = []
    for subject, name_in in subjects:
        for zone in dict.fromkeys(entry.zone for entry in entries):
            name = name_in(subject, zone)
            assert name is not None  # public addresses are addresses (checked when the config was read)
            what = f"DNSBL {zone} {subject}"
            try:
                answers, _ = list_lookup(resolver, name, policy.dnsbl_timeout)
            except ListUnavailable as e:
                findings.append(Finding(what, Status.ERROR, found=str(e), expected="not listed",
                                        fix="check that [dns] nameservers answer (public resolvers are often "
                                            "refused by the lists: use a resolver of your own)"))
                continue
            hits = [answer for answer in answers if any(e.zone == zone and e.matches(answer) for e in entries)]
            if hits:
                findings.append(Finding(what, Status.LISTED, found=f"{name} IN A {', '.join(hits)}",
                                        expected="not listed",
                                        fix=f"look {subject} up on the site of {zone} for why, and ask for "
                                            "delisting once the cause is gone"))
            else:
                findings.append(Finding(what, Status.OK, found="not listed"))
    return findings
