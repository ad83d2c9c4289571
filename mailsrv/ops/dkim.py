"""DKIM key operations: make a key for a local domain, list the keys and their records.

The server reads ``<data_dir>/dkim`` on each message it signs (one
``stat`` per domain when nothing changed), so a new key signs the next
message without a restart.  Making an RSA key takes a good fraction of a
second of CPU: callers on a reactor thread run these in a worker.
"""

from __future__ import annotations

import os
import time

from mailsrv.address import canonical_domain
from mailsrv.config import Config
from mailsrv.dkim import keys
from mailsrv.dkim.keys import Algorithm, Key, KeyRing
from mailsrv.ops.common import OpsError, reported, require_local, use_data_dir


def make_key(
    config: Config, domain: str, selector: str | None = None, algorithm: Algorithm = Algorithm.RSA,
    create: bool = False,
) -> tuple[Key, str]:
    """A new key for the local *domain* under *selector* (default :func:`~mailsrv.dkim.keys.default_selector`).

    Returns the key and its file.  An existing selector is refused: its
    record is published, and mail signed with it may still be in transit.
    """
    canonical = canonical_domain(domain)
    if canonical is None:
        raise OpsError(f"not a domain name: {domain!r}")
    require_local(config, canonical)
    selector = (selector or keys.default_selector()).lower()
    problem = keys.selector_problem(selector)
    if problem:
        raise OpsError(f"bad selector {selector!r}: {problem}")
    directory = os.path.join(keys.dkim_dir(use_data_dir(config, create)), canonical)
    pem = keys.generate(algorithm)
    with reported():
        try:
            path = keys.write_new(directory, selector, pem)
        except FileExistsError:
            raise OpsError(f"{canonical} already has a key with selector {selector}; choose another "
                           f"with --selector") from None
    return keys.load(pem, canonical, selector, time.time_ns()), path


def list_keys(config: Config) -> list[Key]:
    """Every usable key (each one signs), by domain, oldest first."""
    ring = KeyRing(keys.dkim_dir(config.data_dir))
    with reported():
        return [key for domain in ring.domains() for key in ring.keys(domain)]
