"""The evaluation harness: metrics checked by hand, and the `qa eval` report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.answer import Answer, Quote, Source
from qa.embed import Embedder
from qa.errors import ConfigError
from qa.evaluate import Question, answer_metrics, evaluate, metrics, read_dataset, table
from qa.schema import Citation, Hit

FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny-eval"


def question(gold: set[str], answers: tuple[str, ...] = ()) -> Question:
    return Question("q", "?", answers, frozenset(gold))


def test_metrics_match_hand_computed_values() -> None:
    questions = [question({"a"}, ("red",)), question({"b"}, ("blue",)), question({"c", "d"}, ("green",))]
    ranked = [
        ["a", "x", "y"],  # gold at rank 1
        ["x", "y", "z", "w", "v", "b"],  # gold at rank 6: outside @5, inside @10
        ["x", "c", "d"],  # two gold passages, the first at rank 2
    ]
    texts = [["a red car"], ["no"] * 5 + ["blue"], ["x", "GREEN light"]]
    scores = metrics(ranked, texts, questions)
    assert scores["recall@1"] == pytest.approx(1 / 3)
    assert scores["recall@5"] == pytest.approx(2 / 3)
    assert scores["recall@10"] == pytest.approx(1.0)
    assert scores["mrr@10"] == pytest.approx((1 + 1 / 6 + 1 / 2) / 3)
    ndcg_third = (1 / 1.5849625 + 1 / 2) / (1 + 1 / 1.5849625)
    assert scores["ndcg@10"] == pytest.approx((1 + 1 / 2.8073549 + ndcg_third) / 3)
    assert scores["answer_recall@1"] == pytest.approx(1 / 3)  # only "a red car" at rank 1
    assert scores["answer_recall@5"] == pytest.approx(2 / 3)  # "GREEN light" counts, case-insensitive


def test_eval_reports_every_mode_on_a_tiny_set(tmp_path: Path, embedder: Embedder) -> None:
    result = evaluate(TINY, embedder=embedder, index_dir=tmp_path / "index")
    assert (result["passages"], result["questions"]) == (5, 3)
    for mode in ("dense", "bm25", "hybrid"):
        figures = result["modes"][mode]
        assert set(figures) == {"recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_recall@1",
                                "answer_recall@5", "qps", "index_seconds"}
        assert figures["recall@5"] == 1.0, mode  # five passages: the gold one is always in the top 5
    assert result["modes"]["hybrid"]["recall@1"] == 1.0


def test_the_cli_writes_the_json_report_and_reuses_a_kept_index(tmp_path: Path, embedder: Embedder) -> None:
    from qa.cli import main

    evaluate(TINY, embedder=embedder, index_dir=tmp_path / "index")  # embedded with the session's model
    out = tmp_path / "report.json"
    assert main(["eval", str(TINY), "--mode", "bm25", "--index", str(tmp_path / "index"), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["modes"]) == ["bm25"] and report["questions"] == 3
    assert report["passages"] == 5 and report["passages_embedded"] == 0


def test_a_dataset_folder_without_questions_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "passages.jsonl").write_text('{"id": "a", "text": "x"}\n')
    with pytest.raises(ConfigError, match="questions.jsonl is missing"):
        read_dataset(tmp_path)


def test_a_malformed_line_is_named(tmp_path: Path) -> None:
    (tmp_path / "passages.jsonl").write_text('{"id": "a", "text": "x"}\n{"id": "b"}\n')
    (tmp_path / "questions.jsonl").write_text("")
    with pytest.raises(ConfigError, match="passages.jsonl line 2 has no text"):
        read_dataset(tmp_path)


def test_both_stores_are_scored_on_the_same_embeddings(tmp_path: Path, embedder: Embedder) -> None:
    on_faiss = evaluate(TINY, embedder=embedder, index_dir=tmp_path / "index", store="faiss")
    embedded = embedder.texts_embedded
    on_milvus = evaluate(TINY, embedder=embedder, index_dir=tmp_path / "index", store="milvus-lite")
    assert (on_faiss["store"], on_milvus["store"]) == ("faiss", "milvus-lite")
    assert on_milvus["passages_embedded"] == 0 and embedder.texts_embedded == embedded  # copied, not re-embedded
    assert on_milvus["modes"]["dense"]["mrr@10"] == on_faiss["modes"]["dense"]["mrr@10"]


def answer(quotes: tuple[str, ...], sources: tuple[str, ...], found: bool = True) -> Answer:
    """An answer with these quoted sentences (from source 1) and these source texts."""
    hits = [Hit(rank, 1.0, text, Citation("a", "T", "a.txt", None, None, None, 0, 0, 0, len(text)))
            for rank, text in enumerate(sources, start=1)]
    shown = tuple(Quote(1, text, 0, len(text), 0.9, 0.5) for text in quotes)
    return Answer("?", "?", found, 0.9 if found else 0.01, 0.05, shown if found else (),
                  tuple(Source(n, hit, (), 0.5, False) for n, hit in enumerate(hits, start=1)))


def test_answer_metrics_count_what_the_reader_sees() -> None:
    questions = [question({"a"}, ("Ramonet",)), question({"b"}, ("$2bn",)), question({"c"}, ("Chevron",)),
                 question(set()), question(set())]
    answers = [
        answer(("Ignacio Ramonet asked him.", "Other."), ("Ignacio Ramonet asked him.",)),  # in the first quote
        answer(("Profit rose.", "It made $2bn."), ("x", "It made $2bn.")),  # second quote, second source
        answer((), ("Chevron exports oil.",), found=False),  # refused although the source holds it
        answer((), ("x",), found=False),  # off-topic, refused
        answer(("Something.",), ("Something.",)),  # off-topic, answered
    ]
    figures = answer_metrics(answers, questions)
    assert figures["answerable"] == 3 and figures["off_topic"] == 2
    assert figures["in_quotes"] == pytest.approx(2 / 3)
    assert figures["in_first_quote"] == pytest.approx(1 / 3)
    assert figures["in_first_source"] == pytest.approx(2 / 3)
    assert figures["in_sources"] == pytest.approx(1.0)
    assert figures["refused"] == pytest.approx(1 / 3) and figures["answered"] == pytest.approx(2 / 3)
    assert figures["off_topic_refused"] == pytest.approx(1 / 2)


def test_eval_asks_a_questions_file_over_a_folder_of_articles(tmp_path: Path, embedder: Embedder) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text("\n".join(json.dumps(record) for record in (
        {"id": "1", "question": "Which journalist interviewed the Venezuelan president?", "answers": ["Ramonet"]},
        {"id": "2", "question": "Which American oil firm may ship Venezuelan crude?", "answers": ["Chevron"]},
        {"id": "3", "question": "How do I bake a chocolate cake?", "answers": []},
    )) + "\n")
    result = evaluate(questions, modes=("hybrid",), embedder=embedder, index_dir=tmp_path / "index",
                      articles=FIXTURES / "articles", answers=None)
    figures = result["modes"]["hybrid"]
    assert "recall@1" not in figures  # no passage ids to compare with
    assert figures["answers"]["in_quotes"] == 1.0 and figures["answers"]["off_topic_refused"] == 1.0
    assert "Answers (2 answerable, 1 off-topic questions)" in table(result)
