"""The special-use file (mailsrv.store.specialuse) and the ``[imap]`` folders that fill it."""

from __future__ import annotations

import os

import pytest

from mailsrv import config as configuration
from mailsrv.store import specialuse


def test_parse_skips_comments_unknown_uses_and_broken_lines() -> None:
    text = "# header\nSent\t\\Sent\nOld/2024\t\\archive \\All\nno tab here\nJunk Mail\t\\Junk\nX\t\\All\n"
    assert specialuse.parse(text) == {
        "Sent": frozenset({"\\Sent"}),
        "Old/2024": frozenset({"\\Archive"}),
        "Junk Mail": frozenset({"\\Junk"}),
    }


def test_render_round_trips() -> None:
    uses = {"Sent": frozenset({"\\Sent"}), "Stuff": frozenset({"\\Archive", "\\Junk"}), "None": frozenset()}
    text = specialuse.render(uses).decode()
    assert text.splitlines()[1:] == ["Sent\t\\Sent", "Stuff\t\\Archive \\Junk"]
    assert specialuse.parse(text) == {k: v for k, v in uses.items() if v}


def test_renamed_moves_subfolders_not_lookalikes() -> None:
    uses = {"A": frozenset({"\\Sent"}), "A/B": frozenset({"\\Junk"}), "AB": frozenset({"\\Trash"})}
    assert specialuse.renamed(uses, "A", "Z", "/") == {
        "Z": frozenset({"\\Sent"}), "Z/B": frozenset({"\\Junk"}), "AB": frozenset({"\\Trash"})}


def test_provision_runs_once(tmp_path) -> None:
    root = str(tmp_path / "alice")
    made: list[str] = []

    def create(name: str) -> bool:
        made.append(name)
        return name != "Sent"  # Sent existed already

    assert specialuse.provision(root, {"\\Sent": "Sent", "\\Trash": "Bin"}, create) == ["Bin"]
    assert specialuse.read(root) == {"Sent": frozenset({"\\Sent"}), "Bin": frozenset({"\\Trash"})}
    assert specialuse.provision(root, {"\\Junk": "Junk"}, create) == []
    assert made == ["Sent", "Bin"]


def test_edit_without_change_writes_nothing(tmp_path) -> None:
    root = str(tmp_path)
    specialuse.edit(root, lambda uses: uses)
    assert not os.path.exists(specialuse.path(root))  # an untouched account stays "never set up"


def test_imap_config_maps_uses_to_names(tmp_path) -> None:
    path = tmp_path / "mailsrv.toml"
    path.write_text('[imap]\nsent = "Sent Items"\njunk = ""\narchive = "Mail/Archive"\n')
    imap = configuration.load(str(path)).imap
    assert imap.special_folders() == {
        "\\Drafts": "Drafts", "\\Sent": "Sent Items", "\\Trash": "Trash", "\\Archive": "Mail/Archive"}


@pytest.mark.parametrize("line, complaint", [
    ('sent = "INBOX"', "imap.sent: INBOX cannot be a special folder"),
    ('sent = "a//b"', "imap.sent: empty hierarchy level"),
    ('junk = "Trash"', "imap.junk: 'Trash' is already the trash folder"),
])
def test_bad_imap_folders_name_the_key_and_the_file(tmp_path, line, complaint) -> None:
    path = tmp_path / "mailsrv.toml"
    path.write_text(f"[imap]\n{line}\n")
    with pytest.raises(configuration.ConfigError) as e:
        configuration.load(str(path))
    assert str(path) in str(e.value) and complaint in str(e.value)
