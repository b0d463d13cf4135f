"""Which index store the settings name: FAISS + SQLite in the index folder, or Milvus."""

from __future__ import annotations

import os
from pathlib import Path

from .config import Settings
from .errors import ConfigError
from .store import Exportable, IndexStore, MilvusStore, Store


def open_store(settings: Settings) -> IndexStore:
    """The store of `settings.store` (nothing is opened until first use).

    - `faiss`: FAISS + SQLite files in `settings.index_dir` (the default);
    - `milvus-lite:PATH`: Milvus embedded in the file PATH (relative paths from the working directory);
    - `milvus://HOST:PORT` (`milvus+https://` for TLS): a Milvus server or cluster; `QA_MILVUS_TOKEN`
      holds "user:password" or an API key if it needs one.
    `QA_MILVUS_COLLECTION` names the collections' prefix (default `qa`), so several indexes can
    share one Milvus. The write lock is always a file in `settings.index_dir`.
    """
    prefix = os.environ.get("QA_MILVUS_COLLECTION") or "qa"
    if settings.store.startswith("milvus-lite:"):
        path = Path(settings.store.removeprefix("milvus-lite:")).expanduser().resolve()
        return MilvusStore(str(path), settings.index_dir, prefix)
    if settings.store.startswith(("milvus://", "milvus+https://")):
        scheme = "https://" if settings.store.startswith("milvus+https://") else "http://"
        address = settings.store.split("://", 1)[1]
        return MilvusStore(scheme + address, settings.index_dir, prefix, os.environ.get("QA_MILVUS_TOKEN", ""))
    return Store(settings.index_dir, settings.faiss_index)


def copy_index(source: IndexStore, target: IndexStore) -> int:
    """Copy a FAISS index's articles, passages and vectors into `target`, replacing what it held.

    Nothing is embedded: the vectors are read from the source. Returns the number of passages copied.

    Raises:
        ConfigError: the source is not a FAISS index, or holds no index yet.
    """
    if not isinstance(source, Exportable):
        raise ConfigError("Only a FAISS index can be copied: run `qa index --store faiss --to ...`.")
    if not source.manifest():
        raise ConfigError(f"There is no index in {source.index_dir} to copy: run `qa index` first.")
    change = source.snapshot()
    with target.writing():
        target.cache_vectors(change.vector_keys, change.new_vectors)
        target.apply(change)
        if health := source.manifest().get("health"):
            target.note("health", health)
    return len(change.new_passages)
