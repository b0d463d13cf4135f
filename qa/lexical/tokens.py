"""The BM25 terms of a text: lower-cased, English stop words and question words dropped, stemmed."""

from __future__ import annotations

import threading

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
