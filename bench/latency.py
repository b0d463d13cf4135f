"""Query latency of `Library.retrieve()` per mode at three index sizes, against the bare libraries.

    python -m bench.latency [--quick] [--sizes N ...] [--questions Q] [--threads T] [--json OUT]

Sizes: 10k, 100k and 1M passages (2k and 20k with `--quick`); the FAISS index is what the default
setting (QA_FAISS_INDEX=auto) picks for each: exact below `qa.store.EXACT_UP_TO`, IVF above.
Every index is synthetic (see
`bench.corpus`): real BBC passages (the first 100 articles, 30 with `--quick`, split and embedded
by the pipeline) sampled into articles, each passage with its source vector plus Gaussian noise,
re-normalized, and its real text for BM25; embedding 10k passages for real would take about 10
minutes here. With the model loaded and warmed, each of the BBC paraphrase questions (120; 25
with `--quick`) is asked once per mode with k = 5 (modes interleaved), and timed whole (question checks, dates, search,
fusion, citations). It times the first search stage (`rerank=False`): synthetic passages have no
sentence vectors, so the second stage (`qa.rerank`, about one more question encoding) is measured on
real articles by `qa eval` instead. Beside it, the bare libraries on the same index and questions:
`model.encode(question)` + FAISS `index.search` on one thread (dense), bm25s tokenize + score + top-k (bm25),
and their sum (hybrid), at the depth `retrieve` searches (30). Memory: the process's RSS once each
index is loaded and searched (before the bare libraries load theirs) and its peak so far, against
the RSS with only the model loaded (the "baseline": model, torch and the real base index) and the
bytes of the vectors and passage texts. With 1,000,000 passages among the sizes, the targets for
that size (`TARGETS`: hybrid p50 and p95, index memory, minutes the whole run takes) are printed
beside the measured values, met or missed.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from qa import Library
from qa.embed import Embedder
from qa.lexical import QUESTION_WORDS
from qa.store import one_thread

from .bbc import add_corpus_argument, require_corpus
from .corpus import (
    Base,
    build_base,
    current_rss_mb,
    fill,
    peak_rss_mb,
    percentile,
    questions,
    settings_for,
    synthetic_library,
    write_json,
)

MODES = ("dense", "bm25", "hybrid")
TARGET_SIZE = 1_000_000  # the targets hold at this many passages
TARGETS = {"hybrid p50 ms": 30.0, "hybrid p95 ms": 60.0, "index RSS / (vectors + text)": 1.3,
           "benchmark minutes": 15.0}  # upper bounds
K = 5
DEPTH = 30  # what `qa.search.search` fetches from each side for k = 5


class Bare:
    """The bare libraries on one index: `model.encode` + FAISS search, and bm25s scoring + top-k."""

    def __init__(self, library: Library) -> None:
        import bm25s
        import Stemmer
        from bm25s.stopwords import STOPWORDS_EN

        self.model, self.index = library.embedder.model, library.store.faiss_index()
        stored = library.store.db.execute("SELECT terms FROM passages ORDER BY row").fetchall()
        self.retriever = bm25s.BM25()  # bm25s fitted on the stored terms: the bare library
        self.retriever.index([words.split() for (words,) in stored], show_progress=False)
        self.stemmer, self.stopwords = Stemmer.Stemmer("english"), [*STOPWORDS_EN, *QUESTION_WORDS]

    def dense_ms(self, question: str) -> float:
        started = time.perf_counter()
        vector = self.model.encode([question], normalize_embeddings=True, convert_to_numpy=True,
                                   show_progress_bar=False)
        with one_thread():  # as `Store.search` does: one query needs no more
            self.index.search(np.ascontiguousarray(vector, dtype=np.float32), DEPTH)
        return (time.perf_counter() - started) * 1000

    def bm25_ms(self, question: str) -> float:
        import bm25s

        started = time.perf_counter()
        words = bm25s.tokenize([question], stopwords=self.stopwords, stemmer=self.stemmer, return_ids=False,
                               show_progress=False)[0]
        vocabulary = self.retriever.vocab_dict  # type: ignore[attr-defined]
        scores = self.retriever.get_scores_from_ids([vocabulary[w] for w in words if w in vocabulary])  # type: ignore[attr-defined]
        top = np.argpartition(-scores, DEPTH)[:DEPTH]
        top[np.argsort(-scores[top])]
        return (time.perf_counter() - started) * 1000


def measure(size: int, scratch: Path, embedder: Embedder, base: Base, asked: list[str]) -> dict[str, object]:
    """Latency per mode, bare-library latency and memory for one synthetic index of `size` passages."""
    folder = scratch / f"articles-{size}"
    folder.mkdir()
    library = synthetic_library(settings_for(folder, scratch / f"index-{size}"), embedder)
    started = time.perf_counter()
    inserted = fill(library, size, base)
    fill_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = library.sync()  # nothing to embed; runs the headline self-check once (100 searches)
    sync_seconds = time.perf_counter() - started
    if report.changed:
        raise RuntimeError(f"the synthetic index should be up to date, got: {report.summary()}")
    for question in asked[:3]:
        for mode in MODES:
            library.retrieve(question, k=K, mode=mode)
    gc.collect()
    index_rss = current_rss_mb()  # the index loaded and searched, before the bare libraries load theirs
    times: dict[str, list[float]] = {mode: [] for mode in MODES}
    bare = Bare(library)
    raw: dict[str, list[float]] = {mode: [] for mode in MODES}
    for question in asked:  # modes interleaved per question, so a burst of load hits them all alike
        for mode in MODES:
            started = time.perf_counter()
            library.retrieve(question, k=K, mode=mode)
            times[mode].append((time.perf_counter() - started) * 1000)
        dense, lexical = bare.dense_ms(question), bare.bm25_ms(question)
        raw["dense"].append(dense)
        raw["bm25"].append(lexical)
        raw["hybrid"].append(dense + lexical)
    figures = {
        mode: {"p50_ms": round(percentile(times[mode], 0.5), 1), "p95_ms": round(percentile(times[mode], 0.95), 1),
               "raw_p50_ms": round(percentile(raw[mode], 0.5), 1)}
        for mode in MODES
    }
    (text_bytes,) = library.store.db.execute("SELECT SUM(LENGTH(CAST(text AS BLOB))) FROM passages").fetchone()
    memory = {
        "passages": inserted,
        "faiss_index": library.store.manifest().get("faiss_index", "Flat"),
        "rss_mb": round(index_rss),
        "peak_rss_mb": round(peak_rss_mb()),
        "vectors_mb": round(inserted * int(base.manifest["dimension"]) * 4 / 2**20, 1),  # type: ignore[call-overload]
        "text_mb": round(text_bytes / 2**20, 1),
        "fill_seconds": round(fill_seconds, 1),
        "first_sync_seconds": round(sync_seconds, 1),
    }
    library.store.close()
    return {**figures, "memory": memory}


def targets(results: dict[str, object]) -> dict[str, tuple[float, float]]:
    """Each target at TARGET_SIZE passages: (bound, measured)."""
    entry: dict[str, dict[str, float]] = results[str(TARGET_SIZE)]  # type: ignore[assignment]
    memory = entry["memory"]
    index_mb = memory["rss_mb"] - results["baseline_rss_mb"]  # type: ignore[operator]
    measured = {
        "hybrid p50 ms": entry["hybrid"]["p50_ms"], "hybrid p95 ms": entry["hybrid"]["p95_ms"],
        "index RSS / (vectors + text)": round(index_mb / (memory["vectors_mb"] + memory["text_mb"]), 2),
        "benchmark minutes": results["minutes"],
    }
    return {name: (bound, measured[name]) for name, bound in TARGETS.items()}  # type: ignore[misc]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 20k passages, 25 questions (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="index sizes in passages (default 10000 100000)")
    parser.add_argument("--questions", type=int, help="questions asked per mode (default 120; 25 with --quick)")
    parser.add_argument("--threads", type=int,
                        help="torch and FAISS threads (default: theirs, one per core)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    sizes = args.sizes or ([2_000, 20_000] if args.quick else [10_000, 100_000, 1_000_000])
    asked = questions()[: args.questions or (25 if args.quick else 120)]
    base_articles = 30 if args.quick else 100

    results: dict[str, object] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        embedder = Embedder()
        embedder.encode_query("Warm-up: the model loads and runs once before anything is timed.")
        base = build_base(corpus, scratch / "base", base_articles, embedder)
        gc.collect()
        results["baseline_rss_mb"] = round(current_rss_mb())
        for size in sizes:
            results[str(size)] = measure(size, scratch, embedder, base, asked)
            gc.collect()
    results["peak_rss_mb"] = round(peak_rss_mb())
    results["minutes"] = round((time.perf_counter() - started) / 60, 1)
    results["base"] = {"articles": base_articles, "passages": len(base.texts), "questions": len(asked), "k": K,
                       "threads": args.threads or "default"}

    print(f"retrieve() latency, k = {K}, {len(asked)} questions, model warm; synthetic "
          f"indexes from {len(base.texts)} real BBC passages\n")
    print("| passages | FAISS | mode | p50 ms | p95 ms | bare libraries p50 ms |\n|---:|---|---|---:|---:|---:|")
    for size in sizes:
        entry = results[str(size)]
        for mode in MODES:
            row = entry[mode]  # type: ignore[index]
            print(f"| {size:,} | {entry['memory']['faiss_index']} | {mode} | {row['p50_ms']} | "  # type: ignore[index]
                  f"{row['p95_ms']} | {row['raw_p50_ms']} |")
    print("\n| passages | RSS MB | RSS - baseline MB | vectors + text MB | peak RSS so far MB |")
    print("|---:|---:|---:|---:|---:|")
    for size in sizes:
        memory = results[str(size)]["memory"]  # type: ignore[index]
        print(f"| {size:,} | {memory['rss_mb']} | {memory['rss_mb'] - results['baseline_rss_mb']} | "  # type: ignore[operator]
              f"{round(memory['vectors_mb'] + memory['text_mb'])} | {memory['peak_rss_mb']} |")
    print(f"\nbaseline RSS (model, torch, base index) {results['baseline_rss_mb']} MB; "
          f"peak RSS {results['peak_rss_mb']} MB; {results['minutes']} minutes")
    if str(TARGET_SIZE) in results:
        print(f"\ntargets at {TARGET_SIZE:,} passages\n\n| target | bound | measured | |\n|---|---:|---:|---|")
        for name, (bound, value) in targets(results).items():
            print(f"| {name} | <= {bound} | {value} | {'met' if value <= bound else 'missed'} |")
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
