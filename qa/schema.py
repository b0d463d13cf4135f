"""The plain data that flows between the modules."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from .errors import QuestionError
from .hashing import digest


@dataclass(frozen=True, slots=True)
class Article:
    """One news article as read from the articles folder.

    `text` is the body only (no title, no metadata lines); passage spans index into it. Slots, not a
    dict per article: a long-lived library keeps one for every article of the folder.
    """

    article_id: str
    title: str
    text: str
    source: str  # the file, relative to the articles folder
    url: str | None = None
    date: str | None = None  # ISO 8601 (YYYY-MM-DD) when known
    author: str | None = None
    publisher: str | None = None  # the outlet, from a `source:` field
    _body_hash: str | None = field(default=None, init=False, repr=False, compare=False)
    _record_hash: str | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def body_hash(self) -> str:
        """Identifies the body text: identical bodies share one set of passages."""
        if self._body_hash is None:
            object.__setattr__(self, "_body_hash", digest(self.text))
        return self._body_hash  # type: ignore[return-value]

    @property
    def record_hash(self) -> str:
        """Changes whenever anything of the article changes (text or metadata)."""
        if self._record_hash is None:
            parts = [self.title, self.text, self.source, self.url, self.date, self.author, self.publisher]
            object.__setattr__(self, "_record_hash", digest("\x1f".join(part or "" for part in parts)))
        return self._record_hash  # type: ignore[return-value]

    @property
    def has_body(self) -> bool:
        """False for a copy made by `without_body` (an article read from a file always has a body)."""
        return bool(self.text)

    def without_body(self) -> Article:
        """This article with its hashes but not its body: what a long-lived reader keeps of an unchanged file."""
        kept = replace(self, text="")
        object.__setattr__(kept, "_body_hash", self.body_hash)
        object.__setattr__(kept, "_record_hash", self.record_hash)
        return kept


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
class Quote:
    """One sentence of a passage, verbatim: `hit.text[start:end] == text`.

    `start`/`end` are offsets in the passage; add `hit.citation.start` for offsets in the article.
    """

    number: int  # the source it comes from, as in the `[n]` marker
    text: str
    start: int
    end: int
    score: float  # its share (0-1) of the probability that the candidates hold the answer (qa.scoring)
    match: float  # cosine similarity of "title. sentence" to the question


@dataclass(frozen=True)
class Source:
    """A numbered source: the hit, and the sentences of it to highlight.

    `highlights` are the sentences the short answer quotes from it, or else its best sentence.
    """

    number: int
    hit: Hit
    highlights: tuple[Quote, ...]
    relevance: float  # the best `score` among its sentences
    weak: bool  # not quoted in the answer, and nothing was found or its relevance is below `qa.answer.WEAK_SHARE`

    @property
    def support(self) -> Quote | None:
        """The sentence the title link scrolls to."""
        return self.highlights[0] if self.highlights else None


@dataclass(frozen=True)
class Answer:
    """What the chat, the command line and the API show for one question."""

    question: str  # as asked
    query: str  # what was searched: the question, joined to earlier ones for a follow-up
    found: bool
    best: float  # similarity of the closest sentence to the question, compared with `threshold`
    threshold: float
    quotes: tuple[Quote, ...]  # the short answer, best first; empty when not found
    sources: tuple[Source, ...]
    seconds: float = 0.0
    unknown: tuple[str, ...] = ()  # names no article contains, years no retrieved passage mentions

    @property
    def follow_up(self) -> bool:
        return self.query != self.question

    @property
    def article_ids(self) -> frozenset[str]:
        """Every article the sources cite, their identical copies (`also_in`) included."""
        return frozenset(
            cited.article_id for source in self.sources for cited in (source.hit.citation, *source.hit.also_in)
        )

    def to_json(self) -> dict[str, object]:
        """The answer as plain data: quotes with their source numbers, sources as hits."""
        return {
            "question": self.question,
            "query": self.query,
            "found": self.found,
            "similarity": round(self.best, 4),
            "threshold": self.threshold,
            "unknown": list(self.unknown),
            "quotes": [
                {"source": q.number, "text": q.text, "start": q.start, "end": q.end, "score": round(q.score, 4)}
                for q in self.quotes
            ],
            "sources": [
                {**s.hit.to_json(), "number": s.number, "relevance": round(s.relevance, 4), "weak": s.weak}
                for s in self.sources
            ],
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class TimelineEntry:
    """One sentence of a story's timeline, verbatim, and the articles that carry it.

    `citation.start`/`end` are the sentence's character span in its article, `citation.paragraph` the
    paragraph holding it; `also_in` cite the same or a nearly identical sentence in other articles
    (each with its own span), oldest first.
    """

    text: str
    citation: Citation  # the earliest article carrying the sentence
    match: float  # cosine similarity of "title. sentence" to the topic (the answer's "not found" measure)
    also_in: tuple[Citation, ...] = ()

    @property
    def date(self) -> str | None:
        return self.citation.date

    def to_json(self) -> dict[str, object]:
        return {"date": self.date, "text": self.text, "match": round(self.match, 4), **_cited(self.citation),
                "also_in": [_cited(other) for other in self.also_in]}


@dataclass(frozen=True)
class Timeline:
    """A story as it unfolded: one quoted sentence per entry, dated entries oldest first, undated apart."""

    topic: str  # what was searched
    threshold: float  # the similarity an entry's sentence reaches at least (`qa.answer.NOT_FOUND_THRESHOLD`)
    best: float  # similarity of the closest sentence considered, shown or not
    dated: tuple[TimelineEntry, ...]  # by date, then title, article id and offset
    undated: tuple[TimelineEntry, ...]  # by title, article id and offset
    omitted: int = 0  # entries that reached the threshold but were beyond the limit (the least similar)
    seconds: float = 0.0

    @property
    def found(self) -> bool:
        return bool(self.dated or self.undated)

    def to_json(self) -> dict[str, object]:
        return {
            "topic": self.topic, "found": self.found, "threshold": self.threshold, "similarity": round(self.best, 4),
            "dated": [entry.to_json() for entry in self.dated],
            "undated": [entry.to_json() for entry in self.undated],
            "omitted": self.omitted, "seconds": round(self.seconds, 3),
        }


def _cited(citation: Citation) -> dict[str, object]:
    return {
        "article_id": citation.article_id, "title": citation.title, "source": citation.source, "url": citation.url,
        "date": citation.date, "publisher": citation.publisher, "passage": citation.passage,
        "paragraph": citation.paragraph, "start": citation.start, "end": citation.end,
    }


@dataclass(frozen=True)
class Related:
    """An article close to another one (`Library.related`), with what a link to it needs.

    similarity: cosine of the two articles' vectors, each the normalized mean of its passage vectors.
    """

    article_id: str
    title: str
    date: str | None  # ISO 8601 (YYYY-MM-DD) when known
    url: str | None
    source: str  # the file, relative to the articles folder
    publisher: str | None
    similarity: float

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "similarity": round(self.similarity, 4)}


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


@dataclass(frozen=True)
class Problem:
    """A file, or a record in one, that was skipped or read with a caveat."""

    source: str
    reason: str
    skipped: bool = True

    def __str__(self) -> str:
        return f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    passages_added: int = 0
    passages_removed: int = 0
    passages_embedded: int = 0
    passages_cached: int = 0  # vectors found already embedded (an interrupted build, or the same text elsewhere)
    passages_total: int = 0
    seconds: float = 0.0
    rebuilt_because: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        """One line for people."""
        line = (
            f"{self.added} added, {self.updated} updated, {self.removed} removed, {self.unchanged} unchanged; "
            f"{self.passages_embedded} passages embedded"
            + (f" ({self.passages_cached} more were already embedded)" if self.passages_cached else "")
            + f", {self.passages_total} in the index; {self.seconds:.1f} s"
        )
        if self.rebuilt_because:
            line = f"Full rebuild ({self.rebuilt_because}): {line}"
        skipped = sum(1 for problem in self.problems if problem.skipped)
        if skipped:
            line += f"; {skipped} file(s) skipped"
        return line


@dataclass(frozen=True)
class EncoderPaths:
    """Which path encodes what; "pending" until the first text of that kind is encoded.

    passages: "torch-fp32", "torch-bf16" or "onnx" (builds); questions: "torch", "onnx" or "onnx-int8".
    notes: why a requested or automatic fast path is not in use, for people.
    """

    passages: str
    questions: str
    notes: tuple[str, ...] = ()

    def summary(self) -> str:
        line = f"passages {self.passages}, questions {self.questions}"
        return f"{line} ({'; '.join(self.notes)})" if self.notes else line


@dataclass(frozen=True)
class EncoderPlan:
    """How an index's passage vectors are made: decided once, on its first build, and kept in its manifest.

    passages: "torch-fp32", "torch-bf16" or "onnx" ("onnx+torch-fp32" when later syncs used another
    path). reason: why, for people. versions: the libraries that computed them.
    """

    passages: str
    reason: str
    versions: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, value: object) -> EncoderPlan | None:
        """The plan a manifest holds; None when it holds none (or something else)."""
        if not isinstance(value, dict) or not isinstance(value.get("passages"), str):
            return None
        return cls(str(value["passages"]), str(value.get("reason", "")), dict(value.get("versions") or {}))

    def after(self, earlier: EncoderPlan | None) -> EncoderPlan:
        """The plan to record for an index whose older passages were made by `earlier` and new ones by this."""
        if earlier is None:
            return self
        if self.passages in earlier.passages.split("+"):
            return earlier
        return replace(
            self, passages=f"{earlier.passages}+{self.passages}", reason=f"{earlier.reason}; then {self.reason}"
        )

    def summary(self) -> str:
        return f"{self.passages} ({self.reason})" if self.reason else self.passages


@dataclass(frozen=True)
class HeadlineCheck:
    """The index's self-check (see `qa.health`): its articles searched by their own headline.

    recall_at_1, recall_at_5: share (0-1) of the sampled articles found first, and in the top 5.
    checked: (article_id, rank) of the sample, oldest check first; rank 1 first, 5 in the top 5, 0 neither.
    """

    recall_at_1: float
    recall_at_5: float
    articles: int
    checked: tuple[tuple[str, int], ...] = ()

    @classmethod
    def from_json(cls, value: object) -> HeadlineCheck | None:
        """The figures a manifest holds (`{"recall@1", "recall@5", "articles", "checked"}`); None without."""
        if not isinstance(value, dict):
            return None
        checked = tuple((str(article_id), int(rank)) for article_id, rank in value.get("checked") or ())
        return cls(float(value.get("recall@1", 0.0)), float(value.get("recall@5", 0.0)),
                   int(value.get("articles", 0)), checked)


@dataclass(frozen=True)
class Status:
    """What the index holds and how it was made, for the index panel and `qa index`."""

    articles: int
    bodies: int  # distinct article texts
    passages: int
    model: str | None  # the model the index was built with; None before a build
    built_at: str | None  # ISO 8601, UTC
    health: HeadlineCheck | None
    embedding: EncoderPaths  # how this process encodes passages and questions
    encoder: EncoderPlan | None  # how the index's passage vectors were made
    store: str  # where the index is: a folder, a Milvus Lite file or a server address

    def to_json(self) -> dict[str, Any]:
        return {
            "articles": self.articles, "bodies": self.bodies, "passages": self.passages, "model": self.model,
            "built_at": self.built_at, "health": asdict(self.health) if self.health else None,
            "embedding": self.embedding.summary(), "encoder": self.encoder.to_json() if self.encoder else None,
            "store": self.store,
        }


@dataclass(frozen=True)
class IndexCheck:
    """What `Library.check` found: the index's counts, and its problems (none when it is consistent)."""

    problems: tuple[str, ...]
    articles: int
    passages: int
    location: str
    encoder: EncoderPlan | None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class RatedPassage:
    """A passage a rating is about, by its article and character span (offsets in the article), with the
    sentences of it the reader saw highlighted (quoted in the answer, or its best sentence)."""

    article_id: str
    start: int
    end: int
    sentences: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"article_id": self.article_id, "start": self.start, "end": self.end, "sentences": list(self.sentences)}


@dataclass(frozen=True)
class Rating:
    """One thumbs up (+1) or down (-1) on an answer (`target` "answer": `passages` are the ones it quotes)
    or on one of its sources (`target` "source": `passages` is that source's passage).

    `query` is the question as searched (a follow-up joined to the questions it follows), which a
    rating is keyed by together with the target; `rated_at` is ISO 8601, UTC."""

    query: str
    question: str
    target: str  # "answer" or "source"
    found: bool  # whether the answer was found or was "The articles don't seem to cover this."
    rating: int  # +1 helpful, -1 wrong
    passages: tuple[RatedPassage, ...]
    rated_at: str


@dataclass(frozen=True)
class RatingsSummary:
    """How many answers and sources were rated, and how many of them helpful (+1)."""

    answers: int
    answers_helpful: int
    sources: int
    sources_helpful: int


@dataclass(frozen=True)
class RatingsExport:
    """What `Library.export_ratings` wrote: questions with helpful passages, questions whose "not found"
    was rated right (off-topic), and questions kept apart (rated, but no passage known to answer them)."""

    folder: str
    answerable: int
    off_topic: int
    kept_apart: int


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
