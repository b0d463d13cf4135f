"""What rebuilding the BM25 part costs on every sync, at a given number of passages.

    python -m bench.lexical_rebuild [--passages 100000] [--json OUT]

Every sync refits the BM25 matrix from the terms stored with each passage (only new passages are
tokenized). This times that refit, the same `LexicalIndex.build` + `save` that `Store.apply`
runs, over real news passages (the BBC corpus in ../shared/data, cut into paragraphs and repeated
with their terms to the asked size) and one BM25 query on the result.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from qa.lexical import LexicalIndex, terms

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "bbc-news" / "articles.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lexical_rebuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not CORPUS.is_file():
        print(f"error: {CORPUS} is missing (the BBC corpus of ../shared/data)", file=sys.stderr)
        return 2
    paragraphs = [
        paragraph.strip()
        for line in CORPUS.read_text(encoding="utf-8").splitlines()
        for paragraph in json.loads(line)["text"].split("\n\n")
        if paragraph.strip()
    ]
    started = time.perf_counter()
    unique = terms(paragraphs)
    tokenize_seconds = time.perf_counter() - started
    passage_terms = [unique[i % len(unique)] for i in range(args.passages)]
    rows = list(range(1, args.passages + 1))
    build, save, query = [], [], []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            lexical = LexicalIndex.build(rows, passage_terms)
            build.append(time.perf_counter() - started)
            started = time.perf_counter()
            lexical.save(Path(scratch) / "lexical")
            save.append(time.perf_counter() - started)
            started = time.perf_counter()
            lexical.search("Which carmaker's profits fell in America?", 50)
            query.append(time.perf_counter() - started)
    result = {
        "passages": args.passages,
        "build_seconds": round(statistics.median(build), 2),
        "save_seconds": round(statistics.median(save), 2),
        "query_ms": round(statistics.median(query) * 1000, 1),
        "tokenize_per_1000_passages_seconds": round(tokenize_seconds / len(paragraphs) * 1000, 3),
    }
    print("| passages | refit BM25 (s) | save (s) | one query (ms) | tokenize 1,000 new passages (s) |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {args.passages:,} | {result['build_seconds']} | {result['save_seconds']} | {result['query_ms']} "
          f"| {result['tokenize_per_1000_passages_seconds']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
