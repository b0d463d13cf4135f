"""The index in Milvus: the same verbs as `qa.store.Store`, for archives beyond one machine.

Four collections share a name prefix (default `qa`):
- `<prefix>_passages`: one row per (article, passage) with its text, span, the BM25 terms of
  `qa.lexical.terms` (title + passage, stemmed) as a VARCHAR that Milvus's built-in BM25
  function turns into a sparse vector, the dense vector (inner product), and the filter
  fields (lower-case source, publisher and title, the date as a YYYYMMDD integer, 0 = undated).
  Identical bodies in two articles get a row each; the search merges such copies into one hit
  citing both, as with FAISS.
- `<prefix>_articles`: one row per article (hashes and citation fields).
- `<prefix>_vectors`: the embedding cache keyed by model + text, so an interrupted build
  resumes, a rebuild re-embeds nothing, and several workers can fill it.
- `<prefix>_meta`: the manifest.
(Milvus needs a vector field in every collection: the last two small ones carry a 2-d zero.)

Milvus has no multi-collection transactions. A sync first writes the ids of the articles it
is about to change to the manifest (`pending:` rows); those articles count as not indexed until the
sync finishes, and the next sync clears whatever an interrupted one left of them. Readers may
see an article's passages missing for the moment of a sync (FAISS readers see the old index).
Only this module imports pymilvus.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConfigError, StoreError
from .hashing import digest
from .lexical import terms
from .schema import Article, Citation, Filters, best_first
from .store import FORMAT_VERSION, TIES_SEEN, Change, Period, StoredPassage, Vectors, _chunks, _like_prefix, write_lock

logger = logging.getLogger(__name__)

TEXT_LIMIT = 65_535  # Milvus VARCHAR limit (bytes)
FIELD_LIMIT = 2_048
BATCH = 500
PENDING = "pending:"  # manifest keys of the articles an unfinished sync is changing
_PASSAGE_FIELDS = ["row", "article_id", "body_hash", "ordinal", "start", "end", "paragraph", "text"]
_ARTICLE_FIELDS = ["article_id", "record_hash", "body_hash", "title", "source", "url", "date", "author", "publisher"]


class MilvusStore:
    """An index in Milvus: `uri` is a milvus-lite file (embedded) or `http://host:19530` (a cluster).

    Nothing connects until first use. The write lock is a file in `lock_dir`: one writer per
    machine; across machines run one `qa index` at a time (workers only fill the vector cache).
    """

    def __init__(self, uri: str, lock_dir: Path, prefix: str = "qa", token: str = "") -> None:
        self.uri, self.lock_dir, self.prefix, self.token = uri, Path(lock_dir), prefix, token
        self._client: Any = None
        self._connect_lock = threading.Lock()
        self._meta_cache: dict[str, Any] | None = None

    # -- connection ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        with self._connect_lock:
            if self._client is None:
                self._client = self._connect()
            return self._client

    def _connect(self) -> Any:
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # milvus-lite's in-process gRPC logs keep-alive chatter
        try:
            from pymilvus import MilvusClient
        except ImportError:
            raise ConfigError(
                "QA_STORE names Milvus, but pymilvus is not installed: pip install pymilvus milvus-lite"
            ) from None
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # noise: its errors reach us as exceptions
        if not self.uri.startswith(("http://", "https://")):
            Path(self.uri).parent.mkdir(parents=True, exist_ok=True)
        try:
            client = MilvusClient(uri=self.uri, token=self.token)
            for name in client.list_collections():
                if name.startswith(self.prefix + "_"):
                    client.load_collection(name)  # a server keeps them loaded; milvus-lite starts released
        except Exception as error:  # pymilvus raises many types; all mean "cannot reach it"
            hint = (
                " milvus-lite lets one process at a time open a file: stop the other one (e.g. the chat), or "
                "run a Milvus server for several processes."
                if not self.uri.startswith(("http://", "https://"))
                else " Check that the server is running and reachable."
            )
            raise StoreError(f"Cannot open the Milvus index at {self.uri} ({_first_line(error)}).{hint}") from None
        return client

    def close(self) -> None:
        with self._connect_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def _name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}"

    def _has(self, kind: str) -> bool:
        return bool(self.client.has_collection(self._name(kind)))

    # -- manifest -----------------------------------------------------------------------

    def exists(self) -> bool:
        return self._has("meta")

    def manifest(self) -> dict[str, Any]:
        if not self._has("meta"):
            return {}
        rows = self._query("meta", "", ["key", "value"])
        return {row["key"]: json.loads(row["value"]) for row in rows if not row["key"].startswith(PENDING)}

    def note(self, key: str, value: Any) -> None:
        self._ensure_meta()
        self.client.upsert(self._name("meta"), [{"key": key, "value": json.dumps(value), "v": [0.0, 0.0]}])

    def _pending(self) -> list[str]:
        """Ids of the articles an unfinished sync was changing."""
        if not self._has("meta"):
            return []
        return [json.loads(row["value"]) for row in self._query("meta", f'key like "{PENDING}%"', ["value"])]

    def _mark_pending(self, article_ids: list[str]) -> None:
        """One manifest row per article (a list in one row would outgrow Milvus's VARCHAR limit)."""
        rows = [
            {"key": PENDING + digest(article_id), "value": json.dumps(article_id), "v": [0.0, 0.0]}
            for article_id in article_ids
        ]
        for chunk in _chunks(rows, BATCH):
            self.client.upsert(self._name("meta"), chunk)

    def inspect(self) -> tuple[str, str] | None:
        return None  # Milvus keeps its own files consistent

    def move_aside(self, kind: str) -> Path:
        raise StoreError("A Milvus index is never moved aside.")

    def damage(self) -> str | None:
        return None

    def writing(self) -> Any:
        return write_lock(self.lock_dir)

    # -- what is indexed -----------------------------------------------------------------

    def article_hashes(self) -> dict[str, tuple[str, str]]:
        if not self._has("articles"):
            return {}
        pending = set(self._pending())
        rows = self._query("articles", "", ["article_id", "record_hash", "body_hash"])
        return {r["article_id"]: (r["record_hash"], r["body_hash"]) for r in rows if r["article_id"] not in pending}

    def body_hashes(self) -> set[str]:
        return {body for _, body in self.article_hashes().values()}

    def passage_count(self, body_hashes: Iterable[str]) -> int:
        wanted = list(set(body_hashes))
        if not wanted or not self._has("passages"):
            return 0
        return sum(
            len(self._query("passages", f"body_hash in {_list(chunk)}", ["row"])) for chunk in _chunks(wanted, BATCH)
        )

    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]:
        if not self._has("vectors"):
            return {}
        found: dict[str, Vectors] = {}
        for chunk in _chunks(list(dict.fromkeys(keys)), BATCH):
            for row in self.client.get(self._name("vectors"), ids=chunk, output_fields=["vector_key", "vector"]):
                found[row["vector_key"]] = np.asarray(row["vector"], dtype=np.float32)
        return found

    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None:
        if not len(keys):
            return
        self._ensure_vectors(int(vectors.shape[1]))
        rows = [{"vector_key": key, "vector": vector.tolist()} for key, vector in zip(keys, vectors, strict=True)]
        for chunk in _chunks(rows, BATCH):
            self.client.upsert(self._name("vectors"), chunk)

    # -- writing -------------------------------------------------------------------------

    def apply(self, change: Change) -> None:
        """Write one sync: mark the articles pending, delete their rows, insert the new ones, clear the mark."""
        dimension = int(change.manifest["dimension"])
        if change.reset:
            for kind in ("passages", "articles", "meta"):
                if self._has(kind):
                    self.client.drop_collection(self._name(kind))
        self._ensure_passages(dimension)
        self._ensure_articles()
        self._ensure_meta()
        upserts = {article.article_id: article for article in change.upsert_articles}
        touched = sorted(set(self._pending()) | set(change.delete_articles) | set(upserts))
        self._mark_pending(touched)
        reused = self._rows_of_bodies(
            {a.body_hash for a in upserts.values()} - {p.body_hash for p in change.new_passages}
        )
        for chunk in _chunks(touched, BATCH):
            self.client.delete(self._name("articles"), ids=chunk)
            self.client.delete(self._name("passages"), filter=f"article_id in {_list(chunk)}")
        fresh = _fresh_rows(change)
        rows = [
            _passage_row(article, body_row)
            for article in upserts.values()
            for body_row in fresh.get(article.body_hash) or reused.get(article.body_hash, [])
        ]
        for chunk in _chunks(rows, BATCH):
            self.client.insert(self._name("passages"), chunk)
        for chunk in _chunks([_article_row(a) for a in upserts.values()], BATCH):
            self.client.insert(self._name("articles"), chunk)
        self.client.flush(self._name("passages"))
        self.client.flush(self._name("articles"))
        dates = [r["date"] for r in self._query("articles", 'date != ""', ["date"])]
        manifest = {
            **change.manifest,
            "format": FORMAT_VERSION,
            "newest": max(dates, default=None),
            "backend": "milvus",
        }
        for key, value in manifest.items():
            self.note(key, value)
        self.client.delete(self._name("meta"), filter=f'key like "{PENDING}%"')
        self._prune_cache()

    def refit_faiss(self) -> bool:
        """Nothing to refit: Milvus chooses and maintains its own index."""
        return False

    def _rows_of_bodies(self, body_hashes: set[str]) -> dict[str, list[dict[str, Any]]]:
        """Stored passage rows (one article's copy) of bodies that are already indexed."""
        found: dict[str, dict[int, dict[str, Any]]] = {}
        fields = ["body_hash", "ordinal", "start", "end", "paragraph", "text", "terms", "vector_key", "dense"]
        for chunk in _chunks(sorted(body_hashes), 50):
            for row in self._query("passages", f"body_hash in {_list(chunk)}", fields):
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
        for chunk in _chunks(unused, BATCH):
            self.client.delete(self._name("vectors"), ids=chunk)

    # -- searching -----------------------------------------------------------------------

    def where(self, filters: Filters | None, period: Period | None = None) -> str | None:
        """A Milvus boolean expression for `filters` and `period`; None = everything."""
        clauses: list[str] = []
        if filters and filters.sources:
            parts = []
            for source in filters.sources:
                lowered = source.lower().strip("/")
                parts.append(
                    f"publisher_lc == {_quote(lowered)} or source_lc == {_quote(lowered)} "
                    f"or source_lc like {_quote(_like_prefix(lowered) + '/%')}"
                )
            clauses.append(" or ".join(f"({part})" for part in parts))
        if filters and filters.articles:
            parts = [
                f"article_id == {_quote(wanted)} or title_lc like {_quote('%' + _like_prefix(wanted.lower()) + '%')}"
                for wanted in filters.articles
            ]
            clauses.append(" or ".join(f"({part})" for part in parts))
        if filters and filters.date_from:
            clauses.append(f"day >= {_day(filters.date_from)}")
        if filters and filters.date_to:
            clauses.append(f"day > 0 and day <= {_day(filters.date_to)}")
        if period is not None:
            bounds = [
                f"day >= {_day(period[0])}" if period[0] else "",
                f"day <= {_day(period[1])}" if period[1] else "",
            ]
            clauses.append("day == 0 or (" + " and ".join(b for b in bounds if b) + ")")
        return " and ".join(f"({clause})" for clause in clauses) or None

    def search(self, query: Vectors, k: int, where: str | None = None) -> list[tuple[int, float]]:
        """(row, inner product) of the `k` nearest passages, best first."""
        if not self._has("passages"):
            return []
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        found = self.client.search(
            self._name("passages"),
            [vector],
            anns_field="dense",
            limit=k + TIES_SEEN,
            filter=where or "",
            search_params={"metric_type": "IP"},
            output_fields=["row"],
        )
        return best_first(((int(hit["entity"]["row"]), float(hit["distance"])) for hit in found[0]), k)

    def search_terms(self, question: str, k: int, where: str | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the `k` best passages by shared terms, best first (Milvus's BM25)."""
        words = " ".join(terms([question])[0])
        if not words or not self._has("passages"):
            return []
        found = self.client.search(
            self._name("passages"),
            [words],
            anns_field="sparse",
            limit=k + TIES_SEEN,
            filter=where or "",
            search_params={"metric_type": "BM25"},
            output_fields=["row"],
        )
        # milvus-lite reports BM25 as a negative distance (smaller is better), a cluster as a positive score
        return best_first(((int(hit["entity"]["row"]), abs(float(hit["distance"]))) for hit in found[0]), k)

    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]:
        found: dict[int, StoredPassage] = {}
        for chunk in _chunks(list(set(rows)), BATCH):
            for r in self.client.get(self._name("passages"), ids=chunk, output_fields=_PASSAGE_FIELDS):
                found[r["row"]] = StoredPassage(
                    r["row"], r["body_hash"], r["ordinal"], r["start"], r["end"], r["paragraph"], r["text"]
                )
        return found

    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]:
        found: dict[int, Vectors] = {}
        for chunk in _chunks(list(set(rows)), BATCH):
            for r in self.client.get(self._name("passages"), ids=chunk, output_fields=["row", "dense"]):
                found[r["row"]] = np.asarray(r["dense"], dtype=np.float32)
        return found

    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]:
        found: dict[str, list[Citation]] = {}
        for chunk in _chunks(sorted(set(body_hashes)), BATCH):
            rows = self._query("articles", f"body_hash in {_list(chunk)}", _ARTICLE_FIELDS)
            for r in sorted(rows, key=lambda row: row["article_id"]):
                found.setdefault(r["body_hash"], []).append(
                    Citation(
                        r["article_id"],
                        r["title"],
                        r["source"],
                        r["url"] or None,
                        r["date"] or None,
                        r["publisher"] or None,
                        passage=0,
                        paragraph=0,
                        start=0,
                        end=0,
                    )
                )
        return found

    def dates(self, rows: Iterable[int]) -> dict[int, date]:
        found: dict[int, date] = {}
        for chunk in _chunks(list(set(rows)), BATCH):
            for r in self.client.get(self._name("passages"), ids=chunk, output_fields=["row", "day"]):
                if r["day"]:
                    found[r["row"]] = date(r["day"] // 10000, r["day"] // 100 % 100, r["day"] % 100)
        return found

    def newest_date(self) -> date | None:
        newest = self.manifest().get("newest")
        return date.fromisoformat(newest) if newest else None

    def counts(self) -> dict[str, int]:
        hashes = self.article_hashes()
        passages = self._count("passages") if self._has("passages") else 0
        return {"articles": len(hashes), "bodies": len(set(hashes.values())), "passages": passages}

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
        for chunk in _chunks(sorted(set(article_ids)), BATCH):
            rows = self._query("articles", f"article_id in {_list(chunk)}", ["article_id", "title"])
            found.update((r["article_id"], r["title"]) for r in rows)
        return found

    def check(self) -> list[str]:
        """Problems found: an interrupted sync, articles without passages, passages without an article."""
        if not self.exists() or not self.manifest():
            return [f"there is no index in {self.uri}"]
        problems = []
        if pending := self._pending():
            problems.append(f"a sync was interrupted while changing {len(pending)} articles; run `qa index`")
        articles = set(self.article_hashes())
        cited = {r["article_id"] for r in self._query("passages", "", ["article_id"])}
        if missing := articles - cited:
            problems.append(f"{len(missing)} articles have no passages (e.g. {sorted(missing)[0]})")
        if orphans := cited - articles - set(self._pending()):
            problems.append(f"passages of {len(orphans)} unknown articles (e.g. {sorted(orphans)[0]})")
        return problems

    # -- collections ---------------------------------------------------------------------

    def _query(self, kind: str, expression: str, fields: list[str]) -> list[dict[str, Any]]:
        """Every row matching `expression` (a server caps one query's size: read it in batches there)."""
        if not self.uri.startswith(("http://", "https://")):
            return list(self.client.query(self._name(kind), filter=expression, output_fields=fields))
        iterator = self.client.query_iterator(
            self._name(kind), batch_size=1000, filter=expression, output_fields=fields
        )
        rows: list[dict[str, Any]] = []
        try:
            while batch := iterator.next():
                rows += batch
        finally:
            iterator.close()
        return rows

    def _count(self, kind: str) -> int:
        result = self.client.query(self._name(kind), filter="", output_fields=["count(*)"])
        return int(result[0]["count(*)"])

    def _ensure_meta(self) -> None:
        if self._has("meta"):
            return
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("value", DataType.VARCHAR, max_length=TEXT_LIMIT)
        self._create("meta", schema, _dummy_vector(schema))

    def _ensure_articles(self) -> None:
        if self._has("articles"):
            return
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("article_id", DataType.VARCHAR, is_primary=True, max_length=FIELD_LIMIT)
        for name in _ARTICLE_FIELDS[1:]:
            schema.add_field(name, DataType.VARCHAR, max_length=FIELD_LIMIT)
        self._create("articles", schema, _dummy_vector(schema))

    def _ensure_vectors(self, dimension: int) -> None:
        if self._has("vectors"):
            return
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("vector_key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        self._create("vectors", schema, [("vector", "FLAT", "IP")])

    def _ensure_passages(self, dimension: int) -> None:
        if self._has("passages"):
            return
        from pymilvus import DataType, Function, FunctionType

        schema = self.client.create_schema(auto_id=False)
        schema.add_field("row", DataType.INT64, is_primary=True)
        for name, limit in (("article_id", FIELD_LIMIT), ("body_hash", 64), ("vector_key", 64), ("text", TEXT_LIMIT)):
            schema.add_field(name, DataType.VARCHAR, max_length=limit)
        for name in ("ordinal", "start", "end", "paragraph", "day"):
            schema.add_field(name, DataType.INT64)
        for name in ("title_lc", "source_lc", "publisher_lc"):
            schema.add_field(name, DataType.VARCHAR, max_length=FIELD_LIMIT)
        schema.add_field("terms", DataType.VARCHAR, max_length=TEXT_LIMIT, enable_analyzer=True)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
            )
        )
        self._create("passages", schema, [("dense", "FLAT", "IP"), ("sparse", "SPARSE_INVERTED_INDEX", "BM25")])

    def _create(self, kind: str, schema: Any, indexes: list[tuple[str, str, str]]) -> None:
        name = self._name(kind)
        self.client.create_collection(name, schema=schema, consistency_level="Strong")
        params = self.client.prepare_index_params()
        for field, index_type, metric in indexes:
            params.add_index(field, index_type=index_type, metric_type=metric)
        self.client.create_index(name, params, sync=False)  # sync=True polls in 0.5 s steps
        self.client.load_collection(name)


def _dummy_vector(schema: Any) -> list[tuple[str, str, str]]:
    from pymilvus import DataType

    schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    return [("v", "FLAT", "L2")]


def _fresh_rows(change: Change) -> dict[str, list[dict[str, Any]]]:
    """body_hash -> the new passages of that body as row fields, with their vectors and terms."""
    fresh: dict[str, list[dict[str, Any]]] = {}
    vectors = change.new_vectors if change.new_vectors is not None else np.zeros((0, 0), dtype=np.float32)
    for at, passage in enumerate(change.new_passages):
        fresh.setdefault(passage.body_hash, []).append(
            {
                "body_hash": passage.body_hash,
                "ordinal": passage.ordinal,
                "start": passage.start,
                "end": passage.end,
                "paragraph": passage.paragraph,
                "text": passage.text,
                "terms": " ".join(change.new_terms[at]),
                "vector_key": change.vector_keys[at],
                "dense": vectors[at].tolist(),
            }
        )
    return fresh


def _passage_row(article: Article, body_row: dict[str, Any]) -> dict[str, Any]:
    return {
        **body_row,
        "row": passage_row_id(article.article_id, body_row["ordinal"]),
        "article_id": article.article_id,
        "day": _day(article.date) if article.date else 0,
        "title_lc": _clip(article.title.lower()),
        "source_lc": _clip(article.source.lower()),
        "publisher_lc": _clip((article.publisher or "").lower()),
    }


def _article_row(article: Article) -> dict[str, Any]:
    values = [
        article.article_id,
        article.record_hash,
        article.body_hash,
        article.title,
        article.source,
        article.url,
        article.date,
        article.author,
        article.publisher,
    ]
    return {
        **{name: _clip(value or "") for name, value in zip(_ARTICLE_FIELDS, values, strict=True)},
        "v": [0.0, 0.0],
    }


def passage_row_id(article_id: str, ordinal: int) -> int:
    """A stable 60-bit id for passage `ordinal` of an article: the same on every worker and machine."""
    return int(digest(f"{article_id}\x1f{ordinal}")[:15], 16)


def _day(iso: str | None) -> int:
    return int(iso.replace("-", "")) if iso else 0


def _clip(text: str) -> str:
    """`text` cut to fit a VARCHAR field (limits count UTF-8 bytes)."""
    encoded = text.encode("utf-8", "surrogatepass")
    return text if len(encoded) <= FIELD_LIMIT else encoded[:FIELD_LIMIT].decode("utf-8", "ignore")


def _quote(text: str) -> str:
    """A Milvus string literal."""
    return json.dumps(text, ensure_ascii=False)


def _list(values: Sequence[str]) -> str:
    return "[" + ", ".join(_quote(value) for value in values) + "]"


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
