"""Messages as mailsrv handles them, independent of any protocol or of the store.

* :mod:`.wire` -- the two line-end forms: CRLF on the wire, LF on disk;
* :mod:`.body` -- a message body being received or held: in memory while
  small, spooled to a file past a threshold, with its declared body type.
"""
