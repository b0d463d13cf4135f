"""Related coverage: the articles closest to an article, from the passage vectors the index already holds.

An article's vector is the L2-normalized mean of its passages' vectors (`IndexStore.article_vectors`);
two articles are as close as the cosine of their vectors. No model runs: the vectors are read once
per index generation and kept in an `ArticleMap` (50,000 articles of 384 dimensions take 77 MB).

Near-copies are one text told once: an article is left out when it has the same title (case and
spacing aside) as, or a similarity of at least `NEAR_COPY` with, the article asked about, an article
the caller leaves out (e.g. one already cited), one already listed, or one already left out as such
a copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import QAError, QuestionError, UnknownArticleError
from .schema import Answer, Citation, Related
from .store import IndexStore, Vectors

logger = logging.getLogger(__name__)

MAX_RELATED = 20
MORE_SHOWN = 3  # articles listed under a source in the chat
SAME_STORY = 0.75  # the least similarity of an article listed under a source in the chat (see docs/chat.md)
NEAR_COPY = 0.97  # article similarity from which two articles count as copies of one text (see docs/chat.md)
SHOWN_ID_CHARS = 80  # an unknown id is quoted in the error up to this length


@dataclass(frozen=True)
class ArticleMap:
    """Every indexed article's vector and citation fields, for one generation of the index.

    article_ids: sorted; vectors: (n, d) float32, L2-normalized, row i is article_ids[i]'s.
    """

    article_ids: list[str]
    vectors: Vectors
    citations: list[Citation]  # row i is article_ids[i]'s (passage fields zero)
    title_keys: list[str]  # titles folded for comparison; "" never matches
    rows: dict[str, int]  # article_id -> row

    @classmethod
    def read(cls, store: IndexStore) -> ArticleMap:
        """The map of what `store` holds now."""
        started = time.perf_counter()
        article_ids, vectors = store.article_vectors()
        hashes = store.article_hashes()
        cited = {
            citation.article_id: citation
            for found in store.citations({body for _, body in hashes.values()}).values()
            for citation in found
        }
        rows = [row for row, article_id in enumerate(article_ids) if article_id in cited]
        logger.info("article vectors of %d articles read in %.2f s", len(rows), time.perf_counter() - started)
        return cls.of([cited[article_ids[row]] for row in rows], vectors[rows])

    @classmethod
    def of(cls, citations: list[Citation], vectors: Vectors) -> ArticleMap:
        """The map of these articles (sorted by id) and their (n, d) unit vectors."""
        article_ids = [citation.article_id for citation in citations]
        title_keys = [" ".join(citation.title.casefold().split()) for citation in citations]
        rows = {article_id: row for row, article_id in enumerate(article_ids)}
        return cls(article_ids, vectors, citations, title_keys, rows)

    def row(self, article_id: object) -> int:
        """The row of `article_id`.

        Raises:
            QuestionError: `article_id` is not text.
            UnknownArticleError: no indexed article has this id.
        """
        if not isinstance(article_id, str):
            raise QuestionError(f"The article id must be text (got {type(article_id).__name__}).")
        if article_id in self.rows:
            return self.rows[article_id]
        shown = article_id if len(article_id) <= SHOWN_ID_CHARS else article_id[:SHOWN_ID_CHARS] + "…"
        raise UnknownArticleError(
            f"No indexed article has the id {shown!r}. An article's id is its file's path in the articles folder "
            "(with #id or :line for a .jsonl record), as the sources' article_id shows."
        )

    def nearest(
        self, article_id: str, k: int = 3, exclude: Collection[str] = (), min_similarity: float = -1.0
    ) -> list[Related]:
        """The `k` articles closest to `article_id`, closest first (equal similarities by article id),
        leaving out the `exclude`d articles, near-copies (see the module docstring) and articles less
        similar than `min_similarity`.

        Raises:
            QuestionError: k is not a whole number from 1 to MAX_RELATED, or an id is not text.
            UnknownArticleError: no indexed article has the id `article_id`.
        """
        check_count(k)
        if isinstance(min_similarity, bool) or not isinstance(min_similarity, int | float):
            raise QuestionError(f"min_similarity must be a number from -1 to 1 (got {min_similarity!r}).")
        at = self.row(article_id)
        left_out = {self.rows[other] for other in exclude if isinstance(other, str) and other in self.rows}
        covered = [at, *sorted(left_out - {at})]  # an unknown id in `exclude` leaves nothing out
        scores = self.vectors @ self.vectors[at]
        found: list[Related] = []
        for candidate in _ranked(scores, k + len(covered) + 16):
            if len(found) == k or scores[candidate] < min_similarity:
                break
            if candidate in covered:
                continue
            if not self._copy_of_any(candidate, covered):
                found.append(self._related(candidate, float(scores[candidate])))
            covered.append(candidate)  # listed, or a copy: its own copies are left out too
        return found

    def _copy_of_any(self, candidate: int, covered: list[int]) -> bool:
        title = self.title_keys[candidate]
        if title and any(self.title_keys[row] == title for row in covered):
            return True
        return bool((self.vectors[covered] @ self.vectors[candidate] >= NEAR_COPY).any())

    def _related(self, row: int, similarity: float) -> Related:
        cited = self.citations[row]
        return Related(cited.article_id, cited.title, cited.date, cited.url, cited.source, cited.publisher, similarity)


def check_count(k: object) -> int:
    """`k` when it is a whole number from 1 to MAX_RELATED; raises QuestionError otherwise."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_RELATED:
        raise QuestionError(f"k must be a whole number from 1 to {MAX_RELATED} (got {k!r}).")
    return k


def more_on_sources(
    answer: Answer, related: Callable[[str, int, Collection[str], float], list[Related]], k: int = MORE_SHOWN
) -> dict[int, list[Related]]:
    """Source number -> up to `k` articles on the same story as the source's article (at least
    SAME_STORY similar), under the first source that is not a weak match of each article the answer
    cites; articles the answer cites are left out. `related` is `Library.related`."""
    cited = answer.article_ids
    found: dict[int, list[Related]] = {}
    done: set[str] = set()
    for source in answer.sources:
        article_id = source.hit.citation.article_id
        if source.weak or article_id in done:
            continue
        done.add(article_id)
        try:
            articles = related(article_id, k, cited, SAME_STORY)
        except UnknownArticleError:  # a sync removed the article since it was cited
            continue
        except QAError as error:  # the answer stands without its related coverage
            logger.warning("no related coverage: %s", error)
            break
        if articles:
            found[source.number] = articles
    return found


def _ranked(scores: npt.NDArray[np.float32], wanted: int) -> Iterator[int]:
    """Rows by score, highest first, equal scores by row: the `wanted` best (and any tied with the last)
    sorted first, the rest only when the caller reads that far."""
    count = len(scores)
    cut = np.partition(scores, count - wanted)[count - wanted] if wanted < count else -np.inf
    for rows in (np.flatnonzero(scores >= cut), np.flatnonzero(scores < cut)):
        yield from rows[np.lexsort((rows, -scores[rows]))].tolist()
