"""The ``twistd mailsrv`` plugin. Kept import-cheap: twistd imports every plugin.

There is deliberately no ``__init__.py`` in ``twisted/`` or
``twisted/plugins/``: Twisted finds plugins on every ``sys.path`` entry's
``twisted/plugins`` directory, and an ``__init__.py`` here would shadow its own.
"""

from twisted.application.service import ServiceMaker

mailsrv = ServiceMaker(
    "mailsrv",
    "mailsrv.tap",
    "Mail server: SMTP, submission, POP3 and IMAP over one Maildir store",
    "mailsrv",
)
