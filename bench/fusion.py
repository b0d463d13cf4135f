"""Compare ways of fusing dense and BM25 rankings on a labelled dataset.

    python -m bench.fusion DATASET_DIR [--index DIR] [--limit N] [--title-in-vectors] [--json OUT]

Indexes the dataset's passages as given (like `qa eval`; a kept `--index` folder reuses its
embeddings), takes the top 50 of each side once per question, and scores every fusion on the
same candidates: reciprocal rank fusion (k = 5, 60) and the standardized-score sum that
`qa.search.fuse` uses, at several dense weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from qa import Library, Settings
from qa.evaluate import FEED, PREFIX, metrics, read_dataset
from qa.search import fuse

DEPTH = 50


def rrf(rankings: list[list[tuple[int, float]]], constant: int) -> list[tuple[int, float]]:
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            scores[row] = scores.get(row, 0.0) + 1.0 / (constant + rank)
    return sorted(scores.items(), key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fusion", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--index", type=Path, help="keep the index here to reuse embeddings")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--title-in-vectors", action="store_true", help="embed 'title + passage'")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)

    passages, questions = read_dataset(args.dataset)
    questions = questions[: args.limit] if args.limit else questions
    with tempfile.TemporaryDirectory() as scratch:
        articles = Path(scratch) / "articles"
        articles.mkdir()
        with open(articles / FEED, "w", encoding="utf-8") as feed:
            feed.writelines(json.dumps(p, ensure_ascii=False) + "\n" for p in passages)
        settings = replace(Settings(), articles_dir=articles, index_dir=args.index or Path(scratch) / "index",
                           split=False, title_in_vectors=args.title_in_vectors)
        library = Library(settings)
        print(library.sync().summary(), file=sys.stderr)
        store = library.store
        vectors = library.embedder.encode_queries([q.question for q in questions])
        dense = [store.search(vectors[i : i + 1], DEPTH) for i in range(len(questions))]
        lexical = [store.search_terms(q.question, DEPTH) for q in questions]
        stored = store.passages({row for ranking in dense + lexical for row, _ in ranking})
        cites = store.citations(p.body_hash for p in stored.values())
        dataset_id = {body: c[0].article_id.removeprefix(PREFIX) for body, c in cites.items()}

        def score(rankings: list[list[tuple[int, float]]]) -> dict[str, float]:
            ranked = [[dataset_id[stored[row].body_hash] for row, _ in ranking[:10]] for ranking in rankings]
            texts = [[stored[row].text for row, _ in ranking[:10]] for ranking in rankings]
            return {name: round(value, 4) for name, value in metrics(ranked, texts, questions).items()}

        pairs = list(zip(dense, lexical, strict=False))
        results = {
            "dense": score(dense),
            "bm25": score(lexical),
            "rrf k=60": score([rrf(list(p), 60) for p in pairs]),
            "rrf k=5": score([rrf(list(p), 5) for p in pairs]),
            **{f"z-sum dense {w:.1f}": score([fuse(list(p), (w, 1 - w)) for p in pairs]) for w in (0.3, 0.4, 0.5, 0.6)},
        }
        library.store.close()
    print(f"{len(passages)} passages, {len(questions)} questions, title in vectors: {args.title_in_vectors}")
    print("| fusion | recall@1 | recall@5 | recall@10 | mrr@10 | answer_recall@5 |\n|---|---:|---:|---:|---:|---:|")
    for name, m in results.items():
        print(f"| {name} | {m['recall@1']:.3f} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['mrr@10']:.3f} "
              f"| {m['answer_recall@5']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps({"questions": len(questions), "fusions": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
