"""The library object that applications keep open: one index, one model, sync and retrieve."""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from .answer import Answer, Composer
from .articles import FileCache
from .backends import copy_index, open_store
from .build import embed_share, give_back_memory, sync
from .changes import Indexed
from .config import Settings
from .dates import read_when
from .embed import Embedder, Vectors
from .errors import BusyError, ConfigError, QuestionError, StoreError
from .health import headline_update
from .progress import Progress
from .ratings import RatingsStore, export, rating_for
from .related import ArticleMap, check_count
from .rerank import SentenceReranker
from .schema import (
    EncoderPlan,
    Filters,
    HeadlineCheck,
    Hit,
    IndexCheck,
    Rating,
    RatingsExport,
    RatingsSummary,
    Related,
    Status,
    SyncReport,
    Timeline,
)
from .search import clean_question, search
from .sentences import SentenceVectors
from .store import IndexStore, Maintainable
from .timeline import TIMELINE_ENTRIES, make_timeline

logger = logging.getLogger(__name__)

MAX_CONVERSATION = 20  # questions `Library.conversation` asks in one call


class Library:
    """An articles folder and its index.

    The model and the index load on first use. The first `retrieve()` syncs the index when it
    is missing or stale; later calls use it as it is until `sync()` is called again.

    Args:
        settings: folders, model and splitter settings. Defaults to `Settings.from_env()`.
        embedder: a shared `Embedder` (e.g. one model for several libraries).
    """

    def __init__(self, settings: Settings | None = None, embedder: Embedder | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.embedder = embedder or Embedder.from_settings(self.settings)
        self.store = open_store(self.settings)
        answers = self.embedder.answers
        self.sentences = SentenceVectors(self.settings.index_dir, answers, answers.identity)
        self.reranker = SentenceReranker(self.sentences) if self.settings.rerank else None
        self._composer: Composer | None = None
        self._synced = False
        self._sync_lock = threading.Lock()
        self._beside = ThreadPoolExecutor(1, thread_name_prefix="qa-bm25")  # BM25 beside the dense search
        self.file_cache = FileCache()  # what each article file held at the last sync
        self.indexed = Indexed()  # what the index held after it
        self._article_map: tuple[tuple[object, object], ArticleMap] | None = None  # (index generation, map)
        self._passage_total: tuple[tuple[object, object], int] | None = None  # (index generation, count)
        self._article_map_lock = threading.Lock()
        self.ratings = RatingsStore(self.settings.index_dir)  # readers' ratings, kept across rebuilds

    def sync(self, rebuild: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index up to date with the articles folder (see `qa.build.sync`)."""
        with self._sync_lock:
            previous = self._health()
            full = self.indexed.version is None  # this sync compares every article (see `qa.changes`)
            report = sync(
                self.settings, self.store, self.embedder, rebuild=rebuild, progress=progress,
                after=lambda store, changed: self._note_health(store, changed, previous), files=self.file_cache,
                sentences=self.sentences, known=self.indexed,
            )
            if full:
                give_back_memory()
            self._synced = True
            return report

    def merge_deltas(self) -> bool:
        """Merge the FAISS index's delta files into a new base file once they have grown (see
        `qa.store.faiss_deltas`), between syncs. False when there was nothing to merge, the store keeps
        no such files, or another process is writing the index."""
        if not isinstance(self.store, Maintainable):
            return False
        with self._sync_lock:
            try:
                with self.store.writing():
                    before = self.store.manifest()
                    merged = self.store.merge_deltas()
                    if merged and self.indexed.version == before:  # the same articles: the quick comparison holds
                        self.indexed.version = self.store.manifest()
                    return merged
            except BusyError:
                return False

    def _health(self) -> dict[str, object] | None:
        """The health figures of the index as it is, if any (a sync replaces the manifest)."""
        if not self.store.exists():
            return None
        try:
            return self.store.manifest().get("health")
        except StoreError:
            return None

    def _note_health(self, store: IndexStore, changed: list[str] | None, previous: dict[str, object] | None) -> None:
        """The headline self-check: a full sample after a full build, else the changed articles and a few more."""
        store.note("health", headline_update(store, self.embedder, self.settings.mode, previous, changed))

    def ensure_index(self) -> None:
        """Sync once per library, on first use; while another process builds, use the index as it is."""
        if self._synced:
            return
        try:
            self.sync()
        except BusyError:
            if not self.store.manifest():
                raise
            logger.warning("another process is updating the index; answering from the index as it is")
            self._synced = True

    def retrieve(
        self,
        question: str,
        k: int = 5,
        mode: str | None = None,
        filters: Filters | None = None,
        query_vector: Vectors | None = None,
    ) -> list[Hit]:
        """The `k` best passages for `question`, best first.

        Args:
            mode: "dense", "bm25" or "hybrid"; defaults to the settings' mode (hybrid).
            filters: restrict to articles by source, title/id and date range.
            query_vector: the question's (1, d) embedding when the caller already has it.

        Time in the question ("in March 2005", "last week", "latest") narrows or re-ranks the
        search unless the settings' `read_dates` is off (see `qa.dates`).

        Raises:
            QuestionError: the question is empty or too long, or k, mode or filters are impossible.
        """
        question = clean_question(question)  # before any reader of the question, and before the sync
        self.ensure_index()
        when = read_when(question, self.store.newest_date()) if self.settings.read_dates else None
        return search(
            question, k, self.store, self.embedder, mode or self.settings.mode, filters, query_vector, when=when,
            rerank=self.reranker, beside=self._beside,
        )

    def answer(
        self,
        question: str,
        k: int = 5,
        previous: Sequence[str] = (),
        mode: str | None = None,
        filters: Filters | None = None,
    ) -> Answer:
        """The short answer to `question`: quoted sentences, the `k` sources they cite, and whether it was found.

        `previous` are the earlier questions of a conversation (oldest first), which give a follow-up
        ("and how old is he?") its context. See `qa.answer`.

        Raises:
            QuestionError: the question is empty or too long, or k, mode or filters are impossible.
        """
        if self._composer is None:
            self._composer = Composer(self)
        return self._composer.answer(question, k, previous, mode, filters)

    def timeline(self, topic: str, limit: int = TIMELINE_ENTRIES, mode: str | None = None) -> Timeline:
        """How a story unfolded: at most `limit` (1-100) sentences about `topic` across the articles, each
        quoted with its citation, by date; near-copies are one entry, undated articles apart, and sentences
        below the answer's "not found" bar are left out. See `qa.timeline`.

        Raises:
            QuestionError: the topic is empty or too long, or limit or mode are impossible.
        """
        return make_timeline(self, topic, limit, mode)

    def conversation(self, questions: Sequence[str], k: int = 5, mode: str | None = None) -> list[Answer]:
        """The answers to `questions` asked one after the other as one conversation: each is answered
        with the questions before it as `previous` (see `answer`).

        Raises:
            QuestionError: not a list of 1 to MAX_CONVERSATION questions, or one cannot be asked (the
                message says which).
        """
        if not isinstance(questions, list | tuple) or not 1 <= len(questions) <= MAX_CONVERSATION:
            raise QuestionError(f"Give a list of 1 to {MAX_CONVERSATION} questions.")
        answers = []
        for number, question in enumerate(questions, 1):
            try:
                answers.append(self.answer(question, k, questions[: number - 1], mode))
            except QuestionError as error:
                raise QuestionError(f"Question {number}: {error}") from None
        return answers

    def related(
        self, article_id: str, k: int = 3, exclude: Collection[str] = (), min_similarity: float = -1.0
    ) -> list[Related]:
        """The `k` articles closest to the article `article_id`, closest first (equal similarities by
        article id), without the `exclude`d ones (e.g. those an answer already cites), near-copies of
        any of these or of each other, and articles less similar than `min_similarity`. See `qa.related`.

        Raises:
            QuestionError: k is not a whole number from 1 to 20.
            UnknownArticleError: no indexed article has the id `article_id` (a `QuestionError`).
        """
        check_count(k)
        self.ensure_index()
        return self.article_map().nearest(article_id, k, exclude, min_similarity)

    def article_map(self) -> ArticleMap:
        """Every article's vector (see `qa.related`), read once per generation of the index."""
        generation = self._generation()
        with self._article_map_lock:
            if self._article_map is None or self._article_map[0] != generation:
                self._article_map = generation, ArticleMap.read(self.store)
            return self._article_map[1]

    def passage_total(self) -> int:
        """How many passages the index holds, counted once per generation of the index."""
        generation = self._generation()
        if self._passage_total is None or self._passage_total[0] != generation:
            self._passage_total = generation, self.store.counts()["passages"]
        return self._passage_total[1]

    def _generation(self) -> tuple[object, object]:
        manifest = self.store.manifest()
        return manifest.get("generation"), manifest.get("built_at")

    def rate(self, answer: Answer, rating: int, source: int | None = None) -> Rating:
        """Keep a reader's rating of `answer` (source None) or of its source numbered `source`: +1 helpful,
        -1 wrong. It replaces an earlier rating of the same target for the same question. See `qa.ratings`.

        Raises:
            RatingError: the rating is not +1 or -1, the answer has no such source, or the ratings file
                cannot be written.
        """
        rated = rating_for(answer, rating, source)
        self.ratings.add(rated)
        return rated

    def ratings_summary(self) -> RatingsSummary:
        """How many answers and sources were rated, and how many helpful.

        Raises:
            RatingError: the ratings file cannot be read.
        """
        return self.ratings.summary()

    def export_ratings(self, folder: Path | str) -> RatingsExport:
        """Write the ratings as a `qa eval` dataset in `folder` (see `qa.ratings.export`).

        Raises:
            RatingError: the ratings file cannot be read or the folder cannot be written.
        """
        return export(self.ratings.all(), Path(folder))

    def status(self) -> Status:
        """Counts and manifest of the index, for panels and `qa index`."""
        manifest = self.store.manifest()
        counts = self.store.counts()
        return Status(
            articles=counts.get("articles", 0),
            bodies=counts.get("bodies", 0),
            passages=counts.get("passages", 0),
            model=manifest.get("model"),
            built_at=manifest.get("built_at"),
            health=HeadlineCheck.from_json(manifest.get("health")),
            embedding=self.embedder.paths(),
            encoder=EncoderPlan.from_json(manifest.get("encoder")),
            store=self.settings.index_location,
        )

    def articles(self) -> list[tuple[str, str, str | None]]:
        """(article_id, title, date) of every indexed article, by id."""
        return self.store.article_list()

    def check(self) -> IndexCheck:
        """Check the index: FAISS ids against SQLite passages, the manifest, and every passage's span
        against its article text. `IndexCheck.problems` is empty when the index is consistent."""
        problems = self.store.check()
        counts = self.store.counts() if not problems else {}
        return IndexCheck(
            problems=tuple(problems),
            articles=counts.get("articles", 0),
            passages=counts.get("passages", 0),
            location=self.settings.index_location,
            encoder=EncoderPlan.from_json(self.store.manifest().get("encoder")) if not problems else None,
        )

    def copy_to(self, destination: str) -> int:
        """Copy the synced index into the store `destination` names (see `Settings.store`), without
        embedding anything again; returns the number of passages copied.

        Raises:
            ConfigError: `destination` is the store the index is in, the index is not a FAISS index,
                or there is no index yet.
        """
        target = Library(replace(self.settings, store=destination), embedder=self.embedder)
        if target.settings.store == self.settings.store:
            raise ConfigError(f"--to {destination} names the store the index is already in; name another one.")
        return copy_index(self.store, target.store)

    def embed_share(self, worker: int, workers: int, progress: Progress | None = None) -> int:
        """Embed share `worker` (0-based) of `workers` of what the next sync needs into the store's
        vector cache; returns the passages embedded (see `qa.build.embed_share`)."""
        return embed_share(self.settings, self.store, self.embedder, worker, workers, progress=progress)

    def warm_up(self) -> None:
        """Load the question encoders (for the searches and for the answer's sentences) now, so that
        the first question is quick."""
        self.embedder.warm_up()
        if self.embedder.answers is not self.embedder:
            self.embedder.answers.warm_up()


_libraries: dict[tuple[Path, Path], Library] = {}
_libraries_lock = threading.Lock()


def default_library(articles_dir: Path | str | None = None, index_dir: Path | str | None = None) -> Library:
    """One shared `Library` per (articles folder, index folder) for the module-level `retrieve()`."""
    settings = Settings.from_env(articles_dir=articles_dir, index_dir=index_dir)
    key = (settings.articles_dir.resolve(), settings.index_dir.resolve())
    with _libraries_lock:
        if key not in _libraries:
            _libraries[key] = Library(settings)
        return _libraries[key]


def retrieve(
    question: str,
    k: int = 5,
    mode: str | None = None,
    filters: Filters | None = None,
    articles_dir: Path | str | None = None,
    index_dir: Path | str | None = None,
) -> list[Hit]:
    """The `k` best passages for `question` from the articles in `articles_dir`.

    Folders default to `QA_ARTICLES_DIR` / `QA_INDEX_DIR`, else `seeds/` and `index/`. The index
    is built or synced on first use. See `Library.retrieve` for `mode` and `filters`.
    """
    return default_library(articles_dir, index_dir).retrieve(question, k, mode, filters)
