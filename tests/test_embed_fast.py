"""The fast embedding paths: bf16 autocast and ONNX question encoding agree with fp32 PyTorch, are
made locally and cached, fall back cleanly, and are chosen by the embedding settings
(QA_EMBED_PRECISION, QA_PASSAGE_ENCODER, QA_QUERY_ENCODER, QA_CACHE_DIR)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qa import embed, fastpaths
from qa.config import EmbeddingSettings, Settings
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
    maker = Embedder(encoding=EmbeddingSettings(precision="fp32", query_encoder="onnx-int8", cache_dir=root))
    maker.warm_up()
    assert maker.exports == 1 and maker.paths().questions == "onnx-int8"
    yield root


@pytest.fixture(scope="module")
def fp32() -> Embedder:
    """The reference: PyTorch in fp32 for everything."""
    return Embedder(precision="fp32", query_encoder="torch", passage_encoder="torch")


@pytest.fixture
def use_cache(cache: Path) -> EmbeddingSettings:
    """Embedding settings whose ONNX cache holds the export (fp32 and int8)."""
    return EmbeddingSettings(cache_dir=cache)


def test_onnx_questions_agree_with_fp32_pytorch(use_cache: EmbeddingSettings, fp32: Embedder) -> None:
    onnx = Embedder(encoding=use_cache, query_encoder="onnx")
    found = agreement(onnx.encode_queries(SENTENCES), fp32.encode_queries(SENTENCES))
    assert found["min"] >= 0.9999 and onnx.paths().questions == "onnx"


def test_int8_questions_stay_close_to_fp32_pytorch(use_cache: EmbeddingSettings, fp32: Embedder) -> None:
    int8 = Embedder(encoding=use_cache, query_encoder="onnx-int8")
    found = agreement(int8.encode_queries(SENTENCES), fp32.encode_queries(SENTENCES))
    assert 0.98 <= found["min"] < 0.99999  # close, but really quantized


@pytest.mark.skipif(not embed.native_bf16(), reason="this CPU has no native bfloat16")
def test_bf16_passages_agree_with_fp32(fp32: Embedder) -> None:
    bf16 = Embedder(precision="bf16", query_encoder="torch", passage_encoder="torch")
    found = agreement(bf16.encode(SENTENCES), fp32.encode(SENTENCES))
    assert found["min"] >= 0.999 and bf16.paths().passages == "torch-bf16"


def test_the_export_is_reused_from_its_cache(use_cache: EmbeddingSettings) -> None:
    (folder,) = (use_cache.cache_dir / "onnx").iterdir()
    written = (folder / MODEL_FILE).stat().st_mtime_ns
    again = Embedder(encoding=use_cache, query_encoder="onnx")
    again.warm_up()
    assert again.exports == 0 and (folder / MODEL_FILE).stat().st_mtime_ns == written


def test_a_broken_cached_graph_is_exported_again_with_a_warning(
    cache: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, fp32: Embedder
) -> None:
    shutil.copytree(cache / "onnx", tmp_path / "onnx")
    (folder,) = (tmp_path / "onnx").iterdir()
    (folder / MODEL_FILE).write_bytes(b"not an onnx graph")
    redone = Embedder(encoding=EmbeddingSettings(precision="fp32", query_encoder="onnx", cache_dir=tmp_path))
    with caplog.at_level(logging.WARNING, logger="qa.embed"):
        vectors = redone.encode_queries(SENTENCES)
    assert "broken" in caplog.text and redone.exports == 1 and redone.paths().questions == "onnx"
    assert agreement(vectors, fp32.encode_queries(SENTENCES))["min"] >= 0.9999
    assert (folder / META_FILE).is_file() and (folder / MODEL_FILE).stat().st_size > 1_000_000


def test_when_no_export_can_be_made_questions_fall_back_to_pytorch_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fp32: Embedder
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    unwritable = EmbeddingSettings(precision="fp32", query_encoder="onnx", cache_dir=tmp_path / "a-file")
    fallback = Embedder(encoding=unwritable)
    with caplog.at_level(logging.WARNING, logger="qa.embed"):
        vectors = fallback.encode_queries(SENTENCES)
    assert "QA_CACHE_DIR" in caplog.text and fallback.paths().questions == "torch"
    assert "onnx off" in fallback.paths().summary()
    assert agreement(vectors, fp32.encode_queries(SENTENCES))["min"] >= 0.99999


def test_environment_variables_choose_the_paths(cache: Path) -> None:
    environment = {"QA_EMBED_PRECISION": "FP32", "QA_QUERY_ENCODER": "torch", "QA_PASSAGE_ENCODER": "torch",
                   "QA_CACHE_DIR": str(cache)}
    plain = Embedder.from_settings(Settings.from_env(environment))
    plain.encode(SENTENCES[:1])
    plain.encode_query(SENTENCES[0])
    assert (plain.paths().passages, plain.paths().questions) == ("torch-fp32", "torch")
    assert plain.plan().passages == "torch-fp32" and "passage_encoder torch asked for" in plain.plan().reason
    onnx_questions = Settings.from_env({**environment, "QA_QUERY_ENCODER": "onnx"})
    assert Embedder.from_settings(onnx_questions).paths().questions == "pending"  # nothing decided before a question
    fast = Embedder.from_settings(onnx_questions)
    fast.encode_query(SENTENCES[0])
    assert fast.paths().questions == "onnx" and fast.exports == 0


def test_onnx_passages_agree_with_fp32_pytorch(use_cache: EmbeddingSettings, fp32: Embedder) -> None:
    onnx = Embedder(encoding=use_cache, passage_encoder="onnx", query_encoder="torch")
    found = agreement(onnx.encode(SENTENCES), fp32.encode(SENTENCES))
    assert found["min"] >= 0.9999 and onnx.paths().passages == "onnx" and onnx.texts_embedded == len(SENTENCES)
    assert onnx.plan().passages == "onnx" and onnx.plan().reason == "passage_encoder onnx asked for"


@pytest.mark.parametrize(("choice", "value"), [("precision", "fp16"), ("query_encoder", "gpu"),
                                               ("passage_encoder", "tensorrt")])
def test_an_unknown_choice_is_a_config_error(choice: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{choice}='{value}' .* is not a choice; use one of auto"):
        Embedder(**{choice: value})


def test_an_embedder_follows_the_plan_an_index_recorded(use_cache: EmbeddingSettings) -> None:
    recorded = embed.EncoderPlan("onnx", "auto, timed: onnx faster")
    follower = Embedder(encoding=use_cache)
    follower.follow(recorded)
    assert follower.plan().passages == "onnx" and follower.plan().reason == recorded.reason
    asked = Embedder(encoding=use_cache, passage_encoder="torch", precision="fp32")
    asked.follow(recorded)  # a path asked for by name wins over the index's plan
    assert asked.plan().passages == "torch-fp32"


def test_a_plan_records_when_later_passages_were_made_another_way() -> None:
    first = embed.EncoderPlan("onnx", "auto, timed")
    assert embed.EncoderPlan("onnx", "followed").after(first) == first
    mixed = embed.EncoderPlan("torch-fp32", "passage_encoder torch asked for").after(first)
    assert mixed.passages == "onnx+torch-fp32" and mixed.reason == "auto, timed; then passage_encoder torch asked for"
    assert embed.EncoderPlan.from_json(mixed.to_json()) == mixed and embed.EncoderPlan.from_json(None) is None


def test_bf16_is_refused_on_a_cpu_without_native_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastpaths, "native_bf16", lambda: False)
    asked = Embedder(precision="bf16", query_encoder="torch", passage_encoder="torch")
    asked.encode(SENTENCES[:1])
    assert asked.paths().passages == "torch-fp32" and "no native bfloat16" in asked.paths().summary()


def test_onnx_questions_and_answer_sentences_need_no_torch(cache: Path) -> None:
    script = (
        "import sys\nfrom qa.config import Settings\nfrom qa.embed import Embedder\n"
        "e = Embedder.from_settings(Settings.from_env())\ne.warm_up()\n"
        "e.encode_query('Who interviewed Maduro?'); e.encode(['One sentence.', 'Another one.'])\n"
        "print(e.paths().questions, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)\n"
    )
    env = {**os.environ, "QA_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["onnx", "False", "False"]
