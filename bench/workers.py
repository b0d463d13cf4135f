"""Embedding throughput with 1 and with 2 worker processes (`qa index --worker I/N`).

    python -m bench.workers [--quick] [--articles N] [--store faiss|milvus-lite] [--json OUT]

Copies the first N BBC News articles (80 by default, 24 with `--quick`) into a temporary folder.
For each worker count, into a fresh index: start that many `python -m qa index --worker I/N`
processes at once and time until the last one is done (model loading included, as an operator
would see it), then a plain `python -m qa index` that assembles the index from the shared vector
cache (it must embed nothing). Passages/s = passages embedded by the workers / their wall time.

The workers share the FAISS store's SQLite vector cache. milvus-lite lets one process open a file,
so with `--store milvus-lite` only one worker can run; with a Milvus server every worker writes to
its vector collection. Each worker lets torch use all cores, as `qa index` does.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bbc import REPO_ROOT, add_corpus_argument, require_corpus
from .corpus import bbc_files, copy_articles, write_json


def run_workers(articles: Path, index: Path, workers: int, store: str) -> tuple[float, int]:
    """Wall seconds until every worker is done, and the passages they embedded together."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_STORE": store, "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "qa", "index", "--articles", str(articles), "--index", str(index)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen([*command, "--worker", f"{i + 1}/{workers}"], env=environment, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
        for i in range(workers)
    ]
    outputs = [process.communicate()[0] for process in processes]
    seconds = time.perf_counter() - started
    if any(process.returncode for process in processes):
        raise RuntimeError(f"a worker failed: {outputs}")
    embedded = sum(int(re.search(r": (\d+) passages embedded", out).group(1)) for out in outputs)  # type: ignore[union-attr]
    assemble = subprocess.run(command, env=environment, capture_output=True, text=True, check=True).stdout
    if " 0 passages embedded" not in assemble:
        raise RuntimeError(f"the assembling sync embedded passages: {assemble}")
    return seconds, embedded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="24 articles")
    parser.add_argument("--articles", type=int, help="number of BBC articles (default 80; 24 with --quick)")
    parser.add_argument("--store", choices=("faiss", "milvus-lite"), default="faiss")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    count = args.articles or (24 if args.quick else 80)
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="qa-bench-workers-") as scratch:
        articles = Path(scratch) / "articles"
        copy_articles(bbc_files(corpus, count), articles)
        counts = (1,) if args.store == "milvus-lite" else (1, 2)
        for workers in counts:
            index = Path(scratch) / f"index-{workers}"
            store = "faiss" if args.store == "faiss" else f"milvus-lite:{index / 'milvus.db'}"
            seconds, embedded = run_workers(articles, index, workers, store)
            figures[str(workers)] = {
                "seconds": round(seconds, 1), "passages": embedded, "passages_per_s": round(embedded / seconds, 1)
            }
    print(f"| workers ({args.store}, {count} articles, {os.cpu_count()} cores) | seconds | passages | passages/s |")
    print("|---:|---:|---:|---:|")
    for workers, row in figures.items():
        print(f"| {workers} | {row['seconds']} | {row['passages']} | {row['passages_per_s']} |")
    if args.json:
        write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
