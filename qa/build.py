"""Incremental sync of the articles folder into the index, by content hash.

Only new or changed bodies are split and embedded; deleted and changed ones lose their
passages; everything else is kept as it is. Freshly embedded vectors are cached in the index
as they come, so an interrupted build resumes without embedding them again.

A damaged index repairs itself here: a damaged or foreign database is moved aside and the index
rebuilt from the articles; a damaged FAISS or BM25 file is rebuilt from what SQLite still holds.
"""

from __future__ import annotations

import ctypes
import logging
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime

import numpy as np

from .articles import FileCache, Folder, load_folder
from .changes import Changes, Indexed, full_changes, quick_changes
from .config import Settings
from .embed import Embedder
from .hashing import digest
from .lexical import terms
from .passages import Splitter
from .progress import Progress
from .schema import Article, EncoderPlan, Passage, SyncReport
from .sentences import PassageText, SentenceVectors
from .store import FORMAT_VERSION, Change, IndexStore, Maintainable

logger = logging.getLogger(__name__)
EMBED_CHUNK = 64  # passages embedded between two cache checkpoints (whole batches): what a kill can lose


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
    sentences: SentenceVectors | None = None,
    known: Indexed | None = None,
) -> SyncReport:
    """Bring the index in `store` up to date with `settings.articles_dir`.

    `after(store, changed)` runs while the write lock is still held, once the index changed (or has no
    health figures yet): the place to add notes such as the headline self-check to the manifest.
    `changed` lists the added and updated article ids, or is None after a full build. `files` keeps
    what each file held between syncs, so unchanged files are not read again (see `qa.articles`).
    `sentences` gets the sentence vectors of the new passages (see `qa.sentences`). `known` keeps what the
    index holds between syncs, so a small change is compared alone (see `qa.changes`).

    Raises:
        ConfigError: the articles folder is missing, or the model cannot be loaded.
        BusyError: another process is writing this index.
    """
    started = time.perf_counter()
    remembered = known.version if known is not None else None
    if known is not None:
        known.version = None  # until this sync is done: the file cache may move on without the index
    folder = load_folder(settings.articles_dir, files)
    with store.writing():
        damage = _set_aside_if_unusable(store)
        manifest = store.manifest()
        reason = damage or (
            "a rebuild was asked for" if rebuild and manifest else rebuild_reason(manifest, settings)
        )
        maintained = store if isinstance(store, Maintainable) else None
        if manifest and not reason and maintained and (reason := maintained.damage()):
            logger.warning("rebuilding the index from the articles: %s", reason)
        lost = sentences is not None and not sentences.path.is_file()  # a lost file: catch up in full
        valid = remembered is not None and remembered == manifest and not lost and not reason
        quick = quick_changes(folder, known) if known is not None and valid else None
        if quick is None:
            indexed, have = ({}, set()) if reason else (store.article_hashes(), store.body_hashes())
            changes = full_changes(folder.articles, indexed, have)
            if changes.lacks_bodies:  # bodies to embed that the file cache does not keep: read every file
                folder = load_folder(settings.articles_dir)
                changes = full_changes(folder.articles, indexed, have)
        else:
            changes = quick
        added, updated, removed = changes.added, changes.updated, changes.removed
        new_bodies, old_bodies = changes.new_bodies, changes.old_bodies
        # a body the index lacks comes from an added or updated article (compared in full, from any)
        sources = changes.fresh if quick is not None else folder.articles

        if manifest and not reason and not changes:
            refitted = bool(maintained and maintained.refit_faiss())  # another FAISS layout: from stored vectors
            if after and (refitted or "health" not in manifest):
                after(store, None)
            total = store.counts()["passages"]
            if sentences is not None and quick is None:  # an index made before they were kept, or a lost file
                _catch_up(sentences, settings, embedder, folder.articles)
            _remember(known, store, folder, changes, quick is not None)
            return SyncReport(
                unchanged=len(folder.articles), passages_total=total, seconds=time.perf_counter() - started,
                problems=folder.problems,
            )

        stored_plan = EncoderPlan.from_json(manifest.get("encoder"))
        if stored_plan:
            embedder.follow(stored_plan)  # all of an index's vectors are made one way
        passages, titled, to_embed, keys, lengths = _plan(settings, embedder, new_bodies, sources)
        vectors, embedded, cached = _vectors(store, embedder, to_embed, keys, lengths, progress)
        used = embedder.planned()
        encoder = used.after(None if reason else stored_plan) if used else stored_plan
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
                **({"encoder": encoder.to_json()} if encoder else {}),
            },
        )
        store.apply(change)
        if sentences is not None:
            gone = None if change.reset else removed + [a.article_id for a in updated]
            _fill_sentences(sentences, passages, sources, gone)
        if after:
            after(store, None if change.reset else [article.article_id for article in added + updated])
        report = SyncReport(
            added=len(added),
            updated=len(updated),
            removed=len(removed),
            unchanged=len(folder.articles) - len(added) - len(updated),
            passages_added=len(passages),
            passages_removed=removed_passages,
            passages_embedded=embedded,
            passages_cached=cached,
            passages_total=store.counts()["passages"],
            seconds=time.perf_counter() - started,
            rebuilt_because=reason,
            problems=folder.problems,
        )
        _remember(known, store, folder, changes, quick is not None and not change.reset)
    logger.info("sync: %s", report.summary())
    return report


def give_back_memory() -> None:
    """Return freed heap pages to the system (glibc's `malloc_trim`; nothing where there is none). A full
    comparison reads every article's body and drops it: without this a long-lived process keeps the pages."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # no such function, or no C library to look in
        pass


def _remember(known: Indexed | None, store: IndexStore, folder: Folder, changes: Changes, quick: bool) -> None:
    """Keep what the index now holds for the next sync's quick comparison (see `qa.changes`)."""
    if known is None:
        return
    version = store.manifest()  # generation, build time, files, and the articles a Milvus sync left pending
    if quick:
        known.apply(folder, changes, version)
    else:
        known.reset(version, folder.articles)
        if len(known.articles) != len(folder.articles):  # one id in two files: compare in full each time
            known.version = None


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
    _, _, to_embed, keys, lengths = _plan(settings, embedder, mine, folder.articles)
    return _vectors(store, embedder, to_embed, keys, lengths, progress)[1]


def _first_articles(articles: list[Article], bodies: Collection[str] | None = None) -> dict[str, Article]:
    """body_hash -> the article whose title and id the body's hits cite (the first by article id), for
    every body or only `bodies`."""
    first: dict[str, Article] = {}
    wanted = articles if bodies is None else [a for a in articles if a.body_hash in bodies]
    for article in sorted(wanted, key=lambda a: a.article_id):
        first.setdefault(article.body_hash, article)
    return first


def _catch_up(sentences: SentenceVectors, settings: Settings, embedder: Embedder, articles: list[Article]) -> None:
    """Embed the sentences of the bodies that have none stored (only those bodies are split again)."""
    stored = sentences.article_ids()
    firsts = [article for article in _first_articles(articles).values() if article.article_id not in stored]
    if not all(article.has_body for article in firsts):  # the file cache keeps no bodies: read every file
        articles = load_folder(settings.articles_dir).articles
        firsts = [article for article in _first_articles(articles).values() if article.article_id not in stored]
    missing = {article.body_hash: article.text for article in firsts}
    if missing:
        _fill_sentences(sentences, _plan(settings, embedder, missing, articles)[0], articles, None)


def _fill_sentences(
    sentences: SentenceVectors, passages: list[Passage], articles: list[Article], gone: list[str] | None
) -> None:
    """Forget the sentences of the `gone` articles (removed or changed; None: of every article not in
    `articles`), then embed those of the new passages with the title their hits will cite (the first
    article's)."""
    first = _first_articles(articles, {p.body_hash for p in passages})
    started = time.perf_counter()
    if gone is None:
        sentences.forget(keep={a.article_id for a in articles})
    else:
        sentences.forget(gone)
    done = sentences.fill([
        PassageText(first[p.body_hash].title, p.text, first[p.body_hash].article_id) for p in passages
    ])
    logger.info("sentence vectors of %d passages embedded in %.1f s", done, time.perf_counter() - started)


def _plan(
    settings: Settings, embedder: Embedder, bodies: dict[str, str], articles: list[Article]
) -> tuple[list[Passage], list[str], list[str], list[str], list[int]]:
    """The passages of `bodies`, their "title + text", the texts to embed, their cache keys and word pieces."""
    splitter = Splitter(
        settings.passage_words, settings.overlap_sentences, min(settings.max_tokens, embedder.max_tokens),
        count_tokens=embedder.count_tokens, whole=not settings.split,
    )
    counted = [pair for key, text in bodies.items() for pair in splitter.split_counted(text, key)]
    passages = [passage for passage, _ in counted]
    titles = {body: article.title for body, article in _first_articles(articles, bodies).items()}
    titled = [f"{titles[p.body_hash]}\n{p.text}" for p in passages]
    to_embed = titled if settings.title_in_vectors else [p.text for p in passages]
    keys = [digest(f"{settings.model}\x1f{text}") for text in to_embed]
    return passages, titled, to_embed, keys, [tokens for _, tokens in counted]


def _vectors(
    store: IndexStore,
    embedder: Embedder,
    texts: list[str],
    keys: list[str],
    lengths: list[int],
    progress: Progress | None,
) -> tuple[np.ndarray, int, int]:
    """Vectors for `texts` in order: from the cache where they are, embedded (and cached) where not.

    The missing texts are embedded longest first by `lengths` (word pieces), one batch per
    `encode` call, so a batch pads its texts to about their own length. (`encode` sorts a call's
    texts by characters, which leaves about a sixth of the token slots padding on news passages.)
    Every chunk of `EMBED_CHUNK` passages is cached at once.

    Returns:
        (n, d) float32 vectors, the number of texts embedded, the number found in the cache.
    """
    cached = store.cached_vectors(keys)
    text_of = dict(zip(keys, texts, strict=True))
    length_of = dict(zip(keys, lengths, strict=True))
    missing = sorted((key for key in text_of if key not in cached), key=lambda key: -length_of[key])
    found, needed = len(cached), len(text_of)
    batch = embedder.batch_size
    chunk = EMBED_CHUNK // batch * batch if EMBED_CHUNK >= batch else EMBED_CHUNK
    if progress:
        progress(found, needed)
    if found and missing:
        logger.info("resuming: %d of %d passages already embedded", found, needed)
    for start in range(0, len(missing), chunk):
        part = missing[start : start + chunk]
        fresh = np.vstack(
            [embedder.encode([text_of[key] for key in part[at : at + batch]]) for at in range(0, len(part), batch)]
        )
        store.cache_vectors(part, fresh)
        cached.update(zip(part, fresh, strict=True))
        if progress:
            progress(found + start + len(part), needed)
    if not keys:
        return np.zeros((0, embedder.dimension), dtype=np.float32), 0, 0
    return np.vstack([cached[key] for key in keys]).astype(np.float32, copy=False), len(missing), found


def _set_aside_if_unusable(store: IndexStore) -> str | None:
    """Move a damaged or old index database aside (never deleting it); say why the index is rebuilt."""
    if not isinstance(store, Maintainable) or (found := store.inspect()) is None:
        return None
    kind, problem = found
    if kind != "missing":
        problem = f"{problem}; it was moved to {store.move_aside(kind).name}"
    logger.warning("%s; rebuilding the index from the articles", problem)
    return problem

