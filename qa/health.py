"""Index health without labels: does each article's own headline find it?

A sample of articles is searched by title; a healthy index ranks the article itself first
almost always. A sudden drop after a sync points at broken text extraction or a wrong model.
"""

from __future__ import annotations

import random

from .embed import Embedder
from .search import search
from .store import IndexStore

SAMPLE = 100  # articles checked after each sync: about a second at any index size


def headline_check(store: IndexStore, embedder: Embedder, mode: str, sample: int = SAMPLE) -> dict[str, float]:
    """recall@1 and recall@5 of articles searched by their own title, over a fixed sample."""
    articles = [(article_id, title) for article_id, title, _ in store.article_list() if title.strip()]
    if not articles:
        return {"recall@1": 0.0, "recall@5": 0.0, "articles": 0}
    chosen = random.Random(0).sample(articles, min(sample, len(articles)))
    vectors = embedder.encode_queries([title for _, title in chosen]) if mode != "bm25" else None
    first = top5 = 0
    for at, (article_id, title) in enumerate(chosen):
        vector = vectors[at : at + 1] if vectors is not None else None
        hits = search(title[:2000], 5, store, embedder, mode, query_vector=vector)
        found = [{c.article_id for c in (hit.citation, *hit.also_in)} for hit in hits]
        first += bool(found) and article_id in found[0]
        top5 += any(article_id in ids for ids in found)
    count = len(chosen)
    return {"recall@1": round(first / count, 3), "recall@5": round(top5 / count, 3), "articles": count}
