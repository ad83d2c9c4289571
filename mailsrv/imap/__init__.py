"""IMAP4rev1 (RFC 3501) over the store: the protocol adapter for mailsrv.

Modules, from the wire inwards:

* :mod:`.parsing` -- reading commands: line/literal limits, tags and
  argument parsers, one command at a time, errors as BAD/NO (the base
  class of ``IMAPServer``);
* :mod:`.syntax` -- RFC 3501 lexical rules the parsers use;
* :mod:`.server` -- ``IMAP4Server`` subclass (TLS gating, SELECT, FETCH,
  SEARCH, COPY, APPEND, IDLE, unsolicited updates, the dispatch tables)
  and the factory ``tap.py`` uses;
* :mod:`.account` -- the avatar: one user's folders (``IAccount``);
* :mod:`.mailbox` -- one selected folder with the session's sequence map;
* :mod:`.fetch`, :mod:`.search` -- FETCH rendering and SEARCH keys;
* :mod:`.message`, :mod:`.mime`, :mod:`.structure` -- a stored message,
  its byte-exact MIME sections, ENVELOPE/BODYSTRUCTURE.
"""
