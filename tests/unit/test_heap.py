"""The glibc malloc settings made at start-up (:mod:`mailsrv.heap`)."""

from __future__ import annotations

import ctypes

import pytest

from mailsrv import heap


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return 1


@pytest.fixture
def libc(monkeypatch: pytest.MonkeyPatch) -> FakeLibc:
    fake = FakeLibc()
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: fake)
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    return fake


def test_it_fixes_the_mmap_threshold_and_caps_the_arenas(libc: FakeLibc) -> None:
    heap.tune()
    assert libc.calls == [(-3, heap.MMAP_THRESHOLD), (-8, heap.ARENA_MAX)]


def test_the_admins_own_tunables_win(libc: FakeLibc, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    heap.tune()
    assert libc.calls == [(-3, heap.MMAP_THRESHOLD)]


def test_without_glibc_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: object())  # no mallopt
    heap.tune()


def test_the_real_mallopt_takes_them() -> None:
    libc = ctypes.CDLL(None)
    assert libc.mallopt(-3, heap.MMAP_THRESHOLD) == 1
