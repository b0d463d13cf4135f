"""The second stage of a search: the best passages re-ordered by their closest sentence to the question."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.rerank import SentenceReranker
from qa.schema import Citation, Hit
from qa.search import search
from qa.sentences import SentenceVectors

TITLE = "Exampleton builds a bridge"
GENERAL = "The council of Exampleton met on Tuesday. Members discussed the river, the parks and the old town hall."
COST = "Engineers finished the design in March. The bridge will cost 4 million euros to build."
WEATHER = "Heavy rain fell over the region at the weekend. Forecasters expect a dry week."


def hit(rank: int, score: float, text: str, article: str = "exampleton.md") -> Hit:
    citation = Citation(article, TITLE, article, None, None, None, rank - 1, rank - 1, 0, len(text))
    return Hit(rank, score, text, citation)


@pytest.fixture
def reranker(tmp_path: Path, embedder: Embedder) -> SentenceReranker:
    answers = embedder.answers
    return SentenceReranker(SentenceVectors(tmp_path, answers, answers.identity))


def test_a_passage_stating_the_asked_fact_rises_above_one_the_first_stage_preferred(
    reranker: SentenceReranker,
) -> None:
    hits = [hit(1, 0.9, GENERAL), hit(2, 0.8, COST), hit(3, 0.1, WEATHER)]
    ranked = reranker("How much will the new bridge cost?", hits)
    assert [h.text for h in ranked] == [COST, GENERAL, WEATHER]
    assert [h.rank for h in ranked] == [1, 2, 3]
    assert ranked[0].score > ranked[1].score > ranked[2].score


def test_equal_passages_keep_the_first_stage_order(reranker: SentenceReranker) -> None:
    hits = [hit(rank, 1.0, WEATHER, article=f"copy-{rank}.md") for rank in range(1, 5)]
    ranked = reranker("Will it rain?", hits)
    assert [h.citation.article_id for h in ranked] == [h.citation.article_id for h in hits]


def test_weight_zero_leaves_the_first_stage_alone(tmp_path: Path, embedder: Embedder) -> None:
    answers = embedder.answers
    off = SentenceReranker(SentenceVectors(tmp_path, answers, answers.identity), weight=0.0)
    hits = [hit(1, 0.9, GENERAL), hit(2, 0.8, COST)]
    assert off("How much will the new bridge cost?", hits) == hits


def test_the_same_question_gives_the_same_order(reranker: SentenceReranker) -> None:
    hits = [hit(1, 0.5, WEATHER), hit(2, 0.5, GENERAL), hit(3, 0.5, COST)]
    first = reranker("What did the council discuss?", hits)
    assert reranker("What did the council discuss?", list(reversed(hits)))[0].text == first[0].text
    assert reranker("What did the council discuss?", hits) == first


def test_a_question_is_encoded_once_for_a_search_and_its_answer(reranker: SentenceReranker) -> None:
    vector = reranker.question_vector("How much will the new bridge cost?")
    assert reranker.question_vector("How much will the new bridge cost?") is vector
    assert vector.shape == (1, reranker.embedder.dimension)


def test_a_search_reranks_its_first_stage_candidates(seed_library: Library) -> None:
    question = "How did Maduro answer the American military build-up?"
    store, embedder, reranker = seed_library.store, seed_library.embedder, seed_library.reranker
    assert reranker is not None
    first_stage = search(question, 30, store, embedder)
    reranked = search(question, 30, store, embedder, rerank=reranker)
    assert sorted(place(h) for h in reranked) == sorted(place(h) for h in first_stage)
    closest = reranker.closest_sentences(question, reranked)
    fused = [h.score for h in reranked]
    assert fused == sorted(fused, reverse=True)
    assert closest[0] >= sorted(closest)[len(closest) // 2]  # the leader has one of the closer sentences


def place(found: Hit) -> tuple[str, int]:
    return found.citation.article_id, found.citation.start


def test_settings_default_to_reranking() -> None:
    assert Settings().rerank is True


def test_no_passage_or_one_passage_is_returned_as_it_is(reranker: SentenceReranker) -> None:
    assert reranker("Anything?", []) == []
    single = [hit(1, 0.3, COST)]
    assert reranker("Anything?", single) == single
