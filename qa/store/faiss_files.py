"""The FAISS side of the index folder: which index layout holds the vectors, building, searching,
reading and writing FAISS files. The only module that imports faiss.

Ids in every index are passage rows: exact `IDMap2,Flat` below `EXACT_UP_TO` passages, an IVF index
above it (see `choose_layout`; the manifest's `faiss_index` names the one in use).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError
from ..schema import best_first
from .contract import TIES_SEEN, Vectors
from .folder import synced_digest

if TYPE_CHECKING:
    import faiss
    from faiss import Index as FaissIndex  # noqa: F401 (the type other modules annotate with)

logger = logging.getLogger(__name__)

EXACT_UP_TO = 100_000  # "auto": exact search below this many passages (bench.ann: where Flat gets slow)
IVF_SCAN = 32_000  # "auto": nprobe makes an IVF search scan about this many vectors ...
IVF_PROBE_SHARE = 32  # ... and at least 1/32 of the lists (bench.ann: recall@10 0.98 at 1M)
TRAIN_PER_LIST = 64  # IVF training sample: this many vectors per list (k-means cost grows with it)
EXACT_SUBSET_MAX = 5_000  # a filter leaving at most this many rows is scanned exactly, whatever the index
Batches = Callable[[], Iterator[tuple[npt.NDArray[np.int64], Vectors]]]


@dataclass(frozen=True)
class FaissLayout:
    """Which FAISS index holds the vectors: a factory string and the approximate index's search parameters.

    `factory` is a FAISS index factory string ("Flat", "IVF1024,Flat", "HNSW32"); `search` is in
    FAISS's ParameterSpace syntax ("nprobe=32", "efSearch=128"), empty for defaults. Written as text
    (`str()`, `parse`) in the manifest's `faiss_index` and in QA_FAISS_INDEX: "IVF1024,Flat nprobe=32".
    """

    factory: str
    search: str = ""

    def __str__(self) -> str:
        return f"{self.factory} {self.search}".strip()

    @classmethod
    def parse(cls, text: str) -> FaissLayout:
        factory, _, search = str(text).strip().partition(" ")
        return cls("Flat" if factory.lower() in ("flat", "idmap2,flat") else factory, search.strip())

    @property
    def exact(self) -> bool:
        return self.factory == "Flat"


FLAT = FaissLayout("Flat")


def choose_layout(setting: str, passages: int) -> FaissLayout:
    """The FAISS layout for `passages` vectors under the `faiss_index` setting.

    "auto": exact `Flat` below EXACT_UP_TO passages; from there `IVF<nlist>,Flat`, nlist the power of
    two nearest to sqrt(passages), probing enough lists to scan about IVF_SCAN vectors and at least
    1/IVF_PROBE_SHARE of the lists. "flat": always exact. Anything else is a factory string with
    optional search parameters, used as given.
    """
    if setting.strip().lower() == "auto":
        if passages < EXACT_UP_TO:
            return FLAT
        lists = 2 ** round(math.log2(math.sqrt(passages)))
        probes = max(math.ceil(lists / IVF_PROBE_SHARE), math.ceil(lists * IVF_SCAN / passages))
        return FaissLayout(f"IVF{lists},Flat", f"nprobe={min(lists, probes)}")
    return FaissLayout.parse(setting)


def feasible_layout(layout: FaissLayout, dimension: int, passages: int) -> FaissLayout:
    """`layout`, or Flat when there are fewer passages than it needs to be trained (an IVF's lists)."""
    if layout.exact:
        return layout
    needed = training_size(new_faiss(layout, dimension))[0]
    if passages < needed:
        logger.info("%d passages are too few to train %s; using exact search", passages, layout)
        return FLAT
    return layout


def new_faiss(layout: FaissLayout, dimension: int) -> faiss.Index:
    """An empty inner-product index of `layout` whose ids are passage rows.

    Flat and other non-IVF indexes are wrapped in `IDMap2`; an IVF index keeps the ids itself, with a
    hash table from id to vector (so `reconstruct(row)` and `remove_ids` work).

    Raises:
        ConfigError: the factory string or its search parameters are not valid for FAISS.
    """
    import faiss

    if layout.exact:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    try:
        index = faiss.index_factory(dimension, layout.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as error:
        raise ConfigError(
            f"QA_FAISS_INDEX={str(layout)!r} is not a FAISS index factory string ({_first_line(error)}); "
            "use auto, flat, or e.g. 'IVF1024,Flat nprobe=32' or 'HNSW32 efSearch=128'."
        ) from None
    if isinstance(index, faiss.IndexIVF):
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
    else:
        index = faiss.IndexIDMap2(index)
    set_search(index, layout)
    return index


def build_faiss(layout: FaissLayout, dimension: int, total: int, batches: Batches) -> tuple[faiss.Index, FaissLayout]:
    """An index of `layout` (Flat when too few vectors to train it) holding the `total` vectors that
    `batches()` yields as (rows, (n, d) float32) chunks. An index that needs training is trained on an
    evenly spaced sample (one more pass over `batches()`)."""
    layout = feasible_layout(layout, dimension, total)
    index = new_faiss(layout, dimension)
    if not index.is_trained:
        started = time.perf_counter()
        size = min(total, training_size(index)[1])
        step = max(1, total // size)
        seen = 0
        sample: list[Vectors] = []
        for _, vectors in batches():
            sample.append(vectors[(-seen) % step :: step])
            seen += len(vectors)
        index.train(np.ascontiguousarray(np.vstack(sample)[:size]))
        logger.info("trained %s on %d vectors in %.1f s", layout, size, time.perf_counter() - started)
    for rows, vectors in batches():
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), rows)
    return index, layout


def update_in_place(
    index: faiss.Index, layout: FaissLayout, removed: list[int], rows: list[int], vectors: Vectors | None
) -> bool:
    """Remove the `removed` rows from `index` and add `vectors` as `rows`, when `index` can remove ids in place
    (Flat and IVF; HNSW cannot). Returns False, leaving `index` untouched, when it cannot."""
    if removed and not removes_in_place(index):
        return False
    if removed:
        index.remove_ids(np.asarray(removed, dtype=np.int64))
    if rows:
        if vectors is None:
            raise ValueError("new rows without vectors")
        index.add_with_ids(vectors, np.asarray(rows, dtype=np.int64))
    set_search(index, layout)
    return True


def training_size(index: faiss.Index) -> tuple[int, int]:
    """(fewest, best) vectors to train `index` on: one per IVF list at least, TRAIN_PER_LIST per list."""
    import faiss

    ivf = faiss.try_extract_index_ivf(index)
    if ivf is None:
        return (1, 50_000) if not index.is_trained else (0, 0)
    return ivf.nlist, ivf.nlist * TRAIN_PER_LIST


def set_search(index: faiss.Index, layout: FaissLayout) -> None:
    """Set the layout's search parameters (nprobe, efSearch) on `index`; they are saved in its file too."""
    import faiss

    if layout.search:
        try:
            faiss.ParameterSpace().set_index_parameters(index, layout.search)
        except RuntimeError as error:
            raise ConfigError(
                f"QA_FAISS_INDEX={str(layout)!r}: {layout.search!r} does not fit this index ({_first_line(error)})."
            ) from None


def removes_in_place(index: faiss.Index) -> bool:
    """Whether `remove_ids` keeps ids and vectors together (Flat and IVF); HNSW is rebuilt instead."""
    import faiss

    return isinstance(index, faiss.IndexIVF) or is_exact(index)


def is_exact(index: faiss.Index) -> bool:
    """Whether `index` is `IDMap2,Flat`: exact search."""
    import faiss

    return hasattr(index, "id_map") and isinstance(faiss.downcast_index(index.index), faiss.IndexFlat)


def faiss_ids(index: faiss.Index) -> npt.NDArray[np.int64] | None:
    """Every id (passage row) in `index`, or None when it keeps no ids."""
    import faiss
    from faiss.contrib.inspect_tools import get_invlist

    if hasattr(index, "id_map"):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    if isinstance(index, faiss.IndexIVF) and index.direct_map.type == faiss.DirectMap.Hashtable:
        lists = [get_invlist(index.invlists, number)[0] for number in range(index.nlist)]
        return np.concatenate(lists).astype(np.int64) if lists else np.zeros(0, np.int64)
    return None


def exact_subset_limit(index: faiss.Index) -> int:
    """Up to this many allowed rows, a filtered search on an approximate index scans them exactly (0 for an
    exact index). bench.ann at 1M: 1% allowed costs the same both ways, 10% six times more scanned exactly."""
    return 0 if is_exact(index) else EXACT_SUBSET_MAX


def search_parameters(index: faiss.Index, allowed: set[int] | None) -> faiss.SearchParameters | None:
    """Search parameters restricting `index` to `allowed` rows; an IVF search probes more lists the
    fewer rows pass, so that about as many allowed vectors are scanned as without a filter."""
    import faiss

    if allowed is None:
        return None
    selector = faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
    if isinstance(index, faiss.IndexIVF):
        probes = min(index.nlist, math.ceil(index.nprobe * index.ntotal / max(1, len(allowed))))
        return faiss.SearchParametersIVF(sel=selector, nprobe=probes)
    return faiss.SearchParameters(sel=selector)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run FAISS on one thread in this block (the setting is per calling thread, so other threads keep theirs).

    A search is one query: FAISS's extra threads only wait for it, and on a busy machine that
    waiting made an exact search at 50k vectors 5 times slower (bench.ann)."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(threads)


def search_faiss(index: faiss.Index, query: Vectors, k: int, allowed: set[int] | None) -> list[tuple[int, float]]:
    """(row, inner product) of the `k` nearest passages, best first. `query` is (1, d) float32.

    `allowed` restricts the search to those passage rows, inside FAISS (an ID selector; an IVF index
    probes more lists the fewer rows pass). With an approximate index, a small `allowed` set (up to
    EXACT_SUBSET_MAX rows) is scanned exactly instead: that is as fast, and cannot miss any.
    """
    limit = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
    if limit == 0:
        return []
    query = np.ascontiguousarray(query, dtype=np.float32)
    wanted = min(k + TIES_SEEN, limit)
    with one_thread():
        if allowed is not None and len(allowed) <= exact_subset_limit(index):
            return best_first(search_subset(index, query, wanted, allowed), k)
        scores, rows = index.search(query, wanted, params=search_parameters(index, allowed))
    pairs = [(int(row), float(score)) for row, score in zip(rows[0], scores[0], strict=True) if row >= 0]
    return best_first(pairs, k)


def search_subset(index: faiss.Index, query: Vectors, k: int, allowed: set[int]) -> list[tuple[int, float]]:
    """Exact search among `allowed` rows, with their vectors read back from `index` and scored by FAISS
    (numpy's BLAS threads wait for each other like FAISS's)."""
    import faiss

    rows = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
    try:
        vectors = index.reconstruct_batch(rows)
    except RuntimeError:  # a row removed since `allowed` was read: look the others up one by one
        found = []
        for row in rows.tolist():
            with contextlib.suppress(RuntimeError):
                found.append((row, index.reconstruct(row)))
        if not found:
            return []
        rows = np.asarray([row for row, _ in found], dtype=np.int64)
        vectors = np.vstack([vector for _, vector in found])
    subset = faiss.IndexFlatIP(index.d)
    subset.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, found = subset.search(query, min(k, len(rows)))
    return [(int(rows[at]), float(score)) for at, score in zip(found[0], scores[0], strict=True) if at >= 0]


def stored_vectors(index: faiss.Index, rows: list[int]) -> dict[int, Vectors]:
    """The (d,) vector of each of `rows` that `index` holds."""
    found: dict[int, Vectors] = {}
    for row in rows:
        with contextlib.suppress(RuntimeError):
            found[row] = index.reconstruct(int(row))
    return found


def read_faiss(path: Path) -> faiss.Index:
    """The index in the FAISS file `path`.

    Raises:
        RuntimeError: the file is missing or not a FAISS index.
    """
    import faiss

    return faiss.read_index(str(path))


def write_faiss(index: faiss.Index, path: Path) -> str:
    """Write to `path.tmp`, flush it to disk, then rename: the file is whole or absent. Returns its SHA-256."""
    import faiss

    temporary = path.with_name(path.name + ".tmp")
    faiss.write_index(index, str(temporary))
    checksum = synced_digest(temporary)
    os.replace(temporary, path)
    return checksum


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
