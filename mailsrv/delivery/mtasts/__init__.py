"""MTA-STS (RFC 8461): a recipient domain's published demand for verified TLS to listed MX hosts.

* :mod:`.policy` -- the TXT record and the policy file, parsed; MX patterns;
* :mod:`.fetch` -- the policy file over HTTPS (Twisted's Agent), verified, bounded;
* :mod:`.cache` -- policies kept on disk under ``<data_dir>/mta-sts/`` and in memory;
* :mod:`.discovery` -- the policy in force for a domain: TXT, cache, fetch, in the RFC's order.

What the sender does with a policy (``enforce`` restricts the MX hosts and
requires ``verify``; ``testing`` is reported) is :mod:`mailsrv.delivery.tlspolicy`'s.
"""
