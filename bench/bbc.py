"""The BBC News corpus the benchmarks read: where it is (`--corpus DIR`) and its articles.

The corpus is the public BBC News dataset of D. Greene and P. Cunningham (2,225 articles from
2004-2005 in five categories). Its texts are copyrighted by the BBC, so the repository does not
ship them: each benchmark takes the dataset's folder as `--corpus DIR`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CORPUS_HELP = (
    "The BBC News dataset (http://mlg.ucd.ie/datasets/bbc.html) in its public layout: "
    "DIR/raw/<category>/<NNN>.txt, one article a file (headline, blank line, body)."
)


class CorpusMissing(SystemExit):
    """The corpus folder has no articles: the benchmark stops with a sentence, not a traceback."""


def add_corpus_argument(parser: argparse.ArgumentParser) -> None:
    """`--corpus DIR`, required: the repository does not ship the corpus."""
    parser.add_argument("--corpus", type=Path, metavar="DIR", required=True, help=CORPUS_HELP)


def bbc_files(corpus: Path) -> list[Path]:
    """Every article file of the corpus in sorted path order (raw/business/001.txt first).

    Raises:
        CorpusMissing: the folder has no raw/<category>/<NNN>.txt files.
    """
    files = sorted((corpus / "raw").glob("*/*.txt"))
    if not files:
        raise CorpusMissing(f"error: no BBC News articles in {corpus}. --corpus DIR: {CORPUS_HELP}")
    return files


def bbc_articles(corpus: Path) -> list[dict[str, str]]:
    """Every article as {"id": "bbc-<category>-<NNN>", "category", "title", "text"}, in file order.

    The first line is the title, the rest (stripped) the text; one file of the set is Windows-1252.
    """
    articles = []
    for path in bbc_files(corpus):
        raw = path.read_bytes()
        try:
            content = raw.decode("utf-8")
        except UnicodeDecodeError:
            content = raw.decode("cp1252")
        title, _, text = content.partition("\n")
        category = path.parent.name
        articles.append({"id": f"bbc-{category}-{path.stem}", "category": category, "title": title.strip(),
                         "text": text.strip()})
    return articles


def duplicate_ids(articles: list[dict[str, str]]) -> set[str]:
    """The ids of articles whose text equals that of an earlier one (133 in the full set)."""
    seen: set[str] = set()
    duplicates = set()
    for article in articles:
        if article["text"] in seen:
            duplicates.add(article["id"])
        seen.add(article["text"])
    return duplicates


def require_corpus(corpus: Path) -> Path:
    """`corpus`, once it is known to hold articles: benchmarks call this before any slow work."""
    bbc_files(corpus)
    return corpus
