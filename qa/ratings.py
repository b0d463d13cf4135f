"""Readers' ratings of answers and sources, kept beside the index, and exported as an evaluation set.

A rating is a thumbs up (+1) or down (-1) on an answer or on one of its sources. It is stored in its
own SQLite file in the index folder (`ratings.sqlite`), keyed by the question as searched and the
target: the answer, or a passage named by its article id and character span. Nothing in it refers to
passage rows or vectors, so it outlives rebuilds and model changes. A new rating of the same target
for the same question replaces the old one.

`export` writes the ratings as a `qa eval` dataset (see `docs/chat.md`, "Ratings").
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from .errors import RatingError
from .hashing import digest
from .schema import Answer, RatedPassage, Rating, RatingsExport, RatingsSummary

RATINGS_FILE = "ratings.sqlite"
EXPORT_FORMAT = "qa-ratings/1"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS ratings (
    query TEXT NOT NULL, target TEXT NOT NULL, article_id TEXT NOT NULL, span_start INTEGER NOT NULL,
    span_end INTEGER NOT NULL, question TEXT NOT NULL, found INTEGER NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)), passages TEXT NOT NULL, rated_at TEXT NOT NULL,
    PRIMARY KEY (query, target, article_id, span_start, span_end)
);
"""


def rating_for(answer: Answer, rating: int, source: int | None = None, now: datetime | None = None) -> Rating:
    """The rating of `answer` (source None) or of its source numbered `source`, +1 helpful or -1 wrong.

    Raises:
        RatingError: the rating is not +1 or -1, or the answer has no source with that number.
    """
    if isinstance(rating, bool) or rating not in (1, -1):
        raise RatingError(f"A rating is +1 (helpful) or -1 (wrong), not {rating!r}.")
    rated_at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    by_number = {s.number: s for s in answer.sources}
    if source is None:
        passages = []
        for number in dict.fromkeys(quote.number for quote in answer.quotes):
            cited = by_number[number]
            passages.append(_passage(cited.hit.citation.article_id, cited.hit.citation.start, cited.hit.citation.end,
                                     tuple(q.text for q in answer.quotes if q.number == number)))
        return Rating(answer.query, answer.question, "answer", answer.found, rating, tuple(passages), rated_at)
    if source not in by_number:
        raise RatingError(f"This answer has no source [{source}]; it has {len(answer.sources)}.")
    cited = by_number[source]
    passage = _passage(cited.hit.citation.article_id, cited.hit.citation.start, cited.hit.citation.end,
                       tuple(q.text for q in cited.highlights))
    return Rating(answer.query, answer.question, "source", answer.found, rating, (passage,), rated_at)


def _passage(article_id: str, start: int, end: int, sentences: tuple[str, ...]) -> RatedPassage:
    return RatedPassage(article_id, start, end, sentences)


class RatingsStore:
    """The ratings file of an index folder; created on the first rating. Safe to share between threads
    and processes (one lock per store, SQLite's write-ahead log and a busy timeout between processes)."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / RATINGS_FILE
        self._lock = threading.Lock()

    @contextmanager
    def _connection(self, write: bool) -> Iterator[sqlite3.Connection]:
        """An open connection in a transaction; any SQLite failure becomes a RatingError that says what to do."""
        with self._lock:
            db = None
            try:
                if write:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, timeout=10.0)
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                with db:
                    yield db
            except (sqlite3.Error, OSError) as error:
                raise RatingError(
                    f"The ratings file {self.path} cannot be {'written' if write else 'read'} ({error}). "
                    "Check that the index folder is writable, or move the file aside to start a new one."
                ) from None
            finally:
                if db is not None:
                    db.close()

    def add(self, rating: Rating) -> None:
        """Store `rating`, replacing an earlier rating of the same target for the same question."""
        rows = [(p.article_id, p.start, p.end) for p in rating.passages] if rating.target == "source" else [("", 0, 0)]
        article_id, start, end = rows[0]
        passages = json.dumps([p.to_json() for p in rating.passages], ensure_ascii=False)
        with self._connection(write=True) as db:
            db.execute(
                "INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rating.query, rating.target, article_id, start, end, rating.question, int(rating.found),
                 rating.rating, passages, rating.rated_at),
            )

    def all(self) -> list[Rating]:
        """Every rating, by question as searched, answers before sources, then article id and span."""
        if not self.path.exists():
            return []
        with self._connection(write=False) as db:
            rows = db.execute(
                "SELECT query, question, target, found, rating, passages, rated_at FROM ratings "
                "ORDER BY query, target, article_id, span_start, span_end"
            ).fetchall()
        try:
            return [
                Rating(query, question, target, bool(found), int(value),
                       tuple(RatedPassage(p["article_id"], int(p["start"]), int(p["end"]), tuple(p["sentences"]))
                             for p in json.loads(passages)), rated_at)
                for query, question, target, found, value, passages, rated_at in rows
            ]
        except (ValueError, KeyError, TypeError) as error:
            raise RatingError(
                f"The ratings file {self.path} holds a malformed rating ({error}); move it aside."
            ) from None

    def summary(self) -> RatingsSummary:
        """How many answers and sources were rated, and how many helpful."""
        if not self.path.exists():
            return RatingsSummary(0, 0, 0, 0)
        with self._connection(write=False) as db:
            counts = dict.fromkeys(("answer", "source"), (0, 0))
            for target, rated, helpful in db.execute(
                "SELECT target, COUNT(*), SUM(rating = 1) FROM ratings GROUP BY target"
            ):
                counts[target] = (int(rated), int(helpful or 0))
        return RatingsSummary(*counts["answer"], *counts["source"])


def export(ratings: list[Rating], folder: Path) -> RatingsExport:
    """Write `ratings` as a `qa eval` dataset in `folder`: `questions.jsonl`, `kept-apart.jsonl` and `meta.json`.

    A question's gold passages are its sources rated helpful and the passages its answer quotes when
    the answer was rated helpful, less any source rated wrong; its `answers` are their highlighted
    sentences, so `qa eval --articles` counts how often the answer quotes one of them. Sources rated
    wrong are its `hard_negatives`. A question without gold passages whose "not found" was rated
    helpful is off-topic (no `answers`); any other one is written to `kept-apart.jsonl`.
    """
    grouped: dict[str, list[Rating]] = {}
    for rating in sorted(ratings, key=lambda r: (r.query, r.target, [_key(p) for p in r.passages])):
        grouped.setdefault(rating.query, []).append(rating)
    kept: list[dict[str, object]] = []
    apart: list[dict[str, object]] = []
    off_topic = 0
    for query, rated in grouped.items():
        answer = next((r for r in rated if r.target == "answer"), None)
        sources = [r for r in rated if r.target == "source"]
        wrong = {_key(r.passages[0]): r.passages[0] for r in sources if r.rating < 0}
        gold: dict[tuple[str, int, int], RatedPassage] = {}
        if answer is not None and answer.rating > 0:
            gold.update((_key(p), p) for p in answer.passages)
        gold.update((_key(r.passages[0]), r.passages[0]) for r in sources if r.rating > 0)
        helpful = [gold[key] for key in sorted(gold) if key not in wrong]
        record: dict[str, object] = {
            "id": "rated-" + digest(query)[:12],
            "question": query,
            "answers": list(dict.fromkeys(s for p in helpful for s in p.sentences)),
            "gold": [p.to_json() for p in helpful],
            "hard_negatives": [wrong[key].to_json() for key in sorted(wrong)],
            "asked": rated[0].question,
            "found": rated[0].found,
            "answer_rating": answer.rating if answer else None,
        }
        if helpful and record["answers"]:
            kept.append(record)
        elif answer is not None and answer.rating > 0 and not answer.found:
            record["answers"] = []
            kept.append(record)
            off_topic += 1
        else:
            apart.append(record)
    meta = {
        "format": EXPORT_FORMAT,
        "questions": len(kept),
        "answerable": len(kept) - off_topic,
        "off_topic": off_topic,
        "kept_apart": len(apart),
        "ratings": len(ratings),
        "files": {"questions.jsonl": "the qa eval questions", "kept-apart.jsonl": "rated, but no passage known to "
                  "answer them and no \"not found\" rated helpful"},
    }
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "questions.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        _write(folder / "kept-apart.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in apart))
        _write(folder / "meta.json", json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    except OSError as error:
        raise RatingError(f"Cannot write the ratings to {folder} ({error.strerror or error}); "
                          "name a folder you can write to.") from None
    return RatingsExport(str(folder), len(kept) - off_topic, off_topic, len(apart))


def _key(passage: RatedPassage) -> tuple[str, int, int]:
    return passage.article_id, passage.start, passage.end


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
