"""The idle SQLite connections kept between jobs (:mod:`mailsrv.store.idledb`)."""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing

from twisted.trial import unittest

from mailsrv.store import idledb


class IdleConnections(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.mkdir(self.dir)
        self.opened: list[sqlite3.Connection] = []
        self.addCleanup(idledb.close_all)

    def path(self, name: str = "a.sqlite") -> str:
        return os.path.join(self.dir, name)

    def opener(self, path: str):
        def open_new() -> sqlite3.Connection:
            db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            db.execute("CREATE TABLE IF NOT EXISTS t (x)")
            self.opened.append(db)
            return db
        return open_new

    def use(self, path: str, generation: int = 0) -> sqlite3.Connection:
        db, token = idledb.take(path, generation, self.opener(path))
        db.execute("SELECT count(*) FROM t").fetchone()
        idledb.give_back(db, token)
        return db

    def test_the_next_job_on_the_file_takes_the_connection_back(self) -> None:
        first = self.use(self.path())
        self.assertIs(self.use(self.path()), first)
        self.assertEqual(len(self.opened), 1)

    def test_another_file_gets_its_own(self) -> None:
        self.assertIsNot(self.use(self.path("a.sqlite")), self.use(self.path("b.sqlite")))

    def test_a_new_generation_is_opened_anew(self) -> None:
        first = self.use(self.path())
        self.assertIsNot(self.use(self.path(), generation=1), first)

    def test_another_file_at_the_path_is_opened_anew(self) -> None:
        path = self.path()
        first = self.use(path)
        other = self.path("other.sqlite")
        with closing(sqlite3.connect(other)) as db:
            db.execute("CREATE TABLE t (x)")
        os.replace(other, path)  # another process moved a corrupt file aside and started anew
        self.assertIsNot(self.use(path), first)

    def test_at_most_max_idle_are_kept_the_oldest_closed(self) -> None:
        dbs = [self.use(self.path(f"{n}.sqlite")) for n in range(idledb.MAX_IDLE + 1)]
        with self.assertRaises(sqlite3.ProgrammingError):  # closed
            dbs[0].execute("SELECT 1")
        for db in dbs[1:]:
            db.execute("SELECT 1")

    def test_a_connection_in_a_transaction_is_not_kept(self) -> None:
        path = self.path()
        db, token = idledb.take(path, 0, self.opener(path))
        db.execute("BEGIN")
        idledb.give_back(db, token)
        with self.assertRaises(sqlite3.ProgrammingError):
            db.execute("SELECT 1")
