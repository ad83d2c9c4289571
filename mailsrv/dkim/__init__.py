"""DKIM signing of outbound mail (RFC 6376, RFC 8463): keys on disk, and the signer.

:mod:`.keys` makes, stores and reads the keys (``mailsrv dkim keygen``
writes them, the running server picks them up); :mod:`.signer` signs a
message with them.  Submitted mail is signed once every policy check has
completed its header (:mod:`mailsrv.smtp.transaction`); mail we generate
ourselves (bounces) with :meth:`.signer.Signer.sign_report`, as it leaves
(:mod:`mailsrv.delivery.outbound`).
"""
