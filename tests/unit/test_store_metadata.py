"""The annotations file (mailsrv.store.metadata): limits, RENAME/DELETE, and writers in several processes."""

from __future__ import annotations

import multiprocessing

import pytest

from mailsrv.store import metadata

LIMITS = metadata.Limits(value_size=1024, entries=100, total_size=1024 * 1024)


def test_render_parse_round_trip_keeps_octets() -> None:
    annotations = {"": {"/private/x": b"\x00\xff"}, "Entwürfe": {"/shared/comment": b"c"}, "Empty": {}}
    assert metadata.parse(metadata.render(annotations).decode("utf-8")) == {
        "": {"/private/x": b"\x00\xff"}, "Entwürfe": {"/shared/comment": b"c"}}


@pytest.mark.parametrize("text", ["{", "[]", '{"INBOX": {"/private/x": "not base64!"}}', '{"INBOX": 3}'])
def test_a_corrupt_file_is_a_store_error(text: str) -> None:
    with pytest.raises(metadata.CorruptMetadata):
        metadata.parse(text)


def test_apply_refuses_without_changing_and_lets_an_old_entry_be_replaced() -> None:
    full = {"INBOX": {f"/private/e{n}": b"v" for n in range(3)}}
    small = metadata.Limits(value_size=1024, entries=2, total_size=1024 * 1024)
    with pytest.raises(metadata.MetadataTooMany):
        metadata.apply(full, "INBOX", {"/private/new": b"v"}, small)
    # Over a lowered limit already: replacing or removing still works.
    assert metadata.apply(full, "INBOX", {"/private/e0": b"w"}, small)["INBOX"]["/private/e0"] == b"w"
    assert len(metadata.apply(full, "INBOX", {"/private/e0": None}, small)["INBOX"]) == 2
    assert full == {"INBOX": {f"/private/e{n}": b"v" for n in range(3)}}


def test_renamed_moves_subfolders_not_lookalikes_and_copies_inbox() -> None:
    annotations = {"A": {"/private/c": b"a"}, "A/B": {"/private/c": b"b"}, "AB": {"/private/c": b"x"}}
    assert metadata.renamed(annotations, "A", "Z", "/", "INBOX") == {
        "Z": {"/private/c": b"a"}, "Z/B": {"/private/c": b"b"}, "AB": {"/private/c": b"x"}}
    inbox = {"INBOX": {"/private/c": b"i"}}
    assert metadata.renamed(inbox, "INBOX", "Old", "/", "INBOX") == {"INBOX": {"/private/c": b"i"}, "Old": {"/private/c": b"i"}}


def _writer(root: str, worker: int, count: int) -> None:
    for n in range(count):
        metadata.update(root, "INBOX", {f"/private/w{worker}/e{n}": b"%d" % n}, LIMITS, lambda: True)


def test_writers_in_several_processes_lose_nothing(tmp_path) -> None:
    root = str(tmp_path)
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_writer, args=(root, w, 15)) for w in range(3)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(60)
        assert p.exitcode == 0
    assert len(metadata.read(root)["INBOX"]) == 45
