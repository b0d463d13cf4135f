"""Indexing throughput: a full build against plain `SentenceTransformer.encode` on the same passages.

    python -m bench.throughput [--quick] [--articles N] [--rounds R] [--threads T] [--json OUT]

Copies the first N BBC News articles (sorted paths; 400 by default, 40 with `--quick`) into a
temporary folder. Each round times a full `Library.sync()` into a fresh index (read, split,
embed, BM25, FAISS, SQLite, the headline self-check) and, with the same loaded model
(`library.embedder.model`), `model.encode` on exactly the passage texts the build embedded, at the
same batch size: in one call ("raw", which sorts the texts by characters into batches), and
in the pipeline's batches, longest first by token count, one batch a call ("raw, token-sorted";
the counting not timed; first round only with `--quick`). Rounds alternate the order
(build first, then raw first) so that neither order is favoured; figures are medians over
rounds, and the ratio per round compares figures taken a few seconds apart. The build's time is
also split at its first and last progress call: before embedding (read, split), embedding
(with the vector cache), after (BM25, FAISS, SQLite, self-check). The model is loaded and warmed,
and one article is built once (so pysbd, FAISS and bm25s are imported), before anything is timed.

Every figure is taken twice: wall-clock seconds, and the process's CPU seconds (all threads).
With `--threads 1` (torch on one thread, for the build and the raw runs alike) the CPU seconds
measure the work done and hardly move when other jobs share the machine; the wall-clock ratio at
torch's default threads is the figure that counts, and the noisiest.
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

from .bbc import add_corpus_argument, require_corpus
from .corpus import bbc_files, copy_articles, median, peak_rss_mb, settings_for, write_json

Seconds = tuple[float, float]  # (wall clock, CPU of this process)


def now() -> Seconds:
    return time.perf_counter(), time.process_time()


def since(start: Seconds) -> Seconds:
    wall, cpu = now()
    return wall - start[0], cpu - start[1]


def build_once(
    articles: Path, scratch: Path, embedder: Embedder, round_number: int
) -> tuple[Seconds, list[Seconds], Library]:
    """A full sync into a fresh index: its seconds, split (before, during, after embedding), and its library."""
    library = Library(settings_for(articles, scratch / f"index-{round_number}"), embedder=embedder)
    calls: list[Seconds] = []
    started = now()
    report = library.sync(progress=lambda done, total: calls.append(now()))
    ended = now()
    if report.passages_cached or report.unchanged:  # passages of the same text are embedded once
        raise RuntimeError(f"expected a build from scratch, got: {report.summary()}")
    marks = [started, calls[0], calls[-1], ended]
    phases = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(marks, marks[1:], strict=False)]
    return (ended[0] - started[0], ended[1] - started[1]), phases, library


def encode_seconds(embedder: Embedder, texts: list[str], chunk: int) -> Seconds:
    """`model.encode` over `texts`, `chunk` texts per call (longest in tokens first when chunked)."""
    model = embedder.model
    if chunk < len(texts):
        tokens = {text: embedder.count_tokens(text) for text in texts}
        texts = sorted(texts, key=lambda text: -tokens[text])
    started = now()
    for start in range(0, len(texts), chunk):
        model.encode(texts[start : start + chunk], batch_size=embedder.batch_size, normalize_embeddings=True,
                     convert_to_numpy=True, show_progress_bar=False)
    return since(started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="40 articles, 2 rounds (under a minute)")
    parser.add_argument("--articles", type=int, help="number of BBC articles (default 400; 40 with --quick)")
    parser.add_argument("--rounds", type=int, help="rounds, alternating the order (default 2)")
    parser.add_argument("--threads", type=int, help="torch threads for everything (default: torch's own choice)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="the build's PyTorch precision (default auto); raw encode is always fp32")
    parser.add_argument("--passage-encoder", choices=("auto", "torch", "onnx"), default="auto",
                        help="the build's passage encoder (default auto)")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    count = args.articles or (40 if args.quick else 400)
    rounds = args.rounds or 2
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        articles = scratch / "articles"
        copy_articles(bbc_files(corpus, count), articles)
        embedder = Embedder(batch_size=settings_for(articles, scratch / "index").batch_size, precision=args.precision,
                            passage_encoder=args.passage_encoder)
        embedder.encode(["Warm-up: the model loads and runs once before anything is timed."])
        copy_articles(bbc_files(corpus, 1), scratch / "warm-up")
        warm_up = Library(settings_for(scratch / "warm-up", scratch / "warm-up-index"), embedder=embedder)
        warm_up.sync()
        warm_up.store.close()
        pipeline: list[Seconds] = []
        phases: list[list[Seconds]] = []
        raw: list[Seconds] = []
        token_sorted: list[Seconds] = []
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
        threads = _torch_threads()

    passages = len(texts)

    def middle(values: list[Seconds], which: int) -> float:
        return median([value[which] for value in values])

    result: dict[str, object] = {
        "articles": count, "passages": passages, "batch_size": embedder.batch_size, "rounds": rounds,
        "torch_threads": threads,
    }
    for which, clock in ((0, ""), (1, "cpu_")):
        result |= {
            f"{clock}pipeline_passages_per_s": round(passages / middle(pipeline, which), 2),
            f"{clock}raw_encode_passages_per_s": round(passages / middle(raw, which), 2),
            f"{clock}raw_encode_token_sorted_passages_per_s": round(passages / middle(token_sorted, which), 2),
            f"{clock}ratio": round(middle(raw, which) / middle(pipeline, which), 3),
            f"{clock}ratio_per_round": [round(r[which] / b[which], 3) for r, b in zip(raw, pipeline, strict=True)],
            f"{clock}pipeline_seconds": [round(s[which], 2) for s in pipeline],
            f"{clock}raw_encode_seconds": [round(s[which], 2) for s in raw],
            f"{clock}raw_encode_token_sorted_seconds": [round(s[which], 2) for s in token_sorted],
            f"{clock}pipeline_phase_seconds": {
                name: [round(split[at][which], 2) for split in phases]
                for at, name in enumerate(("before_embedding", "embedding", "after_embedding"))
            },
        }
    result |= {
        "headline_check_seconds": round(health, 2), "peak_rss_mb": round(peak_rss_mb()),
        "build_path": embedder.paths().summary(),
    }
    print(f"{count} BBC articles, {passages} passages, batch {embedder.batch_size}, torch threads {threads}, "
          f"{rounds} rounds (medians); build: {embedder.paths().summary()}, raw: fp32\n")
    print("| what | seconds | passages/s | vs raw | CPU s | vs raw (CPU) |\n|---|---:|---:|---:|---:|---:|")
    for name, values in (("raw `model.encode` (one call)", raw),
                         ("raw `model.encode`, token-sorted batches", token_sorted),
                         ("full build (`Library.sync`)", pipeline)):
        wall, cpu = middle(values, 0), middle(values, 1)
        print(f"| {name} | {wall:.1f} | {passages / wall:.1f} | {middle(raw, 0) / wall:.2f} | {cpu:.1f} | "
              f"{middle(raw, 1) / cpu:.2f} |")
    before, during, after = (median([split[at][0] for split in phases]) for at in range(3))
    print(f"\nthe build's time: {before:.1f} s before embedding (read, split), {during:.1f} s embedding, "
          f"{after:.1f} s after (BM25, FAISS, SQLite, self-check)")
    print("ratio per round (raw / build): "
          + ", ".join(f"{r[0] / b[0]:.2f} (CPU {r[1] / b[1]:.2f})" for r, b in zip(raw, pipeline, strict=True)))
    print(f"of which the headline self-check after the build: {health:.1f} s")
    write_json(args.json, result)
    return 0


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


if __name__ == "__main__":
    sys.exit(main())
