"""The SQLite catalog of an index folder (`index.sqlite`): articles, their texts, passages, the vector
cache keyed by passage text, and the manifest. WAL mode, so readers never wait for a writer.

Each thread has its own connection. The write methods run inside the caller's transaction
(`BEGIN IMMEDIATE` ... `COMMIT` on `db`), so one sync is one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..errors import StoreError
from ..schema import Article, Citation, Passage
from .contract import FORMAT_VERSION, Change, StoredPassage, Vectors, chunks
from .restriction import Restriction, Test, escape_like

DATABASE = "index.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS manifest (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS articles (
    article_id TEXT PRIMARY KEY, record_hash TEXT NOT NULL, body_hash TEXT NOT NULL,
    title TEXT NOT NULL, source TEXT NOT NULL, url TEXT, date TEXT, author TEXT, publisher TEXT);
CREATE INDEX IF NOT EXISTS articles_body ON articles (body_hash);
CREATE INDEX IF NOT EXISTS articles_date ON articles (date);
CREATE TABLE IF NOT EXISTS bodies (body_hash TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS passages (
    row INTEGER PRIMARY KEY, body_hash TEXT NOT NULL, ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, paragraph INTEGER NOT NULL,
    text TEXT NOT NULL, vector_key TEXT NOT NULL, terms TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS passages_body ON passages (body_hash);
CREATE INDEX IF NOT EXISTS passages_vector ON passages (vector_key);
CREATE TABLE IF NOT EXISTS vectors (vector_key TEXT PRIMARY KEY, vector BLOB NOT NULL);
"""
COLUMNS = {"article_id": "a.article_id", "title": "lower(a.title)", "source": "lower(a.source)",
           "publisher": "lower(a.publisher)", "date": "a.date"}  # what a `Test` of each field compares


class Catalog:
    """The SQLite database at `path`; nothing is opened until used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []  # every thread's connection, for `close`
        self._closes = 0  # a thread's connection from before the last `close` is opened again
        self._lock = threading.Lock()

    # -- connections and manifest ---------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(SCHEMA)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"The index database {self.path} is damaged ({error}).") from None
        return connection

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        local = self._local
        connection = getattr(local, "connection", None)
        if connection is None or getattr(local, "closes", None) != self._closes:
            connection = local.connection = self._connect()
            local.closes = self._closes
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        """Close every thread's connection (the last one checkpoints the WAL into the database file)."""
        with self._lock:
            opened, self._opened = self._opened, []
            self._closes += 1
        for connection in opened:
            connection.close()
        self._local.connection = None

    def exists(self) -> bool:
        return self.path.is_file()

    def problem(self) -> tuple[str, str] | None:
        """Why the database cannot be updated in place, as ("damaged" or "old", reason), or None.

        Runs SQLite's `quick_check` (which reads the whole file), then compares the tables and the format.
        """
        try:
            (verdict,) = self.db.execute("PRAGMA quick_check(1)").fetchone()
            if verdict != "ok":
                return "damaged", f"the index database {self.path} is damaged ({verdict})"
            for table, columns in _expected_columns().items():
                found = [row[1] for row in self.db.execute(f"PRAGMA table_info({table})")]
                if found != columns:
                    return "old", f"the index database {self.path} is from another version (table {table} differs)"
            version = self.manifest().get("format", FORMAT_VERSION)
        except StoreError as error:
            return "damaged", str(error).rstrip(".")
        except sqlite3.DatabaseError as error:
            return "damaged", f"the index database {self.path} is damaged ({error})"
        if version != FORMAT_VERSION:
            return "old", f"the index is in format {version}; this version reads format {FORMAT_VERSION}"
        return None

    def move_aside(self, kind: str) -> Path:
        """Rename the database and its WAL files to `index.sqlite.<kind>-<UTC time>`: set aside, never deleted."""
        self.close()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for suffix in ("-wal", "-shm", ""):
            source = self.path.with_name(DATABASE + suffix)
            if source.exists():
                os.replace(source, source.with_name(f"{source.name}.{kind}-{stamp}"))
        return self.path.with_name(f"{DATABASE}.{kind}-{stamp}")

    def manifest(self) -> dict[str, Any]:
        """The stored manifest; empty when nothing was built yet."""
        try:
            rows = self.db.execute("SELECT key, value FROM manifest").fetchall()
        except sqlite3.DatabaseError as error:
            raise StoreError(f"The index database {self.path} is damaged ({error}).") from None
        return {key: json.loads(value) for key, value in rows}

    def set_manifest(self, values: dict[str, Any], replace: bool = False) -> None:
        """Write `values` into the manifest (all of it, with `replace`), inside the caller's transaction."""
        if replace:
            self.db.execute("DELETE FROM manifest")
        rows = ((key, json.dumps(value)) for key, value in values.items())
        self.db.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?)", rows)

    # -- what the build compares and writes -------------------------------------------------

    def article_hashes(self) -> dict[str, tuple[str, str]]:
        """article_id -> (record_hash, body_hash) of the indexed articles."""
        rows = self.db.execute("SELECT article_id, record_hash, body_hash FROM articles").fetchall()
        return {article_id: (record, body) for article_id, record, body in rows}

    def body_hashes(self) -> set[str]:
        return {body for (body,) in self.db.execute("SELECT body_hash FROM bodies")}

    def cached_vectors(self, keys: Iterable[str]) -> dict[str, Vectors]:
        """Vectors already embedded under these cache keys (by an earlier or interrupted build)."""
        found: dict[str, Vectors] = {}
        for chunk in chunks(list(dict.fromkeys(keys)), 500):
            query = f"SELECT vector_key, vector FROM vectors WHERE vector_key IN ({_marks(chunk)})"
            for key, blob in self.db.execute(query, chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def cache_vectors(self, keys: Iterable[str], vectors: Vectors) -> None:
        """Keep freshly embedded vectors at once, in their own transaction, so an interrupted build can resume."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (vector_key, vector) VALUES (?, ?)",
                (
                    (key, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
                    for key, vector in zip(keys, vectors, strict=True)
                ),
            )

    def clear(self) -> None:
        """Delete every article, text and passage (the vector cache stays)."""
        for table in ("articles", "bodies", "passages"):
            self.db.execute(f"DELETE FROM {table}")

    def delete(self, change: Change) -> list[int]:
        """Delete the change's articles and bodies with their passages; returns the passage rows deleted."""
        db = self.db
        for chunk in chunks(change.delete_articles, 500):
            db.execute(f"DELETE FROM articles WHERE article_id IN ({_marks(chunk)})", chunk)
        removed: list[int] = []
        for chunk in chunks(change.delete_bodies, 500):
            marks = _marks(chunk)
            removed += [row for (row,) in db.execute(f"SELECT row FROM passages WHERE body_hash IN ({marks})", chunk)]
            db.execute(f"DELETE FROM passages WHERE body_hash IN ({marks})", chunk)
            db.execute(f"DELETE FROM bodies WHERE body_hash IN ({marks})", chunk)
        return removed

    def insert(self, change: Change) -> list[int]:
        """Insert the change's articles, bodies and passages; returns the new passages' rows, in order."""
        db = self.db
        db.executemany(
            "INSERT OR REPLACE INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (a.article_id, a.record_hash, a.body_hash, a.title, a.source, a.url, a.date, a.author, a.publisher)
                for a in change.upsert_articles
            ),
        )
        db.executemany("INSERT OR REPLACE INTO bodies VALUES (?, ?)", change.add_bodies.items())
        if not change.new_passages:
            return []
        first = (db.execute("SELECT MAX(row) FROM passages").fetchone()[0] or 0) + 1
        rows = list(range(first, first + len(change.new_passages)))
        db.executemany(
            'INSERT INTO passages (row, body_hash, ordinal, start, "end", paragraph, text, vector_key, terms) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (row, p.body_hash, p.ordinal, p.start, p.end, p.paragraph, p.text, key, " ".join(words))
                for row, p, key, words in zip(
                    rows, change.new_passages, change.vector_keys, change.new_terms, strict=True
                )
            ),
        )
        return rows

    def vector_keys(self, body_hashes: list[str]) -> list[str]:
        """The vector cache keys of the passages of these bodies."""
        keys: set[str] = set()
        for chunk in chunks(body_hashes, 500):
            query = f"SELECT vector_key FROM passages WHERE body_hash IN ({_marks(chunk)})"
            keys.update(key for (key,) in self.db.execute(query, chunk))
        return sorted(keys)

    def prune_vectors(self, unused: list[str], everything: bool = False) -> None:
        """Drop cached vectors no passage uses any more: those of `unused` keys, or all of them (`everything`)."""
        with self.db:
            if everything:
                self.db.execute("DELETE FROM vectors WHERE vector_key NOT IN (SELECT vector_key FROM passages)")
            for chunk in chunks(unused, 500):
                marks = _marks(chunk)
                self.db.execute(
                    f"DELETE FROM vectors WHERE vector_key IN ({marks}) "
                    f"AND vector_key NOT IN (SELECT vector_key FROM passages WHERE vector_key IN ({marks}))",
                    chunk + chunk,
                )

    def vector_batches(self) -> Iterator[tuple[npt.NDArray[np.int64], Vectors]]:
        """Every passage's (row, cached vector), in chunks of 10,000, as (rows, (n, d) float32)."""
        cursor = self.db.execute(
            "SELECT p.row, v.vector FROM passages p LEFT JOIN vectors v ON v.vector_key = p.vector_key"
        )
        while batch := cursor.fetchmany(10_000):
            if any(blob is None for _, blob in batch):
                raise StoreError("the index lost vectors of some passages")
            rows = np.asarray([row for row, _ in batch], dtype=np.int64)
            yield rows, np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in batch])

    def body_vector_batches(self) -> Iterator[tuple[list[str], Vectors]]:
        """Every passage's (body_hash, cached vector), in chunks of 10,000, as (body hashes, (n, d) float32)."""
        cursor = self.db.execute(
            "SELECT p.body_hash, v.vector FROM passages p LEFT JOIN vectors v ON v.vector_key = p.vector_key"
        )
        while batch := cursor.fetchmany(10_000):
            if any(blob is None for _, blob in batch):
                raise StoreError("the index lost vectors of some passages")
            yield [body for body, _ in batch], np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in batch])

    def terms(self) -> tuple[list[int], list[list[str]]]:
        """Every passage's row and BM25 terms, by row."""
        rows: list[int] = []
        passage_terms: list[list[str]] = []
        for row, words in self.db.execute("SELECT row, terms FROM passages ORDER BY row"):
            rows.append(row)
            passage_terms.append(words.split())
        return rows, passage_terms

    # -- what the search reads ----------------------------------------------------------------

    def rows(self, restriction: Restriction) -> set[int]:
        """The passage rows of the articles that pass `restriction`."""
        values: list[str] = []

        def rendered(test: Test) -> str:
            column = COLUMNS[test.field]
            if test.op == "missing":
                return f"{column} IS NULL"
            if test.op in ("starts_with", "contains"):
                values.append(("%" if test.op == "contains" else "") + escape_like(test.value) + "%")
                return f"{column} LIKE ? ESCAPE '\\'"
            values.append(test.value)
            return f"{column} {dict(equals='=', on_or_after='>=', on_or_before='<=')[test.op]} ?"

        where = " AND ".join(
            "(" + " OR ".join("(" + " AND ".join(rendered(test) for test in tests) + ")" for tests in clause) + ")"
            for clause in restriction.clauses
        ) or "1"
        query = f"SELECT p.row FROM passages p JOIN articles a ON a.body_hash = p.body_hash WHERE {where}"
        return {row for (row,) in self.db.execute(query, values)}

    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]:
        found: dict[int, StoredPassage] = {}
        for chunk in chunks(list(rows), 500):
            columns = 'row, body_hash, ordinal, start, "end", paragraph, text'
            for values in self.db.execute(f"SELECT {columns} FROM passages WHERE row IN ({_marks(chunk)})", chunk):
                found[values[0]] = StoredPassage(*values)
        return found

    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]:
        """body_hash -> a citation stub (passage fields zero) for every article with that body."""
        found: dict[str, list[Citation]] = {}
        for chunk in chunks(list(set(body_hashes)), 500):
            query = (
                "SELECT body_hash, article_id, title, source, url, date, publisher FROM articles "
                f"WHERE body_hash IN ({_marks(chunk)}) ORDER BY article_id"
            )
            for body, article_id, title, source, url, day, publisher in self.db.execute(query, chunk):
                found.setdefault(body, []).append(
                    Citation(article_id, title, source, url, day, publisher, passage=0, paragraph=0, start=0, end=0)
                )
        return found

    def dates(self, rows: Iterable[int]) -> dict[int, date]:
        """The newest date among the articles of each passage row, where one is known."""
        found: dict[int, date] = {}
        for chunk in chunks(list(rows), 500):
            query = (
                "SELECT p.row, MAX(a.date) FROM passages p JOIN articles a ON a.body_hash = p.body_hash "
                f"WHERE p.row IN ({_marks(chunk)}) AND a.date IS NOT NULL GROUP BY p.row"
            )
            found.update((row, date.fromisoformat(day)) for row, day in self.db.execute(query, chunk))
        return found

    def newest_date(self) -> date | None:
        """The newest article date: "today" for relative dates in questions."""
        (newest,) = self.db.execute("SELECT MAX(date) FROM articles").fetchone()
        return date.fromisoformat(newest) if newest else None

    # -- what the interfaces show ---------------------------------------------------------------

    def passage_count(self, body_hashes: Iterable[str]) -> int:
        """How many passages the bodies hold."""
        query = "SELECT COUNT(*) FROM passages WHERE body_hash IN ({})"
        return sum(self.db.execute(query.format(_marks(chunk)), chunk).fetchone()[0]
                   for chunk in chunks(sorted(set(body_hashes)), 500))

    def passage_total(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]

    def counts(self) -> dict[str, int]:
        return {
            table: self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("articles", "bodies", "passages")
        }

    def titles(self, article_ids: Iterable[str]) -> dict[str, str]:
        """article_id -> title of those of `article_ids` that are indexed."""
        found: dict[str, str] = {}
        for chunk in chunks(list(set(article_ids)), 500):
            query = f"SELECT article_id, title FROM articles WHERE article_id IN ({_marks(chunk)})"
            found.update(self.db.execute(query, chunk))
        return found

    def article_list(self) -> list[tuple[str, str, str | None]]:
        """(article_id, title, date) of every indexed article, by id."""
        return list(self.db.execute("SELECT article_id, title, date FROM articles ORDER BY article_id"))

    def snapshot(self) -> Change:
        """Everything as one Change (reset) that rebuilds the index in another store without embedding."""
        db = self.db
        manifest = self.manifest()
        bodies = dict(db.execute("SELECT body_hash, text FROM bodies"))
        articles = [
            Article(article_id, title, bodies[body], source, url, day, author, publisher)
            for article_id, body, title, source, url, day, author, publisher in db.execute(
                "SELECT article_id, body_hash, title, source, url, date, author, publisher FROM articles"
            )
            if body in bodies
        ]
        rows = db.execute(
            'SELECT p.body_hash, p.ordinal, p.start, p."end", p.paragraph, p.text, p.vector_key, p.terms, v.vector '
            "FROM passages p JOIN vectors v ON v.vector_key = p.vector_key ORDER BY p.row"
        ).fetchall()
        return Change(
            upsert_articles=articles,
            add_bodies=bodies,
            new_passages=[Passage(*row[:6]) for row in rows],
            vector_keys=[row[6] for row in rows],
            new_terms=[row[7].split() for row in rows],
            new_vectors=np.vstack([np.frombuffer(row[8], dtype=np.float32) for row in rows])
            if rows
            else np.zeros((0, int(manifest.get("dimension", 0))), dtype=np.float32),
            manifest={
                key: manifest[key] for key in ("model", "dimension", "shape", "built_at", "encoder") if key in manifest
            },
            reset=True,
        )


def _marks(values: list[Any]) -> str:
    return ",".join("?" * len(values))


def _expected_columns() -> dict[str, list[str]]:
    """table -> column names, as `SCHEMA` creates them."""
    memory = sqlite3.connect(":memory:")
    memory.executescript(SCHEMA)
    tables = [name for (name,) in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {table: [row[1] for row in memory.execute(f"PRAGMA table_info({table})")] for table in tables}
    memory.close()
    return columns
