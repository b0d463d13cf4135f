"""What the build, the search and the interfaces need of an index: records and the verbs of every backend.

`IndexStore` lists the verbs both backends offer (`qa.store.Store`: FAISS + SQLite in one folder;
`qa.store.MilvusStore`: a Milvus collection). Verbs only the FAISS store has are in the optional
protocols `Maintainable` and `Exportable`: callers test `isinstance(store, Maintainable)`.
Rows are the backend's integer passage ids.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..schema import Article, Citation, Passage
from .restriction import Restriction

FORMAT_VERSION = 1
TIES_SEEN = 8  # a search fetches this many more than asked, so that equal scores at the cut are ordered by row too
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class StoredPassage:
    """A passage row as the search needs it."""

    row: int
    body_hash: str
    ordinal: int
    start: int
    end: int
    paragraph: int
    text: str


@dataclass
class Change:
    """Everything one sync writes, applied in one transaction.

    `new_passages[i]` is embedded as `new_vectors[i]` under the cache key `vector_keys[i]`, and
    `new_terms[i]` are its BM25 terms.
    """

    upsert_articles: list[Article] = field(default_factory=list)
    delete_articles: list[str] = field(default_factory=list)
    add_bodies: dict[str, str] = field(default_factory=dict)  # body_hash -> text
    delete_bodies: list[str] = field(default_factory=list)
    new_passages: list[Passage] = field(default_factory=list)
    vector_keys: list[str] = field(default_factory=list)
    new_terms: list[list[str]] = field(default_factory=list)
    new_vectors: Vectors | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    reset: bool = False  # drop everything first (a full rebuild)


@runtime_checkable
class IndexStore(Protocol):
    """The verbs every index backend offers."""

    # the manifest and the write lock
    def exists(self) -> bool: ...
    def manifest(self) -> dict[str, Any]: ...
    def note(self, key: str, value: Any) -> None: ...
    def writing(self) -> contextlib.AbstractContextManager[None]: ...
    def close(self) -> None: ...

    # what the build compares and writes
    def article_hashes(self) -> dict[str, tuple[str, str]]: ...
    def body_hashes(self) -> set[str]: ...
    def passage_count(self, body_hashes: Iterable[str]) -> int: ...
    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]: ...
    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None: ...
    def apply(self, change: Change) -> None: ...

    # what the search reads
    def search(self, query: Vectors, k: int, restriction: Restriction | None = None) -> list[tuple[int, float]]: ...
    def search_terms(
        self, question: str, k: int, restriction: Restriction | None = None
    ) -> list[tuple[int, float]]: ...
    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]: ...
    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]: ...
    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]: ...
    def dates(self, rows: Iterable[int]) -> dict[int, date]: ...
    def newest_date(self) -> date | None: ...
    def article_vectors(self) -> tuple[list[str], Vectors]: ...

    # what the interfaces show
    def counts(self) -> dict[str, int]: ...
    def article_list(self) -> list[tuple[str, str, str | None]]: ...
    def titles(self, article_ids: Iterable[str]) -> dict[str, str]: ...
    def check(self) -> list[str]: ...


@runtime_checkable
class Maintainable(Protocol):
    """A store whose own files can be damaged, set aside and refitted (the FAISS store)."""

    def inspect(self) -> tuple[str, str] | None:
        """Why the index cannot be updated in place, as (kind, reason), or None when it can."""
        ...

    def move_aside(self, kind: str) -> Path:
        """Set the unusable index aside (never deleting it); returns where it went."""
        ...

    def damage(self) -> str | None:
        """Why a current file cannot be used as written (it was rebuilt in memory), or None."""
        ...

    def refit_faiss(self) -> bool:
        """Rebuild the FAISS index in the layout the settings ask for; returns whether anything changed."""
        ...

    def merge_deltas(self, share: float = ...) -> bool:
        """Merge the FAISS base and its delta files into a new base once they hold `share` of the base's
        rows or more; returns whether it did."""
        ...


@runtime_checkable
class Exportable(Protocol):
    """A store that can hand its whole content to another store without embedding (the FAISS store)."""

    index_dir: Path

    def snapshot(self) -> Change:
        """The whole index as one Change (reset) that rebuilds it in another store."""
        ...


def mean_directions(batches: Iterable[tuple[Sequence[str], Vectors]]) -> tuple[list[str], Vectors]:
    """The vectors grouped by label: each label's mean vector, L2-normalized; labels sorted.

    `batches` are (labels, (n, d) vectors) pairs; a label may recur across batches. Returns the sorted
    labels and their (len(labels), d) float32 unit vectors (summed in float64, so the result does not
    depend on how the rows are batched beyond rounding).
    """
    totals: dict[str, npt.NDArray[np.float64]] = {}
    for labels, vectors in batches:
        if not len(labels):
            continue
        names, group = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
        order = np.argsort(group, kind="stable")
        grouped = vectors[order]  # each label's rows one after the other
        ends = np.searchsorted(group[order], np.arange(len(names)), side="right").tolist()
        for name, start, end in zip(names.tolist(), [0, *ends[:-1]], ends, strict=True):
            part = grouped[start:end].sum(axis=0, dtype=np.float64)
            totals[name] = totals[name] + part if name in totals else part
    names = sorted(totals)
    if not names:
        return [], np.zeros((0, 0), dtype=np.float32)
    matrix = np.vstack([totals[name] for name in names])
    matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return names, matrix.astype(np.float32)


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    """`items` in consecutive lists of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
