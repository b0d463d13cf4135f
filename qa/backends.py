"""Which index store the settings name: FAISS + SQLite in the index folder, or Milvus."""

from __future__ import annotations

from .config import Settings
from .errors import ConfigError
from .store import Exportable, IndexStore, MilvusStore, Store


def open_store(settings: Settings) -> IndexStore:
    """The store `settings.store` names (nothing is opened until first use).

    - `faiss`: FAISS + SQLite files in `settings.index_dir` (the default);
    - `milvus-lite:PATH`: Milvus embedded in the file PATH (relative paths from the working directory);
    - `milvus://HOST:PORT` (`milvus+https://` for TLS): a Milvus server or cluster, with the
      credentials of `settings.milvus.token` if it needs them.
    Milvus collections are named after `settings.milvus.collection`, so several indexes can share one
    Milvus. The write lock is always a file in `settings.index_dir`.
    """
    location = settings.location
    if location.kind == "faiss":
        return Store(settings.index_dir, settings.faiss_index)
    token = settings.milvus.token if location.kind == "milvus" else ""
    return MilvusStore(location.address, settings.index_dir, settings.milvus.collection, token)


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
