"""The ``mailsrv`` command line, run in-process through ``main([...])`` and as ``python -m mailsrv.cli``."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import pytest
from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST

from mailsrv.cli import main as cli
from mailsrv.cli import users as cli_users
from mailsrv.accounts import Directory, passwords
from mailsrv.accounts.textfile import read_text
from support import every_look_fresh
from mailsrv import config as configuration
from mailsrv.config import load

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def cheap_hasher(monkeypatch):
    """Argon2 at its cheapest so the suite stays fast."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher.from_parameters(CHEAPEST))


def stored_hash(config_file, address):
    return Directory(load(config_file)).users()[address]


def test_user_add_from_stdin(run, config_file):
    config = load(config_file)
    assert run("user", "add", "Alice@Example.TEST", "--password-stdin", stdin="s3cret pw\n") == (
        0, f"added alice@example.test ({config.users_file})\n", ""
    )
    assert os.stat(config.users_file).st_mode & 0o777 == 0o600
    stored = stored_hash(config_file, "alice@example.test")
    assert passwords.verify(stored, b"s3cret pw")
    assert run("user", "list") == (0, "alice@example.test\n", "")


def test_user_add_refusals(run):
    assert run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")[0] == 0
    code, _, err = run("user", "add", "ALICE@example.test", "--password-stdin", stdin="pw\n")
    assert code == 1 and "already exists" in err
    code, _, err = run("user", "add", "bob@example.org", "--password-stdin", stdin="pw\n")
    assert code == 1 and "example.org" in err and "not a local domain" in err
    code, _, err = run("user", "add", "bob@example.test", "--password-stdin", stdin="\n")
    assert code == 1 and "empty password" in err
    code, _, err = run("user", "add", '"bob"@example.test', "--password-stdin", stdin="pw\n")
    assert code == 1 and "not a plain address" in err
    assert run("user", "list")[1] == "alice@example.test\n"


@pytest.mark.parametrize(
    "address, reason",
    [("a/b@example.test", "'/'"), ("alice/.Proj2@example.test", "'/'"), ("a\\b@example.test", "'\\\\'")],
)
def test_user_add_refuses_what_the_store_cannot_hold(run, address, reason):
    """``a/b`` would be refused by the store at login and delivery: never create such a user."""
    code, out, err = run("user", "add", address, "--password-stdin", stdin="pw\n")
    assert (code, out) == (1, "")
    assert "not a plain address" in err and f"may not contain {reason}" in err
    assert run("user", "list")[1] == ""


def test_a_user_with_a_non_ascii_local_part_is_stored_in_nfc(run, config_file):
    """RFC 6531 users; RFC 6532 3.1: the decomposed spelling (o and a combining diaeresis) is the same user."""
    assert run("user", "add", "Jo\u0308sé@Example.TEST", "--password-stdin", stdin="pw\n") == (
        0, f"added jösé@example.test ({load(config_file).users_file})\n", "")
    assert read_text(load(config_file).users_file).startswith("jösé@example.test:{")
    code, _, err = run("user", "add", "jösé@example.test", "--password-stdin", stdin="pw\n")
    assert code == 1 and "already exists" in err
    assert passwords.verify(stored_hash(config_file, "jösé@example.test"), b"pw")


def test_user_add_prompts_twice(run, monkeypatch, config_file):
    answers = iter(["pw1", "pw1", "pw2", "typo"])
    monkeypatch.setattr(cli_users.getpass, "getpass", lambda prompt: next(answers))
    assert run("user", "add", "alice@other.test")[0] == 0
    assert passwords.verify(stored_hash(config_file, "alice@other.test"), b"pw1")
    code, _, err = run("user", "add", "bob@other.test")
    assert code == 1 and "do not match" in err


def test_user_passwd_and_del(run, config_file):
    run("user", "add", "alice@example.test", "--password-stdin", stdin="old\n")
    run("user", "add", "bob@example.test", "--password-stdin", stdin="bob\n")
    assert run("user", "passwd", "alice@example.test", "--password-stdin", stdin="new\r\n")[0] == 0
    stored = stored_hash(config_file, "alice@example.test")
    assert passwords.verify(stored, b"new") and not passwords.verify(stored, b"old")
    code, _, err = run("user", "passwd", "carol@example.test", "--password-stdin", stdin="x\n")
    assert code == 1 and "no such user" in err
    assert run("user", "del", "ALICE@example.test")[0] == 0
    assert run("user", "list")[1] == "bob@example.test\n"
    code, _, err = run("user", "del", "alice@example.test")
    assert code == 1 and "no such user" in err


def test_user_quota_is_written_as_dovecot_reads_it(run, config_file):
    config = load(config_file)
    assert run("user", "add", "alice@example.test", "--quota", "1G", "--password-stdin", stdin="pw\n")[0] == 0
    assert read_text(config.users_file).rstrip("\n").endswith("::::::userdb_quota_rule=*:storage=1G")
    assert Directory(config).quota("alice@example.test").storage == 1024**3
    assert run("user", "quota", "ALICE@example.test", "500M") == (
        0, f"storage limit 500M for alice@example.test ({config.users_file})\n", ""
    )
    assert Directory(config).quota("alice@example.test").storage == 500 * 1024**2
    assert passwords.verify(stored_hash(config_file, "alice@example.test"), b"pw")  # the password stays
    code, _, err = run("user", "quota", "alice@example.test", "lots")
    assert code == 1 and "quota: 'lots' is not a size" in err
    code, _, err = run("user", "add", "bob@example.test", "--quota", "1X", "--password-stdin", stdin="pw\n")
    assert code == 1 and "is not a size" in err
    code, _, err = run("user", "quota", "carol@example.test", "1G")
    assert code == 1 and "no such user" in err
    assert run("user", "list")[1] == "alice@example.test\n"


def test_hand_edits_survive_and_bad_lines_are_reported(run, config_file):
    config = load(config_file)
    with open(config.users_file, "w") as f:
        f.write("# managed by hand and by mailsrv\nbroken line\n")
    assert run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")[0] == 0
    text = read_text(config.users_file)
    assert text.startswith("# managed by hand and by mailsrv\nbroken line\nalice@example.test:{ARGON2ID}")
    code, out, err = run("user", "list")
    assert (code, out) == (0, "alice@example.test\n")
    assert f"{config.users_file}:2:" in err


def test_aliases(run, config_file):
    run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    assert run("alias", "add", "Sales@example.test", "alice@example.test", "bob@example.test")[0] == 0
    assert run("alias", "add", "sales@example.test", "carol@other.test", "alice@example.test")[0] == 0
    assert run("alias", "add", "@other.test", "alice@example.test")[0] == 0
    code, out, _ = run("alias", "list")
    assert (code, out) == (
        0,
        "@other.test: alice@example.test\nsales@example.test: alice@example.test, bob@example.test, carol@other.test\n",
    )
    directory = Directory(load(config_file), clock=every_look_fresh())
    assert directory.resolve("sales@example.test") == ["alice@example.test"]
    assert directory.resolve("anyone@other.test") == ["alice@example.test"]
    assert run("alias", "del", "@other.test")[0] == 0
    assert directory.resolve("anyone@other.test") == []
    code, _, err = run("alias", "del", "@other.test")
    assert code == 1 and "no such alias" in err


def test_alias_refusals(run):
    run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    code, _, err = run("alias", "add", "info@example.org", "alice@example.test")
    assert code == 1 and "example.org" in err
    code, _, err = run("alias", "add", "@example.org", "alice@example.test")
    assert code == 1 and "example.org" in err
    code, _, err = run("alias", "add", "alice@example.test", "bob@example.test")
    assert code == 1 and "is a user" in err
    code, _, err = run("alias", "add", "info@example.test", "bob%x@example.test")
    assert code == 1 and "not a plain address" in err
    assert run("alias", "list")[1] == ""


def test_alias_forwarding_to_a_remote_address(run):
    run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    code, _, err = run("alias", "add", "info@example.test", "alice@example.test", "someone@remote.test")
    assert code == 0 and "neither a user" not in err
    assert "info@example.test: alice@example.test, someone@remote.test" in run("alias", "list")[1]


def test_usage_errors_exit_2(run):
    assert run()[0] == 2
    assert run("user")[0] == 2
    assert run("user", "add")[0] == 2
    assert run("alias", "add", "x@example.test")[0] == 2


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "file not found"),
        ("bogus_key = 1\n", "bogus_key: unknown key"),
        ("domains = 3\n", "domains: expected a list of strings"),
    ],
)
def test_config_error_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "bad.toml"
    if content is not None:
        path.write_text(content)
    assert cli.main(["--config", str(path), "user", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and expected in err


def test_concurrent_cli_runs_lose_no_user(config_file):
    """Separate processes, as two admins or scripts would run them."""
    script = (
        "import sys\n"
        "from argon2 import PasswordHasher\n"
        "from argon2.profiles import CHEAPEST\n"
        "from mailsrv.cli.main import main\n"
        "from mailsrv.accounts import passwords\n"
        "passwords.HASHER = PasswordHasher.from_parameters(CHEAPEST)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, "--config", config_file, "user", "add", f"u{n}@example.test", "--password-stdin"],
            stdin=subprocess.PIPE,
            env=env,
        )
        for n in range(6)
    ]
    for proc in procs:
        proc.communicate(b"pw\n", timeout=60)
        assert proc.returncode == 0
    assert sorted(Directory(load(config_file)).users()) == [f"u{n}@example.test" for n in range(6)]


def test_file_errors_exit_1_naming_the_file(run, config_file):
    os.makedirs(load(config_file).users_file)
    code, out, err = run("user", "list")
    assert (code, out, err) == (1, "", f"mailsrv: {load(config_file).users_file}: Is a directory\n")


def test_runs_as_a_module(config_file):
    done = subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", "--config", config_file, "user", "list"],
        capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO), timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# --- which configuration and data dir (issue 6) ------------------------------------


@pytest.fixture
def bare(tmp_path, monkeypatch, capsys):
    """``bare(*args, stdin="")`` -> (exit code, stdout, stderr), with no ``--config``, from *tmp_path*."""
    monkeypatch.chdir(tmp_path)

    def bare(*args, stdin="pw\n"):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli.main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return bare


def test_a_missing_data_dir_is_not_created_without_create(bare, tmp_path):
    """``cd ~ && mailsrv user add dave@... --password-stdin`` made ~/mailsrv-data that no server reads."""
    missing = tmp_path / "mailsrv-data"
    code, out, err = bare("user", "add", "dave@example.test", "--password-stdin")
    assert (code, out) == (1, "")
    assert err == (f"mailsrv: no data dir at {missing} (data_dir of <defaults>); pass --create to make it, "
                   "or name the server's with --config or --data-dir\n")
    code, out, err = bare("user", "list")
    assert (code, out) == (1, "")
    assert err == f"mailsrv: no data dir at {missing} (data_dir of <defaults>); name the server's with --config or --data-dir\n"
    assert bare("alias", "add", "info@example.test", "dave@example.test")[0] == 1
    assert not missing.exists()


def test_create_makes_the_data_dir_and_says_where(bare, tmp_path):
    users_file = tmp_path / "mailsrv-data" / "users"
    assert bare("user", "add", "dave@example.test", "--password-stdin", "--create") == (
        0, f"added dave@example.test ({users_file})\n", ""
    )
    assert os.stat(tmp_path / "mailsrv-data").st_mode & 0o777 == 0o700
    assert bare("user", "list") == (0, "dave@example.test\n", "")


def test_the_search_order_is_option_then_environment_then_system_file(bare, tmp_path, monkeypatch):
    def config_for(name):
        (tmp_path / name).mkdir()
        path = tmp_path / f"{name}.toml"
        path.write_text(f'data_dir = "{tmp_path / name}"\n')
        return str(path)

    system, environment, option = config_for("system"), config_for("environment"), config_for("option")
    monkeypatch.setattr(configuration.loader, "SYSTEM_CONFIG", system)
    assert bare("user", "add", "a@example.test", "--password-stdin")[1] == f"added a@example.test ({tmp_path}/system/users)\n"
    monkeypatch.setenv("MAILSRV_CONFIG", environment)
    assert bare("user", "add", "b@example.test", "--password-stdin")[1] == (
        f"added b@example.test ({tmp_path}/environment/users)\n"
    )
    assert bare("--config", option, "user", "add", "c@example.test", "--password-stdin")[1] == (
        f"added c@example.test ({tmp_path}/option/users)\n"
    )
    assert bare("--data-dir", str(tmp_path / "system"), "user", "list") == (0, "a@example.test\n", "")
    monkeypatch.setenv("MAILSRV_CONFIG", str(tmp_path / "typo.toml"))
    code, _, err = bare("user", "list")
    assert (code, err) == (2, f"mailsrv: {tmp_path}/typo.toml: file not found\n")


def test_every_change_prints_one_line_naming_the_file(run, config_file):
    config = load(config_file)
    run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    assert run("user", "passwd", "Alice@example.test", "--password-stdin", stdin="new\n") == (
        0, f"new password for alice@example.test ({config.users_file})\n", ""
    )
    assert run("alias", "add", "Info@example.test", "ALICE@example.test") == (
        0, f"added info@example.test: alice@example.test ({config.aliases_file})\n", ""
    )
    assert run("alias", "del", "info@example.test") == (0, f"removed info@example.test ({config.aliases_file})\n", "")
    assert run("user", "del", "alice@example.test") == (0, f"removed alice@example.test ({config.users_file})\n", "")


def test_alias_add_warns_of_targets_that_are_neither_user_nor_alias(run, config_file):
    run("user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    code, out, err = run("alias", "add", "info@example.test", "alice@example.test", "bob@example.test")
    assert (code, out) == (0, f"added info@example.test: alice@example.test, bob@example.test ({load(config_file).aliases_file})\n")
    assert err == "mailsrv: warning: bob@example.test is neither a user nor an alias; mail for it is refused until it is one\n"
    assert run("alias", "add", "all@example.test", "info@example.test")[2] == ""


def test_create_makes_nothing_when_the_addition_is_refused(bare, tmp_path):
    code, _, err = bare("user", "add", "dave@remote.test", "--password-stdin", "--create")
    assert code == 1 and "not a local domain" in err
    assert bare("alias", "add", "x@remote.test", "dave@example.test", "--create")[0] == 1
    assert not (tmp_path / "mailsrv-data").exists()


def test_a_data_dir_named_as_an_absolute_path_is_made_without_create(bare, tmp_path, monkeypatch):
    """The contract ``mailsrv --config FILE user add ... --password-stdin`` holds before the server's
    first start: the admin named the dir, nothing depends on where the command runs."""
    named = tmp_path / "named"
    config = tmp_path / "mailsrv.toml"
    config.write_text(f'data_dir = "{named}"\n')
    assert bare("--config", str(config), "user", "add", "a@example.test", "--password-stdin") == (
        0, f"added a@example.test ({named}/users)\n", ""
    )
    other = tmp_path / "other"
    assert bare("--data-dir", str(other), "alias", "add", "info@example.test", "a@example.test")[0] == 0
    assert (other / "aliases").exists()
    monkeypatch.setenv("MAILSRV_CONFIG", str(config))
    shutil.rmtree(named)
    assert bare("user", "add", "b@example.test", "--password-stdin")[0] == 0
    assert bare("user", "list")[1] == "b@example.test\n"


def test_a_relative_data_dir_still_needs_create(bare, tmp_path):
    config = tmp_path / "relative.toml"
    config.write_text('data_dir = "here"\n')
    code, _, err = bare("--config", str(config), "user", "add", "a@example.test", "--password-stdin")
    assert code == 1 and "pass --create" in err
    assert bare("--data-dir", "there", "user", "add", "a@example.test", "--password-stdin")[0] == 1
    assert not (tmp_path / "here").exists() and not (tmp_path / "there").exists()
