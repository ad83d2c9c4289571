"""``[mta_sts_policy]``: the MTA-STS policy (RFC 8461) this server publishes for its local domains."""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.delivery import duration, seconds
from mailsrv.config.schema import Invalid, Table, one_of, setting

#: RFC 8461 3.2: "enforce", "testing" or "none".
MODES = ("enforce", "testing", "none")
#: RFC 8461 3.2: max_age is at most 31557600 seconds (about a year).
MAX_AGE_LIMIT = 31557600


def _max_age(value: str) -> str:
    if seconds(duration(value)) > MAX_AGE_LIMIT:
        raise Invalid(f"{value} is longer than RFC 8461's limit of {MAX_AGE_LIMIT} seconds")
    return value


@dataclass(frozen=True)
class MTASTSPolicyConfig(Table):
    """What senders are told about reaching us over TLS."""

    DOC = (
        "The MTA-STS policy (RFC 8461) of every local domain: senders that support it reach your MX only over "
        "TLS with a valid certificate for the hostname. `mailsrv dns records` prints its _mta-sts record and "
        "the policy text to serve at https://mta-sts.<domain>/.well-known/mta-sts.txt."
    )

    mode: str = setting(
        "testing",
        "enforce (senders refuse to deliver without valid TLS), testing (they deliver and report failures), "
        "none (withdraws a policy). Start with testing; enforce once TLS-RPT reports are clean.",
        one_of(MODES),
    )
    max_age: str = setting("7d", "How long senders keep the policy (RFC 8461 3.2: at most about a year).", _max_age)
