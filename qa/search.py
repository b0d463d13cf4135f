"""Question → ranked `Hit`s with citations."""

from __future__ import annotations

from .embed import Embedder
from .errors import QuestionError
from .schema import Citation, Hit
from .store import Store

MAX_QUESTION_CHARS = 2000
MAX_K = 100


def clean_question(question: object) -> str:
    """The question with its white space folded.

    Raises:
        QuestionError: not text, empty, or longer than MAX_QUESTION_CHARS.
    """
    if not isinstance(question, str):
        raise QuestionError("The question must be text.")
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


def dense_search(question: str, k: int, store: Store, embedder: Embedder) -> list[Hit]:
    """The `k` passages nearest to the question, best first, each citing its article(s)."""
    question = clean_question(question)
    k = check_k(k)
    found = store.search(embedder.encode_query(question), k)
    return hits(found, store)


def hits(found: list[tuple[int, float]], store: Store) -> list[Hit]:
    """(row, score) pairs as `Hit`s; rows that vanished in a concurrent sync are dropped."""
    passages = store.passages(row for row, _ in found)
    sources = store.citations(p.body_hash for p in passages.values())
    result: list[Hit] = []
    for row, score in found:
        passage = passages.get(row)
        cites = sources.get(passage.body_hash, []) if passage else []
        if passage is None or not cites:
            continue
        located = tuple(
            Citation(
                c.article_id, c.title, c.source, c.url, c.date, c.publisher,
                passage=passage.ordinal, paragraph=passage.paragraph, start=passage.start, end=passage.end,
            )
            for c in cites
        )
        result.append(Hit(len(result) + 1, score, passage.text, located[0], located[1:]))
    return result
