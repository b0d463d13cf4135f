"""The embedding model as an ONNX graph, run with onnxruntime + tokenizers (no torch import).

The graph is never downloaded: `export` makes it from the loaded sentence-transformers model with
torch's own exporter (TorchScript-based, `dynamo=False`: no onnxscript, no optimum), into a cache
folder keyed by the model's files and the library versions. An export is only kept when its
vectors agree with the PyTorch model (cosine >= AGREEMENT on PROBES), and it records how fast each
path encoded one question, so a later process can choose a path without importing torch.

Cache layout (one folder per model + versions, written as `NAME.tmp-PID` then `os.replace`d):
`model.onnx` (fp32), `model-int8.onnx` (made on first request by dynamic quantization of the
MatMul weights, per channel), `tokenizer.json` (the model's fast tokenizer) and `encoder.json`
(inputs, padding, agreement, timings; written last).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
Vectors = npt.NDArray[np.float32]

EXPORT_FORMAT = 1  # bump when the export changes: older cache folders are then ignored
AGREEMENT = 0.999  # min cosine with the PyTorch fp32 vectors for an export to be used
MODEL_FILE = "model.onnx"
INT8_FILE = "model-int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
META_FILE = "encoder.json"
VARIANTS = {"onnx": MODEL_FILE, "onnx-int8": INT8_FILE}
# Probe texts: short questions, news sentences, and one long enough to be truncated.
PROBES = (
    "Who interviewed Maduro?",
    "What did the minister say about interest rates?",
    "When was the album released",
    "Shares in the airline fell 5% after it warned that high fuel prices would hit profits.",
    "The striker, 23, scored twice in the second half as the home side came from behind to win 3-1.",
    "Ministers have rejected calls for a public inquiry into the handling of the case.",
    "Café owners in Zürich said the new tax was ‘unfair’ — and promised to fight it.",
    " ".join(["The committee heard evidence from regulators, bankers and consumer groups over two days."] * 40),
)


class OnnxUnavailable(Exception):
    """The ONNX path cannot be used here (missing package, failed export, broken file); a message says why."""


def versions() -> dict[str, str]:
    """Versions of the libraries an export depends on (read without importing them)."""
    found = {}
    for name in ("torch", "transformers", "sentence-transformers", "onnxruntime"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def cache_folder(model_path: str, cache_dir: Path, adapter: str = "") -> Path:
    """The export folder for `model_path` in `cache_dir`: keyed by the path, its files' sizes and times,
    versions, and `adapter` (the digest of weight changes applied after loading, if any)."""
    path = Path(model_path)
    stamp: list[object] = [EXPORT_FORMAT, str(path.resolve()) if path.exists() else model_path, versions()]
    if adapter:
        stamp.append(adapter)
    if path.is_dir():
        for file in sorted(path.rglob("*")):
            if file.is_file() and file.suffix in (".json", ".safetensors", ".bin", ".txt", ".model"):
                info = file.stat()
                stamp.append((str(file.relative_to(path)), info.st_size, int(info.st_mtime)))
    key = hashlib.sha256(json.dumps(stamp, sort_keys=True, default=str).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in path.name or "model")[:40]
    return cache_dir / "onnx" / f"{slug}-{key}"


def timing_ms(encode: Callable[[list[str]], object], texts: Sequence[str], rounds: int = 2) -> float:
    """Median milliseconds to encode one text, over `rounds` passes of `texts` (after one warm-up)."""
    encode([texts[0]])
    times = []
    for _ in range(rounds):
        for text in texts:
            started = time.perf_counter()
            encode([text])
            times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def agreement(a: Vectors, b: Vectors) -> dict[str, float]:
    """Mean and min cosine between matching rows of two (n, d) arrays."""
    cosines = np.sum(_normalized(a) * _normalized(b), axis=1)
    return {"mean": float(cosines.mean()), "min": float(cosines.min())}


def _normalized(vectors: npt.NDArray[Any]) -> Vectors:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def export(model: SentenceTransformer, folder: Path, torch_encode: Callable[[list[str]], Vectors]) -> dict[str, Any]:
    """Export `model` to `folder` (fp32 ONNX + tokenizer + encoder.json) and return the metadata.

    `torch_encode` is the PyTorch fp32 path (normalized vectors), the reference for the agreement
    check and the timing. The folder appears complete or not at all.

    Raises:
        OnnxUnavailable: the model is not a plain text transformer, the export failed, or its
            vectors disagree with PyTorch.
    """
    import torch

    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise OnnxUnavailable("onnxruntime is not installed (pip install -r requirements.txt)") from None
    first = model[0]
    tokenizer = getattr(first, "tokenizer", None)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise OnnxUnavailable(f"the model's first module ({type(first).__name__}) has no fast text tokenizer")
    prepare = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 6 / 5
    features = {key: value for key, value in prepare(list(PROBES[:2])).items() if isinstance(value, torch.Tensor)}
    names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in features]
    if names[:2] != ["input_ids", "attention_mask"] or len(names) != len(features):
        raise OnnxUnavailable(f"unexpected model inputs {sorted(features)}")

    class Graph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(names, inputs, strict=True)))["sentence_embedding"]

    scratch = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
    try:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
    except OSError as error:
        raise OnnxUnavailable(
            f"cannot write the ONNX cache in {folder.parent} ({type(error).__name__}); "
            "set QA_CACHE_DIR to a writable folder"
        ) from None
    try:
        started = time.perf_counter()
        axes = {name: {0: "batch", 1: "tokens"} for name in names}
        with torch.no_grad():
            torch.onnx.export(
                Graph().eval(), tuple(features[name] for name in names), str(scratch / MODEL_FILE),
                input_names=names, output_names=["sentence_embedding"],
                dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, opset_version=17, dynamo=False,
            )
        backend.save(str(scratch / TOKENIZER_FILE))
        reference = torch_encode(list(PROBES))
        pad_token = tokenizer.pad_token or "[PAD]"
        meta: dict[str, Any] = {
            "format": EXPORT_FORMAT,
            "inputs": names,
            "max_length": int(model.max_seq_length),
            "lowercase": bool(getattr(first, "do_lower_case", False)),
            "pad_id": int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0),
            "pad_token": pad_token,
            "dimension": int(reference.shape[1]),
            "versions": versions(),
            "bytes": {MODEL_FILE: (scratch / MODEL_FILE).stat().st_size},
            "export_seconds": round(time.perf_counter() - started, 2),
        }
        onnx = OnnxEncoder(scratch, "onnx", meta)
        alone = agreement(reference, np.vstack([onnx.encode([text]) for text in PROBES]))
        together = agreement(reference, onnx.encode(list(PROBES)))  # padding in a batch must not matter
        found = {key: min(alone[key], together[key]) for key in alone}
        meta["agreement"] = {"onnx": found}
        if found["min"] < AGREEMENT:
            raise OnnxUnavailable(f"the ONNX vectors disagree with PyTorch (min cosine {found['min']:.5f})")
        meta["query_ms"] = {"torch": timing_ms(torch_encode, PROBES[:4]), "onnx": timing_ms(onnx.encode, PROBES[:4])}
        onnx.close()
        (scratch / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(scratch, folder)
        except OSError:  # another process finished the same export first: keep theirs
            if not (folder / META_FILE).is_file():
                raise
        logger.info("exported the embedding model to ONNX in %s (%.1f s)", folder, meta["export_seconds"])
        return meta
    except OnnxUnavailable:
        raise
    except Exception as error:  # torch.onnx raises many kinds of errors for unsupported models
        raise OnnxUnavailable(f"the ONNX export failed ({type(error).__name__}: {str(error)[:300]})") from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def quantize(folder: Path) -> dict[str, Any]:
    """Make `model-int8.onnx` beside `model.onnx` (dynamic int8 MatMul weights, per channel); return the meta.

    The agreement is measured against the fp32 ONNX graph (which matches PyTorch, see `export`).

    Raises:
        OnnxUnavailable: the `onnx` package is missing or quantization failed.
    """
    meta = read_meta(folder)
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as error:
        raise OnnxUnavailable(f"int8 quantization needs the onnx package ({error})") from None
    scratch = folder / f"{INT8_FILE}.tmp-{os.getpid()}"
    try:
        quiet = logging.Filter("qa")  # quantize_dynamic logs every tensor to the root logger
        logging.getLogger().addFilter(quiet)
        try:
            quantize_dynamic(str(folder / MODEL_FILE), str(scratch), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"], per_channel=True)
        finally:
            logging.getLogger().removeFilter(quiet)
        fp32, int8 = OnnxEncoder(folder, "onnx", meta), OnnxEncoder(folder, "onnx-int8", meta, path=scratch)
        meta["agreement"]["onnx-int8"] = agreement(fp32.encode(list(PROBES)), int8.encode(list(PROBES)))
        meta["query_ms"]["onnx-int8"] = timing_ms(int8.encode, PROBES[:4])
        meta["query_ms"]["onnx-fp32-now"] = timing_ms(fp32.encode, PROBES[:4])
        fp32.close()
        int8.close()
        meta["bytes"][INT8_FILE] = scratch.stat().st_size
        os.replace(scratch, folder / INT8_FILE)
    except Exception as error:
        raise OnnxUnavailable(f"int8 quantization failed ({type(error).__name__}: {str(error)[:300]})") from None
    finally:
        scratch.unlink(missing_ok=True)
    write_meta(folder, meta)
    return meta


def read_meta(folder: Path) -> dict[str, Any]:
    """The folder's encoder.json.

    Raises:
        OnnxUnavailable: missing, unreadable or from another export format.
    """
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise OnnxUnavailable(f"no usable {META_FILE} in {folder} ({type(error).__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != EXPORT_FORMAT:
        raise OnnxUnavailable(f"{folder / META_FILE} is from another export format")
    return meta


def write_meta(folder: Path, meta: dict[str, Any]) -> None:
    scratch = folder / f"{META_FILE}.tmp-{os.getpid()}"
    scratch.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    os.replace(scratch, folder / META_FILE)


class OnnxEncoder:
    """One exported graph in an onnxruntime session, with its tokenizer.

    Args:
        folder: an export folder (see `export`).
        variant: "onnx" (fp32) or "onnx-int8".
        meta: the folder's encoder.json (read when omitted).
        path: the graph file, when not the variant's usual one.

    Raises:
        OnnxUnavailable: a file is missing or broken, or onnxruntime is not installed.
    """

    def __init__(self, folder: Path, variant: str = "onnx", meta: dict[str, Any] | None = None,
                 path: Path | None = None) -> None:
        self.folder = Path(folder)
        self.variant = variant
        self.meta = meta if meta is not None else read_meta(self.folder)
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as error:
            raise OnnxUnavailable(f"{error.name} is not installed (pip install -r requirements.txt)") from None
        graph = path or self.folder / VARIANTS[variant]
        expected = (self.meta.get("bytes") or {}).get(graph.name)
        if expected is not None and graph.is_file() and graph.stat().st_size != expected:
            raise OnnxUnavailable(f"{graph.name} has {graph.stat().st_size} bytes, the export wrote {expected}")
        try:
            options = onnxruntime.SessionOptions()
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # torch may share the CPU
            options.log_severity_level = 3
            self.session = onnxruntime.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
            self.tokenizer = Tokenizer.from_file(str(self.folder / TOKENIZER_FILE))
        except Exception as error:  # onnxruntime raises its own Fail / InvalidProtobuf / NoSuchFile
            raise OnnxUnavailable(f"cannot load {graph.name} ({type(error).__name__}: {str(error)[:200]})") from None
        self.tokenizer.enable_truncation(int(self.meta["max_length"]))
        self.tokenizer.enable_padding(pad_id=int(self.meta["pad_id"]), pad_token=str(self.meta["pad_token"]))
        self.inputs: list[str] = list(self.meta["inputs"])

    @property
    def dimension(self) -> int:
        return int(self.meta["dimension"])

    def encode(self, texts: list[str], batch_size: int = 32) -> Vectors:
        """(n, d) float32, L2-normalized."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.meta.get("lowercase"):
            texts = [text.lower() for text in texts]
        # like sentence-transformers: longest first, so each batch pads to similar lengths
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            out[chosen] = self.session.run(None, self._feeds([texts[i] for i in chosen]))[0]
        return _normalized(out)

    def _feeds(self, texts: list[str]) -> dict[str, npt.NDArray[np.int64]]:
        encodings = self.tokenizer.encode_batch(texts)
        columns = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.asarray(columns[name], dtype=np.int64) for name in self.inputs}

    def close(self) -> None:
        """Drop the session (frees its memory)."""
        self.session = None  # type: ignore[assignment]
