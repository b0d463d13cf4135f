"""The index in Milvus: the verbs of `IndexStore`, for archives beyond one machine.

The collections are described in `qa.store.milvus_collections`. Identical bodies in two articles
get a row each; the search merges such copies into one hit citing both, as with FAISS. The
embedding cache lets an interrupted build resume, a rebuild re-embed nothing, and several workers fill it.

Milvus has no multi-collection transactions. A sync first writes the ids of the articles it
is about to change to the manifest (`pending:` rows); those articles count as not indexed until the
sync finishes, and the next sync clears whatever an interrupted one left of them. Readers may
see an article's passages missing for the moment of a sync (FAISS readers see the old index).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from ..hashing import digest
from ..lexical import terms
from ..schema import Citation, best_first
from .contract import FORMAT_VERSION, TIES_SEEN, Change, IndexStore, StoredPassage, Vectors, chunks, mean_directions
from .folder import write_lock
from .milvus_collections import (
    ARTICLE_FIELDS,
    PASSAGE_FIELDS,
    article_row,
    connect,
    create,
    expression,
    fresh_rows,
    is_server,
    meta_row,
    passage_row,
    quoted_list,
)
from .restriction import Restriction

BATCH = 500
PENDING = "pending:"  # manifest keys of the articles an unfinished sync is changing


class MilvusStore(IndexStore):
    """An index in Milvus: `uri` is a milvus-lite file (embedded) or `http://host:19530` (a cluster).

    Nothing connects until first use. The write lock is a file in `lock_dir`: one writer per
    machine; across machines run one `qa index` at a time (workers only fill the vector cache).
    """

    def __init__(self, uri: str, lock_dir: Path, prefix: str = "qa", token: str = "") -> None:
        self.uri, self.lock_dir, self.prefix, self.token = uri, Path(lock_dir), prefix, token
        self._client: Any = None
        self._connect_lock = threading.Lock()

    # -- connection ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The pymilvus `MilvusClient`, connected on first use."""
        with self._connect_lock:
            if self._client is None:
                self._client = connect(self.uri, self.token, self.prefix)
            return self._client

    def close(self) -> None:
        with self._connect_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def name(self, kind: str) -> str:
        """The collection of `kind` ("passages", "articles", "vectors", "meta")."""
        return f"{self.prefix}_{kind}"

    def _has(self, kind: str) -> bool:
        return bool(self.client.has_collection(self.name(kind)))

    def _ensure(self, kind: str, dimension: int = 0) -> None:
        if not self._has(kind):
            create(self.client, self.name(kind), kind, dimension)

    # -- the manifest and the write lock ----------------------------------------------------

    def exists(self) -> bool:
        return self._has("meta")

    def manifest(self) -> dict[str, Any]:
        if not self._has("meta"):
            return {}
        rows = self._query("meta", "", ["key", "value"])
        manifest = {row["key"]: json.loads(row["value"]) for row in rows if not row["key"].startswith(PENDING)}
        pending = sorted(json.loads(row["value"]) for row in rows if row["key"].startswith(PENDING))
        return manifest | ({"pending": pending} if pending else {})

    def note(self, key: str, value: Any) -> None:
        self._ensure("meta")
        self.client.upsert(self.name("meta"), [meta_row(key, value)])

    def writing(self) -> contextlib.AbstractContextManager[None]:
        return write_lock(self.lock_dir)

    def pending(self) -> list[str]:
        """Ids of the articles an unfinished sync was changing."""
        if not self._has("meta"):
            return []
        return [json.loads(row["value"]) for row in self._query("meta", f'key like "{PENDING}%"', ["value"])]

    def mark_pending(self, article_ids: list[str]) -> None:
        """Mark these articles as being changed by a sync: one manifest row each (a list in one row would
        outgrow Milvus's VARCHAR limit)."""
        rows = [meta_row(PENDING + digest(article_id), article_id) for article_id in article_ids]
        for chunk in chunks(rows, BATCH):
            self.client.upsert(self.name("meta"), chunk)

    # -- what the build compares and writes -------------------------------------------------

    def article_hashes(self) -> dict[str, tuple[str, str]]:
        if not self._has("articles"):
            return {}
        pending = set(self.pending())
        rows = self._query("articles", "", ["article_id", "record_hash", "body_hash"])
        return {r["article_id"]: (r["record_hash"], r["body_hash"]) for r in rows if r["article_id"] not in pending}

    def body_hashes(self) -> set[str]:
        return {body for _, body in self.article_hashes().values()}

    def passage_count(self, body_hashes: Iterable[str]) -> int:
        wanted = list(set(body_hashes))
        if not wanted or not self._has("passages"):
            return 0
        return sum(
            len(self._query("passages", f"body_hash in {quoted_list(chunk)}", ["row"]))
            for chunk in chunks(wanted, BATCH)
        )

    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]:
        if not self._has("vectors"):
            return {}
        found: dict[str, Vectors] = {}
        for chunk in chunks(list(dict.fromkeys(keys)), BATCH):
            for row in self.client.get(self.name("vectors"), ids=chunk, output_fields=["vector_key", "vector"]):
                found[row["vector_key"]] = np.asarray(row["vector"], dtype=np.float32)
        return found

    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None:
        if not len(keys):
            return
        self._ensure("vectors", int(vectors.shape[1]))
        rows = [{"vector_key": key, "vector": vector.tolist()} for key, vector in zip(keys, vectors, strict=True)]
        for chunk in chunks(rows, BATCH):
            self.client.upsert(self.name("vectors"), chunk)

    def apply(self, change: Change) -> None:
        """Write one sync: mark the articles pending, delete their rows, insert the new ones, clear the mark."""
        dimension = int(change.manifest["dimension"])
        generation = int(self.manifest().get("generation", 0)) + 1  # counts the syncs: readers' caches key on it
        if change.reset:
            for kind in ("passages", "articles", "meta"):
                if self._has(kind):
                    self.client.drop_collection(self.name(kind))
        self._ensure("passages", dimension)
        self._ensure("articles")
        self._ensure("meta")
        upserts = {article.article_id: article for article in change.upsert_articles}
        touched = sorted(set(self.pending()) | set(change.delete_articles) | set(upserts))
        self.mark_pending(touched)
        reused = self._rows_of_bodies(
            {a.body_hash for a in upserts.values()} - {p.body_hash for p in change.new_passages}
        )
        for chunk in chunks(touched, BATCH):
            self.client.delete(self.name("articles"), ids=chunk)
            self.client.delete(self.name("passages"), filter=f"article_id in {quoted_list(chunk)}")
        fresh = fresh_rows(change)
        rows = [
            passage_row(article, body_row)
            for article in upserts.values()
            for body_row in fresh.get(article.body_hash) or reused.get(article.body_hash, [])
        ]
        for chunk in chunks(rows, BATCH):
            self.client.insert(self.name("passages"), chunk)
        for chunk in chunks([article_row(a) for a in upserts.values()], BATCH):
            self.client.insert(self.name("articles"), chunk)
        self.client.flush(self.name("passages"))
        self.client.flush(self.name("articles"))
        dates = [r["date"] for r in self._query("articles", 'date != ""', ["date"])]
        newest = max(dates, default=None)
        manifest = {
            **change.manifest, "format": FORMAT_VERSION, "newest": newest, "backend": "milvus", "generation": generation
        }
        for key, value in manifest.items():
            self.note(key, value)
        self.client.delete(self.name("meta"), filter=f'key like "{PENDING}%"')
        self._prune_cache()

    def _rows_of_bodies(self, body_hashes: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Stored passage rows (one article's copy) of bodies that are already indexed."""
        found: dict[str, dict[int, dict[str, Any]]] = {}
        fields = ["body_hash", "ordinal", "start", "end", "paragraph", "text", "terms", "vector_key", "dense"]
        for chunk in chunks(sorted(body_hashes), 50):
            for row in self._query("passages", f"body_hash in {quoted_list(chunk)}", fields):
                found.setdefault(row["body_hash"], {}).setdefault(row["ordinal"], row)
        return {body: [rows[key] for key in sorted(rows)] for body, rows in found.items()}

    def _prune_cache(self) -> None:
        """Forget cached vectors no passage uses (as the FAISS store does after each sync)."""
        if not self._has("vectors"):
            return
        used = {row["vector_key"] for row in self._query("passages", "", ["vector_key"])}
        unused = [
            row["vector_key"] for row in self._query("vectors", "", ["vector_key"]) if row["vector_key"] not in used
        ]
        for chunk in chunks(unused, BATCH):
            self.client.delete(self.name("vectors"), ids=chunk)

    # -- what the search reads ----------------------------------------------------------------

    def search(self, query: Vectors, k: int, restriction: Restriction | None = None) -> list[tuple[int, float]]:
        """(row, inner product) of the `k` nearest passages that pass `restriction`, best first."""
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        return self._search(vector, "dense", "IP", k, restriction)

    def search_terms(
        self, question: str, k: int, restriction: Restriction | None = None
    ) -> list[tuple[int, float]]:
        """(row, BM25 score) of the `k` best passages by shared terms that pass `restriction`, best first
        (Milvus's BM25)."""
        words = " ".join(terms([question])[0])
        return self._search(words, "sparse", "BM25", k, restriction) if words else []

    def _search(
        self, query: Any, field: str, metric: str, k: int, restriction: Restriction | None
    ) -> list[tuple[int, float]]:
        """(row, score) of the `k` best passages by `field` under `metric`, best first."""
        if not self._has("passages"):
            return []
        found = self.client.search(
            self.name("passages"), [query], anns_field=field, limit=k + TIES_SEEN, filter=expression(restriction),
            search_params={"metric_type": metric}, output_fields=["row"],
        )
        scores = ((int(hit["entity"]["row"]), float(hit["distance"])) for hit in found[0])
        if metric == "BM25":  # milvus-lite reports BM25 as a negative distance, a cluster as a positive score
            scores = ((row, abs(score)) for row, score in scores)
        return best_first(scores, k)

    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]:
        found: dict[int, StoredPassage] = {}
        for chunk in chunks(list(set(rows)), BATCH):
            for r in self.client.get(self.name("passages"), ids=chunk, output_fields=PASSAGE_FIELDS):
                found[r["row"]] = StoredPassage(
                    r["row"], r["body_hash"], r["ordinal"], r["start"], r["end"], r["paragraph"], r["text"]
                )
        return found

    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]:
        found: dict[int, Vectors] = {}
        for chunk in chunks(list(set(rows)), BATCH):
            for r in self.client.get(self.name("passages"), ids=chunk, output_fields=["row", "dense"]):
                found[r["row"]] = np.asarray(r["dense"], dtype=np.float32)
        return found

    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]:
        found: dict[str, list[Citation]] = {}
        for chunk in chunks(sorted(set(body_hashes)), BATCH):
            rows = self._query("articles", f"body_hash in {quoted_list(chunk)}", ARTICLE_FIELDS)
            for r in sorted(rows, key=lambda row: row["article_id"]):
                found.setdefault(r["body_hash"], []).append(
                    Citation(
                        r["article_id"], r["title"], r["source"], r["url"] or None, r["date"] or None,
                        r["publisher"] or None, passage=0, paragraph=0, start=0, end=0,
                    )
                )
        return found

    def dates(self, rows: Iterable[int]) -> dict[int, date]:
        found: dict[int, date] = {}
        for chunk in chunks(list(set(rows)), BATCH):
            for r in self.client.get(self.name("passages"), ids=chunk, output_fields=["row", "day"]):
                if r["day"]:
                    found[r["row"]] = date(r["day"] // 10000, r["day"] // 100 % 100, r["day"] % 100)
        return found

    def newest_date(self) -> date | None:
        newest = self.manifest().get("newest")
        return date.fromisoformat(newest) if newest else None

    def article_vectors(self) -> tuple[list[str], Vectors]:
        """Every indexed article's id (sorted) and its vector, the L2-normalized mean of its passages'
        stored vectors, as (n, d) float32; read a few hundred articles at a time."""
        article_ids = sorted(self.article_hashes())

        def batches() -> Iterable[tuple[list[str], Vectors]]:
            for chunk in chunks(article_ids, 200):
                rows = self._query("passages", f"article_id in {quoted_list(chunk)}", ["article_id", "dense"])
                if rows:
                    yield [r["article_id"] for r in rows], np.asarray([r["dense"] for r in rows], dtype=np.float32)

        return mean_directions(batches())

    # -- what the interfaces show ---------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        hashes = self.article_hashes()
        passages = self._count("passages") if self._has("passages") else 0
        bodies = {body for _, body in hashes.values()}
        return {"articles": len(hashes), "bodies": len(bodies), "passages": passages}

    def article_list(self) -> list[tuple[str, str, str | None]]:
        if not self._has("articles"):
            return []
        rows = self._query("articles", "", ["article_id", "title", "date"])
        return sorted((r["article_id"], r["title"], r["date"] or None) for r in rows)

    def titles(self, article_ids: Iterable[str]) -> dict[str, str]:
        """article_id -> title of those of `article_ids` that are indexed."""
        found: dict[str, str] = {}
        if not self._has("articles"):
            return found
        for chunk in chunks(sorted(set(article_ids)), BATCH):
            rows = self._query("articles", f"article_id in {quoted_list(chunk)}", ["article_id", "title"])
            found.update((r["article_id"], r["title"]) for r in rows)
        return found

    def check(self) -> list[str]:
        """Problems found: an interrupted sync, articles without passages, passages without an article."""
        if not self.exists() or not self.manifest():
            return [f"there is no index in {self.uri}"]
        problems = []
        if pending := self.pending():
            problems.append(f"a sync was interrupted while changing {len(pending)} articles; run `qa index`")
        articles = set(self.article_hashes())
        cited = {r["article_id"] for r in self._query("passages", "", ["article_id"])}
        if missing := articles - cited:
            problems.append(f"{len(missing)} articles have no passages (e.g. {sorted(missing)[0]})")
        if orphans := cited - articles - set(self.pending()):
            problems.append(f"passages of {len(orphans)} unknown articles (e.g. {sorted(orphans)[0]})")
        return problems

    # -- reading collections ----------------------------------------------------------------------

    def _query(self, kind: str, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expression` (a server caps one query's size: read it in batches there)."""
        if not is_server(self.uri):
            return list(self.client.query(self.name(kind), filter=expression, output_fields=fields))
        iterator = self.client.query_iterator(self.name(kind), batch_size=1000, filter=expression, output_fields=fields)
        rows: list[dict[str, Any]] = []
        try:
            while batch := iterator.next():
                rows += batch
        finally:
            iterator.close()
        return rows

    def _count(self, kind: str) -> int:
        result = self.client.query(self.name(kind), filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])
