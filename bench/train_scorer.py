"""Train the sentence scorer that picks the quoted answer (`qa/scorer.json`), reproducibly.

The scorer is a linear model over the features of `qa.scoring` (about thirty numbers per sentence),
fitted listwise: for each training question, the softmax of the scores of the sentences of its
candidate passages (`qa.answer.Composer.candidate_hits`, hybrid search) should fall on the sentences
that contain one of the question's answer strings. The questions:

- news: `bench/data/bbc-train/*.jsonl`, 1,500 questions written by hand as readers' paraphrases over the
  BBC News corpus (none of them about an article of the evaluation sets in `bench/data/bbc-paraphrase`);
- Wikipedia: the even-numbered half of the SQuAD v1.1 dev questions (the odd half is left for `qa eval`).

The news questions weigh three times the Wikipedia ones in the fit (readers of this assistant ask
about news; on the tuning questions that weighting picked the answer more often). The fit is
L-BFGS on standardized features with an L2 penalty, from zero, so the same data gives the same weights.

Usage: `python -m bench.train_scorer --corpus DIR --squad DIR [--work DIR] [--out qa/scorer.json]`
`--corpus` is the BBC News dataset (DIR/raw/<category>/<NNN>.txt, http://mlg.ucd.ie/datasets/bbc.html);
`--squad` a folder with `passages.jsonl` and `questions.jsonl` in the `qa eval` format. The indexes
are kept in `--work` between runs (about 20 minutes to build on two cores, then seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.bbc import add_corpus_argument, bbc_files
from qa.answer import Composer
from qa.assistant import Library
from qa.config import Settings
from qa.embed import Embedder
from qa.evaluate import FEED, Question, read_dataset
from qa.scoring import FEATURES, WEIGHTS_FILE, Scorer

REPO = Path(__file__).resolve().parent.parent
TRAIN = Path(__file__).resolve().parent / "data" / "bbc-train"
L2 = 20.0
NEWS_WEIGHT = 3.0  # the news questions weigh three times the Wikipedia ones in all


def examples(library: Library, questions: list[Question]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Feature rows, labels and question numbers of the sentences of each question's candidates."""
    composer = Composer(library)
    rows, labels, groups = [], [], []
    for number, question in enumerate(questions):
        hits = composer.candidate_hits(question.question, mode="hybrid")
        candidates, matrix = composer.features(question.question, question.question, hits)
        wanted = [answer.lower() for answer in question.answers]
        for candidate, row in zip(candidates, matrix, strict=True):
            text = hits[candidate.passage].text[candidate.start : candidate.end].lower()
            rows.append(row)
            labels.append(float(any(answer in text for answer in wanted)))
            groups.append(number)
    return np.asarray(rows, dtype=np.float64), np.asarray(labels), np.asarray(groups)


def fit(
    matrix: np.ndarray, labels: np.ndarray, groups: np.ndarray, weights: np.ndarray, l2: float = L2
) -> Scorer:
    """A linear listwise model on standardized features: the softmax of a question's sentence scores
    should put its mass on the sentences that hold the answer. Questions whose candidates hold no
    answer teach nothing about the choice and are left out. L-BFGS with an L2 penalty.

    `weights` are per question (indexed by the values of `groups`).
    """
    from scipy.optimize import minimize

    mean, scale = matrix.mean(axis=0), matrix.std(axis=0)
    scale[scale == 0] = 1.0
    standard = (matrix - mean) / scale
    lists = []
    for group in np.unique(groups):
        rows = groups == group
        if labels[rows].any():
            lists.append((standard[rows], labels[rows] > 0, weights[group]))

    def loss(beta: np.ndarray) -> tuple[float, np.ndarray]:
        total, gradient = 0.5 * l2 * float(beta @ beta), l2 * beta
        for rows, positive, weight in lists:
            scores = rows @ beta
            share = np.exp(scores - scores.max())
            share /= share.sum()
            held = share[positive].sum()
            total -= weight * float(np.log(held))
            gradient = gradient - weight * ((share[positive] @ rows[positive]) / held - share @ rows)
        return total, gradient

    beta = minimize(loss, np.zeros(matrix.shape[1]), jac=True, method="L-BFGS-B").x
    return Scorer(tuple(mean.round(6)), tuple(scale.round(6)), tuple(beta.round(6)), 0.0)


def top_one(scorer: Scorer, matrix: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> float:
    """Share of questions whose best-scored sentence holds the answer."""
    logits = scorer.logits(matrix.astype(np.float32))
    hits = [labels[groups == g][np.argmax(logits[groups == g])] for g in np.unique(groups)]
    return float(np.mean(hits))


def add_arguments(parser: argparse.ArgumentParser, work: str) -> None:
    """The training data's folders: the BBC News dataset, SQuAD dev, and where the indexes are kept."""
    add_corpus_argument(parser)
    parser.add_argument("--squad", type=Path, metavar="DIR", required=True,
                        help="SQuAD dev in the qa eval format (passages.jsonl, questions.jsonl)")
    parser.add_argument("--work", type=Path, default=Path(work), help="where the indexes are kept")


def training_sets(
    args: argparse.Namespace, embedder: Embedder | None = None, news_files: tuple[str, ...] | None = None,
    rerank: bool = True,
) -> list[tuple[str, Library, list[Question]]]:
    """("news", the BBC library, the news training questions) and ("wikipedia", SQuAD's paragraphs, the
    even half of its dev questions), their indexes built or brought up to date in `args.work`.
    `news_files` names the files of `bench/data/bbc-train` to read (all of them when None); `rerank`
    is the libraries' second search stage.

    Raises:
        SystemExit: a folder is missing (with the reason).
    """
    bbc_files(args.corpus)
    if not (args.squad / "questions.jsonl").is_file():
        raise SystemExit(f"error: no SQuAD questions in {args.squad}. --squad DIR: passages.jsonl and "
                         "questions.jsonl in the qa eval format.")
    base = Settings.from_env()
    base = replace(base, rerank=rerank)
    news = Library(replace(base, articles_dir=args.corpus / "raw", index_dir=args.work / "bbc"), embedder=embedder)
    paths = sorted(TRAIN.glob("*.jsonl")) if news_files is None else [TRAIN / f"{name}.jsonl" for name in news_files]
    news_questions = [q for path in paths for q in read_dataset(path, False)[1]]
    passages, squad_questions = read_dataset(args.squad)
    feed_folder = args.work / "squad-articles"
    feed_folder.mkdir(parents=True, exist_ok=True)
    with open(feed_folder / FEED, "w", encoding="utf-8") as feed:
        for passage in passages:
            feed.write(json.dumps(passage, ensure_ascii=False) + "\n")
    wiki = Library(replace(base, articles_dir=feed_folder, index_dir=args.work / "squad", split=False),
                   embedder=news.embedder)
    for library in (news, wiki):
        library.sync()
    return [("news", news, news_questions), ("wikipedia", wiki, squad_questions[::2])]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, "/tmp/qa-train-scorer")
    parser.add_argument("--out", type=Path, default=WEIGHTS_FILE, help="the weights file to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    parts, counts = [], []
    for name, library, questions in training_sets(args):
        matrix, labels, groups = examples(library, questions)
        parts.append((matrix, labels, groups))
        counts.append(len(questions))
        print(f"{name}: {len(questions)} questions, {len(labels)} sentences, {int(labels.sum())} hold an answer "
              f"({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    news_count, wiki_count = counts
    weights = np.concatenate([np.full(news_count, NEWS_WEIGHT), np.full(wiki_count, news_count / wiki_count)])
    groups = np.concatenate([parts[0][2], parts[1][2] + news_count])
    scorer = fit(np.vstack([parts[0][0], parts[1][0]]), np.concatenate([parts[0][1], parts[1][1]]), groups, weights)
    for name, (matrix, labels, groups) in zip(("news", "wikipedia"), parts, strict=True):
        print(f"{name}: best sentence holds the answer for {top_one(scorer, matrix, labels, groups):.1%} "
              "of the training questions", file=sys.stderr)
    args.out.write_text(json.dumps(scorer.to_json(), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({len(FEATURES)} features) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
