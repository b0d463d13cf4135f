"""Incremental sync of the articles folder into the index, by content hash.

Only new or changed bodies are split and embedded; deleted and changed ones lose their
passages; everything else is kept as it is. Freshly embedded vectors are cached in the index
as they come, so an interrupted build resumes without embedding them again.

A damaged index repairs itself here: a damaged or foreign database is moved aside and the index
rebuilt from the articles; a damaged FAISS or BM25 file is rebuilt from what SQLite still holds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from .articles import FileCache, Problem, load_folder
from .config import Settings
from .embed import Embedder
from .hashing import digest
from .lexical import terms
from .passages import Splitter
from .schema import Article, Passage
from .store import FORMAT_VERSION, Change, IndexStore

logger = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (passages embedded so far, passages to embed)
EMBED_CHUNK = 64  # passages embedded (and cached) at a time: what a kill can lose at most


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    passages_added: int = 0
    passages_removed: int = 0
    passages_embedded: int = 0
    passages_total: int = 0
    seconds: float = 0.0
    rebuilt_because: str | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.rebuilt_because)

    def summary(self) -> str:
        """One line for people."""
        line = (
            f"{self.added} added, {self.updated} updated, {self.removed} removed, {self.unchanged} unchanged; "
            f"{self.passages_embedded} passages embedded, {self.passages_total} in the index; {self.seconds:.1f} s"
        )
        if self.rebuilt_because:
            line = f"Full rebuild ({self.rebuilt_because}): {line}"
        skipped = sum(1 for problem in self.problems if problem.skipped)
        if skipped:
            line += f"; {skipped} file(s) skipped"
        return line


def rebuild_reason(manifest: dict[str, object], settings: Settings) -> str | None:
    """Why the stored index cannot be updated in place, or None when it can."""
    if not manifest:
        return None
    if manifest.get("format") != FORMAT_VERSION:
        return f"the index format is {manifest.get('format')}, this version writes {FORMAT_VERSION}"
    stored = manifest.get("shape") or {}
    wanted = settings.shape()
    differs = [f"{key} {stored.get(key)!r} -> {value!r}" for key, value in wanted.items() if stored.get(key) != value]  # type: ignore[union-attr]
    return "settings changed: " + ", ".join(differs) if differs else None


def sync(
    settings: Settings,
    store: IndexStore,
    embedder: Embedder,
    rebuild: bool = False,
    progress: Progress | None = None,
    after: Callable[[IndexStore, list[str] | None], None] | None = None,
    files: FileCache | None = None,
) -> SyncReport:
    """Bring the index in `store` up to date with `settings.articles_dir`.

    `after(store, changed)` runs while the write lock is still held, once the index changed (or has no
    health figures yet): the place to add notes such as the headline self-check to the manifest.
    `changed` lists the added and updated article ids, or is None after a full build. `files` keeps
    what each file held between syncs, so unchanged files are not read again (see `qa.articles`).

    Raises:
        ConfigError: the articles folder is missing, or the model cannot be loaded.
        BusyError: another process is writing this index.
    """
    started = time.perf_counter()
    folder = load_folder(settings.articles_dir, files)
    with store.writing():
        damage = _set_aside_if_unusable(store)
        manifest = store.manifest()
        reason = damage or (
            "a rebuild was asked for" if rebuild and manifest else rebuild_reason(manifest, settings)
        )
        if manifest and not reason and (reason := store.damage()):
            logger.warning("rebuilding the index from the articles: %s", reason)
        indexed = {} if reason else store.article_hashes()
        have = set() if reason else store.body_hashes()
        current = {article.article_id: article for article in folder.articles}

        added = [a for key, a in current.items() if key not in indexed]
        updated = [a for key, a in current.items() if key in indexed and indexed[key][0] != a.record_hash]
        removed = [key for key in indexed if key not in current]
        bodies = {article.body_hash: article.text for article in current.values()}
        new_bodies = {key: text for key, text in bodies.items() if key not in have}
        old_bodies = [key for key in have if key not in bodies]

        if manifest and not reason and not (added or updated or removed or new_bodies or old_bodies):
            refitted = store.refit_faiss()  # another FAISS layout asked for: rebuilt from stored vectors
            if after and (refitted or "health" not in manifest):
                after(store, None)
            total = store.counts()["passages"]
            return SyncReport(
                unchanged=len(current), passages_total=total, seconds=time.perf_counter() - started,
                problems=folder.problems,
            )

        passages, titled, to_embed, keys = _plan(settings, embedder, new_bodies, folder.articles)
        vectors, embedded = _vectors(store, embedder, to_embed, keys, progress)
        new_terms = terms(titled if settings.title_in_terms else [p.text for p in passages])
        removed_passages = store.counts()["passages"] if reason else store.passage_count(old_bodies)

        change = Change(
            upsert_articles=added + updated,
            delete_articles=removed,
            add_bodies=new_bodies,
            delete_bodies=old_bodies,
            new_passages=passages,
            vector_keys=keys,
            new_terms=new_terms,
            new_vectors=vectors,
            reset=bool(reason) or not manifest,
            manifest={
                "model": settings.model,
                "dimension": embedder.dimension,
                "shape": settings.shape(),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        store.apply(change)
        if after:
            after(store, None if change.reset else [article.article_id for article in added + updated])
        report = SyncReport(
            added=len(added),
            updated=len(updated),
            removed=len(removed),
            unchanged=len(current) - len(added) - len(updated),
            passages_added=len(passages),
            passages_removed=removed_passages,
            passages_embedded=embedded,
            passages_total=store.counts()["passages"],
            seconds=time.perf_counter() - started,
            rebuilt_because=reason,
            problems=folder.problems,
        )
    logger.info("sync: %s", report.summary())
    return report


def embed_share(
    settings: Settings, store: IndexStore, embedder: Embedder, worker: int, workers: int,
    progress: Progress | None = None,
) -> int:
    """Embed worker `worker`'s share (of `workers`) of the passages a sync would embed, into the
    store's vector cache; the next `sync` then embeds nothing the workers did. Returns how many
    passages this worker embedded.

    Shares are split by body hash, so every worker with the same articles and settings picks a
    different share without talking to the others, on one machine or many (with a shared store).
    No write lock is needed: cache writes of the same key are idempotent.
    """
    folder = load_folder(settings.articles_dir)
    manifest = store.manifest()
    have = set() if rebuild_reason(manifest, settings) else store.body_hashes()
    mine = {
        article.body_hash: article.text
        for article in folder.articles
        if article.body_hash not in have and int(article.body_hash[:8], 16) % workers == worker
    }
    _, _, to_embed, keys = _plan(settings, embedder, mine, folder.articles)
    return _vectors(store, embedder, to_embed, keys, progress)[1]


def _plan(
    settings: Settings, embedder: Embedder, bodies: dict[str, str], articles: list[Article]
) -> tuple[list[Passage], list[str], list[str], list[str]]:
    """The passages of `bodies`, their "title + text", the texts to embed and their cache keys."""
    splitter = Splitter(
        settings.passage_words, settings.overlap_sentences, min(settings.max_tokens, embedder.max_tokens),
        count_tokens=embedder.count_tokens, whole=not settings.split,
    )
    passages = [p for key, text in bodies.items() for p in splitter.split(text, key)]
    titles: dict[str, str] = {}
    for article in sorted(articles, key=lambda a: a.article_id):
        titles.setdefault(article.body_hash, article.title)
    titled = [f"{titles[p.body_hash]}\n{p.text}" for p in passages]
    to_embed = titled if settings.title_in_vectors else [p.text for p in passages]
    keys = [digest(f"{settings.model}\x1f{text}") for text in to_embed]
    return passages, titled, to_embed, keys


def _vectors(
    store: IndexStore, embedder: Embedder, texts: list[str], keys: list[str], progress: Progress | None
) -> tuple[np.ndarray, int]:
    """Vectors for `texts` in order: from the cache where they are, embedded (and cached) where not."""
    cached = store.cached_vectors(keys)
    missing = list(dict.fromkeys(key for key in keys if key not in cached))
    text_of = dict(zip(keys, texts, strict=True))
    done = 0
    if progress:
        progress(0, len(missing))
    for start in range(0, len(missing), EMBED_CHUNK):
        chunk = missing[start : start + EMBED_CHUNK]
        fresh = embedder.encode([text_of[key] for key in chunk])
        store.cache_vectors(chunk, fresh)
        cached.update(zip(chunk, fresh, strict=True))
        done += len(chunk)
        if progress:
            progress(done, len(missing))
    if not keys:
        return np.zeros((0, embedder.dimension), dtype=np.float32), 0
    return np.vstack([cached[key] for key in keys]).astype(np.float32, copy=False), len(missing)


def _set_aside_if_unusable(store: IndexStore) -> str | None:
    """Move a damaged or old index database aside (never deleting it); say why the index is rebuilt."""
    found = store.inspect()
    if found is None:
        return None
    kind, problem = found
    if kind != "missing":
        problem = f"{problem}; it was moved to {store.move_aside(kind).name}"
    logger.warning("%s; rebuilding the index from the articles", problem)
    return problem

