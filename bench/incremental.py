"""Incremental cost: seconds for `Library.sync()` to add one article to an N-passage index, and to delete it.

    python -m bench.incremental [--quick] [--sizes N ...] [--rounds R] [--whole-file] [--json OUT]

Sizes: 10k and 100k passages (2k and 20k with `--quick`). Each index is synthetic (see
`bench.corpus`): its articles are `synthetic/*.jsonl` files in the articles folder, inserted with their
vectors straight into the index, so a sync sees them as unchanged. With the model loaded and warmed
and the index loaded by a first (no-op) sync, each round copies one real BBC article (not among the
base ones) into the folder and times `Library.sync()`, then deletes the file and times it again.
A sync that changed the index also runs the headline self-check: after a small sync, the changed
articles and 10 of the kept sample (`qa.health.headline_update`); the full check (100 searches,
after full builds) is timed alone once per size. Figures are medians over rounds (3; 2 with `--quick`),
with the bytes of FAISS files each sync wrote, and the target (at 1M passages) beside them.

A sync writes a FAISS delta file (`qa.store.faiss_deltas`). `--whole-file` also times, in the same
rounds on the same index, syncs that write the whole FAISS file (the deltas' share set to 0, so
every sync merges): the cost of a sync that rewrites the file. Last, after one more article is added
as a delta file, the merge that a long-lived library makes between syncs (`Library.merge_deltas`) is
timed once per size.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qa import Library
from qa.articles import SETTLED_SECONDS
from qa.embed import Embedder
from qa.health import headline_check
from qa.store import Maintainable, faiss_deltas
from qa.store.faiss_deltas import faiss_names

from .bbc import add_corpus_argument, require_corpus
from .corpus import Base, bbc_files, build_base, fill, median, settings_for, write_json

NEW_ARTICLES_FROM = 1000  # the added articles are BBC files 1000, 1001, ... in sorted order (politics)
TARGET_SIZE, TARGET_SECONDS = 1_000_000, 1.0  # add one article to a 1M-passage index, or delete one, in <= 1 s
WAYS = {"delta": faiss_deltas.DELTA_SHARE, "whole": 0.0}  # the deltas' share of the base per way of writing


def timed_sync(library: Library) -> tuple[float, str, int]:
    """Seconds, summary, and bytes of FAISS files written by one `Library.sync()`."""
    before = set(faiss_names(library.store.manifest()))
    started = time.perf_counter()
    report = library.sync()
    seconds = time.perf_counter() - started
    index_dir = library.settings.index_dir
    written = sum((index_dir / name).stat().st_size for name in faiss_names(library.store.manifest())
                  if name not in before)
    return seconds, report.summary(), written


def measure(
    corpus: Path, size: int, scratch: Path, embedder: Embedder, base: Base, rounds: int, ways: list[str]
) -> dict[str, object]:
    """Median seconds (and FAISS bytes written) to add and to delete one article at `size` passages, for each
    of `ways` of writing the FAISS file, the ways alternating round by round on the same index."""
    folder = scratch / f"articles-{size}"
    folder.mkdir()
    library = Library(settings_for(folder, scratch / f"index-{size}"), embedder=embedder)
    fill(library, size, base)
    time.sleep(SETTLED_SECONDS)  # files written moments ago are read again by each sync until they settle
    first, summary, _ = timed_sync(library)
    if "0 added, 0 updated, 0 removed" not in summary:
        raise RuntimeError(f"the synthetic index should be up to date, got: {summary}")
    timings: dict[str, dict[str, list[float]]] = {way: {"add": [], "delete": [], "written": []} for way in ways}
    summaries: list[str] = []
    for source in bbc_files(corpus, rounds, skip=NEW_ARTICLES_FROM):
        for way in ways:
            faiss_deltas.DELTA_SHARE = WAYS[way]
            target = folder / f"new-{source.parent.name}-{source.name}"
            target.write_bytes(source.read_bytes())
            seconds, summary, written = timed_sync(library)
            if not summary.startswith("1 added"):
                raise RuntimeError(f"expected one added article, got: {summary}")
            timings[way]["add"].append(seconds)
            timings[way]["written"].append(written)
            summaries.append(f"{way}: {summary}")
            target.unlink()
            seconds, summary, _ = timed_sync(library)
            if not summary.startswith("0 added, 0 updated, 1 removed"):
                raise RuntimeError(f"expected one removed article, got: {summary}")
            timings[way]["delete"].append(seconds)
            summaries.append(f"{way}: {summary}")
    faiss_deltas.DELTA_SHARE = WAYS["delta"]
    started = time.perf_counter()
    headline_check(library.store, embedder, library.settings.mode)
    health = time.perf_counter() - started
    merge = timed_merge(library, folder, next(iter(bbc_files(corpus, 1, skip=NEW_ARTICLES_FROM + rounds))))
    library.store.close()
    figures: dict[str, object] = {"headline_check_s": round(health, 2), "first_sync_s": round(first, 2),
                                  "merge_s": round(merge, 2), "syncs": summaries}
    for way, found in timings.items():
        prefix = "" if way == "delta" else f"{way}_"
        figures |= {
            f"{prefix}add_s": round(median(found["add"]), 2), f"{prefix}delete_s": round(median(found["delete"]), 2),
            f"{prefix}faiss_bytes_per_add": int(median(found["written"])),
            f"{prefix}add_s_rounds": [round(s, 2) for s in found["add"]],
            f"{prefix}delete_s_rounds": [round(s, 2) for s in found["delete"]],
        }
    return figures


def timed_merge(library: Library, folder: Path, source: Path) -> float:
    """Seconds for the merge between syncs (`Library.merge_deltas`, forced whatever the deltas' share) after
    a sync that adds `source` as a delta file."""
    (folder / f"merge-{source.parent.name}-{source.name}").write_bytes(source.read_bytes())
    library.sync()
    if not library.store.manifest().get("faiss_deltas"):
        raise RuntimeError("expected a FAISS delta file to merge")
    store = library.store
    if not isinstance(store, Maintainable):
        raise RuntimeError("the benchmark's store keeps no FAISS delta files")
    started = time.perf_counter()
    with store.writing():
        merged = store.merge_deltas(share=0.0)
    if not merged:
        raise RuntimeError("the merge did not run")
    return time.perf_counter() - started


def target_cell(size: int, seconds: float) -> str:
    """The target beside a measured value: met or missed at 1M, "(at 1M)" at other sizes."""
    if size != TARGET_SIZE:
        return f"<= {TARGET_SECONDS:g} s at 1M"
    return f"<= {TARGET_SECONDS:g} s: " + ("met" if seconds <= TARGET_SECONDS else "missed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.incremental", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 20k passages, 2 rounds (under a minute)")
    parser.add_argument("--sizes", type=int, nargs="+", help="index sizes in passages (default 10000 100000)")
    parser.add_argument("--rounds", type=int, help="articles added and deleted per size (default 3; 2 with --quick)")
    parser.add_argument("--whole-file", action="store_true",
                        help="also time syncs that write the whole FAISS file, in the same rounds (same-run baseline)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    sizes = args.sizes or ([2_000, 20_000] if args.quick else [10_000, 100_000])
    rounds = args.rounds or (2 if args.quick else 3)
    ways = ["delta", "whole"] if args.whole_file else ["delta"]

    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        embedder = Embedder()
        embedder.encode(["Warm-up: the model loads and runs once before anything is timed."])
        base = build_base(corpus, scratch / "base", 30, embedder)
        for size in sizes:
            results[str(size)] = measure(corpus, size, scratch, embedder, base, rounds, ways)
            gc.collect()

    print(f"Library.sync() after adding or deleting one BBC article, model loaded; medians of {rounds} rounds\n")
    whole = " | whole FAISS file: add / delete s, bytes written (same run)" if args.whole_file else ""
    print(f"| passages | add one article s | delete it s | FAISS bytes written per add | target{whole} "
          "| full headline self-check s (full builds only) | merge between syncs s |\n|---:|---:|---:|---:|---|"
          + "---:|" * (2 + bool(whole)))
    for size in sizes:
        row: dict[str, Any] = results[str(size)]  # type: ignore[assignment]
        target = target_cell(size, max(row["add_s"], row["delete_s"]))
        other = ""
        if whole:
            other = f" | {row['whole_add_s']} / {row['whole_delete_s']}, {row['whole_faiss_bytes_per_add']:,}"
        print(f"| {size:,} | {row['add_s']} | {row['delete_s']} | {row['faiss_bytes_per_add']:,} | {target}{other} "
              f"| {row['headline_check_s']} | {row['merge_s']} |")
    results["target"] = {"passages": TARGET_SIZE, "add_s": TARGET_SECONDS, "delete_s": TARGET_SECONDS}
    write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
