"""A folder listing that another process changes while it reads: no message may go missing from it.

A rename while ``readdir`` runs can hide a file under both names; the
listing reads again when a directory stamp moved meanwhile (see
:func:`mailsrv.store.scan.list_folder`).  ``os.listdir`` is wrapped so the
test decides what a reading sees and what changes during it.
"""

from __future__ import annotations

import os

import pytest

from mailsrv.store import maildir, scan


@pytest.fixture
def folder(tmp_path) -> str:
    path = str(tmp_path / "Maildir")
    maildir.ensure_maildir(path)
    for name in ("1.a.host:2,S", "2.b.host:2,"):
        open(os.path.join(path, "cur", name), "wb").close()
    return path


def _readings(monkeypatch, during_first_cur_reading=None) -> list[str]:
    """Record each ``listdir`` of the folder; the first reading of ``cur/`` may run *during_first_cur_reading*."""
    real, calls = os.listdir, []

    def listdir(path):
        calls.append(os.path.basename(path))
        if os.path.basename(path) == "cur" and calls.count("cur") == 1 and during_first_cur_reading:
            return during_first_cur_reading(path)
        return real(path)

    monkeypatch.setattr(scan.os, "listdir", listdir)
    return calls


def _touch(directory: str, seconds: int) -> None:
    """Move the directory's mtime by whole seconds, as a rename in another tick does."""
    st = os.stat(directory)
    os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 10**9))


def test_a_quiet_folder_is_read_once(folder, monkeypatch):
    calls = _readings(monkeypatch)
    listing = scan.list_folder(folder)
    assert calls == ["new", "cur"]
    assert set(listing.entries) == {"1.a.host", "2.b.host"}


def test_a_file_renamed_during_the_reading_and_missed_is_still_listed(folder, monkeypatch):
    def rename_and_miss_it(cur):
        os.rename(os.path.join(cur, "1.a.host:2,S"), os.path.join(cur, "1.a.host:2,FS"))
        _touch(cur, 1)
        return ["2.b.host:2,"]  # the reading passed both of its names

    calls = _readings(monkeypatch, rename_and_miss_it)
    listing = scan.list_folder(folder)
    assert calls == ["new", "cur", "new", "cur"]
    assert listing.entries["1.a.host"] == ("cur/:2,FS", "FS")  # the place: the name without its key
    assert listing.entries["2.b.host"] == ("cur/:2,", "")


def test_the_stamps_recorded_are_those_before_the_first_reading(folder, monkeypatch):
    """The next sync must see a change made during this one: its stamps are the oldest."""
    before = scan.DirStamps.of(folder)
    _readings(monkeypatch, lambda cur: (_touch(cur, 1), os.listdir(cur))[1])
    assert scan.list_folder(folder).stamps == before


def test_a_folder_that_never_settles_is_read_a_bounded_number_of_times(folder, monkeypatch):
    real, calls = os.listdir, []

    def always_changing(path):
        calls.append(path)
        _touch(path, 1)
        return real(path)

    monkeypatch.setattr(scan.os, "listdir", always_changing)
    listing = scan.list_folder(folder)
    assert len(calls) == 2 * scan.LISTING_READS
    assert set(listing.entries) == {"1.a.host", "2.b.host"}


def test_files_with_the_same_flags_share_one_place_string(folder):
    for name in ("3.c.host:2,", "4.d.host"):
        open(os.path.join(folder, "cur" if ":" in name else "new", name), "wb").close()
    entries = scan.list_folder(folder).entries
    assert entries["3.c.host"] == ("cur/:2,", "") and entries["4.d.host"] == ("new/", "")
    assert entries["3.c.host"][0] is entries["2.b.host"][0]  # 100,000 messages hold a few strings, not 100,000
