"""Hybrid search on Milvus: the engine's own RRF hybrid search against our fusion of its two lists.

    python -m bench.milvus_fusion DATASET_DIR --index DIR [--limit N] [--json OUT]

DIR is an index folder that `python -m qa eval DATASET_DIR --store milvus-lite --index DIR` left
behind (FAISS files and `milvus.db` holding the same vectors). For every question, with the same
query vector and the same candidate depth as `qa.search`: "engine RRF" is one
`hybrid_search(dense IP + BM25, RRFRanker(60))` call; "ours" is `qa.search` in hybrid mode (dense and
BM25 lists from Milvus, standardized-score fusion); both then go through the same `compose`
(merging overlapping windows and copies) and are scored with `qa.evaluate.metrics`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qa.embed import Embedder
from qa.evaluate import hit_passage_ids, metrics, read_dataset
from qa.lexical import terms
from qa.search import compose, search
from qa.store import MilvusStore

from .corpus import write_json

K = 10
DEPTH = 30  # max(3 * k, 30), as in qa.search


def engine_rrf(store: MilvusStore, vector: list[float], question: str) -> list[tuple[int, float]]:
    from pymilvus import AnnSearchRequest, RRFRanker

    requests = [AnnSearchRequest([vector], "dense", {"metric_type": "IP"}, DEPTH)]
    words = " ".join(terms([question])[0])
    if words:
        requests.append(AnnSearchRequest([words], "sparse", {"metric_type": "BM25"}, DEPTH))
    found = store.client.hybrid_search(store.name("passages"), requests, RRFRanker(60), limit=DEPTH,
                                       output_fields=["row"])
    return [(int(hit["entity"]["row"]), float(hit["distance"])) for hit in found[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.milvus_fusion", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--index", type=Path, required=True, help="index folder holding milvus.db")
    parser.add_argument("--limit", type=int, help="only the first N questions")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    _, questions = read_dataset(args.dataset)
    questions = questions[: args.limit] if args.limit else questions
    store = MilvusStore(str((args.index / "milvus.db").resolve()), args.index)
    embedder = Embedder()
    vectors = embedder.encode_queries([q.question for q in questions])
    figures: dict[str, dict[str, float]] = {}
    for name in ("engine RRF", "ours"):
        started = time.perf_counter()
        hits = []
        for at, q in enumerate(questions):
            if name == "ours":
                hits.append(search(q.question, K, store, embedder, "hybrid", query_vector=vectors[at : at + 1]))
            else:
                hits.append(compose(engine_rrf(store, vectors[at].tolist(), q.question), K, store))
        seconds = time.perf_counter() - started
        ranked = [[passage_id for hit in found for passage_id in hit_passage_ids(hit)] for found in hits]
        scores = metrics(ranked, [[hit.text for hit in found] for found in hits], questions)
        figures[name] = {**{key: round(value, 4) for key, value in scores.items()}, "ms_per_question":
                         round(1000 * seconds / max(len(questions), 1), 1)}
    store.close()
    print(f"| Milvus hybrid ({len(questions)} questions) | recall@1 | recall@5 | MRR@10 | ms/question |")
    print("|---|---:|---:|---:|---:|")
    for name, row in figures.items():
        print(f"| {name} | {row['recall@1']:.3f} | {row['recall@5']:.3f} | {row['mrr@10']:.3f} | "
              f"{row['ms_per_question']} |")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
