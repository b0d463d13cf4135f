"""Which path encodes passages and questions: PyTorch fp32 or bf16, or ONNX (fp32 or int8).

`PathChoice` is the part of `Embedder` that decides, by setting or by timing, once per process (or
as an index's `EncoderPlan` says), and that loads or exports the ONNX graphs; see `qa.embed` for
the settings and `qa.onnx_encoder` for the graphs.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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

    from .config import EmbeddingSettings
    from .embed import Vectors

logger = logging.getLogger(__name__)
BF16_AGREEMENT = 0.999  # min cosine of bf16 with fp32 vectors on the probe texts
SPEED_BATCH = [f"{text} {PROBES[-1][:600]}" for text in PROBES] * 2  # 16 passage-length texts, timed
BF16_GAIN = 0.95  # "auto" takes bf16 only when a timed batch takes at most this share of the fp32 time


def native_bf16() -> bool:
    """True when the CPU computes bfloat16 natively (x86 avx512_bf16 or amx_bf16, read from /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class PathChoice:
    """The encoder path decisions of an `Embedder`, and its ONNX graphs.

    Uses the embedder's settings (`model_path`, `adapter_digest`, `encoding`, `precision`,
    `query_encoder`, `passage_encoder`), its PyTorch `model` and `_torch_encode`.
    """

    model_path: str
    encoding: EmbeddingSettings
    precision: str
    query_encoder: str
    passage_encoder: str
    exports: int
    _model: SentenceTransformer | None
    _bf16: bool | None
    _passage_path: str | None
    _passage_reason: str
    _question_path: str | None
    _onnx: dict[str, OnnxEncoder]
    _notes: list[str]
    _paths_lock: threading.RLock

    if TYPE_CHECKING:
        @property
        def model(self) -> SentenceTransformer: ...
        @property
        def adapter_digest(self) -> str: ...
        def _torch_encode(self, texts: list[str], bf16: bool | None = None) -> Vectors: ...

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
            folder = cache_folder(self.model_path, self.encoding.cache_dir, self.adapter_digest)
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
