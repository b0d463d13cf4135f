"""Second stage of a search: re-order the best passages by their closest sentence to the question.

A passage is usually about a whole story while a question asks for one fact of it. The first stage
(dense, BM25 or both) ranks passages as a whole; this stage takes its best `RERANK_DEPTH` and adds,
to each one's standardized score, the standardized similarity of its closest sentence to the question,
both read by the answer encoder (`Embedder.answers`, tuned on question–sentence pairs) from the
sentence vectors kept beside the index (`qa.sentences`). It moves the passage that states the fact
up among passages of the same story (docs/evaluation.md has the figures).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import replace

import numpy as np

from .embed import Embedder, Vectors
from .schema import Hit
from .sentences import PassageText, SentenceVectors

RERANK_DEPTH = 50  # first-stage passages that the second stage re-orders
SENTENCE_WEIGHT = 1.0  # weight of the closest sentence's standardized similarity; the first stage's is 1
_REMEMBERED_QUESTIONS = 16


class SentenceReranker:
    """Re-orders hits by their first-stage score fused with their closest sentence's similarity.

    Args:
        sentences: the index's sentence vectors (embedded by `sentences.embedder` on first need).
        weight: the sentence similarity's weight against the first stage's score.
        depth: how many first-stage hits a search hands over (at least its k).
    """

    def __init__(self, sentences: SentenceVectors, weight: float = SENTENCE_WEIGHT, depth: int = RERANK_DEPTH) -> None:
        self.sentences = sentences
        self.weight = weight
        self.depth = depth
        self._questions: OrderedDict[str, Vectors] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        """The encoder of questions and sentences (the answer encoder)."""
        return self.sentences.embedder

    def question_vector(self, question: str) -> Vectors:
        """The question as (1, d) under the answer encoder; the last few questions are remembered
        (one answer searches twice and then scores sentences with the same question)."""
        with self._lock:
            if question in self._questions:
                self._questions.move_to_end(question)
                return self._questions[question]
        vector = self.embedder.encode_query(question)
        with self._lock:
            self._questions[question] = vector
            while len(self._questions) > _REMEMBERED_QUESTIONS:
                self._questions.popitem(last=False)
        return vector

    def closest_sentences(self, question: str, hits: list[Hit]) -> list[float]:
        """Each hit's highest sentence similarity to the question (0 for a passage without sentences)."""
        vector = self.question_vector(question)[0]
        found = self.sentences.get([PassageText(hit.citation.title, hit.text, hit.citation.article_id) for hit in hits])
        return [float((own.vectors @ vector).max()) if len(own.spans) else 0.0 for own in found]

    def __call__(self, question: str, hits: list[Hit]) -> list[Hit]:
        """The hits re-ordered (best first, renumbered, scored by the fused value); ties keep the first
        stage's order."""
        if len(hits) < 2 or self.weight == 0:
            return hits
        fused = standardized([hit.score for hit in hits]) + self.weight * standardized(
            self.closest_sentences(question, hits)
        )
        order = sorted(range(len(hits)), key=lambda at: (-fused[at], at))
        return [replace(hits[at], rank=rank, score=float(fused[at])) for rank, at in enumerate(order, start=1)]


def standardized(values: list[float]) -> np.ndarray:
    """Values as distances above their minimum in standard deviations (all 0 when they are equal)."""
    array = np.asarray(values, dtype=np.float64)
    spread = float(array.std()) or 1.0
    return (array - float(array.min())) / spread
