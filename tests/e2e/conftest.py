"""Fixtures shared by the attack tests (``test_attack_*.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from attack import FilledInbox, attack_server, fill_maildir, open_inbox, running
from twistd_server import Server

#: Issue 5 measures FETCH, STAT and SEARCH on a 30,000-message INBOX.
BIG_INBOX_SIZE = 30_000


@pytest.fixture(scope="session")
def big_inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FilledInbox]:
    """alice's 30,000-message INBOX (about 84 MiB), written once for every attack test."""
    path = str(tmp_path_factory.mktemp("big-inbox"))
    messages = fill_maildir(path, "alice@example.test", BIG_INBOX_SIZE)
    yield FilledInbox(path, "alice@example.test", messages)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def big_inbox_server(tmp_path, big_inbox: FilledInbox) -> Iterator[Server]:
    """A fresh server whose alice has the big INBOX, already indexed (the first SELECT is setup)."""
    server = attack_server(str(tmp_path / "mailsrv"))
    big_inbox.link_into(server)
    with running(server):
        open_inbox(server, big_inbox.address)
        yield server
