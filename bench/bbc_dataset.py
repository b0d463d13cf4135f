"""Build the BBC paraphrase retrieval set: passages from the BBC News corpus plus our own questions.

The BBC News corpus (2,225 stories from 2004-2005 in five categories, Greene and Cunningham, ICML 2006)
is copyrighted by the BBC, so it is never committed: this script reads it from `--corpus DIR` (the
dataset's public layout `raw/<category>/<NNN>.txt`, see `bench.bbc`) and turns it into passages at run time.
The questions (`bench/data/bbc-paraphrase/tune.jsonl`) are our own text and are committed. They
were written by hand as paraphrases of single paragraphs, so they share few distinctive words with the
passage that answers them, unlike the SQuAD dev set, which favours lexical (BM25) retrieval.

Output, in the format the retrieval harness reads (as for SQuAD):

- `OUT_DIR/passages.jsonl`: one passage per paragraph of every article, `{"id", "title", "text"}` with
  `id = bbc-<category>-<NNN>#p<k>` (k = 0-based paragraph index in the body; paragraphs are the
  non-empty blocks between blank lines, the same numbering as `qa.passages.paragraphs`), `title` = the
  headline and `text` = the paragraph without its surrounding white space. Articles whose body is an
  exact copy of an earlier one (133 in the set) are skipped; the first copy is kept.
- `OUT_DIR/questions.jsonl`: the committed questions that have answers, after checking that every gold passage
  exists and contains at least one answer string (case-insensitive).

Usage: `python -m bench.bbc_dataset OUT_DIR [--corpus DIR] [--questions PATH]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

from .bbc import add_corpus_argument, bbc_articles, duplicate_ids

DEFAULT_QUESTIONS = Path(__file__).resolve().parent / "data" / "bbc-paraphrase" / "tune.jsonl"
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


class DatasetError(Exception):
    """The questions file is missing or does not match the corpus."""


def split_paragraphs(body: str) -> list[str]:
    """The non-empty blocks of `body` between blank lines, stripped of surrounding white space."""
    return [block.strip() for block in _BLANK_LINE.split(body) if block.strip()]


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """The JSON objects of a JSON Lines file (blank lines ignored)."""
    records: list[dict[str, object]] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(f"{path}:{number}: not valid JSON ({error.msg}).") from error
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object.")
            records.append(record)
    return records


def build_passages(corpus: Path) -> tuple[list[dict[str, str]], int, int]:
    """Paragraph passages of the non-duplicate BBC articles, with the article and duplicate counts."""
    articles = bbc_articles(corpus)
    duplicates = duplicate_ids(articles)
    passages: list[dict[str, str]] = []
    for article in articles:
        if article["id"] in duplicates:
            continue
        for index, paragraph in enumerate(split_paragraphs(article["text"])):
            passages.append({"id": f"{article['id']}#p{index}", "title": article["title"], "text": paragraph})
    return passages, len(articles) - len(duplicates), len(duplicates)


def check_questions(questions: list[dict[str, object]], passages: dict[str, str]) -> list[str]:
    """Problems found in `questions` against the passage texts by id; empty when consistent."""
    problems: list[str] = []
    seen: set[str] = set()
    for number, question in enumerate(questions, start=1):
        qid = str(question.get("id", f"line {number}"))
        answers, gold = question.get("answers"), question.get("passage_ids")
        if qid in seen:
            problems.append(f"{qid}: duplicate question id.")
        seen.add(qid)
        if not str(question.get("question", "")).strip():
            problems.append(f"{qid}: empty question.")
        if not isinstance(answers, list) or not answers or not all(isinstance(a, str) and a for a in answers):
            problems.append(f"{qid}: 'answers' must be a non-empty list of strings.")
            continue
        if not isinstance(gold, list) or not gold:
            problems.append(f"{qid}: 'passage_ids' must be a non-empty list.")
            continue
        article_id = question.get("article_id")
        for passage_id in gold:
            if passage_id not in passages:
                problems.append(f"{qid}: gold passage {passage_id!r} does not exist.")
                continue
            if article_id is not None and str(passage_id).split("#")[0] != article_id:
                problems.append(f"{qid}: gold passage {passage_id!r} is not in article {article_id!r}.")
            text = passages[passage_id].lower()
            if not any(answer.lower() in text for answer in answers):
                problems.append(f"{qid}: no answer of {answers!r} occurs in {passage_id!r}.")
    return problems


def category(question: dict[str, object]) -> str:
    """The BBC category of a question's first gold passage (`bbc-<category>-<NNN>#p<k>`)."""
    gold = question.get("passage_ids")
    parts = str(gold[0]).split("-") if isinstance(gold, list) and gold else []
    return parts[1] if len(parts) == 3 else "unknown"


def main(argv: list[str] | None = None) -> int:
    """Write OUT_DIR/passages.jsonl and OUT_DIR/questions.jsonl; 0 on success, 1 or 2 on failure."""
    parser = argparse.ArgumentParser(prog="python -m bench.bbc_dataset", description=__doc__.split("\n")[0])
    parser.add_argument("out_dir", type=Path, help="dataset folder to write")
    add_corpus_argument(parser)
    parser.add_argument("--questions", type=Path, default=DEFAULT_QUESTIONS, help="questions file to copy")
    args = parser.parse_args(argv)
    try:
        passages, kept, skipped = build_passages(args.corpus)
        if not args.questions.is_file():
            raise DatasetError(f"questions file not found: {args.questions}")
        questions = [q for q in read_jsonl(args.questions) if q.get("answers")]  # off-topic ones have no gold
    except DatasetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    problems = check_questions(questions, {p["id"]: p["text"] for p in passages})
    if problems:
        print(f"error: {len(problems)} inconsistent question(s) in {args.questions}:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    with (args.out_dir / "passages.jsonl").open("w", encoding="utf-8") as handle:
        for passage in passages:
            handle.write(json.dumps(passage, ensure_ascii=False) + "\n")
    with (args.out_dir / "questions.jsonl").open("w", encoding="utf-8") as handle:
        for question in questions:
            handle.write(json.dumps(question, ensure_ascii=False) + "\n")
    categories = Counter(category(question) for question in questions)
    print(f"articles: {kept} kept, {skipped} duplicates skipped")
    print(f"passages: {len(passages)} (one per paragraph) -> {args.out_dir / 'passages.jsonl'}")
    per_category = ", ".join(f"{name} {count}" for name, count in sorted(categories.items()))
    print(f"questions: {len(questions)} ({per_category}) -> {args.out_dir / 'questions.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
