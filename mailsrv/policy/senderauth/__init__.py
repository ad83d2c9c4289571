"""Sender authentication on port 25: SPF, DKIM, DMARC and ARC, reported in Authentication-Results.

Anyone may claim any sender on port 25; these checks say which claims the
claimed domain vouches for.  :class:`~.check.SenderAuthentication` runs
once the message is in (``data``), records the results in one
``Authentication-Results`` field on top of the message, below our
Return-Path (RFC 8601), removes any such field naming our host that came with it, refuses a
DMARC ``p=reject`` failure (550 5.7.1) and sends a ``p=quarantine`` one to
Junk.  Modules: :mod:`.lookups` (the server's resolver for pyspf and
dkimpy), :mod:`.verify` (SPF, DKIM, ARC), :mod:`.dmarc` (RFC 7489),
:mod:`.authresults` (the header field), :mod:`.check` (the policy check).
"""
