"""Indexing throughput: a full build against plain `SentenceTransformer.encode` on the same passages.

    python -m bench.throughput [--quick] [--articles N] [--rounds R] [--json OUT]

Copies the first N BBC News articles (sorted paths; 400 by default, 40 with `--quick`) into a
temporary folder. Each round times a full `Library.sync()` into a fresh index (read, split,
embed, BM25, FAISS, SQLite, the headline self-check) and, with the same loaded model
(`library.embedder.model`), `model.encode` on exactly the passage texts the build embedded, at the
same batch size: in one call ("raw", which sorts the texts by characters into batches), and
in the pipeline's batches, longest first by token count, one batch a call ("raw, token-sorted";
the counting not timed; first round only with `--quick`). Rounds alternate the order
(build first, then raw first) because the machine is shared and noisy; figures are medians over
rounds, and the ratio per round compares figures taken a few seconds apart. The build's time is
also split at its first and last progress call: before embedding (read, split), embedding
(with the vector cache), after (BM25, FAISS, SQLite, self-check). The model is loaded and warmed
before anything is timed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from qa import Library
from qa.embed import Embedder
from qa.health import headline_check

from .corpus import bbc_files, copy_articles, median, peak_rss_mb, settings_for, write_json


def build_once(
    articles: Path, scratch: Path, embedder: Embedder, round_number: int
) -> tuple[float, tuple[float, float, float], Library]:
    """Seconds for a full sync into a fresh index, split (before, during, after embedding), and its library."""
    library = Library(settings_for(articles, scratch / f"index-{round_number}"), embedder=embedder)
    calls: list[float] = []
    started = time.perf_counter()
    report = library.sync(progress=lambda done, total: calls.append(time.perf_counter()))
    ended = time.perf_counter()
    if report.passages_embedded != report.passages_total:
        raise RuntimeError(f"expected a build from scratch, got: {report.summary()}")
    phases = (calls[0] - started, calls[-1] - calls[0], ended - calls[-1])
    return ended - started, phases, library


def encode_seconds(embedder: Embedder, texts: list[str], chunk: int) -> float:
    """Seconds for `model.encode` over `texts`, `chunk` texts per call (longest in tokens first when chunked)."""
    model = embedder.model
    if chunk < len(texts):
        tokens = {text: embedder.count_tokens(text) for text in texts}
        texts = sorted(texts, key=lambda text: -tokens[text])
    started = time.perf_counter()
    for start in range(0, len(texts), chunk):
        model.encode(texts[start : start + chunk], batch_size=embedder.batch_size, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 articles, 2 rounds (under a minute)")
    parser.add_argument("--articles", type=int, help="number of BBC articles (default 400; 40 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds, alternating the order (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    count = args.articles or (40 if args.quick else 400)
    rounds = args.rounds or 2

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        articles = scratch / "articles"
        copy_articles(bbc_files(count), articles)
        embedder = Embedder(batch_size=settings_for(articles, scratch).batch_size)
        embedder.encode(["Warm-up: the model loads and runs once before anything is timed."])
        pipeline: list[float] = []
        phases: list[tuple[float, float, float]] = []
        raw: list[float] = []
        token_sorted: list[float] = []
        texts: list[str] = []
        health: float = 0.0
        for number in range(rounds):
            raw_first = number % 2 == 1  # round 0 builds first: it tells which texts the build embeds
            if raw_first:
                raw.append(encode_seconds(embedder, texts, len(texts)))
            seconds, split, library = build_once(articles, scratch, embedder, number)
            pipeline.append(seconds)
            phases.append(split)
            texts = [text for (text,) in library.store.db.execute("SELECT text FROM passages ORDER BY row")]
            if not raw_first:
                raw.append(encode_seconds(embedder, texts, len(texts)))
            if number == 0 or not args.quick:
                token_sorted.append(encode_seconds(embedder, texts, embedder.batch_size))
            if number == 0:
                started = time.perf_counter()
                headline_check(library.store, embedder, library.settings.mode)
                health = time.perf_counter() - started
            library.store.close()

    passages = len(texts)
    result = {
        "articles": count,
        "passages": passages,
        "batch_size": embedder.batch_size,
        "rounds": rounds,
        "pipeline_passages_per_s": round(passages / median(pipeline), 2),
        "raw_encode_passages_per_s": round(passages / median(raw), 2),
        "ratio": round(median(raw) / median(pipeline), 3),
        "ratio_per_round": [round(r / b, 3) for r, b in zip(raw, pipeline, strict=True)],
        "raw_encode_token_sorted_passages_per_s": round(passages / median(token_sorted), 2),
        "pipeline_seconds": [round(s, 2) for s in pipeline],
        "raw_encode_seconds": [round(s, 2) for s in raw],
        "raw_encode_token_sorted_seconds": [round(s, 2) for s in token_sorted],
        "pipeline_phase_seconds": {
            name: [round(split[at], 2) for split in phases]
            for at, name in enumerate(("before_embedding", "embedding", "after_embedding"))
        },
        "headline_check_seconds": round(health, 2),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    print(f"{count} BBC articles, {passages} passages, batch {embedder.batch_size}, {rounds} rounds (medians)\n")
    print("| what | seconds | passages/s | vs raw |\n|---|---:|---:|---:|")
    for name, values in (("raw `model.encode` (one call)", raw),
                         ("raw `model.encode`, token-sorted batches", token_sorted),
                         ("full build (`Library.sync`)", pipeline)):
        print(f"| {name} | {median(values):.1f} | {passages / median(values):.1f} | "
              f"{median(raw) / median(values):.2f} |")
    before, during, after = (median([split[at] for split in phases]) for at in range(3))
    print(f"\nthe build's time: {before:.1f} s before embedding (read, split), {during:.1f} s embedding, "
          f"{after:.1f} s after (BM25, FAISS, SQLite, self-check)")
    print(f"ratio per round (raw / build): {', '.join(f'{r / b:.2f}' for r, b in zip(raw, pipeline, strict=True))}")
    print(f"of which the headline self-check after the build: {health:.1f} s")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
