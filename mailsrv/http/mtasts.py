"""The MTA-STS policy file (RFC 8461 3.3) at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``.

The text is :func:`mailsrv.mtasts_policy.policy_text`, the same that
``mailsrv dns records`` prints and whose digest is the id in the
``_mta-sts`` TXT record, so the served policy and the published id always
agree.  It is answered only when the ``Host`` is ``mta-sts.`` and a local
domain: a policy is a domain's statement, and no other name should make one.
"""

from __future__ import annotations

from twisted.web.server import Request

from mailsrv.http.pages import ConfigPage, Refused, host_domain
from mailsrv.mtasts_policy import policy_text


class MTASTSPolicy(ConfigPage):
    """The policy, for the local domain the Host names."""

    # RFC 8461 3.3: the policy is served as "text/plain".
    content_type = b"text/plain; charset=utf-8"

    def page(self, request: Request) -> bytes:
        """The policy text; 404 for a Host that is not ``mta-sts.<local domain>``."""
        if host_domain(request, self.config, "mta-sts") is None:
            raise Refused(404, "no MTA-STS policy for this host name")
        return policy_text(self.config).encode()
