"""How a sync's FAISS index is made: a delta file beside the current base when it can be, else the
whole index updated in place or built from the vector cache; and the current files read back with
their checksums checked. The index folder's store (`qa.store.faiss_store`) decides when."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .catalog import Catalog
from .contract import Change, Vectors
from .faiss_deltas import Delta, faiss_names, read_index, writes_delta
from .faiss_files import (
    FaissLayout,
    build_faiss,
    choose_layout,
    feasible_layout,
    new_faiss,
    removes_in_place,
    set_search,
    update_in_place,
)
from .folder import checksum_problem

if TYPE_CHECKING:
    from .faiss_files import FaissIndex

logger = logging.getLogger(__name__)


def kept_checksums(manifest: dict[str, Any]) -> dict[str, str]:
    """The checksums of the FAISS files of `manifest` (its base and deltas)."""
    kept: dict[str, str] = manifest.get("checksums") or {}
    return {name: kept[name] for name in faiss_names(manifest) if name in kept}


@dataclass
class FaissBuilder:
    """Makes the FAISS index of one index folder, whose catalog holds every passage's vector.

    `setting` is "auto", "flat" or a factory string (see `choose_layout`).
    """

    index_dir: Path
    catalog: Catalog
    setting: str = "auto"

    def layout(self, total: int, dimension: int) -> FaissLayout:
        """The layout the setting asks for at `total` passages, or Flat when too few to train it."""
        return feasible_layout(choose_layout(self.setting, total), dimension, total)

    def delta_layout(
        self, old: dict[str, Any], change: Change, delta: Delta, total: int, dimension: int
    ) -> FaissLayout | None:
        """The layout of the index after `delta` when it can be written as a delta file beside the current
        base: same FAISS layout, an index that removes ids in place, deltas within their share. Else None."""
        if change.reset or not old or not old.get("checksums") or "faiss" not in old:
            return None
        layout = self.layout(total, dimension)
        if layout.factory != FaissLayout.parse(old.get("faiss_index", "Flat")).factory:
            return None
        if len(delta.removed) and not removes_in_place(new_faiss(layout, dimension)):
            return None
        return layout if writes_delta(old, total, delta) else None

    def merged(
        self, old: dict[str, Any], change: Change, removed: list[int], rows: list[int], total: int, dimension: int
    ) -> tuple[FaissIndex, FaissLayout]:
        """The whole FAISS index after one change, and its layout: the files `old` names (base and deltas)
        updated, or built from the vector cache when they are unusable (the catalog already holds the change)."""
        index = None
        if old and not change.reset:
            index, problem = self.as_written(old, total - len(rows) + len(removed))
            if index is None:
                logger.warning("the FAISS files are unusable (%s); building them from the stored vectors", problem)
                return self.from_cache(dimension, self.layout(total, dimension))
        return self._updated(index, old, change, removed, rows, total, dimension)

    def _updated(
        self, index: FaissIndex | None, old: dict[str, Any], change: Change, removed: list[int], rows: list[int],
        total: int, dimension: int,
    ) -> tuple[FaissIndex, FaissLayout]:
        """The FAISS index after one change, and its layout.

        Updated in place when it already has the layout chosen for `total` passages and can remove
        ids; otherwise built anew: from the change's vectors after a reset, else from the vector cache.
        """
        layout = self.layout(total, dimension)
        held = FaissLayout.parse(old.get("faiss_index", "Flat"))
        if index is not None and held.factory == layout.factory:
            if update_in_place(index, layout, removed, rows, change.new_vectors):
                return index, layout
        if index is not None:
            del index
            logger.info("building the FAISS index %s from the vector cache (%d passages)", layout, total)
            return self.from_cache(dimension, layout)
        new_rows = np.asarray(rows, dtype=np.int64)
        new_vectors = change.new_vectors if change.new_vectors is not None else np.zeros((0, dimension), np.float32)

        def batches() -> Iterator[tuple[npt.NDArray[np.int64], Vectors]]:
            for start in range(0, len(new_rows), 50_000):
                yield new_rows[start : start + 50_000], new_vectors[start : start + 50_000]

        return build_faiss(layout, dimension, total, batches)

    def from_cache(self, dimension: int, layout: FaissLayout) -> tuple[FaissIndex, FaissLayout]:
        """A new index of `layout` (or Flat, when too few passages to train it) holding every passage's
        cached vector: nothing is embedded."""
        return build_faiss(layout, dimension, self.catalog.passage_total(), self.catalog.vector_batches)

    def as_written(self, manifest: dict[str, Any], total: int) -> tuple[FaissIndex | None, str | None]:
        """The FAISS index the manifest names (base and deltas, checksums checked), or (None, what is wrong)
        when it cannot be read or does not hold `total` vectors."""
        path = self.index_dir / str(manifest.get("faiss", ""))
        layout = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        problem = None
        for name in faiss_names(manifest) if "faiss" in manifest else [path.name]:
            if problem := checksum_problem(self.index_dir, manifest, name):
                break
        if problem is None:
            try:
                index = read_index(self.index_dir, manifest)
                if index.ntotal == total and index.d == int(manifest["dimension"]):
                    set_search(index, layout)
                    return index, None
                problem = f"it holds {index.ntotal} vectors for {total} passages"
            except (RuntimeError, KeyError, ValueError, OSError) as error:
                problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, problem
