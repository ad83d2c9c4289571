"""Inbound ESMTP (port 25) and message submission (587 STARTTLS, 465 implicit TLS), on :mod:`mailsrv.net`.

The package speaks SMTP and applies the protocol's limits; who may send
where is :mod:`mailsrv.policy`'s and :mod:`mailsrv.delivery.router`'s, and
an accepted message goes to ``ctx.delivery`` (and, for remote recipients,
``ctx.queue``).  It knows nothing of file names.  ``server.make_factory(ctx,
kind)`` is the entry point used by ``mailsrv.tap``.
"""
