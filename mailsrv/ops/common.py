"""What the user and alias operations share: the error, the address rules, the file edit."""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

from mailsrv.accounts.textfile import EditError, edit, read_text
from mailsrv.address import address_problem, canonical_address
from mailsrv.config import Config


class OpsError(Exception):
    """An operation the admin asked for cannot be done; the message says why, for the admin."""


class NoDataDir(OpsError):
    """The configured data dir does not exist, and nobody asked to create it.

    Creating it silently is how an admin standing in the wrong directory
    (the embedded default ``data_dir`` is relative) adds a user that no
    running server ever sees.  *path* is the absolute dir that was looked for.
    """

    def __init__(self, path: str, source: str) -> None:
        super().__init__(f"no data dir at {path} (data_dir of {source})")
        self.path = path


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn the account files' refusals and I/O errors into :class:`OpsError`.

    The front end then has one exception to show, and an HTTP API never
    sees a bare ``OSError`` with a path in it but no words.
    """
    try:
        yield
    except EditError as e:
        raise OpsError(str(e)) from None
    except OSError as e:
        raise OpsError(f"{e.filename or ''}: {e.strerror}") from None


def plain_address(address: str) -> str:
    """Canonical *address*, refusing anything but a plain ``local@domain``.

    The reason is spelled out: the admin typed something that looks like an
    address to them and needs to know which character or dot to change.
    """
    canonical = canonical_address(address)
    if canonical is None:
        raise OpsError(f"not a plain address: {address!r}: {address_problem(address)}")
    return canonical


def require_local(config: Config, domain: str) -> None:
    """Refuse a (canonical) domain the server would not accept mail for."""
    if domain not in config.domains:
        known = ", ".join(config.domains)
        raise OpsError(f"domain {domain} is not a local domain (domains in {config.source}: {known})")


def use_data_dir(config: Config, create: bool = False) -> str:
    """The absolute data dir of *config*; made (private) only when *create* is true.

    Every edit calls it (:func:`change`); a front end calls it first too, so
    that a missing dir is :class:`NoDataDir` before the admin was asked for
    a password.  Only the operations that add an entry take *create*, and
    they make the dir when they write, after every check passed.
    """
    path = os.path.abspath(config.data_dir)
    if os.path.isdir(path):
        return path
    if not create:
        raise NoDataDir(path, config.source)
    with reported():
        os.makedirs(path, mode=0o700)
    return path


def read(path: str) -> str:
    """The text of an account file, ``""`` if it does not exist yet."""
    with reported():
        return read_text(path)


def change(config: Config, path: str, mode: int, rewrite: Callable[[str], str], create: bool = False) -> None:
    """Apply *rewrite* to the file at *path* under its lock.

    The data dir must exist, or *create* says to make it (:func:`use_data_dir`).
    """
    use_data_dir(config, create)
    with reported():
        edit(path, rewrite, mode)
