"""A stored message as the store hands it out: what it knows without opening it, and an open file."""

from __future__ import annotations

from types import TracebackType
from typing import BinaryIO, NamedTuple


class MessageInfo(NamedTuple):
    """What the store knows of a message without opening it.

    ``key`` is the Maildir unique name without flags (stable across flag
    changes; POP3 UIDL), ``size`` the octets on the wire (CRLF), and
    ``modseq`` the folder mod-sequence of its last change (RFC 7162),
    durable in ``mailsrv-modseq``.

    A named tuple, not a dataclass: a folder holds one per message, and at
    100,000 messages a tuple is half the memory and a fifth of the time to
    make (a frozen dataclass sets each field through ``object.__setattr__``).
    Change one with ``info._replace(...)``.
    """

    uid: int
    key: str
    flags: frozenset[str]
    size: int
    internaldate: float
    modseq: int


class StoredMessage:
    """An open message file (disk form, LF line ends) and the info it was opened with.

    The file stays readable after the message is expunged or renamed by
    anyone: it is the inode, not the name, that the reader holds.
    """

    def __init__(self, info: MessageInfo, file: BinaryIO) -> None:
        self.info = info
        self.file = file

    def close(self) -> None:
        """Close the file."""
        self.file.close()

    def __enter__(self) -> "StoredMessage":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
