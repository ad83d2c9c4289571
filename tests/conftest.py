"""Test-session setup shared by every test module."""

import os

import pytest


@pytest.fixture(autouse=True, scope="session")
def _scratch_cwd(tmp_path_factory: pytest.TempPathFactory):
    """Run from a scratch directory: trial's ``mktemp()`` makes paths relative to the cwd."""
    old = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(old)
