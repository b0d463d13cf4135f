"""Exact against approximate FAISS search at growing sizes: recall@10, search time, build time, memory.

    python -m bench.ann [--quick] [--sizes N ...] [--base-index DIR] [--json OUT]

For each size (10k, 100k, 300k and 1M passages; 10k and 50k with `--quick`) a synthetic set of
vectors is made as `bench.corpus` makes them: real BBC passage vectors (from `--base-index`, an index
folder built by this project, or else the first 100 BBC articles embedded now), each copy plus
Gaussian noise and re-normalized. The queries are the real BBC paraphrase questions, embedded.
Indexes are made by `qa.store.build_faiss`, as the store makes them: exact `IDMap2,Flat`, and
the IVF layout that `choose_layout("auto")` picks for a collection of that size (the one of 100k
below that), searched with its nprobe and with nlist/64 .. nlist/4. Recall@10 is the share of the
exact top 10 found in the approximate top 10; search time is one query at a time, depth 30 (what
`retrieve` asks for). Filtered (1% and 10% of the rows allowed, auto nprobe): recall@10 and time of
both ways `Store.search` has, an exact scan of the allowed vectors and the IVF index with an ID
selector and nprobe scaled up. Memory: the index file's size and the process's RSS growth while
the index was built. Every search runs FAISS on one thread, as `Store.search` does; exact search is
also timed with FAISS's default threads (one per core).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qa import Library
from qa.embed import Embedder
from qa.store import (
    EXACT_UP_TO,
    FLAT,
    FaissLayout,
    build_faiss,
    choose_layout,
    exact_subset_limit,
    one_thread,
    search_parameters,
    search_subset,
)

from .bbc import add_corpus_argument, require_corpus
from .corpus import NOISE, build_base, current_rss_mb, percentile, questions, real_base, settings_for, write_json

DEPTH = 30
RECALL_AT = 10
PROBE_SHARES = (64, 32, 16, 8, 4)  # nprobe = nlist / share
FILTER_SHARES = (0.01, 0.1)  # filtered searches: this share of the rows allowed


def synthetic(base: npt.NDArray[np.float32], size: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """(size, d) float32: base vectors sampled with replacement, plus Gaussian noise, re-normalized."""
    rng = np.random.default_rng(seed)
    vectors = np.empty((size, base.shape[1]), dtype=np.float32)
    for start in range(0, size, 100_000):
        stop = min(size, start + 100_000)
        chunk = base[rng.integers(0, len(base), stop - start)]
        chunk += NOISE * rng.standard_normal(chunk.shape, dtype=np.float32)
        vectors[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    return vectors


def batches_of(vectors: npt.NDArray[np.float32]):  # type: ignore[no-untyped-def]
    """`build_faiss`'s source: (rows, vectors) chunks, rows counted from 1 like passage rows."""
    def batches():  # type: ignore[no-untyped-def]
        for start in range(0, len(vectors), 50_000):
            stop = min(len(vectors), start + 50_000)
            yield np.arange(start + 1, stop + 1, dtype=np.int64), vectors[start:stop]
    return batches


def timed_search(index, queries: npt.NDArray[np.float32], params=None) -> tuple[npt.NDArray[np.int64], list[float]]:  # type: ignore[no-untyped-def]
    """Top-DEPTH rows of each query, searched one at a time, and the milliseconds each took."""
    found, times = [], []
    with one_thread():  # as `Store.search` does
        for query in queries:
            started = time.perf_counter()
            _, rows = index.search(query[None, :], DEPTH, params=params)
            times.append((time.perf_counter() - started) * 1000)
            found.append(rows[0])
    return np.vstack(found), times


def recall(exact: npt.NDArray[np.int64], approximate: npt.NDArray[np.int64]) -> float:
    """Mean share of each exact top RECALL_AT found in the approximate top RECALL_AT."""
    return float(np.mean([
        len(set(e[:RECALL_AT].tolist()) & set(a[:RECALL_AT].tolist())) / RECALL_AT
        for e, a in zip(exact, approximate, strict=True)
    ]))


def build(layout: FaissLayout, vectors: npt.NDArray[np.float32], scratch: Path):  # type: ignore[no-untyped-def]
    """(index, figures): build seconds, RSS growth and file size of `layout` over `vectors`."""
    import faiss

    gc.collect()
    before = current_rss_mb()
    started = time.perf_counter()
    index, built = build_faiss(layout, vectors.shape[1], len(vectors), batches_of(vectors))
    seconds = time.perf_counter() - started
    grown = current_rss_mb() - before
    path = scratch / "probe.faiss"
    faiss.write_index(index, str(path))
    size = path.stat().st_size
    path.unlink()
    return index, {"layout": str(built), "build_seconds": round(seconds, 1), "rss_growth_mb": round(grown),
                   "file_mb": round(size / 2**20, 1)}


def measure(size: int, base: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], scratch: Path,
            extra: list[str]) -> dict[str, object]:
    import faiss

    vectors = synthetic(base, size)
    exact_index, exact_figures = build(FLAT, vectors, scratch)
    exact_rows, exact_times = timed_search(exact_index, queries)
    all_threads_times = []
    for query in queries:  # FAISS's default: one thread per core
        started = time.perf_counter()
        exact_index.search(query[None, :], DEPTH)
        all_threads_times.append((time.perf_counter() - started) * 1000)
    rng = np.random.default_rng(1)
    filters: dict[str, tuple[set[int], npt.NDArray[np.int64]]] = {}
    for share in FILTER_SHARES:
        allowed = set((rng.choice(size, int(size * share), replace=False) + 1).tolist())
        selector = faiss.SearchParameters(sel=faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64)))
        filters[f"{share:.0%}"] = allowed, timed_search(exact_index, queries, selector)[0]
    figures: dict[str, object] = {
        "vectors_mb": round(vectors.nbytes / 2**20, 1),
        "exact": {**exact_figures, "p50_ms": round(percentile(exact_times, 0.5), 2),
                  "p95_ms": round(percentile(exact_times, 0.95), 2),
                  "p50_ms_default_threads": round(percentile(all_threads_times, 0.5), 2)},
    }
    del exact_index
    auto = choose_layout("auto", max(size, EXACT_UP_TO))  # the IVF layout "auto" would pick at this size
    layouts = [FaissLayout(auto.factory)] + [FaissLayout.parse(text) for text in extra]
    approximate: list[dict[str, object]] = []
    for layout in layouts:
        index, built = build(layout, vectors, scratch)
        ivf = faiss.try_extract_index_ivf(index)
        settings = sorted({f"nprobe={max(1, ivf.nlist // share)}" for share in PROBE_SHARES} | {auto.search},
                          key=lambda text: int(text.split("=")[1])) if ivf else [layout.search]
        for search in settings:
            if search:
                faiss.ParameterSpace().set_index_parameters(index, search)
            rows, times = timed_search(index, queries)
            entry = {**built, "search": search, "recall_at_10": round(recall(exact_rows, rows), 4),
                     "p50_ms": round(percentile(times, 0.5), 2), "p95_ms": round(percentile(times, 0.95), 2)}
            if search == (auto.search if ivf else layout.search):
                entry["filtered"] = {name: filtered(index, queries, allowed, exact)
                                     for name, (allowed, exact) in filters.items()}
            approximate.append(entry)
        del index
        gc.collect()
    figures["auto"] = str(choose_layout("auto", size))
    figures["approximate"] = approximate
    return figures


def filtered(index, queries: npt.NDArray[np.float32], allowed: set[int],  # type: ignore[no-untyped-def]
             exact: npt.NDArray[np.int64]) -> dict[str, object]:
    """Recall@10 and p50 ms of a search restricted to `allowed` rows, both ways `Store.search` can do it:
    an exact scan of the allowed vectors, and the index with an ID selector (IVF: nprobe scaled up)."""
    figures: dict[str, object] = {"allowed": len(allowed), "store_uses": "exact subset"
                                  if len(allowed) <= exact_subset_limit(index) else "selector"}
    for way in ("exact subset", "selector"):
        found, times = [], []
        for query in queries:
            started = time.perf_counter()
            with one_thread():
                if way == "exact subset":
                    rows = [row for row, _ in search_subset(index, query[None, :], DEPTH, allowed)]
                else:
                    params = search_parameters(index, allowed)
                    rows = index.search(query[None, :], DEPTH, params=params)[1][0].tolist()
            times.append((time.perf_counter() - started) * 1000)
            found.append(np.asarray(rows + [-1] * (DEPTH - len(rows)), dtype=np.int64))
        figures[way] = {"recall_at_10": round(recall(exact, np.vstack(found)), 4),
                        "p50_ms": round(percentile(times, 0.5), 2)}
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ann", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 50k vectors (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="collection sizes (default 10000 100000 300000 1000000)")
    parser.add_argument("--base-index", type=Path, help="take the real passage vectors from this index folder")
    parser.add_argument("--layout", action="append", default=[],
                        help="another factory string to compare, e.g. 'HNSW32 efSearch=64' (repeatable)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = None if args.base_index else require_corpus(args.corpus)
    sizes = args.sizes or ([10_000, 50_000] if args.quick else [10_000, 100_000, 300_000, 1_000_000])

    embedder = Embedder()
    queries = np.vstack([embedder.encode_query(question) for question in questions()]).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        if args.base_index:
            library = Library(settings_for(scratch, args.base_index), embedder=embedder)
            base = real_base(library).vectors
            library.store.close()
        else:
            base = build_base(corpus, scratch / "base", 30 if args.quick else 100, embedder).vectors
        results: dict[str, object] = {"base_vectors": len(base), "queries": len(queries), "depth": DEPTH}
        for size in sizes:
            results[str(size)] = measure(size, base, queries, scratch, args.layout)
            gc.collect()

    print(f"FAISS exact vs approximate, {len(queries)} real questions, synthetic vectors from {len(base)} real "
          f"passages; recall@{RECALL_AT} against exact search, one query at a time, depth {DEPTH}\n")
    print("| vectors | index | search | recall@10 | p50 ms | p95 ms | build s | file MB | RSS growth MB |")
    print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        entry = results[str(size)]
        exact = entry["exact"]  # type: ignore[index]
        print(f"| {size:,} | Flat (exact) | | 1.0 | {exact['p50_ms']} | {exact['p95_ms']} | "
              f"{exact['build_seconds']} | {exact['file_mb']} | {exact['rss_growth_mb']} |")
        for row in entry["approximate"]:  # type: ignore[index]
            print(f"| {size:,} | {row['layout'].split(' ')[0]} | {row['search']} | {row['recall_at_10']} | "
                  f"{row['p50_ms']} | {row['p95_ms']} | {row['build_seconds']} | {row['file_mb']} | "
                  f"{row['rss_growth_mb']} |")
    print("\nFiltered searches (the auto layout's nprobe): exact scan of the allowed rows vs the IVF index "
          "with an ID selector and nprobe scaled by 1 / share\n")
    print("| vectors | allowed | exact subset recall@10 | p50 ms | selector recall@10 | p50 ms | Store uses |")
    print("|---:|---:|---:|---:|---:|---:|---|")
    for size in sizes:
        for row in results[str(size)]["approximate"]:  # type: ignore[index]
            for name, way in row.get("filtered", {}).items():
                subset, selector = way["exact subset"], way["selector"]
                print(f"| {size:,} | {name} | {subset['recall_at_10']} | {subset['p50_ms']} | "
                      f"{selector['recall_at_10']} | {selector['p50_ms']} | {way['store_uses']} |")
    print("\nExact search p50 ms on one thread (as timed above) vs FAISS's default threads: " + ", ".join(
        f"{size:,}: {results[str(size)]['exact']['p50_ms']} vs "  # type: ignore[index]
        f"{results[str(size)]['exact']['p50_ms_default_threads']}" for size in sizes))  # type: ignore[index]
    print("\nauto layout per size: " + ", ".join(f"{size:,}: {results[str(size)]['auto']}" for size in sizes))
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
