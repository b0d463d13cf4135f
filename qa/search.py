"""Question → ranked `Hit`s with citations: dense, BM25, or both fused.

Hybrid search takes the top candidates of each side and fuses their standardized scores
(see `fuse`); the chosen passages are then cleaned up for people: overlapping windows of one article
and near-identical copies from other articles are merged into one hit citing every source. A second
stage (`qa.rerank`) can then re-order the best of them by their closest sentence to the question.
"""

from __future__ import annotations

from concurrent.futures import Executor
from datetime import date

import numpy as np

from .dates import When
from .embed import Embedder, Vectors
from .errors import QuestionError
from .rerank import SentenceReranker, standardized
from .schema import Citation, Filters, Hit, best_first
from .store import IndexStore, StoredPassage, restrict

MAX_QUESTION_CHARS = 2000
MAX_RAW_QUESTION_CHARS = 50 * MAX_QUESTION_CHARS  # longer is refused before any work, however much is blank
MAX_K = 100
MODES = ("dense", "bm25", "hybrid")
NEAR_DUPLICATE = 0.97  # cosine above which two passages count as copies of one text


def clean_question(question: object) -> str:
    """The question with its white space folded and control characters blanked: what every reader of
    a question (dates, search, answers) is given. Time linear in the question's length.

    Raises:
        QuestionError: not text, empty, or longer than MAX_QUESTION_CHARS (MAX_RAW_QUESTION_CHARS
            before folding).
    """
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
    if len(question) > MAX_RAW_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(question):,} characters long; ask in at most {MAX_QUESTION_CHARS:,} characters."
        )
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in question).split())
    if not cleaned:
        raise QuestionError("The question is empty: type a question about the articles.")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"The question is {len(cleaned):,} characters long; ask in at most {MAX_QUESTION_CHARS:,} characters."
        )
    return cleaned


def check_k(k: object) -> int:
    """Raises QuestionError unless 1 <= k <= MAX_K."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_K} (got {k!r}).")
    return k


def check_mode(mode: object) -> str:
    if mode not in MODES:
        raise QuestionError(f"mode must be one of {', '.join(MODES)} (got {mode!r}).")
    return str(mode)


def search(
    question: str,
    k: int,
    store: IndexStore,
    embedder: Embedder,
    mode: str = "hybrid",
    filters: Filters | None = None,
    query_vector: Vectors | None = None,
    when: When | None = None,
    rerank: SentenceReranker | None = None,
    beside: Executor | None = None,
) -> list[Hit]:
    """The `k` best passages for `question`, best first, each citing its article(s).

    Args:
        mode: "dense" (embeddings), "bm25" (shared terms) or "hybrid" (both, fused).
        filters: restrict to some articles; applied inside each index, not after it.
        query_vector: the question's (1, d) embedding when the caller already has it.
        when: the time the question asks about (see `qa.dates.read_when`): a period keeps dated
            articles of that period and every undated one; "recent" boosts the newest articles.
        rerank: a second stage that re-orders the best `rerank.depth` passages (see `qa.rerank`).
        beside: where a hybrid search scores BM25 while the question is encoded and searched densely
            (a thread: both sides mostly run outside the GIL); None scores one side after the other.
    """
    question = clean_question(question)
    k = check_k(k)
    depth = max(3 * k, 30, rerank.depth if rerank else 0)
    ranked = rank(question, depth, store, embedder, mode, filters, query_vector, when, beside)
    if rerank is None:
        return compose(ranked, k, store)
    return rerank(question, compose(ranked, max(k, rerank.depth), store))[:k]


def rank(
    question: str,
    depth: int,
    store: IndexStore,
    embedder: Embedder,
    mode: str = "hybrid",
    filters: Filters | None = None,
    query_vector: Vectors | None = None,
    when: When | None = None,
    beside: Executor | None = None,
) -> list[tuple[int, float]]:
    """(row, score) of the passages for `question`, best first, copies not merged: the `depth` best of
    each side (dense, BM25), fused in hybrid mode. Arguments as for `search`; the question is clean."""
    mode = check_mode(mode)
    period = (_iso(when.start), _iso(when.end)) if when is not None and (when.start or when.end) else None
    restriction = restrict(filters, period)
    later = None  # BM25 beside the dense side; not with a restriction: each side would read the allowed rows
    if beside is not None and mode == "hybrid" and restriction is None:
        later = beside.submit(store.search_terms, question, depth)
    if query_vector is None and mode != "bm25":
        query_vector = embedder.encode_query(question)
    dense = store.search(query_vector, depth, restriction) if mode != "bm25" else []
    if later is not None:
        lexical = later.result()
    else:
        lexical = store.search_terms(question, depth, restriction) if mode != "dense" else []
    if mode == "dense":
        ranked = dense
    elif mode == "bm25":
        ranked = lexical
    else:
        ranked = fuse([dense, lexical])
    if when is not None and when.recent:
        ranked = newest_first(ranked, store)
    return ranked


def newest_first(ranked: list[tuple[int, float]], store: IndexStore) -> list[tuple[int, float]]:
    """Re-rank for "latest" questions: scores grow by up to 100% for the newest articles, a boost
    that halves every 30 days before the newest article date. Undated passages keep their score."""
    newest = store.newest_date()
    if not ranked or newest is None:
        return ranked
    dates = store.dates(row for row, _ in ranked)
    boosted = []
    for row, score in ranked:
        when = dates.get(row)
        boost = 0.5 ** ((newest - when).days / 30) if when else 0.0
        boosted.append((row, score * (1.0 + boost)))
    return best_first(boosted)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def fuse(rankings: list[list[tuple[int, float]]], weights: tuple[float, ...] | None = None) -> list[tuple[int, float]]:
    """Weighted sum of standardized scores: each list's scores become z-scores over its candidates,
    shifted so that its weakest candidate scores 0 (a row missing from a list gets 0 from it).

    Cosines and BM25 scores live on different scales; standardizing per question puts them on
    one, and unlike rank fusion it keeps how far ahead the leader of each list is.
    """
    weights = weights or tuple(1.0 / len(rankings) for _ in rankings)
    fused: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=False):
        if not ranking:
            continue
        for (row, _), value in zip(ranking, standardized([score for _, score in ranking]), strict=True):
            fused[row] = fused.get(row, 0.0) + weight * float(value)
    return best_first(fused.items())


def compose(ranked: list[tuple[int, float]], k: int, store: IndexStore) -> list[Hit]:
    """The first `k` distinct hits of a ranking, merging overlapping windows and near-copies."""
    passages = store.passages(row for row, _ in ranked)
    vectors = store.vectors([row for row, _ in ranked if row in passages])
    sources = store.citations(p.body_hash for p in passages.values())
    kept: list[tuple[StoredPassage, float, list[StoredPassage]]] = []
    for row, score in ranked:
        passage = passages.get(row)
        if passage is None or passage.body_hash not in sources:
            continue  # removed by a sync since the search
        twin = next((entry for entry in kept if _same_text(entry[0], passage, vectors)), None)
        if twin is not None:
            twin[2].append(passage)
            continue
        if len(kept) < k:
            kept.append((passage, score, []))
    return [
        _hit(rank, passage, score, copies, sources) for rank, (passage, score, copies) in enumerate(kept, start=1)
    ]


def _same_text(first: StoredPassage, second: StoredPassage, vectors: dict[int, Vectors]) -> bool:
    """Overlapping windows of one body, or near-identical passages of two bodies."""
    if first.body_hash == second.body_hash:
        return first.start < second.end and second.start < first.end
    a, b = vectors.get(first.row), vectors.get(second.row)
    return a is not None and b is not None and float(np.dot(a, b)) >= NEAR_DUPLICATE


def _hit(
    rank: int, passage: StoredPassage, score: float, copies: list[StoredPassage], sources: dict[str, list[Citation]]
) -> Hit:
    located = [_locate(cite, passage) for cite in sources[passage.body_hash]]
    for copy in copies:
        if copy.body_hash != passage.body_hash:
            located += [_locate(cite, copy) for cite in sources.get(copy.body_hash, [])]
    return Hit(rank, score, passage.text, located[0], tuple(located[1:]))


def _locate(cite: Citation, passage: StoredPassage) -> Citation:
    return Citation(
        cite.article_id, cite.title, cite.source, cite.url, cite.date, cite.publisher,
        passage=passage.ordinal, paragraph=passage.paragraph, start=passage.start, end=passage.end,
    )

