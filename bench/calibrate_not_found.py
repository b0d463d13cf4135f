"""Calibrate the chat's "not found" threshold and check its quoted answers (`qa.answer.Composer`).

Corpus: `tests/fixtures/articles` plus the first 60 articles of each non-sport category of the
BBC News set (`--corpus DIR`) (sport is left out so that football questions are really off-topic). Questions:
`bench/data/answer-calibration/questions.json`: answerable ones with strings the quoted answer
should contain, off-topic ones (some "near misses" on news subjects close to an article), and
multi-turn conversations.

For every threshold it prints how many answerable questions would be answered (and correctly),
and how many off-topic questions would wrongly get an answer. The BBC texts are copyrighted and
are read from `--corpus DIR` and never committed; the index is built under `--work` (reused when it is there).

Usage: `python -m bench.calibrate_not_found [--work DIR] [--corpus DIR] [-k 5]`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from qa import Library, Settings
from qa.answer import Answer, Composer, contextual_query

from .bbc import REPO_ROOT, add_corpus_argument, bbc_articles

QUESTIONS = Path(__file__).resolve().parent / "data" / "answer-calibration" / "questions.json"
CATEGORIES = ("business", "entertainment", "politics", "tech")
PER_CATEGORY = 60


def build_corpus(work: Path, corpus: Path) -> Path:
    """The articles folder: fixtures plus the BBC subset as one JSON Lines file."""
    folder = work / "articles"
    if folder.is_dir():
        return folder
    articles = bbc_articles(corpus)
    shutil.copytree(REPO_ROOT / "tests" / "fixtures" / "articles", folder)
    taken: dict[str, int] = {}
    with open(folder / "bbc.jsonl", "w", encoding="utf-8") as target:
        for record in articles:
            category = record["category"]
            if category in CATEGORIES and taken.get(category, 0) < PER_CATEGORY:
                taken[category] = taken.get(category, 0) + 1
                target.write(json.dumps({key: record[key] for key in ("id", "title", "text")}) + "\n")
    return folder


def quoted(answer: Answer) -> str:
    return " ".join(quote.text for quote in answer.quotes).lower()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/qa-answer-calibration"))
    add_corpus_argument(parser)
    parser.add_argument("-k", type=int, default=5)
    args = parser.parse_args(argv)

    folder = build_corpus(args.work, args.corpus)
    library = Library(Settings(articles_dir=folder, index_dir=args.work / "index"))
    print(library.sync().summary())
    composer = Composer(library, threshold=0.0)  # every question is answered; the threshold is applied below
    data = json.loads(QUESTIONS.read_text(encoding="utf-8"))

    answerable = []
    for item in data["answerable"]:
        answer = composer.answer(item["question"], args.k)
        right = any(expected.lower() in quoted(answer) for expected in item["expect"])
        answerable.append((answer.best, right, item["question"]))
    off_topic = [(composer.answer(item["question"], args.k).best, bool(item.get("near_miss")), item["question"])
                 for item in data["off_topic"]]

    right = sum(1 for _, ok, _ in answerable if ok)
    print(f"\nanswerable: {len(answerable)}, quoted answer holds the expected text: {right}")
    for best, ok, question in sorted(answerable):
        print(f"  {best:.3f} {'ok ' if ok else 'BAD'} {question}")
    print(f"\noff-topic: {len(off_topic)} ({sum(near for _, near, _ in off_topic)} near misses)")
    for best, near, question in sorted(off_topic, reverse=True):
        print(f"  {best:.3f} {'near' if near else '    '} {question}")
    clear = [best for best, near, _ in off_topic if not near]
    print(
        f"\nbest-sentence similarity: answerable median {statistics.median(b for b, _, _ in answerable):.3f}, "
        f"off-topic median {statistics.median(clear):.3f}"
    )

    print("\nthreshold  answered(right)/answerable  off-topic answered  near misses answered")
    for step in range(36, 55):
        threshold = step / 100
        answered = [ok for best, ok, _ in answerable if best >= threshold]
        wrong_clear = sum(1 for best, near, _ in off_topic if not near and best >= threshold)
        wrong_near = sum(1 for best, near, _ in off_topic if near and best >= threshold)
        print(
            f"  {threshold:.2f}     {len(answered):3d} ({sum(answered):2d}) / {len(answerable)}"
            f"               {wrong_clear:2d} / {len(clear)}              {wrong_near} / {len(off_topic) - len(clear)}"
        )

    print("\nconversations (threshold not applied):")
    for conversation in data["conversations"]:
        previous: list[str] = []
        for question, expected in conversation:
            answer = composer.answer(question, args.k, previous)
            ok = any(text.lower() in quoted(answer) for text in expected)
            shown = f" (searched: {contextual_query(question, previous)})" if answer.follow_up else ""
            print(f"  {answer.best:.3f} {'ok ' if ok else 'BAD'} {question}{shown}")
            previous.append(question)
        print()


if __name__ == "__main__":
    main()
