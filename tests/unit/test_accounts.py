"""Accounts: the user, alias and senders files, resolution, the checker and the realm."""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from typing import Any, Callable

import pytest
from argon2 import PasswordHasher
from argon2 import low_level
from argon2.profiles import CHEAPEST
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.mail.imap4 import IllegalClientResponse
from twisted.trial import unittest
from zope.interface import Interface

from mailsrv.accounts import Directory, aliases, make_portal, passwords, senders, users
from mailsrv.accounts.directory import RECHECK_AFTER
from support import every_look_fresh
from mailsrv.accounts.cred import HashingQueueFull, PasswordChecker, PlainCredentials, Realm
from mailsrv.accounts.textfile import atomic_write, edit, read_text
from mailsrv.config import AuthConfig, Config
from mailsrv.workers import InlineExecutor, Workers

CHEAP = PasswordHasher.from_parameters(CHEAPEST)
DEFAULT_HASHER = passwords.HASHER  # captured at import, before any test swaps it


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch):
    """Argon2 at its cheapest so the suite stays fast; the default stays strong."""
    monkeypatch.setattr(passwords, "HASHER", CHEAP)
    monkeypatch.setattr(passwords, "_dummy_hash", None)


def make_config(tmp_path) -> Config:
    return Config(data_dir=str(tmp_path), domains=("example.test", "other.test"))


def write(path, text: str) -> None:
    atomic_write(str(path), text, 0o600)


# --- password hashes ---------------------------------------------------------


def test_default_hasher_is_argon2_recommended():
    default, recommended = DEFAULT_HASHER, PasswordHasher()
    assert (default.time_cost, default.memory_cost, default.parallelism) == (
        recommended.time_cost,
        recommended.memory_cost,
        recommended.parallelism,
    )


def test_hash_and_verify():
    stored = passwords.hash_password("s3cret")
    assert stored.startswith("{ARGON2ID}$argon2id$")
    assert passwords.verify(stored, b"s3cret")
    assert not passwords.verify(stored, b"wrong")


def test_dovecot_argon2i_verifies():
    value = low_level.hash_secret(b"pw", b"saltsalt", 1, 8, 1, 16, low_level.Type.I).decode()
    assert passwords.verify("{ARGON2I}" + value, b"pw")
    assert not passwords.verify("{ARGON2I}" + value, b"pW")


@pytest.mark.parametrize(
    "stored",
    ["{BLF-CRYPT}$2y$05$abcdefghijklmnopqrstuu", "{PLAIN}secret", "nohash", "{ARGON2ID}$argon2i$v=19$x"],
)
def test_unusable_hashes_refused(stored):
    with pytest.raises(passwords.UnsupportedHash):
        passwords.check_stored(stored)


def test_verify_unknown_always_fails():
    assert passwords.verify_unknown(b"anything") is False


# --- user file ----------------------------------------------------------------


def test_user_line_round_trip():
    stored = passwords.hash_password("pw")
    text = users.add("", "alice@example.test", stored)
    assert text == f"alice@example.test:{stored}\n"
    assert users.parse(text, "users") == {"alice@example.test": stored}


def test_hand_edited_user_file(logged):
    stored = passwords.hash_password("pw")
    text = (
        "# users of example.test\n"
        "\n"
        f"  Alice@Example.Test:{stored}  \n"
        f"bob@example.test:{stored}:1000:1000::/home/bob::userdb_quota_rule=*:storage=1G\n"
    )
    assert users.parse(text, "users") == {"alice@example.test": stored, "bob@example.test": stored}
    assert logged == []


def test_bad_user_lines_skipped_and_logged(logged):
    good = passwords.hash_password("pw")
    text = (
        f"alice@example.test:{good}\n"
        "no colon here\n"
        "bob@example.test:{CRAM-MD5}80aec1449634d113e46324e5809848338c28256a7d6da9b7914aa2ece45e4479\n"
        f"ALICE@example.test:{good}\n"
        f"\"q\"@example.test:{good}\n"
    )
    assert users.parse(text, "/data/users") == {"alice@example.test": good}
    assert len(logged) == 4
    assert logged[0].startswith("/data/users:2: ")
    assert logged[1].startswith("/data/users:3: unsupported password scheme {CRAM-MD5}")
    assert "second entry" in logged[2] and logged[2].startswith("/data/users:4:")
    assert logged[3].startswith("/data/users:5:")


def test_user_edits_keep_comments_and_extra_fields():
    text = "# keep me\nalice@example.test:{ARGON2ID}$argon2id$old:1000:1000\nbob@example.test:{ARGON2ID}$argon2id$b\n"
    changed = users.set_password(text, "alice@example.test", "{ARGON2ID}$argon2id$new")
    assert changed == "# keep me\nalice@example.test:{ARGON2ID}$argon2id$new:1000:1000\nbob@example.test:{ARGON2ID}$argon2id$b\n"
    assert users.remove(changed, "bob@example.test") == "# keep me\nalice@example.test:{ARGON2ID}$argon2id$new:1000:1000\n"
    with pytest.raises(users.EditError):
        users.add(text, "alice@example.test", "{ARGON2ID}$argon2id$x")
    with pytest.raises(users.EditError):
        users.remove(text, "carol@example.test")


# --- alias file ---------------------------------------------------------------


def test_alias_parse_merges_and_skips_bad_lines(logged):
    text = (
        "# aliases\n"
        "Sales@Example.test: alice@example.test, Bob@example.test\n"
        "sales@example.test: bob@example.test, carol@other.test\n"
        "@other.test: alice@example.test\n"
        "broken@example.test: not an address\n"
        "noseparator\n"
    )
    assert aliases.parse(text, "/data/aliases") == {
        "sales@example.test": ("alice@example.test", "bob@example.test", "carol@other.test"),
        "@other.test": ("alice@example.test",),
    }
    assert [line.split(":")[:2] for line in logged] == [["/data/aliases", "5"], ["/data/aliases", "6"]]


def test_alias_add_folds_into_first_line():
    text = "# top\nsales@example.test: alice@example.test\n# mid\nsales@example.test: bob@example.test\n"
    new = aliases.add(text, "sales@example.test", ["carol@example.test", "alice@example.test"], "a")
    assert new == "# top\nsales@example.test: alice@example.test, bob@example.test, carol@example.test\n# mid\n"
    assert aliases.add("", "@example.test", ["alice@example.test"], "a") == "@example.test: alice@example.test\n"


# --- text files ---------------------------------------------------------------


def test_atomic_write_keeps_mode_and_leaves_no_temp(tmp_path):
    path = tmp_path / "users"
    atomic_write(str(path), "one\n", 0o600)
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.chmod(path, 0o640)
    atomic_write(str(path), "two\n", 0o600)
    assert read_text(str(path)) == "two\n"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert sorted(os.listdir(tmp_path)) == ["users"]


def test_concurrent_edits_lose_nothing(tmp_path):
    """Without the lock, each slow read-modify-write overwrites the others."""
    path = str(tmp_path / "users")

    def add_line(n):
        def change(text):
            time.sleep(0.02)
            return text + f"line{n}\n"

        edit(path, change, 0o600)

    workers = [threading.Thread(target=add_line, args=(n,)) for n in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(read_text(path).splitlines()) == [f"line{n}" for n in range(8)]


# --- directory ----------------------------------------------------------------

STORED = "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA"


@pytest.fixture
def directory(tmp_path):
    config = make_config(tmp_path)
    write(config.users_file, "".join(f"{u}:{STORED}\n" for u in ("alice@example.test", "bob@example.test", "carol@other.test")))
    return Directory(config, clock=every_look_fresh())


def set_aliases(tmp_path, text):
    write(tmp_path / "aliases", text)


def test_local_domains(directory):
    assert directory.is_local_domain("Example.TEST")
    assert directory.is_local_domain("other.test.")
    assert not directory.is_local_domain("example.org")


def test_exact_user_case_insensitive(directory):
    assert directory.resolve("Alice@EXAMPLE.test") == ["alice@example.test"]
    assert directory.user_exists("BOB@example.test")
    assert not directory.user_exists("dave@example.test")
    assert not directory.user_exists("not an address")


@pytest.mark.parametrize(
    "address",
    [
        "dave@example.test",
        "alice@example.org",
        '"alice"@example.test',
        "alice%example.test@example.test",
        "@example.test",
        "example.test!alice@example.test",
        "alice",
        "",
    ],
)
def test_unknown_or_not_plain_resolves_to_nothing(directory, address):
    assert directory.resolve(address) == []


def test_alias_expands_recursively_deduplicated(directory, tmp_path):
    set_aliases(
        tmp_path,
        "team@example.test: bob@example.test, sales@example.test, alice@example.test\n"
        "sales@example.test: alice@example.test, bob@example.test, carol@other.test\n",
    )
    assert directory.resolve("team@example.test") == ["bob@example.test", "alice@example.test", "carol@other.test"]


def test_user_beats_alias_and_catch_all(directory, tmp_path):
    set_aliases(tmp_path, "alice@example.test: bob@example.test\n@example.test: bob@example.test\n")
    assert directory.resolve("alice@example.test") == ["alice@example.test"]
    assert directory.resolve("whoever@example.test") == ["bob@example.test"]
    assert directory.resolve("whoever@other.test") == []


def test_subaddress(directory, tmp_path):
    set_aliases(tmp_path, "list+info@example.test: bob@example.test\nlist@example.test: carol@other.test\n")
    assert directory.resolve("alice+news@example.test") == ["alice@example.test"]
    assert directory.resolve("alice+a+b@example.test") == ["alice@example.test"]
    assert directory.resolve("list+info@example.test") == ["bob@example.test"]
    assert directory.resolve("list+other@example.test") == ["carol@other.test"]
    assert directory.resolve("+tag@example.test") == []
    assert directory.resolve("dave+tag@example.test") == []


def test_subaddress_of_unknown_falls_to_catch_all(directory, tmp_path):
    set_aliases(tmp_path, "@example.test: bob@example.test\n")
    assert directory.resolve("dave+tag@example.test") == ["bob@example.test"]


def test_postmaster_always_resolves(directory, tmp_path):
    # RFC 5321 4.5.1, in every local domain, even with a catch-all around.
    set_aliases(tmp_path, "@example.test: bob@example.test\n")
    assert directory.resolve("PostMaster@example.test") == ["postmaster@example.test"]
    assert directory.resolve("postmaster@other.test") == ["postmaster@other.test"]
    assert directory.resolve("postmaster+x@other.test") == ["postmaster@other.test"]
    set_aliases(tmp_path, "postmaster@example.test: alice@example.test\npostmaster@other.test: nobody@other.test\n")
    assert directory.resolve("postmaster@example.test") == ["alice@example.test"]
    # An alias that delivers nowhere must not lose the postmaster's mail.
    assert directory.resolve("postmaster@other.test") == ["postmaster@other.test"]
    set_aliases(tmp_path, "postmaster@other.test: someone@remote.test\n")
    assert directory.resolve("postmaster@other.test") == ["someone@remote.test"]  # forwarded
    assert directory.resolve("postmaster@example.org") == []


def test_senders_parse_merges_and_skips_bad_lines(logged):
    text = (
        "Alice@Example.test: ceo@example.test, @Other.TEST\n"
        "alice@example.test: me@elsewhere.example\n"
        "@example.test: bob@example.test\n"  # a domain is no user
        "bob@example.test: not an address\n"
    )
    assert senders.parse(text, "/data/senders") == {
        "alice@example.test": ("ceo@example.test", "@other.test", "me@elsewhere.example"),
    }
    assert [line.split(":")[:2] for line in logged] == [["/data/senders", "3"], ["/data/senders", "4"]]


def test_a_user_sends_as_their_address_and_what_delivers_to_them(directory, tmp_path):
    set_aliases(
        tmp_path,
        "team@example.test: bob@example.test, sales@example.test\n"
        "sales@example.test: alice@example.test\n"
        "@other.test: alice@example.test\n",
    )
    may = directory.may_send_as
    assert may("alice@example.test", "Alice@EXAMPLE.test")
    assert may("alice@example.test", "alice+lists@example.test")  # delivered to alice
    assert may("alice@example.test", "sales@example.test")
    assert may("alice@example.test", "team@example.test")  # through sales@
    assert may("bob@example.test", "team@example.test")
    assert not may("bob@example.test", "sales@example.test")
    assert not may("alice@example.test", "bob@example.test")
    # The catch-all delivers whoever@other.test to alice, but gives her no address.
    assert directory.resolve("whoever@other.test") == ["alice@example.test"]
    assert not may("alice@example.test", "whoever@other.test")
    assert not may("alice@example.test", "postmaster@example.test")
    for tricky in ('"bob"@example.test', "alice%example.test@example.test", "alice@[127.0.0.1]", "alice", ""):
        assert not may("alice@example.test", tricky), tricky


def test_the_senders_file_grants_more_and_is_reread(directory, tmp_path):
    may = directory.may_send_as
    assert not may("alice@example.test", "ceo@example.test")
    write(tmp_path / "senders", "alice@example.test: ceo@example.test, @elsewhere.example\n")
    assert may("alice@example.test", "CEO@example.test")
    assert may("alice@example.test", "anyone@Elsewhere.Example")
    assert not may("alice@example.test", "anyone@sub.elsewhere.example")
    assert not may("bob@example.test", "ceo@example.test")


def test_alias_loops_are_cut_and_logged(directory, tmp_path, logged):
    set_aliases(
        tmp_path,
        "a@example.test: b@example.test, alice@example.test\n"
        "b@example.test: a@example.test\n"
        "x@example.test: y@example.test\n"
        "y@example.test: x@example.test\n",
    )
    assert directory.resolve("a@example.test") == ["alice@example.test"]
    assert directory.resolve("x@example.test") == []
    assert any("loop" in line for line in logged)


def test_alias_chain_depth_limited(directory, tmp_path):
    chain = "".join(f"l{n}@example.test: l{n + 1}@example.test\n" for n in range(20))
    set_aliases(tmp_path, chain + "l20@example.test: alice@example.test\n")
    assert directory.resolve("l15@example.test") == ["alice@example.test"]
    assert directory.resolve("l0@example.test") == []


def test_remote_targets_are_resolved_for_forwarding(directory, tmp_path):
    set_aliases(tmp_path, "fwd@example.test: Someone@Remote.test, alice@example.test\nx@example.test: fwd@example.test\n")
    assert directory.resolve("fwd@example.test") == ["someone@remote.test", "alice@example.test"]
    assert directory.resolve("x@example.test") == ["someone@remote.test", "alice@example.test"]
    assert not directory.may_send_as("alice@example.test", "someone@remote.test")


def test_user_lines_the_store_cannot_hold_are_skipped(logged, directory, tmp_path):
    """A hand-edited ``a/b@`` user never exists: no login, RCPT gets "User unknown"."""
    text = f"alice@example.test:{STORED}\na/b@example.test:{STORED}\nalice/.proj2@example.test:{STORED}\n"
    assert users.parse(text, "/data/users") == {"alice@example.test": STORED}
    assert [line.split(":")[:2] for line in logged] == [["/data/users", "2"], ["/data/users", "3"]]
    write(tmp_path / "users", text)
    assert directory.resolve("a/b@example.test") == []
    assert directory.resolve("alice/.proj2@example.test") == []
    assert not directory.user_exists("a/b@example.test")


def test_reload_on_change(tmp_path):
    config = make_config(tmp_path)
    directory = Directory(config, clock=every_look_fresh())
    assert not directory.user_exists("alice@example.test")  # no file yet
    write(config.users_file, f"alice@example.test:{STORED}\n")
    assert directory.user_exists("alice@example.test")
    # An in-place edit (same inode) is seen through its mtime.
    with open(config.users_file, "a") as f:
        f.write(f"bob@example.test:{STORED}\n")
    st = os.stat(config.users_file)
    os.utime(config.users_file, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert directory.resolve("bob@example.test") == ["bob@example.test"]
    os.unlink(config.users_file)
    assert directory.resolve("bob@example.test") == []
    write(config.aliases_file, "@example.test: carol@other.test\n")
    write(config.users_file, f"carol@other.test:{STORED}\n")
    assert directory.resolve("anyone@example.test") == ["carol@other.test"]


def test_lookups_trust_the_files_for_a_moment(tmp_path):
    """A busy MX stats the files once per RECHECK_AFTER; a refusal and a password check look again first."""
    config = make_config(tmp_path)
    now = [0.0]
    directory = Directory(config, clock=lambda: now[0])
    write(config.users_file, f"alice@example.test:{STORED}\n")
    assert directory.resolve("alice@example.test") == ["alice@example.test"]
    write(config.users_file, f"bob@example.test:{STORED}\n")
    assert directory.resolve("alice@example.test") == ["alice@example.test"]  # not looked at again yet
    assert directory.resolve("bob@example.test") == ["bob@example.test"]  # a miss looks again at once
    write(config.users_file, f"carol@example.test:{STORED}\n")
    assert "carol@example.test" in directory.users()  # logins always look
    write(config.users_file, f"dave@example.test:{STORED}\n")
    assert directory.resolve("carol@example.test") == ["carol@example.test"]
    now[0] += RECHECK_AFTER
    assert directory.resolve("carol@example.test") == []


def test_users_mapping_is_stable_until_change(directory, tmp_path):
    first = directory.users()
    assert directory.users() is first
    write(tmp_path / "users", f"alice@example.test:{STORED}\n")
    assert directory.users() is not first


# --- checker, realm, portal -----------------------------------------------------


class IThing(Interface):
    """An avatar interface for the tests."""


class IOther(Interface):
    """A second avatar interface for the tests."""


class HeldExecutor:
    """A hashing pool whose threads are all busy: jobs wait until the test releases them."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Deferred, Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []

    @property
    def pending(self) -> int:
        return len(self.jobs)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
        d: Deferred = Deferred()
        self.jobs.append((d, fn, args, kwargs))
        return d

    def release(self) -> None:
        d, fn, args, kwargs = self.jobs.pop(0)
        d.callback(fn(*args, **kwargs))


class CheckerTests(unittest.SynchronousTestCase):
    """The IUsernamePassword checker, driven through its Deferreds: inline hashing, a fake clock."""

    def setUp(self):
        self.patch(passwords, "HASHER", CHEAP)
        self.config = make_config(self.mktemp())
        os.makedirs(self.config.data_dir)
        write(self.config.users_file, users.add("", "alice@example.test", passwords.hash_password("pw")))
        self.clock = Clock()
        self.checker = self.make_checker(InlineExecutor())
        self.calls: list[str] = []
        real_verify = passwords.verify

        def counting_verify(stored, password):
            self.calls.append("verify")
            return real_verify(stored, password)

        self.patch(passwords, "verify", counting_verify)

    def make_checker(self, hashing, cache_seconds=60, max_queued_checks=64):
        return PasswordChecker(
            Directory(self.config), hashing, self.clock,
            cache_seconds=cache_seconds, max_queued_checks=max_queued_checks,
        )

    def check(self, username, password):
        return self.checker.requestAvatarId(UsernamePassword(username, password))

    def assert_refused(self, username, password, exception=UnauthorizedLogin):
        failure = self.failureResultOf(self.check(username, password))
        self.assertIs(failure.type, exception)

    def test_right_password(self):
        self.assertEqual(self.successResultOf(self.check(b"Alice@Example.TEST", b"pw")), "alice@example.test")
        self.assertEqual(self.successResultOf(self.check("alice@example.test", "pw")), "alice@example.test")

    def test_hashing_runs_in_the_executor_it_is_given(self):
        held = HeldExecutor()
        self.checker = self.make_checker(held)
        d = self.check(b"alice@example.test", b"pw")
        self.assertNoResult(d)
        self.assertEqual((held.pending, self.calls), (1, []))
        held.release()
        self.assertEqual((self.successResultOf(d), self.calls), ("alice@example.test", ["verify"]))

    def test_wrong_password_unknown_user_bad_name(self):
        for username, password in (
            (b"alice@example.test", b"PW"),
            (b"nobody@example.test", b"pw"),
            (b"alice", b"pw"),
            (b"\xff@example.test", b"pw"),
        ):
            self.assert_refused(username, password)
        # Unknown users cost a hash too, so timing does not reveal them.
        self.assertEqual(len(self.calls), 4)

    def test_a_full_hashing_queue_fails_at_once_without_hashing(self):
        held = HeldExecutor()
        self.checker = self.make_checker(held, max_queued_checks=2)
        waiting = [self.check(b"alice@example.test", b"pw"), self.check(b"nobody@example.test", b"pw")]
        for username in (b"alice@example.test", b"nobody@example.test", b"alice"):
            failure = self.failureResultOf(self.check(username, b"pw"), HashingQueueFull)
            self.assertNotIsInstance(failure.value, UnauthorizedLogin)
        self.assertEqual((held.pending, self.calls), (2, []))
        held.release()
        self.assertEqual(self.successResultOf(waiting[0]), "alice@example.test")
        later = self.check(b"alice@example.test", b"wrong")  # room again: queued, not refused
        self.assertEqual(held.pending, 2)
        held.release()
        held.release()
        self.failureResultOf(waiting[1], UnauthorizedLogin)
        self.failureResultOf(later, UnauthorizedLogin)

    def test_a_remembered_login_passes_a_full_queue(self):
        held = HeldExecutor()
        self.checker = self.make_checker(held, max_queued_checks=1)
        first = self.check(b"alice@example.test", b"pw")
        held.release()
        self.successResultOf(first)
        self.check(b"nobody@example.test", b"pw")  # fills the queue
        self.assertEqual(self.successResultOf(self.check(b"ALICE@example.test", b"pw")), "alice@example.test")

    def test_success_is_cached(self):
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        self.successResultOf(self.check(b"ALICE@example.test", b"pw"))
        self.assertEqual(len(self.calls), 1)
        self.assert_refused(b"alice@example.test", b"other")
        self.assertEqual(len(self.calls), 2)
        self.clock.advance(61)
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        self.assertEqual(len(self.calls), 3)

    def test_password_change_invalidates_cache(self):
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        text = read_text(self.config.users_file)
        write(self.config.users_file, users.set_password(text, "alice@example.test", passwords.hash_password("new")))
        self.assert_refused(b"alice@example.test", b"pw")
        self.assertEqual(self.successResultOf(self.check(b"alice@example.test", b"new")), "alice@example.test")
        self.assertEqual(len(self.calls), 3)

    def test_removed_user_stops_matching(self):
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        write(self.config.users_file, "# nobody left\n")
        self.assert_refused(b"alice@example.test", b"pw")

    def test_zero_cache_seconds_disables_cache(self):
        self.checker = self.make_checker(InlineExecutor(), cache_seconds=0)
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        self.successResultOf(self.check(b"alice@example.test", b"pw"))
        self.assertEqual(len(self.calls), 2)

    def test_portal_login(self):
        avatars = []

        class Avatar:
            def __init__(self, address):
                self.address = address
                self.logged_out = False
                avatars.append(self)

            def logout(self):
                self.logged_out = True

        portal = make_portal(self.config, Directory(self.config), {IThing: Avatar}, Workers.inline(), self.clock)
        login = portal.login(UsernamePassword(b"alice@example.test", b"pw"), None, IThing)
        iface, avatar, logout = self.successResultOf(login)
        self.assertIs(iface, IThing)
        self.assertEqual(avatar.address, "alice@example.test")
        logout()
        self.assertTrue(avatar.logged_out)
        self.failureResultOf(portal.login(UsernamePassword(b"alice@example.test", b"bad"), None, IThing),
                             UnauthorizedLogin)

    def test_portal_bounds_the_queue_by_config(self):
        config = dataclasses.replace(self.config, auth=AuthConfig(max_queued_checks=1))
        held = HeldExecutor()
        workers = Workers(held, held, held, held, held)
        portal = make_portal(config, Directory(config), {IThing: object}, workers, self.clock)
        portal.login(UsernamePassword(b"alice@example.test", b"pw"), None, IThing)
        self.failureResultOf(portal.login(UsernamePassword(b"alice@example.test", b"pw"), None, IThing),
                             HashingQueueFull)


@pytest.mark.parametrize(
    "message, acts_as_itself",
    [
        (b"\0alice@example.test\0pw", True),
        (b"ALICE@example.test\0alice@example.test\0pw", True),
        (b"bob@example.test\0alice@example.test\0pw", False),
    ],
)
def test_sasl_plain_keeps_the_authzid(message, acts_as_itself):
    """RFC 4616 2: a login asking to act as someone else must be refusable."""
    credentials = PlainCredentials()
    credentials.setResponse(message)
    assert (credentials.username, credentials.password) == (b"alice@example.test", b"pw")
    assert credentials.acts_as_itself() is acts_as_itself


def test_sasl_plain_needs_three_parts():
    with pytest.raises(IllegalClientResponse):
        PlainCredentials().setResponse(b"alice@example.test\0pw")


def test_realm_picks_first_registered_interface():
    factories = {IOther: lambda address: ("other", address)}
    realm = Realm(factories)
    iface, avatar, logout = realm.requestAvatar("alice@example.test", None, IThing, IOther)
    assert iface is IOther
    assert avatar == ("other", "alice@example.test")
    assert logout() is None  # avatars without logout() get a no-op
    factories[IThing] = lambda address: ("thing", address)  # registered late
    assert realm.requestAvatar("alice@example.test", None, IThing, IOther)[0] is IThing


def test_realm_refuses_unknown_interface():
    with pytest.raises(NotImplementedError):
        Realm({}).requestAvatar("alice@example.test", None, IThing)


class RehashTests(unittest.SynchronousTestCase):
    """``[auth] rehash``: a verified legacy hash becomes Argon2id in the users file (issue 6)."""

    #: ``doveadm pw -s SSHA512 -p 'pässword 1'``, with the fields Dovecot's passwd-file keeps.
    LEGACY = "{SSHA512}My55uoIfSNTponW/PL1mxZJLwtPZR4NtcR4RHtPoyfvPX1PJ0Hs5lfS71N8xKX7kZ2tpGysOv6Iv6/su7BPXSY3DmfA="
    PASSWORD = "pässword 1".encode()

    def setUp(self):
        self.patch(passwords, "HASHER", CHEAP)
        self.config = make_config(self.mktemp())
        os.makedirs(self.config.data_dir)
        write(self.config.users_file, f"# from dovecot\nalice@example.test:{self.LEGACY}:1000:1000::/home/alice::\n")
        self.logged: list[str] = []
        globalLogPublisher.addObserver(self._observe)
        self.addCleanup(globalLogPublisher.removeObserver, self._observe)

    def _observe(self, event):
        self.logged.append(formatEvent(event))

    def login(self, config=None, workers=None, password=None):
        config = config or self.config
        portal = make_portal(config, Directory(config), {IThing: str}, workers or Workers.inline(), Clock())
        return portal.login(UsernamePassword(b"alice@example.test", password or self.PASSWORD), None, IThing)

    def stored(self) -> str:
        return users.parse(read_text(self.config.users_file), "users")["alice@example.test"]

    def test_a_legacy_hash_becomes_argon2id_at_login_keeping_the_line(self):
        self.successResultOf(self.login())
        text = read_text(self.config.users_file)
        new = self.stored()
        self.assertTrue(new.startswith("{ARGON2ID}$argon2id$"))
        self.assertEqual(text, f"# from dovecot\nalice@example.test:{new}:1000:1000::/home/alice::\n")
        self.assertTrue(passwords.verify(new, self.PASSWORD))
        self.assertIn(f"upgraded the password hash of alice@example.test from SSHA512 to ARGON2ID in "
                      f"{self.config.users_file}", self.logged)
        self.successResultOf(self.login())
        self.assertEqual(read_text(self.config.users_file), text)  # Argon2id stays as it is

    def test_a_failed_login_or_rehash_off_changes_nothing(self):
        self.failureResultOf(self.login(password=b"wrong"), UnauthorizedLogin)
        off = dataclasses.replace(self.config, auth=AuthConfig(rehash=False))
        self.successResultOf(self.login(config=off))
        self.assertEqual(self.stored(), self.LEGACY)

    def test_the_upgrade_hashes_and_writes_off_the_reactor_thread(self):
        hashing, disk = HeldExecutor(), HeldExecutor()
        d = self.login(workers=Workers(disk=disk, hashing=hashing, search=disk, dns=disk, signing=disk))
        hashing.release()  # the verification
        self.successResultOf(d)  # the login does not wait for the upgrade
        self.assertEqual((hashing.pending, disk.pending), (1, 0))
        hashing.release()  # the new hash
        self.assertEqual((self.stored(), disk.pending), (self.LEGACY, 1))
        disk.release()  # the file edit
        self.assertTrue(self.stored().startswith("{ARGON2ID}"))

    def test_a_password_the_admin_changed_meanwhile_wins(self):
        disk = HeldExecutor()
        self.successResultOf(self.login(workers=Workers(disk=disk, hashing=InlineExecutor(), search=disk, dns=disk, signing=disk)))
        by_admin = passwords.hash_password("new")
        write(self.config.users_file, users.set_password(read_text(self.config.users_file), "alice@example.test", by_admin))
        disk.release()
        self.assertEqual(self.stored(), by_admin)
        self.assertFalse(any("upgraded" in line for line in self.logged))

    def test_one_upgrade_per_user_at_a_time(self):
        disk = HeldExecutor()
        config = dataclasses.replace(self.config, auth=AuthConfig(cache_seconds=0))
        workers = Workers(disk=disk, hashing=InlineExecutor(), search=disk, dns=disk, signing=disk)
        portal = make_portal(config, Directory(config), {IThing: str}, workers, Clock())
        for _ in range(3):
            self.successResultOf(portal.login(UsernamePassword(b"alice@example.test", self.PASSWORD), None, IThing))
        self.assertEqual(disk.pending, 1)
        disk.release()
        self.assertTrue(self.stored().startswith("{ARGON2ID}"))

    def test_a_failed_upgrade_is_logged_and_the_login_stands(self):
        os.mkdir(self.config.users_file + ".lock")
        self.successResultOf(self.login())
        self.assertEqual(self.stored(), self.LEGACY)
        self.assertIn(f"cannot upgrade the password hash of alice@example.test in {self.config.users_file}: "
                      "Is a directory", self.logged)

    def test_cleartext_entries_need_the_switch_and_warn_at_start(self):
        write(self.config.users_file, "alice@example.test:{PLAIN}pässword 1\n")
        self.failureResultOf(self.login(), UnauthorizedLogin)
        self.assertFalse(any("cleartext_passwords is on" in line for line in self.logged))
        on = dataclasses.replace(self.config, auth=AuthConfig(cleartext_passwords=True), source="mailsrv.toml")
        self.successResultOf(self.login(config=on))
        self.assertIn(f"auth.cleartext_passwords is on (mailsrv.toml): {{PLAIN}} and {{CLEAR}} entries of "
                      f"{self.config.users_file} are accepted", self.logged)
        self.assertTrue(self.stored().startswith("{ARGON2ID}"))  # and rehash removes them
