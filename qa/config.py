"""One settings object: every `QA_*` environment variable is read here, once, and passed explicitly.

`VARIABLES` lists each variable with the setting it fills; the defaults are the dataclass fields'
defaults (written once, here). `Settings.from_env()` reads the set variables and leaves the rest to
those defaults; `settings_table()` renders the list for the README.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path

from .errors import ConfigError

DEFAULT_MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 32  # texts per forward pass: 16-32 beat 128 on 2 CPU cores
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODES = ("dense", "bm25", "hybrid")
PRECISIONS = ("auto", "fp32", "bf16")
PASSAGE_ENCODERS = ("auto", "torch", "onnx")
QUERY_ENCODERS = ("auto", "torch", "onnx", "onnx-int8")
STORE_EXAMPLES = "faiss, milvus-lite:index/milvus.db or milvus://host:19530"


def check_choice(setting: str, variable: str, value: str, allowed: tuple[str, ...]) -> str:
    """`value` lower-cased, when it is one of `allowed`.

    Raises:
        ConfigError: it is not (the message names the setting and its environment variable).
    """
    chosen = value.strip().lower()
    if chosen not in allowed:
        raise ConfigError(f"{setting}={value!r} ({variable}) is not a choice; use one of {', '.join(allowed)}.")
    return chosen


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
class StoreLocation:
    """Where the index's vectors live, parsed from a store string (see `parse_store`).

    kind: "faiss", "milvus-lite" or "milvus". address: "" for faiss, the database file for
    milvus-lite (resolved from the working directory), "http://HOST:PORT" or "https://..." for milvus.
    """

    kind: str
    address: str = ""


def parse_store(text: str) -> StoreLocation:
    """"faiss", "milvus-lite:PATH", "milvus://HOST:PORT" or "milvus+https://HOST:PORT" as a `StoreLocation`.

    Raises:
        ConfigError: none of these forms.
    """
    if text == "faiss":
        return StoreLocation("faiss")
    if text.startswith("milvus-lite:") and text.removeprefix("milvus-lite:"):
        return StoreLocation("milvus-lite", str(Path(text.removeprefix("milvus-lite:")).expanduser().resolve()))
    for prefix, scheme in (("milvus://", "http://"), ("milvus+https://", "https://")):
        if text.startswith(prefix) and text.removeprefix(prefix):
            return StoreLocation("milvus", scheme + text.removeprefix(prefix))
    raise ConfigError(f"store={text!r} (QA_STORE) is not an index store; use {STORE_EXAMPLES}.")


def parse_auth(raw: str | None) -> tuple[str, str] | None:
    """"user:password" as a (user, password) pair; None when unset or blank.

    Raises:
        ConfigError: set but not of the form user:password.
    """
    if raw is None or raw == "":
        return None
    user, colon, password = raw.partition(":")
    if not colon or not user or not password:
        raise ConfigError("QA_AUTH must be user:password (both non-empty).")
    return user, password


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/qa-news, else ~/.cache/qa-news."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qa-news"


@dataclass(frozen=True)
class EmbeddingSettings:
    """How vectors are computed; none of it changes what a vector means (see `qa.embed`).

    precision: PyTorch's "auto", "fp32" or "bf16". passage_encoder: "auto", "torch" or "onnx" for
    builds. query_encoder: "auto", "torch", "onnx" or "onnx-int8" for questions. cache_dir: where the
    ONNX export of the model is kept.
    """

    precision: str = "auto"
    passage_encoder: str = "auto"
    query_encoder: str = "auto"
    cache_dir: Path = field(default_factory=default_cache_dir)

    def __post_init__(self) -> None:
        for setting, variable, allowed in (
            ("precision", "QA_EMBED_PRECISION", PRECISIONS),
            ("passage_encoder", "QA_PASSAGE_ENCODER", PASSAGE_ENCODERS),
            ("query_encoder", "QA_QUERY_ENCODER", QUERY_ENCODERS),
        ):
            object.__setattr__(self, setting, check_choice(setting, variable, getattr(self, setting), allowed))
        object.__setattr__(self, "cache_dir", Path(self.cache_dir).expanduser())


@dataclass(frozen=True)
class MilvusSettings:
    """The Milvus collections' name prefix (several indexes can share one Milvus) and its credentials."""

    collection: str = "qa"
    token: str = field(default="", repr=False)  # "user:password" or an API key, if the server needs one

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,200}", self.collection):
            raise ConfigError(
                f"milvus collection={self.collection!r} (QA_MILVUS_COLLECTION) must start with a letter and hold "
                "only letters, digits and underscores, e.g. qa or news_2024."
            )


@dataclass(frozen=True)
class ServerSettings:
    """Where the chat page listens, and the password that protects it (`python app.py`)."""

    host: str = "127.0.0.1"
    port: int = 7860
    auth: tuple[str, str] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ConfigError("host (QA_HOST) is empty; use e.g. 127.0.0.1.")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port={self.port} (QA_PORT) must be between 1 and 65535.")


@dataclass(frozen=True)
class Settings:
    """Where the articles and the index live, what shapes the index, and how it is served.

    The model and splitter values are written to the index manifest: changing one of them
    makes the next sync rebuild the index from scratch.
    """

    articles_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "seeds")
    index_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "index")
    model: str = DEFAULT_MODEL
    passage_words: int = 120
    overlap_sentences: int = 0
    max_tokens: int = 256
    batch_size: int = BATCH_SIZE
    mode: str = "hybrid"  # default search mode: dense, bm25 or hybrid
    read_dates: bool = True  # time in questions ("in March 2005", "latest") narrows or re-ranks
    rerank: bool = True  # the best passages are re-ordered by their closest sentence (`qa.rerank`)
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
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    milvus: MilvusSettings = field(default_factory=MilvusSettings)
    server: ServerSettings = field(default_factory=ServerSettings)

    def __post_init__(self) -> None:
        object.__setattr__(self, "articles_dir", Path(self.articles_dir))
        object.__setattr__(self, "index_dir", Path(self.index_dir))
        if self.passage_words < 10:
            raise ConfigError(f"passage_words={self.passage_words} (QA_PASSAGE_WORDS) is too small; use at least 10.")
        if not 0 <= self.overlap_sentences <= 5:
            raise ConfigError(
                f"overlap_sentences={self.overlap_sentences} (QA_OVERLAP_SENTENCES) must be between 0 and 5."
            )
        if self.max_tokens < 16:
            raise ConfigError(f"max_tokens={self.max_tokens} is too small; use at least 16.")
        if self.mode not in MODES:
            raise ConfigError(f"mode={self.mode!r} (QA_MODE) is not a search mode; use dense, bm25 or hybrid.")
        if not 1 <= self.sources <= 10:
            raise ConfigError(f"sources={self.sources} (QA_SOURCES) must be between 1 and 10.")
        if self.watch_seconds < 0:
            raise ConfigError(
                f"watch_seconds={self.watch_seconds} (QA_WATCH_SECONDS) cannot be negative; 0 turns the watch off."
            )
        parse_store(self.store)
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size} (QA_BATCH_SIZE) must be at least 1.")
        if not self.faiss_index.strip():
            raise ConfigError(
                "faiss_index is empty (QA_FAISS_INDEX); use auto, flat or a FAISS factory string like 'IVF1024,Flat'."
            )
        check_separate(self.articles_dir, self.index_dir)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Settings from the `QA_*` variables of `environ` (default: the process environment).

        Unset or blank variables keep the defaults above; keyword arguments that are not None
        (command-line flags) win over the environment.

        Raises:
            ConfigError: a variable or override holds an impossible value.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, dict[str, object]] = {"": {}, "embedding": {}, "milvus": {}, "server": {}}
        for variable in VARIABLES:
            raw = environ.get(variable.name, "").strip()
            if raw:
                group, _, name = variable.setting.rpartition(".")
                values[group][name] = variable.read(variable.name, raw)
        top = values.pop("")
        top.update({key: value for key, value in overrides.items() if value is not None})
        nested = {"embedding": EmbeddingSettings, "milvus": MilvusSettings, "server": ServerSettings}
        for group, kind in nested.items():
            top.setdefault(group, kind(**values[group]))  # type: ignore[arg-type]
        return cls(**top)  # type: ignore[arg-type]

    @property
    def location(self) -> StoreLocation:
        """The parsed `store` string."""
        return parse_store(self.store)

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


def text(name: str, raw: str) -> str:
    return raw


def whole_number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number; set it to e.g. {default_of(name)}.") from None


def folder(name: str, raw: str) -> Path:
    return Path(raw).expanduser()


def password(name: str, raw: str) -> tuple[str, str] | None:
    return parse_auth(raw)


@dataclass(frozen=True)
class Variable:
    """One environment variable: the setting it fills ("server.port"), what it means, and how its text is read."""

    name: str
    setting: str
    meaning: str
    read: Callable[[str, str], object] = text


VARIABLES: tuple[Variable, ...] = (
    Variable("QA_ARTICLES_DIR", "articles_dir", "folder of articles to index", folder),
    Variable("QA_INDEX_DIR", "index_dir", "folder of the index files (outside the articles folder)", folder),
    Variable("QA_MODEL", "model", "sentence-transformers model: a name or a local folder"),
    Variable("QA_PASSAGE_WORDS", "passage_words", "words per passage (at least 10)", whole_number),
    Variable("QA_OVERLAP_SENTENCES", "overlap_sentences", "sentences repeated between passages (0-5)", whole_number),
    Variable("QA_BATCH_SIZE", "batch_size", "texts per forward pass of the model", whole_number),
    Variable("QA_MODE", "mode", "search mode: dense, bm25 or hybrid"),
    Variable("QA_SOURCES", "sources", "sources per chat answer (1-10)", whole_number),
    Variable("QA_WATCH_SECONDS", "watch_seconds", "seconds between folder checks; 0 = never", whole_number),
    Variable("QA_STORE", "store", f"where the vectors live: {STORE_EXAMPLES}"),
    Variable("QA_FAISS_INDEX", "faiss_index", "FAISS layout: auto, flat or a factory string like `IVF1024,Flat`"),
    Variable("QA_MILVUS_COLLECTION", "milvus.collection", "prefix of the Milvus collections"),
    Variable("QA_MILVUS_TOKEN", "milvus.token", "Milvus credentials: user:password or an API key"),
    Variable("QA_EMBED_PRECISION", "embedding.precision", "PyTorch precision: auto, fp32 or bf16"),
    Variable("QA_PASSAGE_ENCODER", "embedding.passage_encoder", "passage encoder for builds: auto, torch or onnx"),
    Variable("QA_QUERY_ENCODER", "embedding.query_encoder", "question encoder: auto, torch, onnx or onnx-int8"),
    Variable("QA_CACHE_DIR", "embedding.cache_dir", "where the ONNX export of the model is kept", folder),
    Variable("QA_HOST", "server.host", "interface the chat listens on"),
    Variable("QA_PORT", "server.port", "port of the chat", whole_number),
    Variable("QA_AUTH", "server.auth", "user:password; required to listen beyond this machine", password),
)
_CLASSES: dict[str, type] = {
    "": Settings, "embedding": EmbeddingSettings, "milvus": MilvusSettings, "server": ServerSettings,
}
_DEFAULT_TEXTS = {  # defaults computed when settings are made, as people read them
    "articles_dir": "`seeds/`",
    "index_dir": "`index/`",
    "embedding.cache_dir": "`$XDG_CACHE_HOME/qa-news`, else `~/.cache/qa-news`",
    "server.auth": "unset (only 127.0.0.1 / localhost)",
    "milvus.token": "unset",
}


def default_of(name: str) -> object:
    """The default value of the setting that environment variable `name` fills."""
    (variable,) = (variable for variable in VARIABLES if variable.name == name)
    group, _, setting = variable.setting.rpartition(".")
    (found,) = (item for item in fields(_CLASSES[group]) if item.name == setting)
    return found.default_factory() if found.default is MISSING else found.default  # type: ignore[misc]


def settings_table() -> str:
    """The Markdown table of every variable, its default and its meaning (kept in the README)."""
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for variable in VARIABLES:
        default = _DEFAULT_TEXTS.get(variable.setting) or f"`{default_of(variable.name)}`"
        lines.append(f"| `{variable.name}` | {default} | {variable.meaning} |")
    return "\n".join(lines)
