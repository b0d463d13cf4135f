"""The FAISS index on disk as a base file plus the delta files of the syncs since it was written.

A sync that changes a few passages writes only what changed: `vectors-<generation>.delta.npz` holds
the rows it removed and the rows it added with their vectors (`removed` int64, `rows` int64, `vectors`
(n, d) float32; `.npz` read without pickle). The manifest's `faiss` names the base file (a whole FAISS
index), `faiss_deltas` the delta files since, oldest first, each with how many rows it added and
removed. The index is the base with every delta applied in order: its removals, then its additions.
A sync whose delta would bring the deltas past `DELTA_SHARE` of the base's rows writes a new base
instead (the merge); the files it replaces are deleted once the manifest names the new one. A
long-lived library (the chat) merges between syncs, from `MERGE_SHARE` on, so that its syncs
rarely have to (`FaissStore.merge_deltas`).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .contract import Vectors
from .faiss_files import read_faiss
from .folder import synced_digest

if TYPE_CHECKING:
    from .faiss_files import FaissIndex

DELTA_SHARE = 0.1  # merge when the deltas' added and removed rows would pass 10% of the base's rows
MERGE_SHARE = 0.05  # a merge between syncs (`FaissStore.merge_deltas`) starts at half that


@dataclass(frozen=True)
class Delta:
    """What one or more syncs changed in the FAISS index: `removed` rows, then `rows` added with `vectors`.

    `removed` and `rows` are int64 passage rows; `vectors` is (len(rows), d) float32.
    """

    removed: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]
    vectors: Vectors

    @classmethod
    def of(cls, removed: Sequence[int], rows: Sequence[int], vectors: Vectors | None, dimension: int) -> Delta:
        added = np.zeros((0, dimension), np.float32) if vectors is None else vectors
        if len(added) != len(rows):
            raise ValueError(f"{len(rows)} new rows with {len(added)} vectors")
        return cls(
            np.asarray(removed, dtype=np.int64), np.asarray(rows, dtype=np.int64),
            np.ascontiguousarray(added, dtype=np.float32),
        )

    def __len__(self) -> int:
        """Rows removed plus rows added: what the merge policy counts."""
        return len(self.removed) + len(self.rows)

    def entry(self, name: str) -> dict[str, Any]:
        """The manifest's record of this delta written as file `name`."""
        return {"file": name, "added": len(self.rows), "removed": len(self.removed)}


def delta_entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's delta files, oldest first, as {"file", "added", "removed"}."""
    return list(manifest.get("faiss_deltas") or [])


def faiss_names(manifest: dict[str, Any]) -> list[str]:
    """The files the FAISS index of `manifest` is made of: the base, then its deltas in order."""
    return [str(manifest["faiss"]), *(str(entry["file"]) for entry in delta_entries(manifest))]


def writes_delta(manifest: dict[str, Any], total: int, delta: Delta) -> bool:
    """Whether `delta`, taking the index of `manifest` to `total` passages, fits beside its base as a delta
    file (the deltas stay within DELTA_SHARE of the base's rows); otherwise a new base is written."""
    entries = delta_entries(manifest)
    added = sum(int(entry["added"]) for entry in entries) + len(delta.rows)
    removed = sum(int(entry["removed"]) for entry in entries) + len(delta.removed)
    base = total - added + removed
    return added + removed <= DELTA_SHARE * base


def write_delta(delta: Delta, path: Path) -> str:
    """Write `delta` to `path.tmp`, flush it to disk, then rename: the file is whole or absent. Returns its SHA-256."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        np.savez(handle, removed=delta.removed, rows=delta.rows, vectors=delta.vectors)
    checksum = synced_digest(temporary)
    os.replace(temporary, path)
    return checksum


def read_delta(path: Path, dimension: int) -> Delta:
    """The delta in file `path`, whose vectors have `dimension` components.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not a delta file of that dimension.
    """
    try:
        with np.load(path, allow_pickle=False) as arrays:
            removed, rows, vectors = arrays["removed"], arrays["rows"], arrays["vectors"]
    except KeyError as error:
        raise ValueError(f"{path.name} has no {error} array") from None
    except (zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path.name} is not a delta file ({error})") from None
    if removed.ndim != 1 or rows.ndim != 1 or vectors.shape != (len(rows), dimension):
        raise ValueError(f"{path.name} holds {vectors.shape} vectors for {rows.shape} rows, not (n, {dimension})")
    return Delta.of(removed.astype(np.int64), rows.astype(np.int64), vectors.astype(np.float32), dimension)


def combined(deltas: Sequence[Delta], dimension: int) -> Delta:
    """One delta doing what `deltas` do in order: the base rows they remove, then the rows they add and
    keep, in the order they were added (a row added and later removed is left out of both)."""
    removed: list[int] = []
    added: dict[int, Vectors] = {}
    for delta in deltas:
        for row in delta.removed.tolist():
            if added.pop(row, None) is None:
                removed.append(row)
        added.update(zip(delta.rows.tolist(), delta.vectors, strict=True))
    vectors = np.vstack(list(added.values())) if added else None
    return Delta.of(removed, list(added), vectors, dimension)


def apply_delta(index: FaissIndex, delta: Delta) -> None:
    """Remove the delta's removed rows from `index`, then add its rows (the index must remove ids in place).

    Raises:
        ValueError: a row to remove is not in `index` (it is then partly changed: read it again).
    """
    if len(delta.removed):
        gone = index.remove_ids(delta.removed)
        if gone != len(delta.removed):
            raise ValueError(f"{len(delta.removed) - gone} of the rows to remove are not in the FAISS index")
    if len(delta.rows):
        index.add_with_ids(delta.vectors, delta.rows)


def read_index(index_dir: Path, manifest: dict[str, Any]) -> FaissIndex:
    """The FAISS index `manifest` names: its base file with its delta files applied (checksums not checked).

    Raises:
        RuntimeError: the base file is missing or not a FAISS index.
        OSError, ValueError: a delta file is missing or damaged, or does not fit the base.
    """
    index = read_faiss(index_dir / str(manifest["faiss"]))
    entries = delta_entries(manifest)
    if entries:
        deltas = [read_delta(index_dir / str(entry["file"]), index.d) for entry in entries]
        apply_delta(index, combined(deltas, index.d))
    return index
