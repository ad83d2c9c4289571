"""Maildir names: unique names, sizes and flags in names, the three subdirectories.

File names follow the Maildir convention as Dovecot writes it::

    <secs>.M<usecs>P<pid>Q<n>.<host>,S=<disk size>,W=<wire size>:2,<flags>

``S=`` and ``W=`` let a reader know a message's size without opening it;
``W`` is the size with CRLF line ends, the octet count POP3 and IMAP report.
Messages are kept on disk with LF line ends, as every Maildir reader expects.
"""

from __future__ import annotations

import itertools
import os
import re
import socket
import time


#: Maildir info letters for the IMAP system flags (maildir(5), Dovecot).
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
#: maildir(5)'s "passed" letter, which mutt and Courier write.  Dovecot ignores
#: it and keeps ``$Forwarded`` as a keyword (a ``dovecot-keywords`` letter), so
#: we write that letter where the folder has one and ``P`` only where it has
#: none, and read either as ``$Forwarded``.
FORWARDED, PASSED = "$Forwarded", "P"
LETTER_FLAGS = {v: k for k, v in FLAG_LETTERS.items()} | {PASSED: FORWARDED}
INFO_SEP = ":2,"

_counter = itertools.count()
_HOST = socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
_SIZE_FIELD = re.compile(r",([SW])=(\d+)")
#: This process's id, for unique names: read once (a system call), again in a forked child (twistd
#: daemonizes after importing us).
_pid = os.getpid()


def _forked() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


def unique_name(disk_size: int, wire_size: int) -> str:
    """A new, process- and host-unique Maildir base name (no info part)."""
    now = time.time()
    secs = int(now)
    usecs = int((now - secs) * 1_000_000)
    return f"{secs}.M{usecs}P{_pid}Q{next(_counter)}.{_HOST},S={disk_size},W={wire_size}"


def unique_part(name: str) -> str:
    """The part of a name no other message shares: before the size fields and the info."""
    return name.split(",", 1)[0].split(":", 1)[0]


def split_name(filename: str) -> tuple[str, str]:
    """Split a file name into (key, info letters); key is stable across flag changes."""
    key, sep, info = filename.partition(INFO_SEP)
    if not sep:
        key = filename.split(":", 1)[0]
        info = ""
    return key, info


def sizes_from_key(key: str) -> tuple[int | None, int | None]:
    """The S= (disk) and W= (wire) sizes recorded in a name, if present."""
    found = dict(_SIZE_FIELD.findall(key))
    disk = int(found["S"]) if "S" in found else None
    wire = int(found["W"]) if "W" in found else None
    return disk, wire


def filename(key: str, flags: "frozenset[str] | set[str]", keyword_letter: "dict[str, str]") -> str:
    """The ``cur/`` file name of message *key* with *flags* (keywords without a letter are left out)."""
    return key + INFO_SEP + flags_to_info(flags, keyword_letter)


def flags_to_info(flags: "frozenset[str] | set[str]", keyword_letter: "dict[str, str]") -> str:
    """Maildir info letters for *flags*, in ASCII order as maildir(5) requires."""
    letters = []
    for flag in flags:
        letter = FLAG_LETTERS.get(flag) or keyword_letter.get(flag) or (PASSED if flag == FORWARDED else None)
        if letter:
            letters.append(letter)
    return "".join(sorted(set(letters)))


def info_to_flags(info: str, letter_keyword: "dict[str, str]") -> frozenset[str]:
    """IMAP flags for Maildir info letters; unknown letters are ignored."""
    flags = set()
    for letter in info:
        flag = LETTER_FLAGS.get(letter) or letter_keyword.get(letter)
        if flag:
            flags.add(flag)
    return frozenset(flags)


def ensure_maildir(path: str, quick: bool = False) -> None:
    """Create ``cur/ new/ tmp/`` under *path* if missing (mode 0700).

    With *quick* (every delivery asks), one ``stat`` of ``new/`` stands for
    all three when it is there.  That holds because ``new/`` is made last:
    a delivery that finds it can write to ``tmp/`` even while another
    thread is still creating the Maildir of a brand-new user.
    """
    if quick and os.path.isdir(os.path.join(path, "new")):
        return
    for sub in ("tmp", "cur", "new"):
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)


def find_file(folder_path: str, key: str) -> str | None:
    """The path of the message with Maildir *key* in the folder, whatever its flags; blocking.

    ``None`` when it is in neither ``new/`` nor ``cur/`` (expunged).
    """
    for sub in ("new", "cur"):
        directory = os.path.join(folder_path, sub)
        with os.scandir(directory) as entries:
            for entry in entries:
                if split_name(entry.name)[0] == key:
                    return os.path.join(directory, entry.name)
    return None
