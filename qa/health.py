"""Index health without labels: does each article's own headline find it?

A sample of articles is searched by title; a healthy index ranks the article itself first
almost always. A sudden drop after a sync points at broken text extraction or a wrong model.

A full build checks a fresh sample of `SAMPLE` articles. A small sync keeps that sample and
checks only what it may have broken: every article it added or changed (they join the sample,
pushing out the ones checked longest ago), plus the `RECHECK` sample articles checked longest
ago, searched again against the grown index. Deleted articles leave the sample; a sync that only
deletes searches nothing (a deletion breaks neither extraction nor the model). The figures are
always over the kept sample (up to `SAMPLE` articles), and a small sync costs a fixed number of
searches however large the index is.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from .embed import Embedder
from .search import search
from .store import IndexStore

SAMPLE = 100  # articles in the sample the figures are over
RECHECK = 10  # sample articles searched again on a small sync
Health = dict[str, Any]  # {"recall@1", "recall@5", "articles", "checked": [[article_id, rank], ...]}


def headline_check(store: IndexStore, embedder: Embedder, mode: str, sample: int = SAMPLE) -> Health:
    """recall@1 and recall@5 of articles searched by their own title, over a fixed sample."""
    articles = [(article_id, title) for article_id, title, _ in store.article_list() if title.strip()]
    chosen = random.Random(0).sample(articles, min(sample, len(articles)))
    return _figures(_ranks(store, embedder, mode, chosen))


def headline_update(
    store: IndexStore, embedder: Embedder, mode: str, previous: Health | None, changed: Sequence[str] | None,
    sample: int = SAMPLE,
) -> Health:
    """The figures after a sync that added or changed the articles `changed` (None: a full build).

    Checks the changed articles and, if there are any, the `RECHECK` longest-checked of the `previous`
    sample; falls back to a full `headline_check` after a full build, without a previous sample, or
    when more than half a sample changed.
    """
    kept = (previous or {}).get("checked")
    if changed is None or not isinstance(kept, list) or len(changed) > sample // 2:
        return headline_check(store, embedder, mode, sample)
    fresh = set(changed)
    titles = store.titles([str(article_id) for article_id, _ in kept] + list(changed))
    kept = [(article_id, rank) for article_id, rank in kept if article_id in titles and article_id not in fresh]
    if 2 * (len(kept) + len(changed)) < min(sample, store.counts()["articles"]):
        return headline_check(store, embedder, mode, sample)  # deletions emptied the sample: draw a new one
    again = kept[:RECHECK] if changed else []  # deleting articles breaks neither extraction nor the model
    wanted = [(article_id, titles[article_id]) for article_id, _ in again]
    wanted += [(article_id, titles[article_id]) for article_id in changed if titles.get(article_id, "").strip()]
    ranks = _ranks(store, embedder, mode, wanted)
    return _figures((kept[len(again) :] + ranks)[-sample:])


def _ranks(store: IndexStore, embedder: Embedder, mode: str, chosen: list[tuple[str, str]]) -> list[tuple[str, int]]:
    """(article_id, rank) of each article searched by its title: 1 first, 5 in the top 5 (2-5), 0 neither."""
    if not chosen:
        return []
    vectors = embedder.encode_queries([title for _, title in chosen]) if mode != "bm25" else None
    ranks = []
    for at, (article_id, title) in enumerate(chosen):
        vector = vectors[at : at + 1] if vectors is not None else None
        hits = search(title[:2000], 5, store, embedder, mode, query_vector=vector)
        found = [{c.article_id for c in (hit.citation, *hit.also_in)} for hit in hits]
        rank = 1 if found and article_id in found[0] else 5 if any(article_id in ids for ids in found) else 0
        ranks.append((article_id, rank))
    return ranks


def _figures(ranks: list[tuple[str, int]]) -> Health:
    count = len(ranks)
    if not count:
        return {"recall@1": 0.0, "recall@5": 0.0, "articles": 0, "checked": []}
    first = sum(1 for _, rank in ranks if rank == 1)
    top5 = sum(1 for _, rank in ranks if rank)
    return {
        "recall@1": round(first / count, 3), "recall@5": round(top5 / count, 3), "articles": count,
        "checked": [[article_id, rank] for article_id, rank in ranks],
    }
