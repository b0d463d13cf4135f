"""BM25 over passages with bm25s: the only module that imports it.

Terms are lower-cased, English stop words dropped, and stemmed (Snowball via PyStemmer), so
"interviewed" meets "interview". Each passage's terms are computed once when it is stored; the
BM25 matrix is rebuilt from them on each sync and saved as plain `.npy` + JSON (no pickle).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt

ROWS_FILE = "rows.npy"
# bm25s's English list (33 words, Lucene's) plus the words every question is made of.
QUESTION_WORDS = (
    "who whom whose what which when where why how did does do done has have had been being was were "
    "would could should can will shall many much about there their they them"
).split()
_local = threading.local()


def _stemmer():  # type: ignore[no-untyped-def]
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def terms(texts: list[str]) -> list[list[str]]:
    """The BM25 terms of each text: lower-cased, stop words dropped, stemmed."""
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    if not texts:
        return []
    stopwords = [*STOPWORDS_EN, *QUESTION_WORDS]
    tokens = bm25s.tokenize(texts, stopwords=stopwords, stemmer=_stemmer(), return_ids=False, show_progress=False)
    return [list(words) for words in tokens]


class LexicalIndex:
    """A BM25 index over passage rows.

    Args:
        rows: (n,) int64 passage rows, in the order the index numbers its documents.
        retriever: the fitted `bm25s.BM25`, or None for an empty index.
    """

    def __init__(self, rows: npt.NDArray[np.int64], retriever: object | None) -> None:
        self.rows = rows
        self.retriever = retriever
        self._position = {int(row): at for at, row in enumerate(rows)}

    @classmethod
    def build(cls, rows: list[int], passage_terms: list[list[str]]) -> LexicalIndex:
        """Fit BM25 over the passages' terms."""
        import bm25s

        if not rows:
            return cls(np.zeros(0, dtype=np.int64), None)
        retriever = bm25s.BM25()
        retriever.index(passage_terms, show_progress=False)
        return cls(np.asarray(rows, dtype=np.int64), retriever)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / ROWS_FILE, self.rows, allow_pickle=False)
        if self.retriever is not None:
            self.retriever.save(str(folder), show_progress=False)  # type: ignore[attr-defined]

    @classmethod
    def load(cls, folder: Path) -> LexicalIndex:
        """Raises OSError or ValueError when the folder is missing or damaged."""
        import bm25s

        rows = np.load(folder / ROWS_FILE, allow_pickle=False)
        if not len(rows):
            return cls(rows, None)
        params = json.loads((folder / "params.index.json").read_text())
        retriever = bm25s.BM25.load(str(folder), mmap=False, load_corpus=False)
        if int(params["num_docs"]) != len(rows):
            raise ValueError(f"BM25 holds {params['num_docs']} documents for {len(rows)} rows")
        return cls(rows, retriever)

    def __len__(self) -> int:
        return len(self.rows)

    def search(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best `k` passages with a positive score, best first.

        `allowed` restricts the search to those passage rows (applied before ranking).
        """
        if self.retriever is None or k <= 0:
            return []
        vocabulary = self.retriever.vocab_dict  # type: ignore[attr-defined]
        ids = [vocabulary[term] for term in terms([query])[0] if term in vocabulary]
        if not ids:
            return []
        scores = self.retriever.get_scores_from_ids(ids)  # type: ignore[attr-defined]
        if allowed is not None:
            mask = np.zeros(len(scores), dtype=bool)
            positions = [self._position[row] for row in allowed if row in self._position]
            mask[positions] = True
            scores = np.where(mask, scores, 0.0)
        k = min(k, int(np.count_nonzero(scores > 0)))
        if k == 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.rows[at]), float(scores[at])) for at in top]
