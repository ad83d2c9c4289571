"""POP3 (RFC 1939) over the store's INBOX: the protocol and its mailbox adapter.

``tap.py`` needs two things from here: :func:`make_factory` for each
``pop3``/``pop3s`` listener, and :func:`mailbox_factory` for the realm's
``realm_factories[twisted.mail.pop3.IMailbox]``.
"""

from mailsrv.pop3.maildrop import Maildrop, mailbox_factory
from mailsrv.pop3.server import POP3Factory, POP3Server, make_factory

__all__ = ["Maildrop", "POP3Factory", "POP3Server", "mailbox_factory", "make_factory"]
