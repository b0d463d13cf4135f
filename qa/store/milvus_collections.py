"""The Milvus side of `qa.store.MilvusStore`: connecting, the collections' schemas, rows as Milvus holds
them, and restrictions as Milvus boolean expressions. The only module that imports pymilvus.

Four collections share a name prefix (default `qa`):
- `<prefix>_passages`: one row per (article, passage) with its text, span, the BM25 terms of
  `qa.lexical.terms` (title + passage, stemmed) as a VARCHAR that Milvus's built-in BM25
  function turns into a sparse vector, the dense vector (inner product), and the filter
  fields (lower-case source, publisher and title, the date as a YYYYMMDD integer, 0 = undated).
- `<prefix>_articles`: one row per article (hashes and citation fields).
- `<prefix>_vectors`: the embedding cache keyed by model + text.
- `<prefix>_meta`: the manifest.
(Milvus needs a vector field in every collection: the last two small ones carry a 2-d zero.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, StoreError
from ..hashing import digest
from ..schema import Article
from .contract import Change
from .restriction import Restriction, Test, escape_like

TEXT_LIMIT = 65_535  # Milvus VARCHAR limit (bytes)
FIELD_LIMIT = 2_048
PASSAGE_FIELDS = ["row", "article_id", "body_hash", "ordinal", "start", "end", "paragraph", "text"]
ARTICLE_FIELDS = ["article_id", "record_hash", "body_hash", "title", "source", "url", "date", "author", "publisher"]
FIELDS = {"article_id": "article_id", "title": "title_lc", "source": "source_lc", "publisher": "publisher_lc",
          "date": "day"}  # what a `Test` of each field compares
DUMMY = [0.0, 0.0]  # the vector of a row in the small collections


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def connect(uri: str, token: str, prefix: str) -> Any:
    """A `MilvusClient` for `uri` with the collections of `prefix` loaded.

    Raises:
        ConfigError: pymilvus is not installed.
        StoreError: Milvus cannot be reached or opened.
    """
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise ConfigError(
            "QA_STORE names Milvus, but pymilvus is not installed: pip install pymilvus milvus-lite"
        ) from None
    if not is_server(uri):
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
    try:
        client = MilvusClient(uri=uri, token=token)
        for name in client.list_collections():
            if name.startswith(prefix + "_"):
                client.load_collection(name)  # a server keeps them loaded; milvus-lite starts released
    except Exception as error:  # pymilvus raises many types; all mean "cannot reach it"
        hint = (
            " Check that the server is running and reachable."
            if is_server(uri)
            else " milvus-lite lets one process at a time open a file: stop the other one (e.g. the chat), or "
            "run a Milvus server for several processes."
        )
        raise StoreError(f"Cannot open the Milvus index at {uri} ({_first_line(error)}).{hint}") from None
    return client


def create(client: Any, name: str, kind: str, dimension: int = 0) -> None:
    """Create and load the collection `name` of `kind` ("meta", "articles", "vectors" or "passages")."""
    from pymilvus import DataType, Function, FunctionType

    schema = client.create_schema(auto_id=False)
    indexes: list[tuple[str, str, str]] = [("v", "FLAT", "L2")]
    if kind == "meta":
        schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
        schema.add_field("value", DataType.VARCHAR, max_length=TEXT_LIMIT)
    elif kind == "articles":
        schema.add_field("article_id", DataType.VARCHAR, is_primary=True, max_length=FIELD_LIMIT)
        for field in ARTICLE_FIELDS[1:]:
            schema.add_field(field, DataType.VARCHAR, max_length=FIELD_LIMIT)
    elif kind == "vectors":
        schema.add_field("vector_key", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
        indexes = [("vector", "FLAT", "IP")]
    else:
        schema.add_field("row", DataType.INT64, is_primary=True)
        for field, limit in (("article_id", FIELD_LIMIT), ("body_hash", 64), ("vector_key", 64), ("text", TEXT_LIMIT)):
            schema.add_field(field, DataType.VARCHAR, max_length=limit)
        for field in ("ordinal", "start", "end", "paragraph", "day"):
            schema.add_field(field, DataType.INT64)
        for field in ("title_lc", "source_lc", "publisher_lc"):
            schema.add_field(field, DataType.VARCHAR, max_length=FIELD_LIMIT)
        schema.add_field("terms", DataType.VARCHAR, max_length=TEXT_LIMIT, enable_analyzer=True)
        schema.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
        schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_function(
            Function(
                name="bm25", function_type=FunctionType.BM25, input_field_names=["terms"], output_field_names=["sparse"]
            )
        )
        indexes = [("dense", "FLAT", "IP"), ("sparse", "SPARSE_INVERTED_INDEX", "BM25")]
    if kind in ("meta", "articles"):
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=2)
    client.create_collection(name, schema=schema, consistency_level="Strong")
    params = client.prepare_index_params()
    for field, index_type, metric in indexes:
        params.add_index(field, index_type=index_type, metric_type=metric)
    client.create_index(name, params, sync=False)  # sync=True polls in 0.5 s steps
    client.load_collection(name)


def expression(restriction: Restriction | None) -> str:
    """`restriction` as a Milvus boolean expression over the passages collection; "" = everything."""
    if restriction is None:
        return ""

    def rendered(test: Test) -> str:
        field = FIELDS[test.field]
        if test.field == "date":
            return {"missing": "day == 0", "on_or_after": f"day >= {day(test.value)}",
                    "on_or_before": f"(day > 0 and day <= {day(test.value)})"}[test.op]
        if test.op == "equals":
            return f"{field} == {quote(test.value)}"
        pattern = ("%" if test.op == "contains" else "") + escape_like(test.value) + "%"
        return f"{field} like {quote(pattern)}"

    return " and ".join(
        "(" + " or ".join("(" + " and ".join(rendered(test) for test in tests) + ")" for tests in clause) + ")"
        for clause in restriction.clauses
    )


def fresh_rows(change: Change) -> dict[str, list[dict[str, Any]]]:
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


def passage_row(article: Article, body_row: dict[str, Any]) -> dict[str, Any]:
    """A row of the passages collection: one passage of `body_row` in `article`."""
    return {
        **body_row,
        "row": passage_row_id(article.article_id, body_row["ordinal"]),
        "article_id": article.article_id,
        "day": day(article.date) if article.date else 0,
        "title_lc": _clip(article.title.lower()),
        "source_lc": _clip(article.source.lower()),
        "publisher_lc": _clip((article.publisher or "").lower()),
    }


def article_row(article: Article) -> dict[str, Any]:
    """A row of the articles collection."""
    values = [
        article.article_id, article.record_hash, article.body_hash, article.title, article.source,
        article.url, article.date, article.author, article.publisher,
    ]
    return {**{name: _clip(value or "") for name, value in zip(ARTICLE_FIELDS, values, strict=True)}, "v": DUMMY}


def meta_row(key: str, value: Any) -> dict[str, Any]:
    """A row of the manifest collection: `value` as JSON."""
    return {"key": key, "value": json.dumps(value), "v": DUMMY}


def passage_row_id(article_id: str, ordinal: int) -> int:
    """A stable 60-bit id for passage `ordinal` of an article: the same on every worker and machine."""
    return int(digest(f"{article_id}\x1f{ordinal}")[:15], 16)


def day(iso: str | None) -> int:
    """An ISO date as the YYYYMMDD integer the passages collection keeps; 0 = undated."""
    return int(iso.replace("-", "")) if iso else 0


def quote(text: str) -> str:
    """A Milvus string literal."""
    return json.dumps(text, ensure_ascii=False)


def quoted_list(values: Sequence[str]) -> str:
    """A Milvus list literal of strings."""
    return "[" + ", ".join(quote(value) for value in values) + "]"


def _clip(text: str) -> str:
    """`text` cut to fit a VARCHAR field (limits count UTF-8 bytes)."""
    encoded = text.encode("utf-8", "surrogatepass")
    return text if len(encoded) <= FIELD_LIMIT else encoded[:FIELD_LIMIT].decode("utf-8", "ignore")


def _first_line(error: BaseException) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]
