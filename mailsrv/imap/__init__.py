"""IMAP4rev1 (RFC 3501) over the store, on :mod:`mailsrv.net`.

Modules, from the wire inwards:

* :mod:`.server` -- the connection: states, the command table, LOGIN and
  AUTHENTICATE, STARTTLS, IDLE, and the updates a session owes;
* :mod:`.command`, :mod:`.reading` -- one command, and reading it with its literals within the limits;
* :mod:`.arguments`, :mod:`.syntax`, :mod:`.sequences`, :mod:`.fetchatt` --
  parsing arguments (RFC 3501 9);
* :mod:`.folders` -- the authenticated-state commands (SELECT, LIST, APPEND ...),
  with :mod:`.listing` for LIST's RFC 5258 options and :mod:`.clientid` for ID;
* :mod:`.selected` -- the selected-state commands (FETCH, STORE, SEARCH, MOVE ...);
* :mod:`.selection` -- one session's view of a selected folder: sequence
  numbers and queued updates;
* :mod:`.account` -- one user's folder tree (LIST patterns, child flags);
* :mod:`.fetch`, :mod:`.search`, :mod:`.structure`, :mod:`.flags` -- FETCH
  rendering, SEARCH keys, ENVELOPE/BODYSTRUCTURE, flag lists;
* :mod:`.responses` -- tagged results and the one store-error map.
"""
