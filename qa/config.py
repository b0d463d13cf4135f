"""One settings object, read from the environment once and passed explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def env_int(name: str, default: int) -> int:
    """The whole number in environment variable `name`, or `default` when it is unset or blank."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default}.") from None


def check_separate(articles_dir: Path, index_dir: Path) -> None:
    """Raises ConfigError when the index folder is the articles folder, is inside it, or contains it.

    Paths are compared resolved (symlinks followed), so another name for the same folder is caught too.
    Sharing a folder would make a sync read the index's files as articles and delete articles whose
    names look like old index files.
    """
    articles, index = articles_dir.resolve(), index_dir.resolve()
    if index == articles:
        where = f"is the articles folder {articles_dir}"
    elif index.is_relative_to(articles):
        where = f"is inside the articles folder {articles_dir}"
    elif articles.is_relative_to(index):
        where = f"contains the articles folder {articles_dir}"
    else:
        return
    raise ConfigError(
        f"The index folder {index_dir} {where}: the index would be read as articles and a sync could delete "
        "articles. Choose an index folder outside the articles folder (--index DIR or QA_INDEX_DIR)."
    )


@dataclass(frozen=True)
class Settings:
    """Where the articles and the index live, and what shapes the index.

    The model and splitter values are written to the index manifest: changing one of them
    makes the next sync rebuild the index from scratch.
    """

    articles_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "seeds")
    index_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "index")
    model: str = DEFAULT_MODEL
    passage_words: int = 120
    overlap_sentences: int = 0
    max_tokens: int = 256
    batch_size: int = 32
    mode: str = "hybrid"  # default search mode: dense, bm25 or hybrid
    read_dates: bool = True  # time in questions ("in March 2005", "latest") narrows or re-ranks
    sources: int = 5  # sources shown per chat answer, 1-10
    watch_seconds: int = 3  # the chat checks the articles folder this often; 0 = never
    split: bool = True  # False: each article is one passage as given (evaluation sets)
    title_in_terms: bool = True  # BM25 sees "title + passage"
    title_in_vectors: bool = False  # the embedding sees "title + passage"
    store: str = "faiss"  # where the index lives: faiss (in index_dir), milvus-lite:PATH or milvus://HOST:PORT
    # FAISS index: "auto" (exact below qa.store.EXACT_UP_TO passages, IVF above), "flat", or a FAISS
    # factory string with optional search parameters ("IVF1024,Flat nprobe=32"). Not part of the
    # shape: changing it rebuilds only the FAISS file, from the stored vectors.
    faiss_index: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "articles_dir", Path(self.articles_dir))
        object.__setattr__(self, "index_dir", Path(self.index_dir))
        if self.passage_words < 10:
            raise ConfigError(f"passage_words={self.passage_words} is too small; use at least 10.")
        if not 0 <= self.overlap_sentences <= 5:
            raise ConfigError(f"overlap_sentences={self.overlap_sentences} must be between 0 and 5.")
        if self.max_tokens < 16:
            raise ConfigError(f"max_tokens={self.max_tokens} is too small; use at least 16.")
        if self.mode not in ("dense", "bm25", "hybrid"):
            raise ConfigError(f"mode={self.mode!r} is not a search mode; use dense, bm25 or hybrid.")
        if not 1 <= self.sources <= 10:
            raise ConfigError(f"sources={self.sources} must be between 1 and 10.")
        if self.watch_seconds < 0:
            raise ConfigError(f"watch_seconds={self.watch_seconds} cannot be negative; 0 turns the watch off.")
        if not (self.store == "faiss" or self.store.startswith(("milvus-lite:", "milvus://", "milvus+https://"))):
            raise ConfigError(
                f"store={self.store!r} is not an index store; use faiss, milvus-lite:index/milvus.db or "
                "milvus://host:19530."
            )
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} must be at least 1.")
        if not self.faiss_index.strip():
            raise ConfigError("faiss_index is empty; use auto, flat or a FAISS factory string like 'IVF1024,Flat'.")
        check_separate(self.articles_dir, self.index_dir)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Settings from `QA_*` environment variables; keyword arguments that are not None win."""
        values: dict[str, object] = {
            "articles_dir": Path(os.environ.get("QA_ARTICLES_DIR") or PROJECT_ROOT / "seeds"),
            "index_dir": Path(os.environ.get("QA_INDEX_DIR") or PROJECT_ROOT / "index"),
            "model": os.environ.get("QA_MODEL") or DEFAULT_MODEL,
            "passage_words": env_int("QA_PASSAGE_WORDS", 120),
            "overlap_sentences": env_int("QA_OVERLAP_SENTENCES", 0),
            "batch_size": env_int("QA_BATCH_SIZE", 32),
            "mode": os.environ.get("QA_MODE") or "hybrid",
            "sources": env_int("QA_SOURCES", 5),
            "watch_seconds": env_int("QA_WATCH_SECONDS", 3),
            "store": os.environ.get("QA_STORE") or "faiss",
            "faiss_index": os.environ.get("QA_FAISS_INDEX") or "auto",
        }
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]

    @property
    def index_location(self) -> str:
        """Where the index lives, for people: the index folder, or the Milvus store."""
        return str(self.index_dir) if self.store == "faiss" else self.store

    def shape(self) -> dict[str, object]:
        """The values that shape the index; a stored index with other values is rebuilt."""
        return {
            "model": self.model,
            "passage_words": self.passage_words,
            "overlap_sentences": self.overlap_sentences,
            "max_tokens": self.max_tokens,
            "split": self.split,
            "title_in_terms": self.title_in_terms,
            "title_in_vectors": self.title_in_vectors,
        }
