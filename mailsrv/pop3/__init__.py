"""POP3 (RFC 1939) over the store's INBOX.

* :mod:`.server` -- the protocol on :mod:`mailsrv.net`, and the factory ``tap.py`` uses;
* :mod:`.maildrop` -- one session's numbered view of the INBOX;
* :mod:`.wire` -- streamed byte-stuffing and TOP;
* :mod:`.replies` -- every reply text.
"""
