"""Small line-oriented files shared by the server (reader) and the CLI (writer).

The server never locks: the CLI replaces a file atomically, so a reader sees
the old or the new file, never half of one.  Writers serialise on the edit
lock so two concurrent ``mailsrv`` runs cannot lose each other's
read-modify-write.  The server notices a change by a cheap ``stat`` per
lookup (:class:`~mailsrv.store.files.WatchedFile`).  Lock, stamp and durable
replace live in :mod:`mailsrv.store.files`; this module has the text
helpers the two account file formats share.
"""

from __future__ import annotations

from typing import Callable, Iterator

from mailsrv.store.files import locked, read_text, replace_file


class EditError(Exception):
    """An edit the admin asked for cannot be made; the message says why."""


def content_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` for every line not blank or a ``#`` comment."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def first_field(line: str) -> str | None:
    """The text before the first ``:`` of an entry line, ``None`` for others."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    return line.partition(":")[0].strip()


def atomic_write(path: str, text: str, default_mode: int) -> None:
    """Replace *path* with *text* atomically and durably (see :func:`~mailsrv.store.files.replace_file`)."""
    replace_file(path, text.encode("utf-8"), default_mode)


def edit(path: str, change: Callable[[str], str], default_mode: int) -> None:
    """Read *path*, apply *change* to its text and write the result, locked.

    An edit that changes nothing writes nothing, so readers do not re-parse
    (and the password checker does not drop its cache) for nothing.
    """
    with locked(path):
        text = read_text(path)
        new = change(text)
        if new != text:
            atomic_write(path, new, default_mode)


def map_lines(
    text: str,
    key_of: Callable[[str], str | None],
    key: str,
    change: Callable[[str], str | None],
) -> tuple[str, int]:
    """Apply *change* to each line whose key is *key*; ``None`` drops it.

    Every other line (comments, blank lines, entries the admin wrote by
    hand) is kept byte for byte.  Returns the new text and the number of
    lines that matched.
    """
    out: list[str] = []
    hits = 0
    for line in text.splitlines(keepends=True):
        if key_of(line) == key:
            hits += 1
            replaced = change(line)
            if replaced is None:
                continue
            line = replaced
        out.append(line)
    return "".join(out), hits


def append_line(text: str, line: str) -> str:
    """*text* with *line* added as a new last line."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"
