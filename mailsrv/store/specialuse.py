"""Special-use folders (RFC 6154): which folder holds the user's drafts, sent mail, trash ...

Kept per user in ``<Maildir>/mailsrv-special-use``, one line per folder::

    Sent<TAB>\\Sent
    Archive/2024<TAB>\\Archive

the IMAP name (UTF-8, ``/`` between levels; a name holds no TAB or line
end, :mod:`.names` refuses control characters) and its attributes.  Dovecot
keeps these in its configuration (``mailbox Sent { special_use = \\Sent }``,
the same for every user) and has no per-user file; ours is per user,
because ``CREATE x (USE (\\Archive))`` gives one user's folder a use.  The
file is ours alone, so Dovecot reading the Maildir ignores it, and a
Dovecot admin's ``mailbox`` blocks map to ``[imap]`` in ``mailsrv.toml``
for the folders every new account gets.

The file is replaced atomically under its lock (:mod:`.files`), so several
processes can share it.  Its absence means the account was never set up
(:func:`provision`); an empty file means a user who has no special folders.
Everything here blocks: the :class:`~mailsrv.store.UserStore` runs it in
its executor.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

from mailsrv.store.files import locked, read_text, replace_file

FILENAME = "mailsrv-special-use"
#: The uses a real folder can have (RFC 6154 2; \\All and \\Flagged are for virtual folders).
ATTRIBUTES = frozenset({"\\Archive", "\\Drafts", "\\Junk", "\\Sent", "\\Trash"})
_HEADER = "# mailsrv special-use folders (RFC 6154): IMAP name, TAB, attributes\n"

Uses = dict[str, frozenset[str]]


def canonical(attribute: str) -> str | None:
    """The attribute as listed (``\\sent`` -> ``\\Sent``), ``None`` if it is no use of ours."""
    for known in ATTRIBUTES:
        if known.lower() == attribute.lower():
            return known
    return None


def parse(text: str) -> Uses:
    """Folder name -> attributes; comments, blank lines and unknown attributes are skipped."""
    uses: Uses = {}
    for line in text.splitlines():
        name, tab, attributes = line.partition("\t")
        if not tab or line.startswith("#"):
            continue
        known = {a for a in (canonical(word) for word in attributes.split()) if a is not None}
        if known:
            uses[name] = uses.get(name, frozenset()) | known
    return uses


def render(uses: Mapping[str, frozenset[str]]) -> bytes:
    """The file's content for *uses*, one sorted line per folder."""
    lines = [f"{name}\t{' '.join(sorted(attrs))}\n" for name, attrs in sorted(uses.items()) if attrs]
    return (_HEADER + "".join(lines)).encode("utf-8")


def path(root: str) -> str:
    """The file in the Maildir++ at *root*."""
    return os.path.join(root, FILENAME)


def read(root: str) -> Uses:
    """The uses recorded for the Maildir at *root* (none when the file is missing)."""
    return parse(read_text(path(root)))


def edit(root: str, change: Callable[[Uses], Uses]) -> None:
    """Read, change and durably rewrite the file under its lock, if the change changed anything."""
    with locked(path(root)):
        before = read(root)
        after = change(dict(before))
        if after != before:
            replace_file(path(root), render(after))


def renamed(uses: Uses, old: str, new: str, separator: str) -> Uses:
    """*uses* after folder *old* (and its subfolders) became *new*."""
    moved: Uses = {}
    for name, attrs in uses.items():
        if name == old or name.startswith(old + separator):
            name = new + name[len(old):]
        moved[name] = moved.get(name, frozenset()) | attrs
    return moved


def provision(root: str, defaults: Mapping[str, str], create: Callable[[str], bool]) -> list[str]:
    """Give an account that was never set up its special folders; the names of those created.

    *defaults* maps an attribute to a folder name; ``create(name)`` makes
    the folder unless it exists and says whether it made it.  Under the
    file's lock, so two first logins at once set up the account once; an
    account whose file exists (set up before, even if the user has since
    deleted Junk) is left as it is.
    """
    os.makedirs(root, mode=0o700, exist_ok=True)
    with locked(path(root)):
        if os.path.exists(path(root)):
            return []
        uses: Uses = {}
        made = []
        for attribute, name in defaults.items():
            if create(name):
                made.append(name)
            uses[name] = uses.get(name, frozenset()) | {attribute}
        replace_file(path(root), render(uses))
        return made
