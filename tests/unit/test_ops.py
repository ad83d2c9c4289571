"""mailsrv.ops: the account operations as plain functions, without a front end."""

from __future__ import annotations

import os

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from mailsrv.accounts import Directory, passwords
from mailsrv.config import Config
from mailsrv.ops import NoDataDir, OpsError, aliases, use_data_dir, users


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch):
    """Argon2 at its cheapest so the suite stays fast."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher.from_parameters(CHEAPEST))


@pytest.fixture
def config(tmp_path):
    """A configuration whose data dir exists, as a started server's does."""
    (tmp_path / "data").mkdir()
    return Config(data_dir=str(tmp_path / "data"), domains=("example.test", "other.test"), source="mailsrv.toml")


def test_users_are_added_listed_repassworded_and_removed_without_output(config, capsys):
    assert users.add_user(config, "Bob@Example.TEST", "pw") == "bob@example.test"
    assert users.add_user(config, "alice@other.test", "pw") == "alice@other.test"
    assert users.list_users(config) == ["alice@other.test", "bob@example.test"]
    assert users.set_password(config, "BOB@example.test", "new") == "bob@example.test"
    assert passwords.verify(Directory(config).users()["bob@example.test"], b"new")
    assert users.remove_user(config, "bob@example.test") == "bob@example.test"
    assert users.list_users(config) == ["alice@other.test"]
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(
    "address, password, message",
    [
        ("alice@example.test", "pw", "user alice@example.test already exists"),
        ("bob@example.org", "pw", "domain example.org is not a local domain (domains in mailsrv.toml: "
                                  "example.test, other.test)"),
        ('"bob"@example.test', "pw", "not a plain address: '\"bob\"@example.test': the local part may not contain"),
        ("bob@example.test", "", "empty password refused"),
    ],
)
def test_add_user_refusals_say_why(config, address, password, message):
    users.add_user(config, "alice@example.test", "pw")
    with pytest.raises(OpsError) as e:
        users.add_user(config, address, password)
    assert str(e.value).startswith(message)
    assert users.list_users(config) == ["alice@example.test"]


def test_new_and_existing_user_check_before_any_password(config):
    users.add_user(config, "alice@example.test", "pw")
    assert users.new_user(config, "Bob@example.test") == "bob@example.test"
    assert users.existing_user(config, "ALICE@example.test") == "alice@example.test"
    with pytest.raises(OpsError, match="no such user: bob@example.test"):
        users.existing_user(config, "bob@example.test")
    with pytest.raises(OpsError, match="no such user: bob@example.test"):
        users.set_password(config, "bob@example.test", "pw")
    with pytest.raises(OpsError, match="no such user: bob@example.test"):
        users.remove_user(config, "bob@example.test")


def test_file_errors_become_ops_errors_naming_the_file(config):
    os.makedirs(config.users_file)
    with pytest.raises(OpsError) as e:
        users.list_users(config)
    assert str(e.value) == f"{config.users_file}: Is a directory"


def test_aliases_are_added_merged_listed_and_removed(config):
    assert aliases.add_alias(config, "Sales@example.test", ["alice@example.test"]).alias == "sales@example.test"
    aliases.add_alias(config, "sales@example.test", ["bob@other.test", "alice@example.test"])
    assert aliases.add_alias(config, "@Other.Test", ["alice@example.test"]).alias == "@other.test"
    assert aliases.list_aliases(config) == [
        ("@other.test", ("alice@example.test",)),
        ("sales@example.test", ("alice@example.test", "bob@other.test")),
    ]
    assert aliases.remove_alias(config, "@other.test") == "@other.test"
    assert [key for key, _ in aliases.list_aliases(config)] == ["sales@example.test"]
    with pytest.raises(OpsError, match="no such alias: @other.test"):
        aliases.remove_alias(config, "@other.test")


@pytest.mark.parametrize(
    "alias, targets, message",
    [
        ("x", ["alice@example.test"], "not an address or @domain: 'x'"),
        ("@example.org", ["alice@example.test"], "domain example.org is not a local domain"),
        ("alice@example.test", ["bob@example.test"], "alice@example.test is a user"),
        ("info@example.test", ["bob%x@example.test"], "not a plain address: 'bob%x@example.test'"),
    ],
)
def test_add_alias_refusals_say_why(config, alias, targets, message):
    users.add_user(config, "alice@example.test", "pw")
    with pytest.raises(OpsError) as e:
        aliases.add_alias(config, alias, targets)
    assert str(e.value).startswith(message)
    assert aliases.list_aliases(config) == []


def test_no_operation_creates_a_missing_data_dir(tmp_path):
    """Issue 6: run from the wrong directory, ``user add`` made a data dir no server reads."""
    config = Config(data_dir="nowhere", source="<defaults>")
    missing = os.path.abspath("nowhere")
    for operation in (
        lambda: users.add_user(config, "alice@example.test", "pw"),
        lambda: users.remove_user(config, "alice@example.test"),
        lambda: aliases.add_alias(config, "info@example.test", ["alice@example.test"]),
        lambda: aliases.remove_alias(config, "info@example.test"),
    ):
        with pytest.raises(NoDataDir) as e:
            operation()
        assert (e.value.path, str(e.value)) == (missing, f"no data dir at {missing} (data_dir of <defaults>)")
    with pytest.raises(OpsError, match="no such user"):
        users.set_password(config, "alice@example.test", "pw")
    assert not os.path.exists(missing)


def test_use_data_dir_creates_only_when_asked(tmp_path):
    config = Config(data_dir=str(tmp_path / "new"))
    with pytest.raises(NoDataDir):
        use_data_dir(config)
    assert use_data_dir(config, create=True) == str(tmp_path / "new")
    assert os.stat(tmp_path / "new").st_mode & 0o777 == 0o700
    assert use_data_dir(config) == str(tmp_path / "new")


def test_alias_targets_nobody_receives_are_reported(config):
    users.add_user(config, "alice@example.test", "pw")
    aliases.add_alias(config, "team@example.test", ["alice@example.test"])
    added = aliases.add_alias(config, "info@example.test",
                              ["Team@example.test", "alice+info@example.test", "bob@example.test"])
    assert added == ("info@example.test", ("team@example.test", "alice+info@example.test", "bob@example.test"),
                     ("bob@example.test",))
    aliases.add_alias(config, "@other.test", ["alice@example.test"])
    assert aliases.add_alias(config, "x@example.test", ["anyone@other.test"]).unknown == ()
    assert ("info@example.test", ("team@example.test", "alice+info@example.test", "bob@example.test")) in (
        aliases.list_aliases(config)
    )
