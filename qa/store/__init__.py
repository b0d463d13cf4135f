"""Index stores: where passages, their vectors and BM25 terms are kept and searched.

- `contract`: the records (`Change`, `StoredPassage`) and the verbs every store has (`IndexStore`),
  with the optional `Maintainable` and `Exportable` that only the FAISS store offers.
- `restriction`: filters and periods as one `Restriction` that each store renders in its own language.
- `faiss_store`: `Store`, FAISS and BM25 files beside an SQLite catalog in one folder (the default),
  built from `catalog` (SQLite), `faiss_files` (FAISS layouts and files), `faiss_deltas` (the FAISS
  base file and the delta files of later syncs), `sharing` (searches share the loaded FAISS index, a
  delta applied to it holds it alone), `segments` (BM25 files), `folder` (write lock, generations,
  checksums) and `integrity` (`qa check`).
- `milvus`: `MilvusStore`, the index in Milvus (embedded milvus-lite or a server), with
  `milvus_collections` (schemas, rows and expressions).
"""

from .contract import FORMAT_VERSION, TIES_SEEN, Change, Exportable, IndexStore, Maintainable, StoredPassage, Vectors
from .faiss_files import (
    EXACT_SUBSET_MAX,
    EXACT_UP_TO,
    FLAT,
    FaissLayout,
    build_faiss,
    choose_layout,
    exact_subset_limit,
    one_thread,
    search_parameters,
    search_subset,
)
from .faiss_store import Store
from .folder import write_lock
from .milvus import MilvusStore
from .restriction import Period, Restriction, restrict

__all__ = [
    "EXACT_SUBSET_MAX", "EXACT_UP_TO", "FLAT", "FORMAT_VERSION", "TIES_SEEN", "Change", "Exportable", "FaissLayout",
    "IndexStore", "Maintainable", "MilvusStore", "Period", "Restriction", "Store", "StoredPassage", "Vectors",
    "build_faiss", "choose_layout", "exact_subset_limit", "one_thread", "restrict", "search_parameters",
    "search_subset", "write_lock",
]
