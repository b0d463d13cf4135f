"""Related coverage on one section of the BBC corpus: how article similarities spread, where copies
and same-story articles fall, and how fast `Library.related` is.

    python -m bench.related --corpus DIR [--category business] [--index DIR] [--sample 12]

Indexes DIR/raw/<category> (into `--index`, kept for the next run; default a temporary folder), reads
every article's vector (`Library.article_map`) and prints:
- the time to read the map, and the median and slowest `Library.related(k=3)` over every article;
- how many article pairs reach each similarity, and how many of those are one text (same body);
- every pair from 0.95 up that is not one text, with both titles (where `qa.related.NEAR_COPY` must fall);
- `--sample` pairs (seed 7) from each of four similarity bands with their titles, to judge by eye which
  tell the same story (where `qa.related.SAME_STORY` must fall).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from qa import Library, Settings

from .bbc import add_corpus_argument, require_corpus

LEVELS = (0.99, 0.97, 0.95, 0.9, 0.8, 0.75, 0.7, 0.6, 0.5)
BANDS = ((0.5, 0.55), (0.6, 0.65), (0.7, 0.75), (0.8, 0.85))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.related", description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--category", default="business", help="the section to index (default business)")
    parser.add_argument("--index", type=Path, metavar="DIR", help="keep the index here (default: a temporary folder)")
    parser.add_argument("--sample", type=int, default=12, help="pairs shown per similarity band (default 12)")
    args = parser.parse_args(argv)
    articles = require_corpus(args.corpus) / "raw" / args.category
    with tempfile.TemporaryDirectory() as scratch:
        library = Library(Settings(articles_dir=articles, index_dir=args.index or Path(scratch) / "index"))
        library.ensure_index()
        report(library, args.sample)
        library.store.close()


def report(library: Library, sample: int) -> None:
    started = time.perf_counter()
    mapped = library.article_map()
    print(f"map of {len(mapped.article_ids)} articles read in {time.perf_counter() - started:.3f} s")
    seconds = []
    for article_id in mapped.article_ids:
        started = time.perf_counter()
        library.related(article_id, 3)
        seconds.append(time.perf_counter() - started)
    print(f"related(k=3): median {statistics.median(seconds) * 1000:.1f} ms, slowest {max(seconds) * 1000:.1f} ms")
    bodies = library.store.article_hashes()
    similar = mapped.vectors @ mapped.vectors.T
    first, second = np.triu_indices(len(mapped.article_ids), 1)
    values = similar[first, second]
    same_text = np.asarray([bodies[mapped.article_ids[a]][1] == bodies[mapped.article_ids[b]][1]
                            for a, b in zip(first, second, strict=True)], dtype=bool)
    print("pairs from each similarity (of which one text):")
    for level in LEVELS:
        print(f"  >= {level}: {int((values >= level).sum())} ({int((same_text & (values >= level)).sum())})")

    def line(at: int) -> str:
        a, b = first[at], second[at]
        return f"  {values[at]:.3f}  {mapped.citations[a].title} | {mapped.citations[b].title}"

    print("pairs from 0.95 that are not one text:")
    for at in sorted(np.flatnonzero((values >= 0.95) & ~same_text), key=lambda at: -values[at]):
        print(line(int(at)))
    chooser = random.Random(7)
    for low, high in BANDS:
        band = np.flatnonzero((values >= low) & (values < high)).tolist()
        print(f"{len(band)} pairs from {low} to {high}, {min(sample, len(band))} of them:")
        for at in sorted(chooser.sample(band, min(sample, len(band)))):
            print(line(at))


if __name__ == "__main__":
    main()
