"""The Authentication-Results header field (RFC 8601): written for our results, recognised when forged.

A field naming our host as authserv-id is believed by the user's mail
client and filters, so one that arrived with the message is a forgery (or
an old copy of ours from a loop) and is removed before ours goes on top
(RFC 8601 5).
"""

from __future__ import annotations

import re

from mailsrv.policy.senderauth.verify import Results

_NAME = re.compile(rb"authentication-results[ \t]*:", re.I)
_COMMENT = re.compile(rb"\([^()]*\)")


def authserv_id(field: bytes) -> str:
    """The authserv-id of an ``Authentication-Results:`` *field* (its text, folded lines included), lower case.

    RFC 8601 2.2: the value starts with the authserv-id, after optional
    comments, ended by white space (a version follows) or ``;``.
    """
    value = field.partition(b":")[2]
    while (stripped := _COMMENT.sub(b" ", value)) != value:  # nested comments, innermost first
        value = stripped
    token = re.split(rb"[\s;]", value.strip(), maxsplit=1)[0]
    return token.strip(b'"').decode("ascii", "replace").lower()


def is_ours(field: bytes, hostname: str) -> bool:
    """Whether *field* is an Authentication-Results header claiming to come from *hostname*."""
    # A trailing dot names the same host (an absolute DNS name); a reader may ignore it.
    return bool(_NAME.match(field)) and authserv_id(field).rstrip(".") == hostname.lower().rstrip(".")


def header(hostname: str, results: Results) -> bytes:
    """Our ``Authentication-Results:`` field, one result per folded line, CRLF-ended."""
    parts = [f"spf={results.spf} smtp.mailfrom={results.mailfrom}" if results.mailfrom else f"spf={results.spf}"]
    if results.helo_spf is not None:
        parts.append(f"spf={results.helo_spf} smtp.helo={results.helo}")
    for signature in results.dkim or ():
        parts.append(" ".join(
            [f"dkim={signature.result}" + (f" ({signature.comment})" if signature.comment else "")]
            + [f"header.{tag}={value}" for tag, value in
               (("d", signature.domain), ("s", signature.selector), ("b", signature.b)) if value]
        ))
    if not results.dkim:
        parts.append("dkim=none")
    outcome = results.dmarc
    comment = f" (p={outcome.policy} dis={outcome.disposition})" if outcome.result == "fail" else ""
    parts.append(f"dmarc={outcome.result}{comment}" + (f" header.from={results.author}" if results.author else ""))
    parts.append(f"arc={results.arc}")
    text = f"Authentication-Results: {hostname};\r\n\t" + ";\r\n\t".join(parts) + "\r\n"
    return text.encode("utf-8")
