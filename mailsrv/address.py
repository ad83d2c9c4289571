"""Placeholder until the address module lands: re-exports the SMTP path parser."""

from mailsrv.smtp.address import AddressSyntaxError, Mailbox, parse_path  # noqa: F401
