"""The benchmarks say which corpus they read (`--corpus DIR`) and stop with that sentence without it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bbc import CORPUS_HELP

ROOT = Path(__file__).resolve().parent.parent
READERS = ["ann", "bbc_dataset", "calibrate_not_found", "fastpath", "incremental", "latency", "lexical_rebuild",
           "related", "throughput", "train_scorer", "workers"]


def arguments(name: str, tmp_path: Path) -> list[str]:
    """What each benchmark needs besides --corpus."""
    return {"bbc_dataset": [str(tmp_path / "out")], "calibrate_not_found": ["--work", str(tmp_path / "work")],
            "train_scorer": ["--squad", str(tmp_path / "squad")]}.get(name, [])


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", READERS)
def test_each_benchmark_says_which_corpus_it_reads(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"bench.{name}").main([*arguments(name, tmp_path), "--help"])
    assert stop.value.code == 0
    assert words(f"--corpus DIR {CORPUS_HELP}") in words(capsys.readouterr().out)


@pytest.mark.parametrize("name", READERS)
def test_each_benchmark_stops_with_that_sentence_without_the_corpus(name: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"bench.{name}").main([*arguments(name, tmp_path), "--corpus", str(tmp_path / "bbc")])
    assert f"no BBC News articles in {tmp_path / 'bbc'}. --corpus DIR: {CORPUS_HELP}" in str(stop.value.code)


def test_a_missing_corpus_exits_1_with_a_sentence_and_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--quick", "--corpus", str(tmp_path / "bbc")], cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1 and CORPUS_HELP in run.stderr and "Traceback" not in run.stderr
