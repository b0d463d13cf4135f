"""Retrieval from Python: the right passages, with citations a reader can check."""

from __future__ import annotations

from pathlib import Path

import pytest

from qa import Library, retrieve
from qa.articles import load_folder
from qa.errors import QuestionError


def test_who_interviewed_maduro_finds_ignacio_ramonet(seed_library: Library) -> None:
    hits = seed_library.retrieve("Who interviewed Maduro?", k=5)
    assert "Ignacio Ramonet" in hits[0].text


def test_which_oil_company_can_export_finds_chevron(seed_library: Library) -> None:
    hits = seed_library.retrieve("Which US oil company can export Venezuelan crude?", k=5)
    assert "Chevron" in hits[0].text


def test_hits_are_ranked_and_cite_an_exact_span_of_the_article(seed_library: Library) -> None:
    hits = seed_library.retrieve("What did the Northern Lighthouse Board restore?", k=4)
    assert [hit.rank for hit in hits] == [1, 2, 3, 4]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    top = hits[0].citation
    assert (top.article_id, top.title) == ("lighthouse.html", "Historic lighthouse restored on Scottish island")
    assert top.url == "https://example.org/uk/lighthouse-restored" and top.date == "2024-05-17"
    bodies = {article.article_id: article.text for article in load_folder(seed_library.settings.articles_dir).articles}
    for hit in hits:
        assert bodies[hit.citation.article_id][hit.citation.start : hit.citation.end] == hit.text


def test_k_limits_the_number_of_hits(seed_library: Library) -> None:
    assert len(seed_library.retrieve("rail strike", k=2)) == 2
    assert len(seed_library.retrieve("rail strike", k=100)) == seed_library.store.counts()["passages"]


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\x00\x01"])
def test_an_empty_question_is_a_clear_error(seed_library: Library, question: str) -> None:
    with pytest.raises(QuestionError, match="empty"):
        seed_library.retrieve(question)


@pytest.mark.parametrize("k", [0, -1, 101, 2.5, True])
def test_an_impossible_k_is_a_clear_error(seed_library: Library, k: object) -> None:
    with pytest.raises(QuestionError, match="k must be"):
        seed_library.retrieve("rail strike", k=k)  # type: ignore[arg-type]


def test_a_very_long_question_is_refused_politely(seed_library: Library) -> None:
    with pytest.raises(QuestionError, match="at most 2,000 characters"):
        seed_library.retrieve("why " * 1000)


def test_the_module_level_retrieve_builds_the_index_on_first_use(articles: Path, tmp_path: Path) -> None:
    hits = retrieve("Who won the national chess title?", k=1, articles_dir=articles, index_dir=tmp_path / "idx")
    assert hits[0].citation.article_id == "briefs.jsonl#chess-prodigy"
    assert (tmp_path / "idx" / "index.sqlite").is_file()

