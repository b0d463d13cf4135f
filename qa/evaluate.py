"""Retrieval evaluation on a labelled set: recall, MRR, nDCG, answer recall, speed.

A dataset folder holds `passages.jsonl` (`{"id", "title", "text"}`) and `questions.jsonl`
(`{"id", "question", "answers": [...], "passage_ids": [...]}`). The passages are indexed as
given, one passage each, and every question is asked in each mode.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from .assistant import Library
from .backends import copy_index
from .config import Settings
from .embed import Embedder
from .errors import ConfigError
from .schema import Hit
from .search import MODES, search

FEED = "passages.jsonl"  # the file the passages are written to inside the articles folder
PREFIX = FEED + "#"


@dataclass(frozen=True)
class Question:
    question_id: str
    question: str
    answers: tuple[str, ...]
    gold: frozenset[str]


def read_dataset(folder: Path) -> tuple[list[dict[str, str]], list[Question]]:
    """The passages and questions of a dataset folder.

    Raises:
        ConfigError: a file is missing or a line is malformed (named with its line number).
    """
    folder = Path(folder)
    passages = [
        {"id": str(r["id"]), "title": str(r.get("title") or ""), "text": str(r["text"])}
        for r in _jsonl(folder / "passages.jsonl", ("id", "text"))
    ]
    questions = [
        Question(str(r["id"]), str(r["question"]), tuple(r.get("answers") or ()), frozenset(map(str, r["passage_ids"])))
        for r in _jsonl(folder / "questions.jsonl", ("id", "question", "passage_ids"))
    ]
    return passages, questions


def _jsonl(path: Path, required: tuple[str, ...]) -> list[dict[str, object]]:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: a dataset folder holds passages.jsonl and questions.jsonl.")
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


def _ids(hit: Hit) -> list[str]:
    """Every dataset passage id a hit stands for (near-copies are merged into one hit)."""
    return [c.article_id.removeprefix(PREFIX) for c in (hit.citation, *hit.also_in)]


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
) -> dict[str, object]:
    """Index the dataset's passages and score every mode; the JSON report of `qa eval`.

    `store` "milvus-lite": the passages are indexed with FAISS (reusing the embeddings an index kept in
    `index_dir` holds), copied into milvus-lite in the same folder, and scored there.
    """
    passages, questions = read_dataset(dataset)
    questions = questions[:limit] if limit else questions
    with tempfile.TemporaryDirectory(prefix="qa-eval-") as scratch:
        articles = Path(scratch) / "articles"
        articles.mkdir()
        with open(articles / FEED, "w", encoding="utf-8") as feed:
            for passage in passages:
                feed.write(json.dumps(passage, ensure_ascii=False) + "\n")
        base = settings or Settings.from_env()
        folder = index_dir or Path(scratch) / "index"
        settings = replace(base, articles_dir=articles, index_dir=folder, split=False)
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
            progress(f"indexed {len(passages)} passages in {index_seconds:.1f} s ({report.passages_embedded} embedded)")

        started = time.perf_counter()
        vectors = library.embedder.encode_queries([q.question for q in questions])
        encode_seconds = time.perf_counter() - started
        results: dict[str, object] = {}
        for mode in modes:
            started = time.perf_counter()
            hits = [
                search(q.question, k, library.store, library.embedder, mode, query_vector=vectors[i : i + 1])
                for i, q in enumerate(questions)
            ]
            seconds = time.perf_counter() - started + (encode_seconds if mode != "bm25" else 0.0)
            ranked = [[passage_id for hit in found for passage_id in _ids(hit)] for found in hits]
            texts = [[hit.text for hit in found] for found in hits]
            scores = metrics(ranked, texts, questions)
            results[mode] = {
                **{name: round(value, 4) for name, value in scores.items()},
                "qps": round(len(questions) / seconds, 1),
                "index_seconds": round(index_seconds, 1),
            }
            if progress:
                progress(f"{mode}: " + ", ".join(f"{name} {value}" for name, value in results[mode].items()))
        library.store.close()
    return {
        "store": library.settings.store.split(":", 1)[0],
        "passages": len(passages),
        "questions": len(questions),
        "passages_embedded": report.passages_embedded,
        "modes": results,
    }


def table(result: dict[str, object]) -> str:
    """The report as a Markdown table."""
    modes: dict[str, dict[str, float]] = result["modes"]  # type: ignore[assignment]
    columns = ["recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10", "answer_recall@1", "answer_recall@5", "qps"]
    lines = ["| mode | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for mode, values in modes.items():
        lines.append(f"| {mode} | " + " | ".join(f"{values[c]:.3f}" if c != "qps" else f"{values[c]:.0f}"
                                                  for c in columns) + " |")
    return "\n".join(lines)
