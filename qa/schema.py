"""The plain data that flows between the modules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from .errors import QuestionError
from .hashing import digest


@dataclass(frozen=True)
class Article:
    """One news article as read from the articles folder.

    `text` is the body only (no title, no metadata lines); passage spans index into it.
    """

    article_id: str
    title: str
    text: str
    source: str  # the file, relative to the articles folder
    url: str | None = None
    date: str | None = None  # ISO 8601 (YYYY-MM-DD) when known
    author: str | None = None
    publisher: str | None = None  # the outlet, from a `source:` field

    @cached_property
    def body_hash(self) -> str:
        """Identifies the body text: identical bodies share one set of passages."""
        return digest(self.text)

    @cached_property
    def record_hash(self) -> str:
        """Changes whenever anything of the article changes (text or metadata)."""
        parts = [self.title, self.text, self.source, self.url, self.date, self.author, self.publisher]
        return digest("\x1f".join(part or "" for part in parts))


@dataclass(frozen=True)
class Passage:
    """A window of whole sentences of one article body: `body[start:end] == text`."""

    body_hash: str
    ordinal: int
    start: int
    end: int
    paragraph: int  # 0-based paragraph of the body where the passage starts
    text: str


@dataclass(frozen=True)
class Citation:
    """Where a passage comes from, with enough to check it in the article."""

    article_id: str
    title: str
    source: str
    url: str | None
    date: str | None
    publisher: str | None
    passage: int  # ordinal of the passage within the article
    paragraph: int
    start: int
    end: int


@dataclass(frozen=True)
class Hit:
    """One retrieved passage, best first in a result list."""

    rank: int
    score: float
    text: str
    citation: Citation
    also_in: tuple[Citation, ...] = field(default=())  # identical copies in other articles

    def to_json(self) -> dict[str, object]:
        cited = self.citation
        return {
            "rank": self.rank,
            "score": round(self.score, 6),
            "text": self.text,
            "article_id": cited.article_id,
            "title": cited.title,
            "source": cited.source,
            "url": cited.url,
            "date": cited.date,
            "passage": cited.passage,
            "paragraph": cited.paragraph,
            "start": cited.start,
            "end": cited.end,
            "also_in": [
                {"article_id": c.article_id, "title": c.title, "source": c.source, "url": c.url, "date": c.date}
                for c in self.also_in
            ],
        }


@dataclass(frozen=True)
class Filters:
    """Which articles a search may return. Empty fields do not restrict.

    sources: publishers (the `source:` field) or source files/folders, case-insensitive.
    articles: article ids, or words of the title (case-insensitive).
    date_from, date_to: inclusive ISO dates; articles without a date are left out when set.
    """

    sources: tuple[str, ...] = ()
    articles: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None

    def __post_init__(self) -> None:
        for name in ("date_from", "date_to"):
            value = getattr(self, name)
            if value is not None and not _is_iso_date(value):
                raise QuestionError(f"{name} must be a date written YYYY-MM-DD (got {value!r}).")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise QuestionError(f"date_from {self.date_from} is after date_to {self.date_to}.")

    def __bool__(self) -> bool:
        return bool(self.sources or self.articles or self.date_from or self.date_to)


def best_first(pairs: Iterable[tuple[int, float]], k: int | None = None) -> list[tuple[int, float]]:
    """(row, score) pairs by score, highest first, equal scores by row, lowest first: the same question
    always gives the same order. At most `k` pairs when `k` is given."""
    ranked = sorted(pairs, key=lambda pair: (-pair[1], pair[0]))
    return ranked if k is None else ranked[:k]


def _is_iso_date(value: str) -> bool:
    from datetime import date

    try:
        date.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return len(value) == 10
