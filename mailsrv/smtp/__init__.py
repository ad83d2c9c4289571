"""Inbound ESMTP (port 25) and message submission (587 STARTTLS, 465 implicit TLS).

The package is an adapter: it speaks SMTP, applies the relay and limit
rules, and hands each accepted message to ``ctx.store.deliver``.  It knows
nothing of file names.  ``server.make_factory(ctx, kind)`` is the entry
point used by ``mailsrv.tap``.
"""
