"""Incremental cost: seconds for `Library.sync()` to add one article to an N-passage index, and to delete it.

    python -m bench.incremental [--quick] [--sizes N ...] [--rounds R] [--json OUT]

Sizes: 10k and 100k passages (2k and 20k with `--quick`). Each index is synthetic (see
`bench.corpus`): its articles are `synthetic/*.jsonl` files in the articles folder, inserted with their
vectors straight into the index, so a sync sees them as unchanged. With the model loaded and warmed
and the index loaded by a first (no-op) sync, each round copies one real BBC article (not among the
base ones) into the folder and times `Library.sync()`, then deletes the file and times it again.
A sync that changed the index also runs the headline self-check: after a small sync, the changed
articles and 10 of the kept sample (`qa.health.headline_update`); the full check (100 searches,
after full builds) is timed alone once per size. Figures are medians over rounds (3; 2 with `--quick`).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

from qa import Library
from qa.articles import SETTLED_SECONDS
from qa.embed import Embedder
from qa.health import headline_check

from .bbc import add_corpus_argument, require_corpus
from .corpus import Base, bbc_files, build_base, fill, median, settings_for, write_json

NEW_ARTICLES_FROM = 1000  # the added articles are BBC files 1000, 1001, ... in sorted order (politics)


def timed_sync(library: Library) -> tuple[float, str]:
    started = time.perf_counter()
    report = library.sync()
    return time.perf_counter() - started, report.summary()


def measure(
    corpus: Path, size: int, scratch: Path, embedder: Embedder, base: Base, rounds: int
) -> dict[str, object]:
    """Median seconds to add and to delete one article at `size` passages."""
    folder = scratch / f"articles-{size}"
    folder.mkdir()
    library = Library(settings_for(folder, scratch / f"index-{size}"), embedder=embedder)
    fill(library, size, base)
    time.sleep(SETTLED_SECONDS)  # files written moments ago are read again by each sync until they settle
    first, summary = timed_sync(library)
    if "0 added, 0 updated, 0 removed" not in summary:
        raise RuntimeError(f"the synthetic index should be up to date, got: {summary}")
    added: list[float] = []
    deleted: list[float] = []
    summaries: list[str] = []
    for source in bbc_files(corpus, rounds, skip=NEW_ARTICLES_FROM):
        target = folder / f"new-{source.parent.name}-{source.name}"
        target.write_bytes(source.read_bytes())
        seconds, summary = timed_sync(library)
        if not summary.startswith("1 added"):
            raise RuntimeError(f"expected one added article, got: {summary}")
        added.append(seconds)
        summaries.append(summary)
        target.unlink()
        seconds, summary = timed_sync(library)
        if not summary.startswith("0 added, 0 updated, 1 removed"):
            raise RuntimeError(f"expected one removed article, got: {summary}")
        deleted.append(seconds)
        summaries.append(summary)
    started = time.perf_counter()
    headline_check(library.store, embedder, library.settings.mode)
    health = time.perf_counter() - started
    library.store.close()
    return {
        "add_s": round(median(added), 2), "delete_s": round(median(deleted), 2),
        "headline_check_s": round(health, 2), "first_sync_s": round(first, 2),
        "add_s_rounds": [round(s, 2) for s in added], "delete_s_rounds": [round(s, 2) for s in deleted],
        "syncs": summaries,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 20k passages, 2 rounds (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="index sizes in passages (default 10000 100000)")
    parser.add_argument("--rounds", type=int, help="articles added and deleted per size (default 3; 2 with --quick)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    sizes = args.sizes or ([2_000, 20_000] if args.quick else [10_000, 100_000])
    rounds = args.rounds or (2 if args.quick else 3)

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        embedder = Embedder()
        embedder.encode(["Warm-up: the model loads and runs once before anything is timed."])
        base = build_base(corpus, scratch / "base", 30, embedder)
        for size in sizes:
            results[str(size)] = measure(corpus, size, scratch, embedder, base, rounds)
            gc.collect()

    print(f"Library.sync() after adding or deleting one BBC article, model loaded; medians of {rounds} rounds\n")
    print("| passages | add one article s | delete it s | full headline self-check s (full builds only) |\n"
          "|---:|---:|---:|---:|")
    for size in sizes:
        row = results[str(size)]
        print(f"| {size:,} | {row['add_s']} | {row['delete_s']} | {row['headline_check_s']} |")  # type: ignore[index]
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
