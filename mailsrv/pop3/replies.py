"""Every POP3 reply text the server sends, named, with the RFC that asks for it.

Response codes in brackets are RFC 2449 8 ``[SYS/TEMP]``/``[SYS/PERM]`` and
RFC 3206 ``[AUTH]``, announced by the ``RESP-CODES`` capability.
"""

from __future__ import annotations

GREETING = b"mailsrv ready."  # RFC 1939 4; no APOP timestamp: APOP is not offered
TOO_MANY_CONNECTIONS = b"[SYS/TEMP] Too many connections, try again later"  # RFC 2449 8
LINE_TOO_LONG = b"Line too long"
INVALID_CHARACTERS = b"Invalid characters in command"
UNKNOWN_COMMAND = b"Unknown command"
WRONG_STATE = b"Command not valid in this state"
WRONG_ARGUMENTS = b"Wrong number of arguments"
TEMPORARY = b"[SYS/TEMP] Temporary server failure, try again later"  # RFC 2449 8
SHUTTING_DOWN = b"[SYS/TEMP] Server shutting down, try again later"  # RFC 2449 8

CAPABILITIES = b"Capability list follows"  # RFC 2449 5
TLS_ACTIVE = b"Command not permitted when TLS active"  # RFC 2595 4
BEGIN_TLS = b"Begin TLS negotiation"  # RFC 2595 4

PLAINTEXT_REFUSED = b"[AUTH] Plaintext authentication disallowed on non-secure connections"  # RFC 3206 4
BAD_CREDENTIALS = b"[AUTH] Invalid credentials"  # RFC 3206 4
#: RFC 3206 4: [AUTH] covers "an attempt to authenticate in violation of policy"; [IN-USE] (RFC 2449 8.1.1)
#: would claim the login succeeded and the maildrop is busy.
LOCKED_OUT = b"[AUTH] Too many failed logins, try again later"
SEND_PASS = b"Send PASS"
USER_FIRST = b"USER first"
LOGGED_IN = b"Logged in."
UNSUPPORTED_MECHANISM = b"Unsupported authentication mechanism"  # RFC 5034 4
AUTH_CANCELLED = b"Authentication cancelled"  # RFC 5034 4
MALFORMED_PLAIN = b"Malformed PLAIN response"
MAILDROP_UNAVAILABLE = b"[SYS/TEMP] Maildrop not available, try again later"  # RFC 2449 8

NO_SUCH_MESSAGE = b"No such message"  # RFC 1939 5
ALREADY_DELETED = b"Message %d already deleted"  # RFC 1939 5
REMOVED_ELSEWHERE = b"Message %d was removed by another session"
INVALID_LINE_COUNT = b"Invalid line count"
DELETED = b"Message %d deleted"  # RFC 1939 5
SCAN_LISTING = b"%d messages (%d octets)"  # RFC 1939 5
RESET = b"Maildrop has %d messages (%d octets)"  # RFC 1939 5
OCTETS = b"%d octets"  # RFC 1939 5
TOP_FOLLOWS = b"Top of message follows"  # RFC 1939 7
BYE = b"Bye."
NOT_ALL_REMOVED = b"[SYS/TEMP] Some deleted messages not removed"  # RFC 1939 6
