"""Test-session setup shared by every test module, and the shared fixtures.

The fakes themselves (one password checker, the :class:`ServerContext`
builder, string transports) live in ``tests/support.py`` so that
``twisted.trial`` test cases, which cannot take pytest fixtures, import the
same objects; the fixtures below hand them to plain pytest tests.
"""

import os

import pytest
from twisted.logger import formatEvent, globalLogPublisher

from mailsrv import config as configuration
from mailsrv.store import idledb
from support import FakeChecker, make_context


@pytest.fixture(autouse=True, scope="session")
def _scratch_cwd(tmp_path_factory: pytest.TempPathFactory):
    """Run from a scratch directory: trial's ``mktemp()`` makes paths relative to the cwd."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)


@pytest.fixture(autouse=True)
def _no_system_config(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Keep the machine's ``/etc/mailsrv/mailsrv.toml`` and ``$MAILSRV_CONFIG`` out of every test.

    Both the server and the CLI read them when no ``--config`` is given
    (:func:`mailsrv.config.locate`); a test that wants them sets its own.
    """
    monkeypatch.delenv(configuration.CONFIG_ENV, raising=False)
    monkeypatch.setattr(configuration.loader, "SYSTEM_CONFIG", str(tmp_path_factory.getbasetemp() / "no-such.toml"))


@pytest.fixture(autouse=True)
def _no_idle_databases():
    """Close the SQLite connections a test left idle (:mod:`mailsrv.store.idledb`), before its temp dir goes."""
    yield
    idledb.close_all()


@pytest.fixture
def logged():
    """Formatted text of every log event emitted during the test."""
    events: list[str] = []

    def observer(event):
        events.append(formatEvent(event))

    globalLogPublisher.addObserver(observer)
    yield events
    globalLogPublisher.removeObserver(observer)


@pytest.fixture
def checker() -> FakeChecker:
    """alice's password check (see ``support.FakeChecker``)."""
    return FakeChecker()


@pytest.fixture
def context(tmp_path, checker):
    """A server context over a real store in a temp dir, with inline workers."""
    return make_context(configuration.Config(data_dir=str(tmp_path)), checker=checker)
