"""IMAP keywords of one folder, stored as Dovecot's ``dovecot-keywords``.

Maildir has 26 lowercase info letters for keywords; the file maps each
letter's index to the keyword (``0 $Junk`` means ``a`` is ``$Junk``), so
Dovecot reading our store sees the same keywords.
"""

from __future__ import annotations

import os
import string

from mailsrv.store.files import FileStamp, read_text, replace_file
from mailsrv.store.errors import KeywordLimit

FILENAME = "dovecot-keywords"
LETTERS = string.ascii_lowercase


class Keywords:
    """Keyword <-> letter map, re-read when the file changes."""

    def __init__(self, folder_path: str) -> None:
        self.path = os.path.join(folder_path, FILENAME)
        self.letter_of: dict[str, str] = {}
        self.keyword_of: dict[str, str] = {}
        self._stamp: FileStamp | None = None
        self.refresh()

    def refresh(self) -> None:
        """Re-read the file if it changed on disk."""
        stamp = FileStamp.of(self.path)
        if stamp is None or stamp == self._stamp:
            return
        letter_of: dict[str, str] = {}
        for line in read_text(self.path).splitlines():
            index, _, keyword = line.partition(" ")
            if index.isdigit() and int(index) < len(LETTERS) and keyword:
                letter_of[keyword] = LETTERS[int(index)]
        self.letter_of = letter_of
        self.keyword_of = {v: k for k, v in letter_of.items()}
        self._stamp = stamp

    def ensure(self, keywords: "set[str] | frozenset[str]") -> None:
        """Give every keyword a letter, persisting new ones.

        Raises :class:`KeywordLimit` rather than silently dropping a keyword
        the client was told was stored (RFC 5530 LIMIT).
        """
        self.refresh()
        missing = [k for k in sorted(keywords) if k not in self.letter_of]
        if not missing:
            return
        free = [c for c in LETTERS if c not in self.keyword_of]
        if len(missing) > len(free):
            raise KeywordLimit(f"at most {len(LETTERS)} keywords per folder")
        for keyword, letter in zip(missing, free):
            self.letter_of[keyword] = letter
            self.keyword_of[letter] = keyword
        lines = sorted((LETTERS.index(letter), kw) for kw, letter in self.letter_of.items())
        replace_file(self.path, "".join(f"{i} {kw}\n" for i, kw in lines).encode("utf-8"))
        self._stamp = FileStamp.of(self.path)
