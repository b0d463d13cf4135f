"""`qa check` for the FAISS store: the manifest, every file against its checksum (the FAISS base and delta
files, the BM25 segments), FAISS ids and vectors against the SQLite passages and vector cache, the BM25
rows, and every passage's span against its article text. Reads only: nothing is written or repaired.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..lexical import LexicalIndex
from .catalog import Catalog
from .contract import FORMAT_VERSION
from .faiss_deltas import faiss_names, read_index
from .faiss_files import faiss_ids
from .folder import checksum_problem
from .segments import READ_ERRORS

if TYPE_CHECKING:
    from .faiss_files import FaissIndex


def problems(index_dir: Path, catalog: Catalog) -> list[str]:
    """Problems found in the index in `index_dir` whose catalog is `catalog` (empty when consistent)."""
    manifest = catalog.manifest()
    if not manifest:
        return [f"there is no index in {index_dir}"]
    keys = ("format", "model", "dimension", "generation", "faiss", "lexical")
    found = [f"the manifest has no {key!r}" for key in keys if key not in manifest]
    if found:
        return found
    if manifest["format"] != FORMAT_VERSION:
        found.append(f"the index format is {manifest['format']}, this version reads {FORMAT_VERSION}")
    names = [*faiss_names(manifest), manifest["lexical"]]
    with contextlib.suppress(*READ_ERRORS):
        names += [name for name in LexicalIndex.segment_folders(index_dir / manifest["lexical"])
                  if name != manifest["lexical"]]
    for name in names:
        if problem := checksum_problem(index_dir, manifest, name):
            found.append(problem)
    db = catalog.db
    rows = {row for (row,) in db.execute("SELECT row FROM passages")}
    try:
        index = read_index(index_dir, manifest)
    except (RuntimeError, OSError, ValueError) as error:
        files = " + ".join(faiss_names(manifest))
        found.append(f"the FAISS files {files} cannot be read ({str(error).splitlines()[0]})")
    else:
        found += _vector_problems(catalog, index, rows, int(manifest["dimension"]))
    try:
        lexical = LexicalIndex.load(index_dir / manifest["lexical"])
        if len(lexical) != len(rows) or set(lexical.rows.tolist()) != rows:
            found.append(f"the BM25 index {manifest['lexical']} holds other passages than SQLite")
    except READ_ERRORS as error:
        found.append(f"the BM25 index {manifest['lexical']} cannot be read ({str(error).splitlines()[0]})")
    orphans = db.execute("SELECT COUNT(*) FROM articles WHERE body_hash NOT IN (SELECT body_hash FROM bodies)")
    if count := orphans.fetchone()[0]:
        found.append(f"{count} articles have no stored text")
    bad_spans = 0
    for body_hash, text in db.execute("SELECT body_hash, text FROM bodies"):
        spans = db.execute('SELECT start, "end", text FROM passages WHERE body_hash = ?', (body_hash,))
        bad_spans += sum(1 for start, end, passage in spans if text[start:end] != passage)
    if bad_spans:
        found.append(f"{bad_spans} passages do not match their span of the article text")
    return found


def _vector_problems(catalog: Catalog, index: FaissIndex, rows: set[int], dimension: int) -> list[str]:
    """FAISS ids against passage rows, and each FAISS vector against the one stored for its passage."""
    if index.d != dimension:
        return [f"the FAISS index has dimension {index.d}, the manifest says {dimension}"]
    ids = faiss_ids(index)
    if ids is None:
        return ["the FAISS file is not an id-mapped index"]
    if set(ids.tolist()) != rows or len(ids) != len(rows):
        return [
            f"FAISS ids and SQLite passages differ: {len(set(ids.tolist()) - rows)} ids without a passage, "
            f"{len(rows - set(ids.tolist()))} passages without a vector"
        ]
    stored = dict(catalog.db.execute(
        "SELECT p.row, v.vector FROM passages p LEFT JOIN vectors v ON v.vector_key = p.vector_key"
    ))
    if lost := sum(1 for blob in stored.values() if blob is None):
        return [f"{lost} passages have no stored vector to rebuild FAISS from"]
    differ = 0
    for start in range(0, len(ids), 50_000):
        chunk = ids[start : start + 50_000]
        held = index.reconstruct_batch(chunk)
        expected = np.vstack([np.frombuffer(stored[row], dtype=np.float32) for row in chunk.tolist()])
        differ += int((~np.isclose(expected, held, atol=1e-6).all(axis=1)).sum())
    return [f"{differ} FAISS vectors differ from the stored ones"] if differ else []
