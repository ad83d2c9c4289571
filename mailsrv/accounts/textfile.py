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

from twisted.logger import Logger

from mailsrv.store.files import locked, read_text, replace_file

log = Logger()


class EditError(Exception):
    """An edit the admin asked for cannot be made; the message says why."""


def content_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` for every line not blank or a ``#`` comment."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def parse_lists(
    text: str, source: str, key: Callable[[str], str | None], item: Callable[[str], str | None], form: str
) -> dict[str, tuple[str, ...]]:
    """Map each key to its items, from lines ``KEY: ITEM, ITEM...``, in file order.

    *key* and *item* return the canonical form of a field, ``None`` when it
    is not one.  Repeated lines for one key add up, so a hand-written file
    and one the CLI appends to mean the same; a line that does not parse is
    skipped with a warning naming the file, the line and *form*.
    """
    lists: dict[str, list[str]] = {}
    for number, line in content_lines(text):
        name, colon, rest = line.partition(":")
        canonical = key(name)
        items = [item(field.strip()) for field in rest.split(",")]
        if not colon or canonical is None or None in items:
            log.warn("{file}:{line}: expected {form}; line ignored", file=source, line=number, form=form)
            continue
        merged = lists.setdefault(canonical, [])
        merged.extend(i for i in items if i is not None and i not in merged)
    return {canonical: tuple(items) for canonical, items in lists.items()}


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
