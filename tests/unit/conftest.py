"""Fixtures shared by the unit tests of the ``mailsrv`` command (test_cli*.py)."""

from __future__ import annotations

import io
import sys

import pytest

from mailsrv.cli import main as cli


@pytest.fixture
def config_file(tmp_path):
    """A configuration whose data dir exists, as a started server's does."""
    path = tmp_path / "mailsrv.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\ndomains = ["example.test", "Other.Test"]\n')
    (tmp_path / "data").mkdir()
    return str(path)


@pytest.fixture
def run(config_file, monkeypatch, capsys):
    """``run(*args, stdin="")`` -> (exit code, stdout, stderr)."""

    def run(*args, stdin=""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = cli.main(["--config", config_file, *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run
