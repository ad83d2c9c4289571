"""A stored message as the store hands it out: what it knows without opening it, and an open file."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO


@dataclass(frozen=True)
class MessageInfo:
    """What the store knows of a message without opening it.

    ``key`` is the Maildir unique name without flags (stable across flag
    changes; POP3 UIDL), ``size`` the octets on the wire (CRLF), and
    ``modseq`` the folder mod-sequence of its last change (RFC 7162),
    durable in ``mailsrv-modseq``.
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
