"""mailsrv: a multi-protocol mail server (SMTP, submission, POP3, IMAP) on Twisted."""

__version__ = "0.1.0"
