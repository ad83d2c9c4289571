"""A message body while it is received and until it is stored: memory or a spool file.

Holding whole messages as ``bytes`` lets one client with eight parallel
48 MiB DATA transfers take 400 MiB, and a hundred of them take gigabytes.
:class:`BodyWriter` keeps a message in memory only while it is small; past
``threshold`` octets it moves what it has to a file in the spool directory
and appends there, so memory per transfer stays at one write buffer.

The body is kept in the *disk* form (LF line ends, :mod:`.wire`), the form
the Maildir wants, so storing a spooled message is an fsync and a hard link,
never a copy; both sizes (disk and wire) are counted on the way in.  The
writer runs on the reactor thread: appending to a file is a page-cache copy,
and the one slow step, the fsync, is the store's, in its disk pool.

The body type the client declared (RFC 6152 ``BODY=8BITMIME``, RFC 3030
``BINARYMIME``) travels with the body for whoever relays it later.
"""

from __future__ import annotations

import contextlib
import enum
import io
import os
import tempfile
from typing import BinaryIO, Sequence

from mailsrv.message import wire

#: Bodies up to this many octets stay in memory unless the caller says otherwise.
DEFAULT_THRESHOLD = 1024 * 1024
#: Spooled bodies are written in blocks of this size.
_WRITE_BLOCK = 64 * 1024


class BodyType(enum.Enum):
    """The body type declared on MAIL FROM (``BODY=``), 7BIT when none was given."""

    SEVEN_BIT = "7BIT"
    EIGHT_BIT_MIME = "8BITMIME"  # RFC 6152
    BINARY_MIME = "BINARYMIME"  # RFC 3030

    @classmethod
    def declared(cls, value: str | None) -> "BodyType":
        """The type for a ``BODY=`` value (case-insensitive); ``None`` is 7BIT."""
        return cls.SEVEN_BIT if value is None else cls(value.upper())


class Body:
    """A complete message in its disk form: ``size`` octets, ``wire_size`` with CRLF.

    Either *data* (in memory) or *path* (a spool file this object owns until
    :meth:`discard`) holds the octets.
    """

    def __init__(
        self, *, size: int, wire_size: int, data: bytes | None = None, path: str | None = None,
        body_type: BodyType = BodyType.SEVEN_BIT,
    ) -> None:
        if (data is None) == (path is None):
            raise ValueError("a Body is held either in memory or in a file")
        self.size = size
        self.wire_size = wire_size
        self.body_type = body_type
        self._data = data
        self.path = path

    @classmethod
    def from_wire(cls, data: bytes, body_type: BodyType = BodyType.SEVEN_BIT) -> "Body":
        """An in-memory body from wire-form (CRLF) octets."""
        disk = wire.to_disk(data)
        return cls(size=len(disk), wire_size=wire.wire_size(disk), data=disk, body_type=body_type)

    @property
    def in_memory(self) -> bool:
        """True while the octets are held in memory (no spool file)."""
        return self._data is not None

    def open(self) -> BinaryIO:
        """A reader over the disk-form octets, from the start."""
        if self._data is not None:
            return io.BytesIO(self._data)
        assert self.path is not None
        return open(self.path, "rb")

    def read(self) -> bytes:
        """All the disk-form octets (reads a spool file whole: small bodies and tests only)."""
        with self.open() as f:
            return f.read()

    def insert(self, pieces: Sequence[tuple[int, bytes]]) -> "Body":
        """A new body: this one with each ``(offset, data)`` of *pieces* inserted (see :meth:`splice`)."""
        return self.splice([(offset, 0, data) for offset, data in pieces])

    def splice(self, edits: Sequence[tuple[int, int, bytes]], keep: bool = False) -> "Body":
        """A new body: at each ``(offset, removed, data)`` of *edits*, *removed* octets replaced by *data*.

        *data* is wire-form header lines (a check's); *offset* counts disk
        octets of this body, at a line start, the removed octets are whole
        lines of it (a header field a check drops), and the edits ascend
        without overlapping.  This body is discarded, unless *keep* (a
        copy that differs, a forwarded one, say).  A spooled body is
        copied, a block at a time, into a new spool file beside it: never
        held in memory, but blocking, so callers on the reactor thread run
        it in the disk pool.
        """
        # The copy stays where this body is: in memory, or spooled beside it.
        spool_dir = os.path.dirname(self.path) if self.path else ""
        threshold = self.size + sum(len(data) for _, _, data in edits) + 1 if self.in_memory else 0
        writer = BodyWriter(spool_dir, threshold, self.body_type)
        with self.open() as f:
            copied = 0
            for offset, removed, data in edits:
                writer.copy_disk_form(f, offset - copied)
                f.seek(removed, os.SEEK_CUR)
                copied = offset + removed
                writer.write(data)
            writer.copy_disk_form(f, self.size - copied)
        if not keep:
            self.discard()
        return writer.finish()

    def discard(self) -> None:
        """Remove the spool file, if any; the stored copies are hard links and stay."""
        if self.path is not None:
            _remove(self.path)
            self.path = None
            self._data = b""


class BodyWriter:
    """Builds a :class:`Body` from wire-form (CRLF) octets written in pieces.

    A CR at the end of one piece is held back until the next shows whether
    it starts a CRLF, so the pieces may be cut anywhere.
    """

    def __init__(
        self, spool_dir: str, threshold: int = DEFAULT_THRESHOLD, body_type: BodyType = BodyType.SEVEN_BIT
    ) -> None:
        self._spool_dir = spool_dir
        self._threshold = threshold
        self.body_type = body_type
        self._memory = bytearray()
        self._file: BinaryIO | None = None
        self._path: str | None = None
        self._held_cr = False
        self._disk_ends_cr = False
        self.size = 0
        self.wire_size = 0

    @property
    def spooled(self) -> bool:
        """True once the body went to a file."""
        return self._file is not None

    def write(self, data: bytes) -> None:
        """Append wire-form octets."""
        if self._held_cr:
            data = b"\r" + data
            self._held_cr = False
        if data[-1:] == b"\r":
            data = data[:-1]
            self._held_cr = True
        self._append(wire.to_disk(data, after_cr=self._disk_ends_cr))

    def write_lines(self, disk: bytes, wire_size: int) -> None:
        """Append complete lines already in disk form, *wire_size* octets on the wire.

        For the DATA reader, which converts its lines itself: the wire size
        is how it tells a bare LF (:func:`~mailsrv.message.wire.to_disk`
        gives back everything else), so it is not counted twice.
        """
        self._release_held_cr()
        self._append(disk, wire_size)

    def copy_disk_form(self, source: BinaryIO, count: int) -> None:
        """Append the next *count* octets of *source*, a body's reader, as they are (disk form)."""
        self._release_held_cr()
        while count > 0 and (chunk := source.read(min(count, _WRITE_BLOCK))):
            count -= len(chunk)
            self._append(chunk)

    def _release_held_cr(self) -> None:
        """What follows is not an LF: a CR held back is a bare CR."""
        if self._held_cr:
            self._held_cr = False
            self._append(b"\r")

    def _append(self, disk: bytes, wire_size: int | None = None) -> None:
        self.size += len(disk)
        self.wire_size += wire.wire_size(disk) if wire_size is None else wire_size
        if self._disk_ends_cr and disk[:1] == b"\n":
            self.wire_size -= 1  # that LF completes a CRLF already counted as a bare CR
        if disk:
            self._disk_ends_cr = disk[-1:] == b"\r"
        self._memory += disk
        if self._file is None and len(self._memory) > self._threshold:
            os.makedirs(self._spool_dir, mode=0o700, exist_ok=True)
            fd, self._path = tempfile.mkstemp(dir=self._spool_dir, prefix="body-")
            self._file = os.fdopen(fd, "wb")
        if self._file is not None and len(self._memory) >= _WRITE_BLOCK:
            self._flush()

    def _flush(self) -> None:
        assert self._file is not None
        self._file.write(self._memory)
        self._memory.clear()

    def finish(self) -> Body:
        """The complete body; the writer must not be used afterwards."""
        self._release_held_cr()
        if self._file is None:
            return Body(size=self.size, wire_size=self.wire_size, data=bytes(self._memory), body_type=self.body_type)
        self._flush()
        self._file.close()
        self._file = None
        path, self._path = self._path, None
        return Body(size=self.size, wire_size=self.wire_size, path=path, body_type=self.body_type)

    def abort(self) -> None:
        """Throw away what was written (the transaction failed or the client left)."""
        self._memory = bytearray()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._path is not None:
            _remove(self._path)
            self._path = None


def _remove(path: str) -> None:
    """Remove a spool file that may already be gone."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
