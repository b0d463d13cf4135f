"""Sentence vectors beside the index: each sentence of each passage, embedded with its article's title.

The short answer quotes sentences, and a sentence read after its headline ("Ad sales boost Time
Warner profit. Its profits were buoyed by ...") matches a paraphrased question much better than the
sentence alone. Embedding the sentences of ten candidate passages at question time would take most
of a second on a small CPU, so a sync embeds them once, after the passages; passages it has not
covered (an index built before, or by another process) are embedded on first use and kept.

The vectors live in their own SQLite file in the index folder, keyed by a digest of the model,
title and passage text. It is a cache of one model's vectors (another model's are dropped when it
opens): deleting it loses nothing (it is refilled), and it is not part of the index's crash-safe
generations.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embed import Embedder, Vectors
from .hashing import digest
from .passages import Splitter

logger = logging.getLogger(__name__)
SENTENCES_FILE = "sentences.sqlite"
CHUNK = 256  # passages embedded and written per transaction at build time
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sentences (
    passage_key TEXT PRIMARY KEY, article_id TEXT NOT NULL, spans BLOB NOT NULL, vectors BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS sentences_by_article ON sentences (article_id);
CREATE TABLE IF NOT EXISTS about (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True)
class PassageSentences:
    """The sentences of one passage: `spans[i]` are offsets in the passage text, `vectors[i]` its vector."""

    spans: tuple[tuple[int, int], ...]
    vectors: Vectors  # (len(spans), d) float32, L2-normalized (stored as float16)


@dataclass(frozen=True)
class PassageText:
    """What a passage's sentence vectors are made from."""

    title: str
    text: str
    article_id: str  # the article whose title it was embedded with


def with_title(title: str, sentence: str) -> str:
    """The text embedded for a sentence: its article's title, then the sentence."""
    return f"{title}. {sentence}" if title else sentence


class SentenceVectors:
    """The sentence vectors of an index folder, embedded with `embedder` on demand.

    Args:
        folder: the index folder (the file is created on first write).
        embedder: the encoder of answer sentences (`Embedder.answers`).
        model: the model's identity (`Embedder.identity`), part of every key.
    """

    def __init__(self, folder: Path, embedder: Embedder, model: str) -> None:
        self.path = Path(folder) / SENTENCES_FILE
        self.embedder = embedder
        self.model = model
        self._splitter = Splitter()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._unavailable = False  # the file could not be opened: vectors are kept in memory only
        self._memory: dict[str, PassageSentences] = {}

    def get(self, passages: Sequence[PassageText]) -> list[PassageSentences]:
        """The sentences of each passage, in order; those not stored yet are embedded and stored."""
        keys = [self._key(p) for p in passages]
        found = self._read(keys)
        missing = {key: p for key, p in zip(keys, passages, strict=True) if key not in found}
        if missing:
            found.update(self._embed(list(missing.items())))
        return [found[key] for key in keys]

    def fill(self, passages: Sequence[PassageText]) -> int:
        """Embed and store the sentences of the passages not stored yet; returns how many passages that was."""
        unique = list({self._key(p): p for p in passages}.items())
        embedded = 0
        for at in range(0, len(unique), CHUNK):
            chunk = unique[at : at + CHUNK]
            known = self._read([key for key, _ in chunk])
            todo = [(key, p) for key, p in chunk if key not in known]
            self._embed(todo)
            embedded += len(todo)
        return embedded

    def store(self, passages: Sequence[PassageText], found: Sequence[PassageSentences]) -> None:
        """Keep sentence vectors made elsewhere (copies of another index's) for `passages`, in order."""
        rows = [
            (self._key(p), p.article_id, np.asarray(f.spans, dtype=np.int32).reshape(-1, 2).tobytes(),
             f.vectors.astype(np.float16).tobytes())
            for p, f in zip(passages, found, strict=True)
        ]
        self._write(rows, {row[0]: f for row, f in zip(rows, found, strict=True)})

    def count(self) -> int:
        """How many passages have their sentence vectors stored."""
        with self._lock:
            db = self._connect()
            return int(db.execute("SELECT COUNT(*) FROM sentences").fetchone()[0]) if db is not None else 0

    def article_ids(self) -> set[str]:
        """The articles whose passages have sentence vectors stored (under their id)."""
        with self._lock:
            db = self._connect()
            return {row[0] for row in db.execute("SELECT DISTINCT article_id FROM sentences")} if db else set()

    def forget(self, article_ids: Iterable[str] | None = None, keep: Iterable[str] | None = None) -> None:
        """Forget the sentences of `article_ids`, and of every article not in `keep` (when given)."""
        with self._lock:
            db = self._connect()
            if db is None:
                return
            gone = set(article_ids or ())
            if keep is not None:
                stored = {article for (article,) in db.execute("SELECT DISTINCT article_id FROM sentences")}
                gone |= stored - set(keep)
            ordered = sorted(gone)
            with db:
                for at in range(0, len(ordered), 500):
                    chunk = ordered[at : at + 500]
                    db.execute(f"DELETE FROM sentences WHERE article_id IN ({','.join('?' * len(chunk))})", chunk)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def _key(self, passage: PassageText) -> str:
        return digest(f"{self.model}\x1f{passage.title}\x1f{passage.text}")

    def _split(self, text: str) -> tuple[tuple[int, int], ...]:
        with self._lock:
            return tuple((span.start, span.end) for span in self._splitter.sentences(text))

    def _embed(self, todo: list[tuple[str, PassageText]]) -> dict[str, PassageSentences]:
        if not todo:
            return {}
        spans = [self._split(p.text) for _, p in todo]
        texts = [with_title(p.title, p.text[a:b]) for (_, p), found in zip(todo, spans, strict=True) for a, b in found]
        vectors = self.embedder.encode_sentences(texts).astype(np.float16)
        made: dict[str, PassageSentences] = {}
        rows = []
        at = 0
        for (key, passage), found in zip(todo, spans, strict=True):
            own = vectors[at : at + len(found)]
            at += len(found)
            made[key] = PassageSentences(found, own.astype(np.float32))
            span_blob = np.asarray(found, dtype=np.int32).reshape(-1, 2).tobytes()
            rows.append((key, passage.article_id, span_blob, own.tobytes()))
        self._write(rows, made)
        return made

    def _read(self, keys: list[str]) -> dict[str, PassageSentences]:
        found: dict[str, PassageSentences] = {}
        with self._lock:
            for key in keys:
                if key in self._memory:
                    found[key] = self._memory[key]
            db = self._connect()
            wanted = [key for key in dict.fromkeys(keys) if key not in found]
            if db is None or not wanted:
                return found
            for at in range(0, len(wanted), 500):
                chunk = wanted[at : at + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT passage_key, spans, vectors FROM sentences WHERE passage_key IN ({marks})"
                for key, span_blob, vector_blob in db.execute(query, chunk):
                    spans = np.frombuffer(span_blob, dtype=np.int32).reshape(-1, 2)
                    vectors = np.frombuffer(vector_blob, dtype=np.float16).reshape(len(spans), -1)
                    found[key] = PassageSentences(
                        tuple((int(a), int(b)) for a, b in spans), vectors.astype(np.float32)
                    )
        return found

    def _write(self, rows: list[tuple[str, str, bytes, bytes]], made: dict[str, PassageSentences]) -> None:
        with self._lock:
            db = self._connect()
            if db is None:
                self._memory.update(made)
                return
            try:
                with db:
                    db.executemany(
                        "INSERT OR REPLACE INTO sentences (passage_key, article_id, spans, vectors) "
                        "VALUES (?, ?, ?, ?)",
                        rows,
                    )
            except sqlite3.Error as error:  # a read-only or full disk: keep them for this process
                logger.warning("sentence vectors kept in memory only (%s)", error)
                self._memory.update(made)

    def _connect(self) -> sqlite3.Connection | None:
        """The cache database, created on first use; None when the folder cannot hold it."""
        if self._db is None and not self._unavailable:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                with db:
                    stored = db.execute("SELECT value FROM about WHERE key = 'model'").fetchone()
                    if stored is None or stored[0] != self.model:  # vectors of another model: of no use
                        db.execute("DELETE FROM sentences")
                        db.execute("INSERT OR REPLACE INTO about (key, value) VALUES ('model', ?)", (self.model,))
                self._db = db
            except (sqlite3.Error, OSError) as error:
                logger.warning("cannot open %s (%s); sentence vectors are kept in memory", self.path, error)
                self._unavailable = True
        return self._db
