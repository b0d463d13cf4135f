"""The index folder: a FAISS inner-product index beside an SQLite database.

Layout of the index folder:
- `index.sqlite`: articles, bodies (article texts), passages, a vector cache keyed by
  passage text, and the manifest (format, model, dimension, splitter settings, build time,
  and which FAISS file is current). WAL mode, so readers never wait for a writer.
- `vectors-<generation>.faiss`: inner-product index whose ids are passage rows: exact `IDMap2,Flat`
  below `EXACT_UP_TO` passages, an IVF index above it (see `choose_layout`; the manifest's
  `faiss_index` names the one in use).
- `lexical-<generation>/`: the BM25 segment of the passages that generation added (`.npy` and
  JSON), and `segments.json`, the list of segment folders the current BM25 index is made of (see
  `qa.lexical`); older generations' folders stay while a later list names them.
- `.lock`: held by the one process that writes.

The manifest keeps a SHA-256 of every FAISS and BM25 file in use: a damaged or swapped file is noticed
when it is loaded, and rebuilt from what SQLite holds (vectors, terms) instead of being served.

A write never touches the files a reader uses: the new FAISS file is written under a new
generation name, then one SQLite transaction switches the manifest to it. A process killed at
any moment leaves either the old or the new index, and the vector cache keeps what was already
embedded so the next build resumes without re-embedding it (a sync drops the cached vectors of the
passages it deleted; a full build drops every unused one). Only this module imports faiss.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from .errors import BusyError, ConfigError, StoreError
from .lexical import LexicalIndex, Segment
from .schema import Article, Citation, Filters, Passage, best_first

if TYPE_CHECKING:
    import faiss

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
DATABASE = "index.sqlite"
TIES_SEEN = 8  # a search fetches this many more than asked, so that equal scores at the cut are ordered by row too
_SCHEMA = """
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
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StoredPassage:
    """A passage row as the search needs it."""

    row: int
    body_hash: str
    ordinal: int
    start: int
    end: int
    paragraph: int
    text: str


@dataclass
class Change:
    """Everything one sync writes, applied in one transaction.

    `new_passages[i]` is embedded as `new_vectors[i]` under the cache key `vector_keys[i]`, and
    `new_terms[i]` are its BM25 terms.
    """

    upsert_articles: list[Article] = field(default_factory=list)
    delete_articles: list[str] = field(default_factory=list)
    add_bodies: dict[str, str] = field(default_factory=dict)  # body_hash -> text
    delete_bodies: list[str] = field(default_factory=list)
    new_passages: list[Passage] = field(default_factory=list)
    vector_keys: list[str] = field(default_factory=list)
    new_terms: list[list[str]] = field(default_factory=list)
    new_vectors: Vectors | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    reset: bool = False  # drop everything first (a full rebuild)


Period = tuple[str | None, str | None]  # (first day, last day), ISO; undated articles always pass


class IndexStore(Protocol):
    """What the build and the search need of an index: the verbs every backend offers.

    `Store` (FAISS + SQLite in one folder, the default) and `qa.milvus.MilvusStore` (a Milvus
    collection, embedded via milvus-lite or on a cluster) implement it. Rows are the backend's
    integer passage ids; `where` returns a backend-specific restriction that is falsy when
    nothing can match.
    """

    def writing(self) -> contextlib.AbstractContextManager[None]: ...
    def exists(self) -> bool: ...
    def inspect(self) -> tuple[str, str] | None: ...
    def move_aside(self, kind: str) -> Path: ...
    def damage(self) -> str | None: ...
    def manifest(self) -> dict[str, Any]: ...
    def note(self, key: str, value: Any) -> None: ...
    def article_hashes(self) -> dict[str, tuple[str, str]]: ...
    def body_hashes(self) -> set[str]: ...
    def passage_count(self, body_hashes: Iterable[str]) -> int: ...
    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]: ...
    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None: ...
    def apply(self, change: Change) -> None: ...
    def refit_faiss(self) -> bool: ...
    def where(self, filters: Filters | None, period: Period | None = None) -> Any: ...
    def search(self, query: Vectors, k: int, where: Any = None) -> list[tuple[int, float]]: ...
    def search_terms(self, question: str, k: int, where: Any = None) -> list[tuple[int, float]]: ...
    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]: ...
    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]: ...
    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]: ...
    def dates(self, rows: Iterable[int]) -> dict[int, date]: ...
    def newest_date(self) -> date | None: ...
    def counts(self) -> dict[str, int]: ...
    def article_list(self) -> list[tuple[str, str, str | None]]: ...
    def titles(self, article_ids: Iterable[str]) -> dict[str, str]: ...
    def check(self) -> list[str]: ...
    def close(self) -> None: ...


class Store:
    """Reads and writes one index folder. Cheap to create: nothing is opened until used.

    Readers keep the FAISS index of the generation they loaded until `refresh()` sees a newer
    one, so questions asked during a sync are answered from the previous index.
    """

    def __init__(self, index_dir: Path, faiss_index: str = "auto") -> None:
        self.index_dir = Path(index_dir)
        self.faiss_index_setting = faiss_index  # "auto", "flat" or a factory string (see `choose_layout`)
        self.path = self.index_dir / DATABASE
        self._local = threading.local()
        self._faiss: faiss.Index | None = None
        self._lexical: LexicalIndex | None = None
        self._segments: dict[tuple[str, str], Segment] = {}  # BM25 segments read or written, by (folder, checksums)
        self._generation: int | None = None
        self._reload = threading.Lock()
        self.file_damage: str | None = None  # why the current FAISS or BM25 file had to be rebuilt in memory
        self._sound = False  # the database passed `inspect()` in this process

    # -- connections and manifest -------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        self.index_dir.mkdir(parents=True, exist_ok=True)
        try:
            connection = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.executescript(_SCHEMA)
        except sqlite3.DatabaseError as error:
            raise StoreError(f"The index database {self.path} is damaged ({error}).") from None
        return connection

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def exists(self) -> bool:
        return self.path.is_file()

    def inspect(self) -> tuple[str, str] | None:
        """Why the index database cannot be updated in place, as (kind, reason), or None when it can.

        kind is "damaged" (SQLite's `quick_check` fails, or the file is not a database), "old"
        (another format version or table layout) or "missing" (FAISS files without a database).
        The quick check reads the whole file, so a database that passed is not read again.
        """
        if not self.exists():
            leftovers = sorted(path.name for path in self.index_dir.glob("vectors-*.faiss"))
            return ("missing", f"{self.path} is missing beside {leftovers[-1]}") if leftovers else None
        if self._sound:
            return None
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
        self._sound = True
        return None

    def move_aside(self, kind: str) -> Path:
        """Rename the database and its WAL files to `index.sqlite.<kind>-<UTC time>`: set aside, never deleted."""
        self.close()
        with self._reload:
            self._faiss = self._lexical = self._generation = None
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

    def note(self, key: str, value: Any) -> None:
        """Add one value to the manifest of the current index (e.g. its health figures)."""
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO manifest VALUES (?, ?)", (key, json.dumps(value)))

    # -- writing ------------------------------------------------------------------------

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the index's write lock, or raise BusyError at once if another process holds it."""
        return write_lock(self.index_dir)

    def article_hashes(self) -> dict[str, tuple[str, str]]:
        """article_id -> (record_hash, body_hash) of the indexed articles."""
        rows = self.db.execute("SELECT article_id, record_hash, body_hash FROM articles").fetchall()
        return {article_id: (record, body) for article_id, record, body in rows}

    def body_hashes(self) -> set[str]:
        return {body for (body,) in self.db.execute("SELECT body_hash FROM bodies")}

    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]:
        """Vectors already embedded under these cache keys (by an earlier or interrupted build)."""
        found: dict[str, Vectors] = {}
        for chunk in _chunks(list(dict.fromkeys(keys)), 500):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT vector_key, vector FROM vectors WHERE vector_key IN ({marks})"
            for key, blob in self.db.execute(query, chunk):
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None:
        """Keep freshly embedded vectors at once, so an interrupted build can resume."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR REPLACE INTO vectors (vector_key, vector) VALUES (?, ?)",
                (
                    (key, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
                    for key, vector in zip(keys, vectors, strict=True)
                ),
            )

    def apply(self, change: Change) -> None:
        """Write one sync: a new FAISS generation, then one SQLite transaction that switches to it."""
        db = self.db
        old = self.manifest()
        dimension = int(change.manifest["dimension"])
        generation = self._next_generation(old)
        faiss_name = f"vectors-{generation}.faiss"
        lexical_name = f"lexical-{generation}"
        db.execute("BEGIN IMMEDIATE")
        try:
            if change.reset:
                index = None
                db.execute("DELETE FROM articles")
                db.execute("DELETE FROM bodies")
                db.execute("DELETE FROM passages")
            else:
                index = self._read_faiss(old, db) if old else None
            lexical = LexicalIndex() if change.reset or not old else self._lexical_before(old, db)
            unused = [] if change.reset else _vector_keys(db, change.delete_bodies)
            removed = self._delete(db, change)
            rows = self._insert(db, change)
            total = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
            index, layout = self._updated_faiss(index, old, change, removed, rows, total, dimension)
            if index.ntotal != total:
                raise StoreError(f"internal: FAISS holds {index.ntotal} vectors but SQLite {total} passages")
            lexical = lexical.updated(removed, rows, change.new_terms)
            if len(lexical) != total:
                raise StoreError(f"internal: BM25 holds {len(lexical)} passages but SQLite {total}")
            checksums = {faiss_name: _write_faiss(index, self.index_dir / faiss_name)}
            lexical, written = _write_lexical(lexical, self.index_dir / lexical_name, old.get("checksums") or {})
            checksums.update(written)
            manifest = {
                **change.manifest, "format": FORMAT_VERSION, "generation": generation,
                "faiss": faiss_name, "faiss_index": str(layout), "lexical": lexical_name, "checksums": checksums,
            }
            db.execute("DELETE FROM manifest")
            db.executemany("INSERT INTO manifest VALUES (?, ?)", ((k, json.dumps(v)) for k, v in manifest.items()))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            (self.index_dir / faiss_name).unlink(missing_ok=True)
            shutil.rmtree(self.index_dir / lexical_name, ignore_errors=True)
            raise
        self._remember_segments(lexical, checksums)
        with self._reload:  # what was just written and checksummed: readers here need not read it back
            self._faiss, self._lexical, self._generation, self.file_damage = index, lexical, generation, None
        self._forget_old_files(faiss_name, lexical_name, *lexical.folders)
        with self.db:  # cached vectors no passage uses any more: all after a full build, else the deleted ones
            if change.reset:
                self.db.execute("DELETE FROM vectors WHERE vector_key NOT IN (SELECT vector_key FROM passages)")
            for chunk in _chunks(unused, 500):
                marks = ",".join("?" * len(chunk))
                self.db.execute(
                    f"DELETE FROM vectors WHERE vector_key IN ({marks}) "
                    f"AND vector_key NOT IN (SELECT vector_key FROM passages WHERE vector_key IN ({marks}))",
                    chunk + chunk,
                )

    def _delete(self, db: sqlite3.Connection, change: Change) -> list[int]:
        for chunk in _chunks(change.delete_articles, 500):
            db.execute(f"DELETE FROM articles WHERE article_id IN ({','.join('?' * len(chunk))})", chunk)
        removed: list[int] = []
        for chunk in _chunks(change.delete_bodies, 500):
            marks = ",".join("?" * len(chunk))
            removed += [row for (row,) in db.execute(f"SELECT row FROM passages WHERE body_hash IN ({marks})", chunk)]
            db.execute(f"DELETE FROM passages WHERE body_hash IN ({marks})", chunk)
            db.execute(f"DELETE FROM bodies WHERE body_hash IN ({marks})", chunk)
        return removed

    def _insert(self, db: sqlite3.Connection, change: Change) -> list[int]:
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

    def _next_generation(self, manifest: dict[str, Any]) -> int:
        """One more than the current generation and than any file left by a killed or lost build."""
        found = [int(manifest.get("generation", 0))]
        for path in [*self.index_dir.glob("vectors-*.faiss*"), *self.index_dir.glob("lexical-*")]:
            number = path.name.split("-", 1)[1].split(".", 1)[0]
            found += [int(number)] if number.isdigit() else []
        return max(found) + 1

    def _forget_old_files(self, *current: str) -> None:
        for path in [*self.index_dir.glob("vectors-*.faiss*"), *self.index_dir.glob("lexical-*")]:
            if path.name not in current:
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()

    # -- reading ------------------------------------------------------------------------

    def _read_faiss(self, manifest: dict[str, Any], db: sqlite3.Connection) -> faiss.Index:
        """The FAISS index the manifest names; rebuilt from the vector cache when it is unusable."""
        import faiss

        path = self.index_dir / str(manifest.get("faiss", ""))
        total = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        layout = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        problem = _checksum_problem(self.index_dir, manifest, path.name)
        if problem is None:
            try:
                index = faiss.read_index(str(path))
                if index.ntotal == total and index.d == int(manifest["dimension"]):
                    _set_search(index, layout)
                    return index
                problem = f"it holds {index.ntotal} vectors for {total} passages"
            except (RuntimeError, KeyError, ValueError) as error:
                problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        logger.warning("the FAISS file %s is unusable (%s); rebuilding it from the stored vectors", path, problem)
        self.file_damage = f"the FAISS file {path.name} is unusable ({problem})"
        return self._faiss_from_cache(db, int(manifest["dimension"]), layout)[0]

    def _faiss_from_cache(
        self, db: sqlite3.Connection, dimension: int, layout: FaissLayout
    ) -> tuple[faiss.Index, FaissLayout]:
        """A new index of `layout` (or Flat, when too few passages to train it) holding every passage's
        cached vector: nothing is embedded."""
        total = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]

        def batches() -> Iterator[tuple[npt.NDArray[np.int64], Vectors]]:
            cursor = db.execute(
                "SELECT p.row, v.vector FROM passages p LEFT JOIN vectors v ON v.vector_key = p.vector_key"
            )
            while batch := cursor.fetchmany(10_000):
                if any(blob is None for _, blob in batch):
                    raise StoreError("the index lost vectors of some passages")
                rows = np.asarray([row for row, _ in batch], dtype=np.int64)
                yield rows, np.vstack([np.frombuffer(blob, dtype=np.float32) for _, blob in batch])

        return build_faiss(layout, dimension, total, batches)

    def _updated_faiss(
        self, index: faiss.Index | None, old: dict[str, Any], change: Change, removed: list[int], rows: list[int],
        total: int, dimension: int,
    ) -> tuple[faiss.Index, FaissLayout]:
        """The FAISS index after one change, and its layout.

        Updated in place when it already has the layout chosen for `total` passages and can remove
        ids; otherwise built anew: from the change's vectors after a reset, else from the vector cache.
        """
        layout = feasible_layout(choose_layout(self.faiss_index_setting, total), dimension, total)
        held = FaissLayout.parse(old.get("faiss_index", "Flat"))
        if index is not None and held.factory == layout.factory and (not removed or _removes_in_place(index)):
            if removed:
                index.remove_ids(np.asarray(removed, dtype=np.int64))
            if rows:
                assert change.new_vectors is not None
                index.add_with_ids(change.new_vectors, np.asarray(rows, dtype=np.int64))
            _set_search(index, layout)
            return index, layout
        if index is not None:
            del index
            logger.info("building the FAISS index %s from the vector cache (%d passages)", layout, total)
            return self._faiss_from_cache(self.db, dimension, layout)
        new_rows = np.asarray(rows, dtype=np.int64)
        new_vectors = change.new_vectors if change.new_vectors is not None else np.zeros((0, dimension), np.float32)

        def batches() -> Iterator[tuple[npt.NDArray[np.int64], Vectors]]:
            for start in range(0, len(new_rows), 50_000):
                yield new_rows[start : start + 50_000], new_vectors[start : start + 50_000]

        return build_faiss(layout, dimension, total, batches)

    def refit_faiss(self) -> bool:
        """Rebuild the FAISS index from the vector cache when the setting asks for another layout than
        the current one (e.g. QA_FAISS_INDEX changed): nothing is embedded, the BM25 files are kept.

        Writes a new generation; call it with the write lock held. Returns whether anything changed.
        """
        manifest = self.manifest()
        if not manifest or "faiss" not in manifest:
            return False
        db = self.db
        total = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        dimension = int(manifest["dimension"])
        held = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        layout = feasible_layout(choose_layout(self.faiss_index_setting, total), dimension, total)
        if layout == held:
            return False
        started = time.perf_counter()
        if layout.factory == held.factory:
            index = self._read_faiss(manifest, db)
            _set_search(index, layout)
        else:
            index, layout = self._faiss_from_cache(db, dimension, layout)
        generation = self._next_generation(manifest)
        faiss_name = f"vectors-{generation}.faiss"
        checksum = _write_faiss(index, self.index_dir / faiss_name)
        updates: dict[str, Any] = {"generation": generation, "faiss": faiss_name, "faiss_index": str(layout)}
        if "checksums" in manifest:
            kept = {key: value for key, value in manifest["checksums"].items() if key != manifest["faiss"]}
            updates["checksums"] = {faiss_name: checksum, **kept}
        with db:
            db.execute("BEGIN IMMEDIATE")
            rows = [(key, json.dumps(value)) for key, value in updates.items()]
            db.executemany("INSERT OR REPLACE INTO manifest VALUES (?, ?)", rows)
        self._forget_old_files(faiss_name, str(manifest["lexical"]))
        logger.info("FAISS index %s -> %s in %.1f s (%d passages)", held, layout, time.perf_counter() - started, total)
        return True

    def _current(self) -> tuple[faiss.Index, LexicalIndex]:
        """The indexes of the current generation, reloaded when a sync has switched to a newer one."""
        manifest = self.manifest()
        if not manifest:
            raise StoreError(f"There is no index in {self.index_dir} yet; run `python -m qa index` to build it.")
        generation = int(manifest["generation"])
        with self._reload:
            if self._faiss is None or self._lexical is None or self._generation != generation:
                self.file_damage = None
                self._faiss = self._read_faiss(manifest, self.db)
                self._lexical = self._read_lexical(manifest, self.db)
                self._generation = generation
            return self._faiss, self._lexical

    def faiss_index(self) -> faiss.Index:
        return self._current()[0]

    def damage(self) -> str | None:
        """Why the current FAISS or BM25 file cannot be used as written (it was rebuilt in memory), or None."""
        try:
            self._current()
        except StoreError as error:
            return str(error)
        return self.file_damage

    def lexical_index(self) -> LexicalIndex:
        return self._current()[1]

    def _read_lexical(self, manifest: dict[str, Any], db: sqlite3.Connection) -> LexicalIndex:
        """The BM25 index the manifest names; rebuilt from the stored terms when it is unusable.

        Segments this process has already read or written (same folder, same checksums) are not read again.
        """
        total = db.execute("SELECT COUNT(*) FROM passages").fetchone()[0]
        folder = self.index_dir / str(manifest.get("lexical", ""))
        problem = _checksum_problem(self.index_dir, manifest, folder.name)
        if problem is None:
            try:
                known: dict[str, Segment] = {}
                for name in LexicalIndex.segment_folders(folder):
                    segment = self._segments.get((name, _signature(manifest, name)))
                    if segment is not None:
                        known[name] = segment
                    elif name != folder.name and (problem := _checksum_problem(self.index_dir, manifest, name)):
                        break
                if problem is None:
                    lexical = LexicalIndex.load(folder, known)
                    if len(lexical) == total:
                        self._remember_segments(lexical, manifest.get("checksums") or {})
                        return lexical
                    problem = f"it holds {len(lexical)} passages of {total}"
            except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
                problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        logger.warning("the BM25 index %s is unusable (%s); rebuilding it from the stored terms", folder, problem)
        self.file_damage = self.file_damage or f"the BM25 index {folder.name} is unusable ({problem})"
        return self._lexical_from_terms(db)

    def _lexical_before(self, manifest: dict[str, Any], db: sqlite3.Connection) -> LexicalIndex:
        """The BM25 index of the generation `manifest` names: the loaded one when it is that one."""
        with self._reload:
            if self._lexical is not None and self._generation == int(manifest["generation"]):
                return self._lexical
        return self._read_lexical(manifest, db)

    def _remember_segments(self, lexical: LexicalIndex, checksums: dict[str, str]) -> None:
        """Keep the saved segments of `lexical` for the next load (and forget older ones)."""
        manifest = {"checksums": checksums}
        self._segments = {
            (part.segment.folder, _signature(manifest, part.segment.folder)): part.segment
            for part in lexical.parts if part.segment.folder
        }

    @staticmethod
    def _lexical_from_terms(db: sqlite3.Connection) -> LexicalIndex:
        rows: list[int] = []
        passage_terms: list[list[str]] = []
        for row, words in db.execute("SELECT row, terms FROM passages ORDER BY row"):
            rows.append(row)
            passage_terms.append(words.split())
        return LexicalIndex.build(rows, passage_terms)

    def where(self, filters: Filters | None, period: Period | None = None) -> set[int] | None:
        """The passage rows that pass `filters` and fall in `period` (undated ones always do); None = all."""
        allowed = self.allowed_rows(filters) if filters else None
        if period is not None:
            in_period = self.allowed_rows(Filters(date_from=period[0], date_to=period[1]))
            in_period |= self.allowed_rows(Filters(), undated_only=True)
            allowed = in_period if allowed is None else allowed & in_period
        return allowed

    def search(self, query: Vectors, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(row, inner product) of the `k` nearest passages, best first. `query` is (1, d).

        `allowed` restricts the search to those passage rows, inside FAISS (an ID selector; an IVF index
        probes more lists the fewer rows pass). With an approximate index, a small `allowed` set (up to
        EXACT_SUBSET_MAX rows) is scanned exactly instead: that is as fast, and cannot miss any.
        """
        index = self.faiss_index()
        limit = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
        if limit == 0:
            return []
        query = np.ascontiguousarray(query, dtype=np.float32)
        wanted = min(k + TIES_SEEN, limit)
        with one_thread():
            if allowed is not None and len(allowed) <= _exact_subset_limit(index):
                return best_first(_search_subset(index, query, wanted, allowed), k)
            scores, rows = index.search(query, wanted, params=_search_parameters(index, allowed))
        pairs = [(int(row), float(score)) for row, score in zip(rows[0], scores[0], strict=True) if row >= 0]
        return best_first(pairs, k)

    def search_terms(self, question: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the `k` best passages by shared terms, best first."""
        return self.lexical_index().search(question, k, allowed)

    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]:
        wanted = list(rows)
        found: dict[int, StoredPassage] = {}
        for chunk in _chunks(wanted, 500):
            marks = ",".join("?" * len(chunk))
            columns = 'row, body_hash, ordinal, start, "end", paragraph, text'
            query = f"SELECT {columns} FROM passages WHERE row IN ({marks})"
            for values in self.db.execute(query, chunk):
                found[values[0]] = StoredPassage(*values)
        return found

    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]:
        """body_hash -> a citation stub (passage fields zero) for every article with that body."""
        found: dict[str, list[Citation]] = {}
        for chunk in _chunks(list(set(body_hashes)), 500):
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT body_hash, article_id, title, source, url, date, publisher FROM articles "
                f"WHERE body_hash IN ({marks}) ORDER BY article_id"
            )
            for body, article_id, title, source, url, day, publisher in self.db.execute(query, chunk):
                found.setdefault(body, []).append(
                    Citation(article_id, title, source, url, day, publisher, passage=0, paragraph=0, start=0, end=0)
                )
        return found

    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]:
        """The stored (d,) vector of each passage row that still exists."""
        index = self.faiss_index()
        found: dict[int, Vectors] = {}
        for row in rows:
            with contextlib.suppress(RuntimeError):
                found[row] = index.reconstruct(int(row))
        return found

    def allowed_rows(self, filters: Filters, undated_only: bool = False) -> set[int]:
        """Passage rows of the articles that pass `filters` (or, with `undated_only`, have no date)."""
        clauses: list[str] = ["a.date IS NULL"] if undated_only else []
        values: list[str] = []
        if filters.sources:
            parts = []
            for source in filters.sources:
                parts.append("(lower(a.publisher) = ? OR lower(a.source) = ? OR lower(a.source) LIKE ? ESCAPE '\\')")
                lowered = source.lower().strip("/")
                values += [lowered, lowered, _like_prefix(lowered) + "/%"]
            clauses.append("(" + " OR ".join(parts) + ")")
        if filters.articles:
            parts = []
            for wanted in filters.articles:
                parts.append("(a.article_id = ? OR lower(a.title) LIKE ? ESCAPE '\\')")
                values += [wanted, "%" + _like_prefix(wanted.lower()) + "%"]
            clauses.append("(" + " OR ".join(parts) + ")")
        if filters.date_from:
            clauses.append("a.date >= ?")
            values.append(filters.date_from)
        if filters.date_to:
            clauses.append("a.date <= ?")
            values.append(filters.date_to)
        where = " AND ".join(clauses) or "1"
        query = f"SELECT p.row FROM passages p JOIN articles a ON a.body_hash = p.body_hash WHERE {where}"
        return {row for (row,) in self.db.execute(query, values)}

    def newest_date(self) -> date | None:
        """The newest article date: "today" for relative dates in questions."""
        (newest,) = self.db.execute("SELECT MAX(date) FROM articles").fetchone()
        return date.fromisoformat(newest) if newest else None

    def dates(self, rows: Iterable[int]) -> dict[int, date]:
        """The newest date among the articles of each passage row, where one is known."""
        found: dict[int, date] = {}
        for chunk in _chunks(list(rows), 500):
            marks = ",".join("?" * len(chunk))
            query = (
                "SELECT p.row, MAX(a.date) FROM passages p JOIN articles a ON a.body_hash = p.body_hash "
                f"WHERE p.row IN ({marks}) AND a.date IS NOT NULL GROUP BY p.row"
            )
            found.update((row, date.fromisoformat(day)) for row, day in self.db.execute(query, chunk))
        return found

    def passage_count(self, body_hashes: Iterable[str]) -> int:
        """How many passages the bodies hold."""
        wanted = set(body_hashes)
        if not wanted:
            return 0
        rows = self.db.execute("SELECT body_hash, COUNT(*) FROM passages GROUP BY body_hash").fetchall()
        return sum(count for body, count in rows if body in wanted)

    def body(self, body_hash: str) -> str | None:
        row = self.db.execute("SELECT text FROM bodies WHERE body_hash = ?", (body_hash,)).fetchone()
        return row[0] if row else None

    def counts(self) -> dict[str, int]:
        db = self.db
        return {
            "articles": db.execute("SELECT COUNT(*) FROM articles").fetchone()[0],
            "bodies": db.execute("SELECT COUNT(*) FROM bodies").fetchone()[0],
            "passages": db.execute("SELECT COUNT(*) FROM passages").fetchone()[0],
        }

    def titles(self, article_ids: Iterable[str]) -> dict[str, str]:
        """article_id -> title of those of `article_ids` that are indexed."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(set(article_ids)), 500):
            marks = ",".join("?" * len(chunk))
            query = f"SELECT article_id, title FROM articles WHERE article_id IN ({marks})"
            found.update(self.db.execute(query, chunk))
        return found

    def article_list(self) -> list[tuple[str, str, str | None]]:
        """(article_id, title, date) of every indexed article, by id."""
        return list(self.db.execute("SELECT article_id, title, date FROM articles ORDER BY article_id"))

    def snapshot(self) -> Change:
        """The whole index as one Change (reset) that rebuilds it in another store without embedding."""
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
            manifest={key: manifest[key] for key in ("model", "dimension", "shape", "built_at") if key in manifest},
            reset=True,
        )

    def check(self) -> list[str]:
        """Problems found in the index (empty when consistent).

        Checks the manifest, the files against their checksums, FAISS ids against SQLite passage rows
        and FAISS vectors against the stored ones, the BM25 folder's rows, and every passage's span
        against its stored article text. Writes nothing, and creates no index where there is none.
        """
        if not self.exists():
            return [f"there is no index in {self.index_dir}"]
        try:
            return self._check()
        except (StoreError, sqlite3.DatabaseError) as error:
            return [str(error)]

    def _check(self) -> list[str]:
        import faiss

        manifest = self.manifest()
        if not manifest:
            return [f"there is no index in {self.index_dir}"]
        keys = ("format", "model", "dimension", "generation", "faiss", "lexical")
        problems = [f"the manifest has no {key!r}" for key in keys if key not in manifest]
        if problems:
            return problems
        if manifest["format"] != FORMAT_VERSION:
            problems.append(f"the index format is {manifest['format']}, this version reads {FORMAT_VERSION}")
        names = [manifest["faiss"], manifest["lexical"]]
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            names += [name for name in LexicalIndex.segment_folders(self.index_dir / manifest["lexical"])
                      if name != manifest["lexical"]]
        for name in names:
            if problem := _checksum_problem(self.index_dir, manifest, name):
                problems.append(problem)
        db = self.db
        rows = {row for (row,) in db.execute("SELECT row FROM passages")}
        try:
            index = faiss.read_index(str(self.index_dir / manifest["faiss"]))
        except RuntimeError as error:
            problems.append(f"the FAISS file {manifest['faiss']} cannot be read ({str(error).splitlines()[0]})")
        else:
            problems += self._check_vectors(index, rows, int(manifest["dimension"]))
        try:
            lexical = LexicalIndex.load(self.index_dir / manifest["lexical"])
            if len(lexical) != len(rows) or set(lexical.rows.tolist()) != rows:
                problems.append(f"the BM25 index {manifest['lexical']} holds other passages than SQLite")
        except (OSError, ValueError, KeyError, TypeError, EOFError) as error:
            problems.append(f"the BM25 index {manifest['lexical']} cannot be read ({str(error).splitlines()[0]})")
        orphans = db.execute("SELECT COUNT(*) FROM articles WHERE body_hash NOT IN (SELECT body_hash FROM bodies)")
        if count := orphans.fetchone()[0]:
            problems.append(f"{count} articles have no stored text")
        bad_spans = 0
        for body_hash, text in db.execute("SELECT body_hash, text FROM bodies"):
            spans = db.execute('SELECT start, "end", text FROM passages WHERE body_hash = ?', (body_hash,))
            bad_spans += sum(1 for start, end, passage in spans if text[start:end] != passage)
        if bad_spans:
            problems.append(f"{bad_spans} passages do not match their span of the article text")
        return problems

    def _check_vectors(self, index: faiss.Index, rows: set[int], dimension: int) -> list[str]:
        """FAISS ids against passage rows, and each FAISS vector against the one stored for its passage."""
        if index.d != dimension:
            return [f"the FAISS index has dimension {index.d}, the manifest says {dimension}"]
        ids = _faiss_ids(index)
        if ids is None:
            return ["the FAISS file is not an id-mapped index"]
        if set(ids.tolist()) != rows or len(ids) != len(rows):
            return [
                f"FAISS ids and SQLite passages differ: {len(set(ids.tolist()) - rows)} ids without a passage, "
                f"{len(rows - set(ids.tolist()))} passages without a vector"
            ]
        stored = dict(self.db.execute(
            "SELECT p.row, v.vector FROM passages p LEFT JOIN vectors v ON v.vector_key = p.vector_key"
        ))
        if lost := sum(1 for blob in stored.values() if blob is None):
            return [f"{lost} passages have no stored vector to rebuild FAISS from"]
        differ = 0
        for start in range(0, len(ids), 50_000):
            chunk = ids[start : start + 50_000]
            held = index.reconstruct_batch(chunk)
            expected = np.vstack([np.frombuffer(stored[row], dtype=np.float32) for row in chunk.tolist()])
            differ += int((~np.isclose(expected, held, atol=1e-6).all(axis=1)).sum())
        return [f"{differ} FAISS vectors differ from the stored ones"] if differ else []


@contextlib.contextmanager
def write_lock(folder: Path) -> Iterator[None]:
    """Hold the write lock of the index in `folder`, or raise BusyError at once if another process holds it.

    The holder's pid is written over the lock file in place (padded, never truncated first), so
    a second process reading it finds the previous or the current holder, not an empty file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ".lock"
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as error:
        if error.errno != errno.ELOOP:
            raise
        raise StoreError(
            f"The lock file {path} is a symbolic link, which the index never follows. "
            "Delete that link, then run this again."
        ) from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"The index in {folder} is being updated by {_lock_holder(descriptor)}. "
                "Wait for that build to finish, then run this again."
            ) from None
        os.pwrite(descriptor, f"process {os.getpid()}".ljust(32).encode(), 0)
        yield
    finally:
        os.close(descriptor)


def _vector_keys(db: sqlite3.Connection, body_hashes: list[str]) -> list[str]:
    """The vector cache keys of the passages of these bodies."""
    keys: set[str] = set()
    for chunk in _chunks(body_hashes, 500):
        marks = ",".join("?" * len(chunk))
        query = f"SELECT vector_key FROM passages WHERE body_hash IN ({marks})"
        keys.update(key for (key,) in db.execute(query, chunk))
    return sorted(keys)


# -- FAISS index layouts ----------------------------------------------------------------

EXACT_UP_TO = 100_000  # "auto": exact search below this many passages (bench.ann: where Flat gets slow)
IVF_SCAN = 32_000  # "auto": nprobe makes an IVF search scan about this many vectors ...
IVF_PROBE_SHARE = 32  # ... and at least 1/32 of the lists (bench.ann: recall@10 0.98 at 1M)
TRAIN_PER_LIST = 64  # IVF training sample: this many vectors per list (k-means cost grows with it)
EXACT_SUBSET_MAX = 5_000  # a filter leaving at most this many rows is scanned exactly, whatever the index


@dataclass(frozen=True)
class FaissLayout:
    """Which FAISS index holds the vectors: a factory string and the approximate index's search parameters.

    `factory` is a FAISS index factory string ("Flat", "IVF1024,Flat", "HNSW32"); `search` is in
    FAISS's ParameterSpace syntax ("nprobe=32", "efSearch=128"), empty for defaults. Written as text
    (`str()`, `parse`) in the manifest's `faiss_index` and in QA_FAISS_INDEX: "IVF1024,Flat nprobe=32".
    """

    factory: str
    search: str = ""

    def __str__(self) -> str:
        return f"{self.factory} {self.search}".strip()

    @classmethod
    def parse(cls, text: str) -> FaissLayout:
        factory, _, search = str(text).strip().partition(" ")
        return cls("Flat" if factory.lower() in ("flat", "idmap2,flat") else factory, search.strip())

    @property
    def exact(self) -> bool:
        return self.factory == "Flat"


FLAT = FaissLayout("Flat")


def choose_layout(setting: str, passages: int) -> FaissLayout:
    """The FAISS layout for `passages` vectors under the `faiss_index` setting.

    "auto": exact `Flat` below EXACT_UP_TO passages; from there `IVF<nlist>,Flat`, nlist the power of
    two nearest to sqrt(passages), probing enough lists to scan about IVF_SCAN vectors and at least
    1/IVF_PROBE_SHARE of the lists. "flat": always exact. Anything else is a factory string with
    optional search parameters, used as given.
    """
    if setting.strip().lower() == "auto":
        if passages < EXACT_UP_TO:
            return FLAT
        lists = 2 ** round(math.log2(math.sqrt(passages)))
        probes = max(math.ceil(lists / IVF_PROBE_SHARE), math.ceil(lists * IVF_SCAN / passages))
        return FaissLayout(f"IVF{lists},Flat", f"nprobe={min(lists, probes)}")
    return FaissLayout.parse(setting)


def feasible_layout(layout: FaissLayout, dimension: int, passages: int) -> FaissLayout:
    """`layout`, or Flat when there are fewer passages than it needs to be trained (an IVF's lists)."""
    if layout.exact:
        return layout
    needed = _training_size(new_faiss(layout, dimension))[0]
    if passages < needed:
        logger.info("%d passages are too few to train %s; using exact search", passages, layout)
        return FLAT
    return layout


def new_faiss(layout: FaissLayout, dimension: int) -> faiss.Index:
    """An empty inner-product index of `layout` whose ids are passage rows.

    Flat and other non-IVF indexes are wrapped in `IDMap2`; an IVF index keeps the ids itself, with a
    hash table from id to vector (so `reconstruct(row)` and `remove_ids` work).

    Raises:
        ConfigError: the factory string or its search parameters are not valid for FAISS.
    """
    import faiss

    if layout.exact:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    try:
        index = faiss.index_factory(dimension, layout.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ConfigError(
            f"QA_FAISS_INDEX={str(layout)!r} is not a FAISS index factory string ({_first_line(error)}); "
            "use auto, flat, or e.g. 'IVF1024,Flat nprobe=32' or 'HNSW32 efSearch=128'."
        ) from None
    if isinstance(index, faiss.IndexIVF):
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    else:
        index = faiss.IndexIDMap2(index)
    _set_search(index, layout)
    return index


def build_faiss(
    layout: FaissLayout, dimension: int, total: int,
    batches: Callable[[], Iterator[tuple[npt.NDArray[np.int64], Vectors]]],
) -> tuple[faiss.Index, FaissLayout]:
    """An index of `layout` (Flat when too few vectors to train it) holding the `total` vectors that
    `batches()` yields as (rows, (n, d) float32) chunks. An index that needs training is trained on an
    evenly spaced sample (one more pass over `batches()`)."""
    layout = feasible_layout(layout, dimension, total)
    index = new_faiss(layout, dimension)
    if not index.is_trained:
        started = time.perf_counter()
        size = min(total, _training_size(index)[1])
        step = max(1, total // size)
        seen = 0
        sample: list[Vectors] = []
        for _, vectors in batches():
            sample.append(vectors[(-seen) % step :: step])
            seen += len(vectors)
        index.train(np.ascontiguousarray(np.vstack(sample)[:size]))
        logger.info("trained %s on %d vectors in %.1f s", layout, size, time.perf_counter() - started)
    for rows, vectors in batches():
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), rows)
    return index, layout


def _training_size(index: faiss.Index) -> tuple[int, int]:
    """(fewest, best) vectors to train `index` on: one per IVF list at least, TRAIN_PER_LIST per list."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return (1, 50_000) if not index.is_trained else (0, 0)
    return ivf.nlist, ivf.nlist * TRAIN_PER_LIST


def _set_search(index: faiss.Index, layout: FaissLayout) -> None:
    """Set the layout's search parameters (nprobe, efSearch) on `index`; they are saved in its file too."""
    import faiss

    if layout.search:
        try:
            faiss.ParameterSpace().set_index_parameters(index, layout.search)
        except RuntimeError as error:
            raise ConfigError(
                f"QA_FAISS_INDEX={str(layout)!r}: {layout.search!r} does not fit this index ({_first_line(error)})."
            ) from None


def _removes_in_place(index: faiss.Index) -> bool:
    """Whether `remove_ids` keeps ids and vectors together (Flat and IVF); HNSW is rebuilt instead."""
    import faiss

    return isinstance(index, faiss.IndexIVF) or _is_exact(index)


def _is_exact(index: faiss.Index) -> bool:
    """Whether `index` is `IDMap2,Flat`: exact search."""
    import faiss

    return hasattr(index, "id_map") and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)


def _faiss_ids(index: faiss.Index) -> npt.NDArray[np.int64] | None:
    """Every id (passage row) in `index`, or None when it keeps no ids."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    if isinstance(index, faiss.IndexIVF) and index.direct_map.type == faiss.DirectMap.Hashtable:
        lists = [get_invlist(index.invlists, number)[0] for number in range(index.nlist)]
        return np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return None


def _exact_subset_limit(index: faiss.Index) -> int:
    """Up to this many allowed rows, a filtered search on an approximate index scans them exactly (0 for an
    exact index). bench.ann at 1M: 1% allowed costs the same both ways, 10% six times more scanned exactly."""
    return 0 if _is_exact(index) else EXACT_SUBSET_MAX


def _search_parameters(index: faiss.Index, allowed: set[int] | None) -> faiss.SearchParameters | None:
    """Search parameters restricting `index` to `allowed` rows; an IVF search probes more lists the
    fewer rows pass, so that about as many allowed vectors are scanned as without a filter."""
    import faiss

    if allowed is None:
        return None
    selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
    if isinstance(index, faiss.IndexIVF):
        probes = min(index.nlist, math.ceil(index.nprobe * index.ntotal / max(1, len(allowed))))
        return faiss.SearchParametersIVF(sel=selector, nprobe=probes)
    return faiss.SearchParameters(sel=selector)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run FAISS on one thread in this block (the setting is per calling thread, so other threads keep theirs).

    A search is one query: FAISS's extra threads only wait for it, and on a busy machine that
    waiting made an exact search at 50k vectors 5 times slower (bench.ann)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def _search_subset(index: faiss.Index, query: Vectors, k: int, allowed: set[int]) -> list[tuple[int, float]]:
    """Exact search among `allowed` rows, with their vectors read back from `index` and scored by FAISS
    (numpy's BLAS threads wait for each other like FAISS's)."""
    import faiss

    rows = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
    try:
        vectors = index.reconstruct_batch(rows)
    except RuntimeError:  # a row removed since `allowed` was read: look the others up one by one
        found = []
        for row in rows.tolist():
            with contextlib.suppress(RuntimeError):
                found.append((row, index.reconstruct(row)))
        if not found:
            return []
        rows = np.asarray([row for row, _ in found], dtype=np.int64)
        vectors = np.vstack([vector for _, vector in found])
    subset = faiss.IndexFlatIP(index.d)
    subset.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, found = subset.search(query, min(k, len(rows)))
    return [(int(rows[at]), float(score)) for at, score in zip(found[0], scores[0], strict=True) if at >= 0]


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _lock_holder(descriptor: int) -> str:
    """Who holds the lock, as written in the lock file; a brand-new file may need a moment."""
    for _ in range(20):
        holder = os.pread(descriptor, 64, 0).decode(errors="replace").strip()
        if holder:
            return holder
        time.sleep(0.025)
    return "another process"


def _write_faiss(index: faiss.Index, path: Path) -> str:
    """Write to `path.tmp`, flush it to disk, then rename: the file is whole or absent. Returns its SHA-256."""
    import faiss

    temporary = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(temporary))
    checksum = _synced_digest(temporary)
    os.replace(temporary, path)
    return checksum


def _write_lexical(
    lexical: LexicalIndex, folder: Path, kept: dict[str, str]
) -> tuple[LexicalIndex, dict[str, str]]:
    """Write the new BM25 segment and the segment list to `folder.tmp`, then rename: the folder is whole or
    absent. The saved segments it lists are not written again; their checksums are taken from `kept` (the
    previous manifest's). Returns the index as saved and "folder/file" -> SHA-256 of every file it uses."""
    temporary = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    lexical.save(temporary)
    checksums = {f"{folder.name}/{path.name}": _synced_digest(path) for path in sorted(temporary.iterdir())}
    shutil.rmtree(folder, ignore_errors=True)  # a leftover of a killed build: never the current generation
    os.replace(temporary, folder)
    saved = lexical.saved_as(folder.name)
    for name in saved.folders:
        if name != folder.name:
            checksums.update((key, value) for key, value in kept.items() if key.startswith(name + "/"))
    return saved, checksums


def _signature(manifest: dict[str, Any], name: str) -> str:
    """The checksums of the files of folder `name`, as one string: what identifies its content."""
    kept: dict[str, str] = manifest.get("checksums") or {}
    return ",".join(f"{key}={value}" for key, value in sorted(kept.items()) if key.startswith(name + "/"))


def _synced_digest(path: Path) -> str:
    """Flush `path` to disk and return its SHA-256 (hex)."""
    with open(path, "rb") as handle:
        checksum = hashlib.file_digest(handle, "sha256").hexdigest()
        os.fsync(handle.fileno())
    return checksum


def _checksum_problem(index_dir: Path, manifest: dict[str, Any], name: str) -> str | None:
    """What is wrong with the file or folder `name` against the manifest's checksums, or None.

    None too for an index written before checksums were kept.
    """
    kept: dict[str, str] = manifest.get("checksums") or {}
    expected = {key: value for key, value in kept.items() if key == name or key.startswith(name + "/")}
    if not kept:
        return None
    path = index_dir / name
    found = sorted(path.iterdir()) if path.is_dir() else [path] if path.exists() else []
    names = {item.relative_to(index_dir).as_posix() for item in found}
    if missing := sorted(set(expected) - names):
        return f"{missing[0]} is missing"
    if extra := sorted(names - set(expected)):
        return f"{extra[0]} is not part of this index"
    for key, checksum in expected.items():
        try:
            with open(index_dir / key, "rb") as handle:
                if hashlib.file_digest(handle, "sha256").hexdigest() != checksum:
                    return f"{key} does not match its checksum"
        except OSError as error:
            return f"{key} cannot be read ({error.strerror or error})"
    return None


def _expected_columns() -> dict[str, list[str]]:
    """table -> column names, as `_SCHEMA` creates them."""
    memory = sqlite3.connect(":memory:")
    memory.executescript(_SCHEMA)
    tables = [name for (name,) in memory.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    columns = {table: [row[1] for row in memory.execute(f"PRAGMA table_info({table})")] for table in tables}
    memory.close()
    return columns


def _like_prefix(text: str) -> str:
    """`text` with LIKE's wildcards escaped."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
