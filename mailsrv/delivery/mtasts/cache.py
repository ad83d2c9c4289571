"""MTA-STS policies kept on disk, one readable JSON file per domain under ``<data_dir>/mta-sts/``.

A policy is valid for ``max_age`` seconds after it was fetched (RFC 8461
3.2) and must outlive a restart: a domain in ``enforce`` mode would
otherwise lose its protection whenever its policy host is unreachable
just after we start (RFC 8461 3.3 has the sender apply a cached,
unexpired policy when no fresh one can be had).  Each file is replaced
atomically (:func:`mailsrv.store.files.replace_file`), so several servers
sharing the data dir read either the old policy or the new one; two that
fetch at once both write a valid file, and either may win.  An admin may
delete a file (the policy is fetched again) but should not edit one::

    {"domain": "example.com", "id": "20240101T000000", "fetched": 1767225600.0,
     "expires": 1767830400.0, "mode": "enforce", "mx": ["mx1.example.com", "*.example.net"],
     "max_age": 604800}

Everything here blocks; callers run it in the ``disk`` pool.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

from twisted.logger import Logger

from mailsrv.delivery.mtasts.policy import MAX_AGE_LIMIT, Mode, Policy
from mailsrv.store.files import read_text, replace_file

log = Logger()

#: What a cache file may be named after: a canonical (IDNA, lower case) domain.
_FILE_DOMAIN = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)+\Z")


@dataclass(frozen=True)
class Entry:
    """One domain's policy as fetched: the TXT record's id it came with, and when."""

    id: str
    policy: Policy
    fetched: float

    @property
    def expires(self) -> float:
        """When the policy stops applying (RFC 8461 3.2 ``max_age``)."""
        return self.fetched + self.policy.max_age

    def fresh(self, now: float) -> bool:
        """Whether the policy still applies at *now*."""
        return now < self.expires


def cacheable(domain: str) -> bool:
    """Whether *domain* can have a cache file (and so a policy): a canonical name of two labels or more."""
    return bool(_FILE_DOMAIN.match(domain))


class PolicyStore:
    """The cache files in *directory*, made when the first policy is written."""

    def __init__(self, directory: str) -> None:
        self.directory = directory

    def path(self, domain: str) -> str:
        """The file of *domain*'s policy (which must be :func:`cacheable`)."""
        assert cacheable(domain), domain
        return os.path.join(self.directory, domain + ".json")

    def read(self, domain: str) -> Entry | None:
        """The stored entry of *domain*; ``None`` when there is none or it cannot be read (logged)."""
        try:
            text = read_text(self.path(domain))
        except OSError as e:
            log.error("cannot read the MTA-STS cache file {path}: {error}", path=self.path(domain), error=e)
            return None
        if not text:
            return None
        try:
            data = json.loads(text)
            policy = Policy(Mode(data["mode"]), tuple(str(mx) for mx in data["mx"]),
                            min(int(data["max_age"]), MAX_AGE_LIMIT))
            return Entry(str(data["id"]), policy, float(data["fetched"]))
        except (ValueError, KeyError, TypeError) as e:
            log.warn("ignoring the unreadable MTA-STS cache file {path}: {error}", path=self.path(domain), error=e)
            return None

    def write(self, domain: str, entry: Entry) -> None:
        """Replace *domain*'s stored entry with *entry*, atomically and durably."""
        os.makedirs(self.directory, mode=0o755, exist_ok=True)
        data = {
            "domain": domain, "id": entry.id, "fetched": entry.fetched, "expires": entry.expires,
            "mode": entry.policy.mode.value, "mx": list(entry.policy.mx), "max_age": entry.policy.max_age,
        }
        replace_file(self.path(domain), (json.dumps(data, indent=2) + "\n").encode(), default_mode=0o644)
