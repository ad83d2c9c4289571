"""The MTA-STS policy (RFC 8461 3.2) we publish for our domains: its text and its id.

Every local domain has the same policy, since they share one MX host:
``mx:`` is ``hostname``, mode and max_age come from ``[mta_sts_policy]``.
The id in the ``_mta-sts`` TXT record (RFC 8461 3.1) must change whenever
the policy does, or senders keep the one they cached; it is made from the
policy text itself, so it changes exactly then, and every process and
host serving the same configuration agrees on it without stored state.
"""

from __future__ import annotations

import hashlib

from mailsrv.config import Config
from mailsrv.config.delivery import seconds

#: RFC 8461 3.1: the id is 1 to 32 letters and digits.
_ID_LENGTH = 20


def policy_text(config: Config) -> str:
    """The policy file, CRLF-ended lines as RFC 8461 3.2 shows them."""
    policy = config.mta_sts_policy
    lines = ["version: STSv1", f"mode: {policy.mode}", f"mx: {config.hostname}", f"max_age: {seconds(policy.max_age)}"]
    return "".join(line + "\r\n" for line in lines)


def policy_id(config: Config) -> str:
    """The id for the TXT record: a digest of :func:`policy_text`, so it changes exactly when the policy does."""
    return hashlib.sha256(policy_text(config).encode()).hexdigest()[:_ID_LENGTH]
