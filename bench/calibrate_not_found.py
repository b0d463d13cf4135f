"""Calibrate the answer's "not found" bar (`qa.answer.NOT_FOUND_THRESHOLD`) on the tuning questions.

Questions: `bench/data/bbc-paraphrase/tune.jsonl` (120 answerable paraphrased questions and 44
off-topic or near-miss ones over the BBC News corpus, `--corpus DIR`), the 280 unanswerable ones of
`bench/data/bbc-unanswerable/` over the same corpus, and `bench/data/seed-paraphrase/tune.jsonl`
(over the shipped article in `seeds/`). The confirmation
halves (`confirm.jsonl`) are never read here.

For each bar on the closest sentence's similarity (for the BBC collection; the seed article's stays
as far below it as `qa.answer.size_bar` puts it) it prints how many answerable questions would be
refused and how many off-topic ones would be, counting the refusals for unknown names and years as
well, and the highest bar that refuses at most `--max-refused` (default 2%) of the answerable questions.

Usage: `python -m bench.calibrate_not_found [--corpus DIR] [--work DIR] [--json OUT]`.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from qa import Library, Settings
from qa.answer import NOT_FOUND_THRESHOLD, Answer
from qa.evaluate import read_dataset

from .bbc import REPO_ROOT, add_corpus_argument, bbc_files

DATA = Path(__file__).resolve().parent / "data"
BARS = (0.25, 0.30, 0.33, 0.35, 0.37, 0.40, 0.42, 0.45, 0.50)


def asked(library: Library, *questions_files: Path) -> list[tuple[bool, Answer]]:
    """(answerable, answer) for each question of the files, 5 sources each."""
    questions = [q for path in questions_files for q in read_dataset(path, with_passages=False)[1]]
    return [(bool(q.answers), library.answer(q.question, 5)) for q in questions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_argument(parser)
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-calibrate"), help="where the indexes are kept")
    parser.add_argument("--max-refused", type=float, default=0.02, help="answerable share that may be refused")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the sweep as JSON")
    args = parser.parse_args(argv)
    bbc_files(args.corpus)
    base = Settings.from_env()
    news = Library(replace(base, articles_dir=args.corpus / "raw", index_dir=args.work / "bbc"))
    seed = Library(replace(base, articles_dir=REPO_ROOT / "seeds", index_dir=args.work / "seeds"), news.embedder)
    unanswerable = sorted((DATA / "bbc-unanswerable").glob("*.jsonl"))
    results = asked(news, DATA / "bbc-paraphrase" / "tune.jsonl", *unanswerable)
    results += asked(seed, DATA / "seed-paraphrase" / "tune.jsonl")
    answerable = [a for ok, a in results if ok]
    off_topic = [a for ok, a in results if not ok]
    print(f"{len(answerable)} answerable, {len(off_topic)} off-topic questions")
    print("| bar | answerable refused | off-topic refused |\n|---:|---:|---:|")
    sweep = []
    for bar in BARS:
        refused = sum(_refused(a, bar) for a in answerable)
        caught = sum(_refused(a, bar) for a in off_topic)
        sweep.append({"bar": bar, "answerable_refused": refused, "off_topic_refused": caught})
        print(f"| {bar} | {refused} ({refused / len(answerable):.1%}) | {caught} ({caught / len(off_topic):.1%}) |")
    allowed = [row["bar"] for row in sweep if row["answerable_refused"] <= args.max_refused * len(answerable)]
    print(f"highest bar refusing at most {args.max_refused:.0%} of the answerable questions: "
          f"{max(allowed) if allowed else 'none'}")
    if args.json:
        args.json.write_text(json.dumps({"answerable": len(answerable), "off_topic": len(off_topic),
                                         "sweep": sweep}, indent=2) + "\n")
    return 0


def _refused(answer: Answer, bar: float) -> bool:
    """Whether `answer` is refused with `bar` in place of `NOT_FOUND_THRESHOLD` (a small collection's
    bar stays as far below it as `size_bar` puts it)."""
    return answer.best < bar + answer.threshold - NOT_FOUND_THRESHOLD or bool(answer.unknown)


if __name__ == "__main__":
    raise SystemExit(main())
