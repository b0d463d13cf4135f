"""The fast embedding paths: bf16 autocast and ONNX question encoding agree with fp32 PyTorch, are
made locally and cached, fall back cleanly, and are chosen by QA_EMBED_PRECISION / QA_QUERY_ENCODER."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa import embed
from qa.embed import Embedder
from qa.errors import ConfigError
from qa.onnx_encoder import META_FILE, MODEL_FILE, agreement

SENTENCES = [
    "Who interviewed Maduro?",
    "Shares in the airline fell 5% after it warned that high fuel prices would hit profits.",
    "The striker scored twice in the second half as the home side came from behind to win 3-1.",
    "What did the central bank decide about interest rates in March?",
]
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A cache root holding one export (fp32 and int8) of the default model, made by an Embedder."""
    root = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QA_CACHE_DIR", str(root))
        maker = Embedder(precision="fp32", query_encoder="onnx-int8")
        maker.warm_up()
        assert maker.exports == 1 and maker.paths().questions == "onnx-int8"
    yield root


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    """The reference: PyTorch in fp32 for everything."""
    return Embedder(precision="fp32", query_encoder="torch", passage_encoder="torch")


@pytest.fixture
def use_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("QA_CACHE_DIR", str(cache))
    return cache


def test_onnx_questions_agree_with_fp32_pytorch(use_cache: Path, fp32: Embedder) -> None:
    onnx = Embedder(query_encoder="onnx")
    found = agreement(onnx.encode_queries(SENTENCES), fp32.encode_queries(SENTENCES))
    assert found["min"] >= 0.9999 and onnx.paths().questions == "onnx"


def test_int8_questions_stay_close_to_fp32_pytorch(use_cache: Path, fp32: Embedder) -> None:
    int8 = Embedder(query_encoder="onnx-int8")
    found = agreement(int8.encode_queries(SENTENCES), fp32.encode_queries(SENTENCES))
    assert 0.98 <= found["min"] < 0.99999  # close, but really quantized


@pytest.mark.skipif(not embed.native_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_passages_agree_with_fp32(fp32: Embedder) -> None:
    bf16 = Embedder(precision="bf16", query_encoder="torch", passage_encoder="torch")
    found = agreement(bf16.encode(SENTENCES), fp32.encode(SENTENCES))
    assert found["min"] >= 0.999 and bf16.paths().passages == "torch-bf16"


def test_the_export_is_reused_from_its_cache(use_cache: Path) -> None:
    (folder,) = (use_cache / "onnx").iterdir()
    written = (folder / MODEL_FILE).stat().st_mtime_ns
    again = Embedder(query_encoder="onnx")
    again.warm_up()
    assert again.exports == 0 and (folder / MODEL_FILE).stat().st_mtime_ns == written


def test_a_broken_cached_graph_is_exported_again_with_a_warning(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fp32: Embedder
) -> None:
    shutil.copytree(cache / "onnx", tmp_path / "onnx")
    (folder,) = (tmp_path / "onnx").iterdir()
    (folder / MODEL_FILE).write_bytes(b"not an onnx graph")
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path))
    redone = Embedder(precision="fp32", query_encoder="onnx")
    with caplog.at_level(logging.WARNING, logger="qa.embed"):
        vectors = redone.encode_queries(SENTENCES)
    assert "broken" in caplog.text and redone.exports == 1 and redone.paths().questions == "onnx"
    assert agreement(vectors, fp32.encode_queries(SENTENCES))["min"] >= 0.9999
    assert (folder / META_FILE).is_file() and (folder / MODEL_FILE).stat().st_size > 1_000_000


def test_when_no_export_can_be_made_questions_fall_back_to_pytorch_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fp32: Embedder
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "a-file"))
    fallback = Embedder(precision="fp32", query_encoder="onnx")
    with caplog.at_level(logging.WARNING, logger="qa.embed"):
        vectors = fallback.encode_queries(SENTENCES)
    assert "QA_CACHE_DIR" in caplog.text and fallback.paths().questions == "torch"
    assert "onnx off" in fallback.paths().summary()
    assert agreement(vectors, fp32.encode_queries(SENTENCES))["min"] >= 0.99999


def test_environment_variables_choose_the_paths(use_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QA_EMBED_PRECISION", "FP32")
    monkeypatch.setenv("QA_QUERY_ENCODER", "torch")
    monkeypatch.setenv("QA_PASSAGE_ENCODER", "torch")
    plain = Embedder()
    plain.encode(SENTENCES[:1])
    plain.encode_query(SENTENCES[0])
    assert (plain.paths().passages, plain.paths().questions) == ("torch-fp32", "torch")
    monkeypatch.setenv("QA_QUERY_ENCODER", "onnx")
    assert Embedder().paths().questions == "pending"  # nothing decided before the first question
    fast = Embedder()
    fast.encode_query(SENTENCES[0])
    assert fast.paths().questions == "onnx"


def test_onnx_passages_agree_with_fp32_pytorch(
    use_cache: Path, fp32: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_PASSAGE_ENCODER", "onnx")
    onnx = Embedder(query_encoder="torch")
    found = agreement(onnx.encode(SENTENCES), fp32.encode(SENTENCES))
    assert found["min"] >= 0.9999 and onnx.paths().passages == "onnx" and onnx.texts_embedded == len(SENTENCES)


@pytest.mark.parametrize(("variable", "value"), [("QA_EMBED_PRECISION", "fp16"), ("QA_QUERY_ENCODER", "gpu"),
                                                      ("QA_PASSAGE_ENCODER", "tensorrt")])
def test_an_unknown_choice_is_a_config_error(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"{variable}='{value}' is not a choice; use one of auto"):
        Embedder()


def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed, "native_bf16", lambda: False)
    asked = Embedder(precision="bf16", query_encoder="torch", passage_encoder="torch")
    asked.encode(SENTENCES[:1])
    assert asked.paths().passages == "torch-fp32" and "no native bfloat16" in asked.paths().summary()


def test_onnx_questions_and_answer_sentences_need_no_torch(use_cache: Path) -> None:
    script = (
        "import sys\nfrom qa.embed import Embedder\ne = Embedder()\ne.warm_up()\n"
        "e.encode_query('Who interviewed Maduro?'); e.encode(['One sentence.', 'Another one.'])\n"
        "print(e.paths().questions, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    env = {**os.environ, "QA_CACHE_DIR": str(use_cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["onnx", "False", "False"]
