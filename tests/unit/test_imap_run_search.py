"""run_search: the messages a predicate accepts, and the young objects collected while files are parsed."""

from __future__ import annotations

import gc

import pytest

from mailsrv.imap import search
from mailsrv.imap.search import Message, run_search


def messages(tmp_path, count: int) -> list[Message]:
    path = tmp_path / "m"
    path.write_bytes(b"Subject: x\r\n\r\nbody\r\n")
    return [Message(n, n, frozenset(), 20, 0.0, str(path), lambda: None) for n in range(1, count + 1)]


@pytest.fixture
def collections(monkeypatch) -> list[int]:
    made: list[int] = []
    monkeypatch.setattr(search.gc, "collect", lambda generation=2: made.append(generation) or 0)
    monkeypatch.setattr(search, "YOUNG_EVERY", 3)
    return made


def test_the_young_objects_are_collected_every_few_parsed_messages(tmp_path, collections) -> None:
    found = run_search(messages(tmp_path, 7), lambda seq, m: b"body" in m.entity.raw and seq % 2 == 1, lambda: False)
    assert [m.seq for m in found] == [1, 3, 5, 7]
    assert collections == [0, 0]  # after the 3rd and the 6th parse
    assert all("entity" not in m.__dict__ for m in found)  # each parse dropped once tested


def test_messages_never_parsed_set_off_no_collection(tmp_path, collections) -> None:
    found = run_search(messages(tmp_path, 7), lambda seq, m: seq > 5, lambda: False)
    assert ([m.seq for m in found], collections) == ([6, 7], [])


def test_it_stops_once_cancelled(tmp_path, collections) -> None:
    tested: list[int] = []
    found = run_search(messages(tmp_path, 5), lambda seq, m: tested.append(seq) or True, lambda: len(tested) >= 2)
    assert [m.seq for m in found] == [1, 2]
    assert gc.isenabled()
