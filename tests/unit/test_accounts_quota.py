"""accounts/quota.py: per-user limits in the user file, read as Dovecot's passwd-file gives them."""

from __future__ import annotations

import pytest

from mailsrv import config as configuration
from mailsrv.accounts import quota, users
from mailsrv.accounts.directory import Directory
from mailsrv.store.maildirsize import Limits

HASH = "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def test_config_default_is_in_kib_and_none_by_default(tmp_path):
    path = tmp_path / "mailsrv.toml"
    path.write_text("[quota]\nstorage_kib = 1024\nmessages = 50\n")
    assert configuration.load(str(path)).quota.limits() == Limits(storage=1024 * 1024, messages=50)
    assert configuration.Config().quota.limits().unlimited


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("*:storage=1G", quota.Override(storage=1024**3)),
        ("*:storage=100", quota.Override(storage=100 * 1024)),  # Dovecot: a bare storage= is KiB
        ("*:bytes=100", quota.Override(storage=100)),
        ("*:storage=512M:messages=1000", quota.Override(storage=512 * 1024**2, messages=1000)),
        ("*:messages=0", quota.Override(messages=0)),
    ],
)
def test_rules(rule, expected):
    assert quota.parse_rule(rule) == expected


@pytest.mark.parametrize("rule", ["Trash:storage=+100M", "*:storage=10%", "*:ignore", "*:storage=1X", "*:messages=1k"])
def test_rules_mailsrv_cannot_apply(rule):
    with pytest.raises(ValueError):
        quota.parse_rule(rule)


def test_user_file_lines(logged):
    text = (
        "# users\n"
        f"alice@example.test:{HASH}::::::userdb_quota_rule=*:storage=1G userdb_quota_rule2=*:messages=10\n"
        f"bob@example.test:{HASH}:1000:1000::/home/bob::quota_rule=*:bytes=5000 userdb_mail=maildir:~/Maildir\n"
        f"carol@example.test:{HASH}\n"
        f"dave@example.test:{HASH}::::::userdb_quota_rule=Trash:storage=+100M\n"
    )
    assert quota.parse(text, "/data/users") == {
        "alice@example.test": quota.Override(storage=1024**3, messages=10),
        "bob@example.test": quota.Override(storage=5000),
    }
    assert len(logged) == 1 and logged[0].startswith("/data/users:5: userdb_quota_rule: ")
    # The password parser reads the same lines unchanged.
    assert set(users.parse(text, "/data/users")) == {f"{u}@example.test" for u in ("alice", "bob", "carol", "dave")}


def test_directory_applies_the_override_to_the_default(tmp_path):
    config = configuration.Config(
        data_dir=str(tmp_path), domains=("example.test",), quota=configuration.QuotaConfig(storage_kib=10, messages=5)
    )
    with open(config.users_file, "w") as f:
        f.write(f"alice@example.test:{HASH}::::::userdb_quota_rule=*:storage=0\nbob@example.test:{HASH}\n")
    directory = Directory(config)
    assert directory.quota("alice@example.test") == Limits(storage=0, messages=5)
    assert directory.quota("bob@example.test") == Limits(storage=10 * 1024, messages=5)


def test_with_storage_keeps_the_other_fields():
    line = f"bob@example.test:{HASH}:1000:1000::/home/bob::quota_rule=*:messages=7 userdb_mail=maildir:~/M"
    assert quota.with_storage(line, "2G") == (
        f"bob@example.test:{HASH}:1000:1000::/home/bob::userdb_quota_rule=*:storage=2G:messages=7 userdb_mail=maildir:~/M"
    )
    assert quota.with_storage(f"a@example.test:{HASH}", "0") == f"a@example.test:{HASH}::::::userdb_quota_rule=*:storage=0"
    with pytest.raises(ValueError):
        quota.with_storage(line, "lots")
