"""What the BM25 part of one sync costs at a given number of passages: a full refit against a segment update.

    python -m bench.lexical_rebuild [--passages 100000] [--rounds 3] [--json OUT]

Before BM25 was kept in segments, every sync refitted a bm25s matrix over the terms of every passage
and saved it whole. Now a sync adds one segment of its new passages (and marks deleted ones dead),
writing only that segment and the segment list. Both are timed here, in the same run, over real news
passages (the BBC News corpus of `--corpus DIR`, cut into paragraphs and repeated with their terms to the
asked size): the refit (bm25s `index` + `save`, what `Store.apply` did), our full build
(`LexicalIndex.build` + `save`, what a full rebuild now does), one sync adding 5 passages and one
deleting them (`updated` + `save`), and a query on each (tokenizing included; median of 50
questions of `bench/data/bbc-paraphrase`), also after 200 syncs of 5 passages each (several
segments). The scores of the two are compared on those questions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

from qa.lexical import LexicalIndex, terms

from .bbc import add_corpus_argument, bbc_articles
from .corpus import questions, write_json

SYNCS = 200  # small syncs applied before the second query timing


def timed(action):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def one_round(
    rows: list[int], passage_terms: list[list[str]], folder: Path, asked: list[str], figures: dict[str, list[float]]
) -> float:
    """Time each step once into `figures`; return the largest score difference to bm25s (relative to the top)."""
    import bm25s

    refit = bm25s.BM25()
    _, seconds = timed(lambda: refit.index(passage_terms, show_progress=False))
    figures["refit_s"].append(seconds)
    _, seconds = timed(lambda: refit.save(str(folder / "bm25s"), show_progress=False))
    figures["refit_save_s"].append(seconds)
    lexical, seconds = timed(lambda: LexicalIndex.build(rows, passage_terms))
    figures["build_s"].append(seconds)
    _, seconds = timed(lambda: lexical.save(folder / "lexical-1"))
    figures["build_save_s"].append(seconds)
    lexical = lexical.saved_as("lexical-1")
    new_rows = list(range(len(rows) + 1, len(rows) + 6))

    def add() -> LexicalIndex:
        grown = lexical.updated([], new_rows, passage_terms[:5])
        grown.save(folder / "lexical-2")
        return grown.saved_as("lexical-2")

    grown, seconds = timed(add)
    figures["add_s"].append(seconds)

    def delete() -> None:
        grown.updated(new_rows, [], []).save(folder / "lexical-3")

    _, seconds = timed(delete)
    figures["delete_s"].append(seconds)

    def bare(question: str) -> np.ndarray:
        words = terms([question])[0]
        scores = refit.get_scores_from_ids([refit.vocab_dict[t] for t in words if t in refit.vocab_dict])
        top = np.argpartition(-scores, 30)[:30]
        return scores[top[np.argsort(-scores[top])]]

    aged = lexical  # after SYNCS syncs of 5 passages each: several segments
    for sync in range(SYNCS):
        first = len(rows) + 1 + sync * 5
        aged = aged.updated([], list(range(first, first + 5)), passage_terms[sync * 5 : sync * 5 + 5])
        aged = aged.saved_as(f"lexical-{sync + 2}")
    figures["segments"].append(len(aged.parts))

    worst = 0.0
    for question in asked:
        _, seconds = timed(lambda: lexical.search(question, 30))  # noqa: B023
        figures["query_ms"].append(seconds * 1000)
        _, seconds = timed(lambda: aged.search(question, 30))  # noqa: B023
        figures["aged_query_ms"].append(seconds * 1000)
        _, seconds = timed(lambda: bare(question))  # noqa: B023
        figures["refit_query_ms"].append(seconds * 1000)
        words = terms([question])[0]
        ours = lexical.scores(Counter(words))
        ids = [refit.vocab_dict[t] for t in words if t in refit.vocab_dict]
        if ours is not None and ids:
            theirs = refit.get_scores_from_ids(ids)
            worst = max(worst, float(np.max(np.abs(ours - theirs)) / max(float(theirs.max()), 1e-9)))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lexical_rebuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    paragraphs = [
        paragraph.strip()
        for article in bbc_articles(args.corpus)
        for paragraph in article["text"].split("\n\n")
        if paragraph.strip()
    ]
    unique = terms(paragraphs)
    passage_terms = [unique[i % len(unique)] for i in range(args.passages)]
    rows = list(range(1, args.passages + 1))
    asked = questions()[:50]
    figures: dict[str, list[float]] = {name: [] for name in (
        "refit_s", "refit_save_s", "build_s", "build_save_s", "add_s", "delete_s", "refit_query_ms", "query_ms",
        "segments", "aged_query_ms")}
    worst = 0.0
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as scratch:
            worst = max(worst, one_round(rows, passage_terms, Path(scratch), asked, figures))
    result: dict[str, object] = {"passages": args.passages, "rounds": args.rounds,
                                 "max_relative_score_difference": worst}
    for name, values in figures.items():
        result[name] = round(statistics.median(values), 3 if name.endswith("_s") else 2)
    result["segments"] = int(result["segments"])  # type: ignore[call-overload]
    print(f"BM25 part of one sync at {args.passages:,} passages (medians of {args.rounds} rounds)\n")
    print("| | build s | save s | one sync adding 5 passages s | one sync deleting them s | query ms |")
    print("|---|---:|---:|---:|---:|---:|")
    refit_total = round(float(result["refit_s"]) + float(result["refit_save_s"]), 2)  # type: ignore[arg-type]
    print(f"| before: bm25s refit on every sync | {result['refit_s']} | {result['refit_save_s']} | {refit_total} | "
          f"{refit_total} | {result['refit_query_ms']} |")
    print(f"| now: segments | {result['build_s']} | {result['build_save_s']} | {result['add_s']} | "
          f"{result['delete_s']} | {result['query_ms']} |")
    print(f"| now, after {SYNCS} syncs of 5 passages ({result['segments']} segments) | | | | | "
          f"{result['aged_query_ms']} |")
    print(f"\nlargest score difference to bm25s, relative to the top score: {worst:.1e}")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
