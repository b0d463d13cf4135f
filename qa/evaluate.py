"""Evaluation on a labelled set: what the reader sees (the short answer) and how retrieval ranks.

A dataset is either a folder holding `passages.jsonl` (`{"id", "title", "text"}`) and
`questions.jsonl` (`{"id", "question", "answers": [...], "passage_ids": [...]}`), whose passages are
indexed as given, one passage each; or a questions file (or a folder with `questions.jsonl`) asked
over a folder of articles (`articles=`), indexed as the assistant indexes any folder. A question with
no `answers` is off-topic: the right reply is "not found".

Every question is asked in each mode. The answer figures (`answer_metrics`) count, over the
answerable questions, how often an answer string (case-insensitive) is in the quoted sentences, in
the first quote, in the first source and in any of the `ANSWER_K` sources, and how often the
question was refused; and over the off-topic ones, how often they were refused. The retrieval
figures (recall, MRR, nDCG by passage id) need the passages of the dataset.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .answer import Answer
from .assistant import Library
from .backends import copy_index
from .config import Settings
from .embed import Embedder
from .errors import ConfigError
from .schema import Hit
from .search import MODES, search

FEED = "passages.jsonl"  # the file the passages are written to inside the articles folder
PREFIX = FEED + "#"


ANSWER_K = 5  # sources per answer, as in the chat


@dataclass(frozen=True)
class Question:
    question_id: str
    question: str
    answers: tuple[str, ...]  # empty: off-topic, the collection does not answer it
    gold: frozenset[str]


def read_dataset(dataset: Path, with_passages: bool = True) -> tuple[list[dict[str, str]], list[Question]]:
    """The passages and questions of a dataset folder (or, without passages, of a questions file).

    Raises:
        ConfigError: a file is missing or a line is malformed (named with its line number).
    """
    dataset = Path(dataset)
    questions_file = dataset if dataset.is_file() else dataset / "questions.jsonl"
    passages = [
        {"id": str(r["id"]), "title": str(r.get("title") or ""), "text": str(r["text"])}
        for r in _jsonl(dataset / "passages.jsonl", ("id", "text"))
    ] if with_passages else []
    questions = [
        Question(str(r["id"]), str(r["question"]), tuple(map(str, r.get("answers") or ())),
                 frozenset(map(str, r.get("passage_ids") or ())))
        for r in _jsonl(questions_file, ("id", "question"))
    ]
    return passages, questions


def sample(questions: list[Question], count: int | None) -> list[Question]:
    """`count` questions spread evenly over the list (all of them when None or more than there are)."""
    if not count or count >= len(questions):
        return questions
    return [questions[at * len(questions) // count] for at in range(count)]


def _jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, object]]:
    if not path.is_file():
        raise ConfigError(
            f"{path} is missing: a dataset is a folder with passages.jsonl and questions.jsonl, or a questions "
            "file asked over a folder of articles (--articles DIR)."
        )
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path.name} line {number} is not JSON ({error.msg}).") from None
        missing = [key for key in required if key not in record]
        if missing:
            raise ConfigError(f"{path.name} line {number} has no {', '.join(missing)}.")
        records.append(record)
    return records


def metrics(ranked: list[list[str]], texts: list[list[str]], questions: list[Question]) -> dict[str, float]:
    """Metrics as fractions 0-1. `ranked[i]` are passage ids per rank, `texts[i]` their texts."""
    totals = dict.fromkeys(("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_recall@1",
                            "answer_recall@5"), 0.0)
    for ids, found, question in zip(ranked, texts, questions, strict=False):
        relevant = [passage_id in question.gold for passage_id in ids[:10]]
        for cut in (1, 5, 10):
            totals[f"recall@{cut}"] += any(relevant[:cut])
        first = next((rank for rank, hit in enumerate(relevant, start=1) if hit), None)
        totals["mrr@10"] += 1.0 / first if first else 0.0
        dcg = sum(1.0 / math.log2(rank + 1) for rank, hit in enumerate(relevant, start=1) if hit)
        ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(question.gold), 10) + 1))
        totals["ndcg@10"] += dcg / ideal if ideal else 0.0
        answers = [answer.lower() for answer in question.answers]
        for cut in (1, 5):
            totals[f"answer_recall@{cut}"] += any(a in text.lower() for text in found[:cut] for a in answers)
    return {name: value / max(len(questions), 1) for name, value in totals.items()}


def hit_passage_ids(hit: Hit) -> list[str]:
    """Every dataset passage id a hit stands for (near-copies are merged into one hit)."""
    return [c.article_id.removeprefix(PREFIX) for c in (hit.citation, *hit.also_in)]


def answer_metrics(answers: list[Answer], questions: list[Question]) -> dict[str, float]:
    """What the reader sees, as fractions 0-1 (off-topic questions are counted apart)."""
    totals = dict.fromkeys(
        ("answered", "in_quotes", "in_first_quote", "in_first_source", "in_sources", "refused", "off_topic_refused"),
        0.0,
    )
    answerable = sum(1 for q in questions if q.answers)
    off_topic = len(questions) - answerable
    for answer, question in zip(answers, questions, strict=True):
        if not question.answers:
            totals["off_topic_refused"] += not answer.found
            continue
        wanted = [text.lower() for text in question.answers]

        def holds(text: str, wanted: list[str] = wanted) -> bool:
            return any(w in text.lower() for w in wanted)

        quotes = [quote.text for quote in answer.quotes]
        totals["answered"] += answer.found
        totals["refused"] += not answer.found
        totals["in_quotes"] += any(holds(text) for text in quotes)
        totals["in_first_quote"] += bool(quotes) and holds(quotes[0])
        totals["in_first_source"] += bool(answer.sources) and holds(answer.sources[0].hit.text)
        totals["in_sources"] += any(holds(source.hit.text) for source in answer.sources)
    return {
        **{name: value / max(answerable, 1) for name, value in totals.items() if name != "off_topic_refused"},
        "off_topic_refused": totals["off_topic_refused"] / off_topic if off_topic else float("nan"),
        "answerable": float(answerable),
        "off_topic": float(off_topic),
    }


def evaluate(
    dataset: Path,
    modes: tuple[str, ...] = MODES,
    k: int = 10,
    index_dir: Path | None = None,
    settings: Settings | None = None,
    embedder: Embedder | None = None,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
    store: str | None = None,
    articles: Path | None = None,
    answers: int | None = 0,
) -> dict[str, object]:
    """Index the dataset and score every mode; the JSON report of `qa eval`.

    Args:
        articles: ask the questions over this folder of articles instead of the dataset's passages.
        answers: compose answers (k = ANSWER_K) for this many questions, spread over the set; None for
            all of them, 0 for none. Retrieval figures always use every question.
        store: "milvus-lite": the passages are indexed with FAISS (reusing the embeddings an index kept in
            `index_dir` holds), copied into milvus-lite in the same folder, and scored there.
    """
    passages, questions = read_dataset(dataset, with_passages=articles is None)
    questions = questions[:limit] if limit else questions
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as scratch:
        base = settings or Settings.from_env()
        folder = index_dir or Path(scratch) / "index"
        if articles is None:
            articles = Path(scratch) / "articles"
            articles.mkdir()
            with open(articles / FEED, "w", encoding="utf-8") as feed:
                for passage in passages:
                    feed.write(json.dumps(passage, ensure_ascii=False) + "\n")
            settings = replace(base, articles_dir=articles, index_dir=folder, split=False)
        else:
            settings = replace(base, articles_dir=Path(articles), index_dir=folder)
        library = Library(replace(settings, store="faiss") if store else settings, embedder=embedder)
        started = time.perf_counter()
        report = library.sync()
        if store == "milvus-lite":  # the same vectors, copied: both stores are scored on identical embeddings
            faiss_store = library.store
            library = Library(replace(settings, store=f"milvus-lite:{folder / 'milvus.db'}"), library.embedder)
            copy_index(faiss_store, library.store)
            faiss_store.close()
        index_seconds = time.perf_counter() - started
        if progress:
            progress(f"indexed {report.passages_total} passages in {index_seconds:.1f} s "
                     f"({report.passages_embedded} embedded)")

        started = time.perf_counter()
        vectors = library.embedder.encode_queries([q.question for q in questions])
        encode_seconds = time.perf_counter() - started
        asked = sample(questions, answers) if answers != 0 else []
        results: dict[str, object] = {}
        for mode in modes:
            started = time.perf_counter()
            hits = [
                search(
                    q.question, k, library.store, library.embedder, mode, query_vector=vectors[i : i + 1],
                    rerank=library.reranker,
                )
                for i, q in enumerate(questions)
            ]
            seconds = time.perf_counter() - started + (encode_seconds if mode != "bm25" else 0.0)
            ranked = [[passage_id for hit in found for passage_id in hit_passage_ids(hit)] for found in hits]
            texts = [[hit.text for hit in found] for found in hits]
            scores = metrics(ranked, texts, questions)
            if not passages:  # no passage ids to compare with: only the answer strings count
                scores = {name: value for name, value in scores.items() if name.startswith("answer_")}
            figures: dict[str, object] = {
                **{name: round(value, 4) for name, value in scores.items()},
                "qps": round(len(questions) / seconds, 1),
                "index_seconds": round(index_seconds, 1),
            }
            if asked:
                started = time.perf_counter()
                composed = [library.answer(q.question, ANSWER_K, mode=mode) for q in asked]
                elapsed = sorted(answer.seconds for answer in composed)
                figures["answers"] = {
                    **{name: round(value, 4) for name, value in answer_metrics(composed, asked).items()},
                    "answer_ms_p50": round(1000 * elapsed[len(elapsed) // 2], 1),
                    "seconds": round(time.perf_counter() - started, 1),
                }
            results[mode] = figures
            if progress:
                progress(f"{mode}: " + ", ".join(f"{name} {value}" for name, value in figures.items()))
        library.store.close()
    return {
        "store": library.settings.location.kind,
        "passages": report.passages_total,
        "questions": len(questions),
        "passages_embedded": report.passages_embedded,
        "modes": results,
    }


ANSWER_COLUMNS = (
    ("in_quotes", "answer in quotes"), ("in_first_quote", "in first quote"), ("in_first_source", "in first source"),
    ("in_sources", f"in the {ANSWER_K} sources"), ("refused", "answerable refused"),
    ("off_topic_refused", "off-topic refused"), ("answer_ms_p50", "ms p50"),
)


def table(result: dict[str, object]) -> str:
    """The report as Markdown tables: retrieval, then the answers (when they were composed)."""
    modes: dict[str, dict[str, object]] = result["modes"]  # type: ignore[assignment]
    names = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_recall@1", "answer_recall@5", "qps"]
    columns = [c for c in names if all(c in values for values in modes.values())]
    lines = ["| mode | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for mode, values in modes.items():
        lines.append(f"| {mode} | " + " | ".join(f"{values[c]:.3f}" if c != "qps" else f"{values[c]:.0f}"
                                                  for c in columns) + " |")
    composed = {mode: values["answers"] for mode, values in modes.items() if "answers" in values}
    if composed:
        first: dict[str, float] = next(iter(composed.values()))  # type: ignore[assignment]
        lines += ["", f"Answers ({first['answerable']:.0f} answerable, {first['off_topic']:.0f} off-topic questions):",
                  "", "| mode | " + " | ".join(title for _, title in ANSWER_COLUMNS) + " |",
                  "|---|" + "---:|" * len(ANSWER_COLUMNS)]
        for mode, figures in composed.items():
            cells = [_cell(figures.get(name), name) for name, _ in ANSWER_COLUMNS]  # type: ignore[union-attr]
            lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(value: object, name: str) -> str:
    if not isinstance(value, float | int) or value != value:  # missing or NaN (no off-topic questions)
        return "-"
    return f"{value:.0f}" if name == "answer_ms_p50" else f"{value:.1%}"
