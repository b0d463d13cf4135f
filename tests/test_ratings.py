"""Readers' ratings: kept by article and span beside the index, replaced, safe under concurrent writes,
a clear error for a broken file, and exported as a dataset that `qa eval` scores."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from qa import Library, Settings
from qa.answer import Answer
from qa.cli import main
from qa.embed import Embedder
from qa.errors import RatingError
from qa.evaluate import evaluate, read_dataset
from qa.ratings import RatingsStore, export
from qa.schema import RatedPassage, Rating, RatingsSummary

FIXTURES = Path(__file__).parent / "fixtures"
MADURO_ID = "venezuela-maduro-us-negotiations.txt"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Library]:
    """One FAISS index over a copy of the fixture articles for the whole module."""
    root = tmp_path_factory.mktemp("ratings")
    shutil.copytree(FIXTURES / "articles", root / "articles")
    library = Library(Settings(articles_dir=root / "articles", index_dir=root / "index"), embedder=embedder)
    library.sync()
    yield library
    library.store.close()


@pytest.fixture
def library(built: Library) -> Library:
    """The module's library with an empty ratings file for each test."""
    built.ratings.path.unlink(missing_ok=True)
    return built


@pytest.fixture(scope="module")
def maduro(built: Library) -> Answer:
    return built.answer("Who interviewed Maduro?", 3)


def test_a_new_rating_of_the_same_target_replaces_the_old_one(library: Library, maduro: Answer) -> None:
    library.rate(maduro, +1)
    library.rate(maduro, +1, source=2)
    library.rate(maduro, -1, source=2)  # the reader changed their mind about source [2]
    library.rate(maduro, -1)
    assert library.ratings_summary() == RatingsSummary(answers=1, answers_helpful=0, sources=1, sources_helpful=0)
    ratings = library.ratings.all()
    assert [(r.target, r.rating) for r in ratings] == [("answer", -1), ("source", -1)]


def test_a_source_rating_names_the_passage_by_article_and_span_and_holds_its_highlighted_sentences(
    library: Library, maduro: Answer
) -> None:
    rated = library.rate(maduro, +1, source=1)
    cited = maduro.sources[0].hit.citation
    (passage,) = rated.passages
    assert (passage.article_id, passage.start, passage.end) == (cited.article_id, cited.start, cited.end)
    text = (library.settings.articles_dir / MADURO_ID).read_text(encoding="utf-8")
    assert passage.article_id == MADURO_ID
    assert all(sentence in text for sentence in passage.sentences) and passage.sentences
    assert (rated.query, rated.question, rated.found) == ("Who interviewed Maduro?", "Who interviewed Maduro?", True)


def test_ratings_survive_a_rebuild_of_the_index(library: Library, maduro: Answer) -> None:
    library.rate(maduro, +1, source=1)
    before = library.ratings.all()
    library.sync(rebuild=True)
    assert library.ratings.all() == before
    again = library.answer("Who interviewed Maduro?", 3)  # the same passage, cited by span, rates the same target
    library.rate(again, -1, source=1)
    assert library.ratings_summary() == RatingsSummary(0, 0, 1, 0)


def test_impossible_ratings_are_refused_with_a_sentence(library: Library, maduro: Answer) -> None:
    with pytest.raises(RatingError, match=r"\+1 \(helpful\) or -1"):
        library.rate(maduro, 2)
    with pytest.raises(RatingError, match=r"no source \[9\]; it has 3"):
        library.rate(maduro, 1, source=9)


def test_concurrent_ratings_from_two_stores_are_all_kept(tmp_path: Path, maduro: Answer, library: Library) -> None:
    rating = library.rate(maduro, +1, source=1)
    stores = [RatingsStore(tmp_path), RatingsStore(tmp_path)]  # two locks: as two processes would write
    errors: list[Exception] = []

    def write(worker: int) -> None:
        try:
            for number in range(25):
                stores[worker % 2].add(replace(rating, query=f"question {worker}-{number}"))
        except Exception as error:  # pragma: no cover - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert stores[0].summary() == RatingsSummary(0, 0, 200, 200)


def test_a_broken_or_unwritable_ratings_file_is_a_clear_error_and_the_panel_still_shows(
    library: Library, maduro: Answer
) -> None:
    from qa.web import ChatApp

    library.ratings.path.write_bytes(b"not a database, just some bytes" * 100)
    with pytest.raises(RatingError, match=r"ratings.sqlite cannot be written .*move the file aside"):
        library.rate(maduro, 1)
    with pytest.raises(RatingError, match="cannot be read"):
        library.ratings_summary()
    chat = ChatApp(library, watch=None)
    try:
        panel = chat.index_panel()
        assert panel.startswith("**Index:**")
        assert "⚠️ The ratings file" in panel
        assert "⚠️" in chat.rate(maduro, 1)
    finally:
        chat.close()
    library.ratings.path.unlink()
    library.ratings.path.mkdir()  # a folder where the file should be: nothing can be written
    try:
        with pytest.raises(RatingError, match="cannot be written"):
            library.rate(maduro, -1)
    finally:
        library.ratings.path.rmdir()


PASSAGE_A = RatedPassage("a.md", 0, 120, ("The bridge will cost 4 million euros.",))
PASSAGE_B = RatedPassage("b.md", 40, 200, ("Critics collected signatures.",))
PASSAGE_C = RatedPassage("c.md", 10, 90, ("The council approved the bridge.",))
WHEN = "2026-12-01T10:00:00+00:00"


def test_the_export_is_a_qa_eval_dataset_with_gold_spans_hard_negatives_and_questions_kept_apart(
    tmp_path: Path,
) -> None:
    ratings = [
        Rating("What will the bridge cost?", "What will it cost?", "answer", True, 1, (PASSAGE_A,), WHEN),
        Rating("What will the bridge cost?", "What will it cost?", "source", True, 1, (PASSAGE_C,), WHEN),
        Rating("What will the bridge cost?", "What will it cost?", "source", True, -1, (PASSAGE_B,), WHEN),
        Rating("Who won the cup?", "Who won the cup?", "answer", False, 1, (), WHEN),
        Rating("Who opposed it?", "Who opposed it?", "answer", True, -1, (PASSAGE_B,), WHEN),
    ]
    done = export(ratings, tmp_path / "out")
    assert (done.answerable, done.off_topic, done.kept_apart) == (1, 1, 1)
    lines = (tmp_path / "out" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [
        {"id": "rated-6aee0e7abd10", "question": "What will the bridge cost?",
         "answers": ["The bridge will cost 4 million euros.", "The council approved the bridge."],
         "gold": [PASSAGE_A.to_json(), PASSAGE_C.to_json()], "hard_negatives": [PASSAGE_B.to_json()],
         "asked": "What will it cost?", "found": True, "answer_rating": 1},
        {"id": "rated-da9deb78df0e", "question": "Who won the cup?", "answers": [], "gold": [], "hard_negatives": [],
         "asked": "Who won the cup?", "found": False, "answer_rating": 1},
    ]
    assert PASSAGE_B.to_json() == {"article_id": "b.md", "start": 40, "end": 200,
                                   "sentences": ["Critics collected signatures."]}
    apart = [json.loads(line) for line in (tmp_path / "out" / "kept-apart.jsonl").read_text().splitlines()]
    assert [(r["question"], r["answer_rating"], r["answers"]) for r in apart] == [("Who opposed it?", -1, [])]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["format"] == "qa-ratings/1"
    assert (meta["questions"], meta["answerable"], meta["off_topic"], meta["kept_apart"], meta["ratings"]) == (
        2, 1, 1, 1, 5)
    _, questions = read_dataset(tmp_path / "out", with_passages=False)
    assert [(q.question, q.answers) for q in questions] == [
        ("What will the bridge cost?", ("The bridge will cost 4 million euros.", "The council approved the bridge.")),
        ("Who won the cup?", ()),
    ]


def test_qa_eval_scores_an_exported_set_over_the_articles(
    library: Library, maduro: Answer, tmp_path: Path, embedder: Embedder
) -> None:
    library.rate(maduro, +1)
    library.rate(maduro, -1, source=3)
    cake = library.answer("How do I bake a chocolate cake?", 3)
    assert not cake.found
    library.rate(cake, +1)  # "not found" was right
    assert main(["feedback", "export", str(tmp_path / "out"), "--index", str(library.settings.index_dir)]) == 0
    result = evaluate(tmp_path / "out", modes=("hybrid",), articles=library.settings.articles_dir,
                      index_dir=tmp_path / "eval-index", embedder=embedder, answers=None)
    answers = result["modes"]["hybrid"]["answers"]
    assert (answers["answerable"], answers["off_topic"]) == (1.0, 1.0)
    assert answers["in_quotes"] == 1.0  # the same question quotes the sentences rated helpful
    assert answers["off_topic_refused"] == 1.0
